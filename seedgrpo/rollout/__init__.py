"""Rollout engines: G completions per prompt from the current policy (`hf` default, `vllm` on GPUs).

base.py holds the interface and the helpers every engine shares; hf.py and vllm.py the engines; decode.py
and sampling.py the HF engine's decode loop and seeded sampler; this module the factory. The no-grad
scoring forward and the training forward live in seedgrpo/modeling/: rollout generates, it does not train.
"""
from .base import ENGINES, RolloutBatch, RolloutEngine, SamplingSettings, row_seeds

__all__ = ["RolloutBatch", "RolloutEngine", "SamplingSettings", "make_rollout_engine", "row_seeds"]


def make_rollout_engine(name: str, **kwargs) -> RolloutEngine:
    """The engine named by the config's `rollout_engine`, built with its keyword arguments."""
    if name == "hf":
        from .hf import HFRolloutEngine

        return HFRolloutEngine(**kwargs)
    if name == "vllm":
        from .vllm import VLLMRolloutEngine

        return VLLMRolloutEngine(**kwargs)
    raise ValueError(f"rollout_engine={name!r} is not one of {ENGINES}")
