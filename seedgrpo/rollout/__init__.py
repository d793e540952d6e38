"""Rollout engines: G completions per prompt from the current policy (`hf` default, `vllm` on GPUs).

See base.py for the interface, hf.py and vllm.py for the engines, scoring.py for the no-grad log-prob
forward pass (the training forward is seedgrpo/training_forward.py: rollout generates, it does not train).
"""
from .base import RolloutBatch, RolloutEngine, SamplingSettings, make_rollout_engine, row_seeds

__all__ = ["RolloutBatch", "RolloutEngine", "SamplingSettings", "make_rollout_engine", "row_seeds"]
