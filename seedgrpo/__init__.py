"""seedgrpo: SEED-GRPO (semantic-entropy enhanced GRPO) and GCPO-style training for reasoning LLMs.

    import seedgrpo
    loss, metrics = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask,
                                            rewards=rewards, group_size=8, cluster_ids=clusters)

Modules: ``loss`` (the drop-in loss and its PyTorch reference), ``advantages``, ``uncertainty`` (semantic
entropy), ``registry`` (plug in your own estimators), ``answers`` and ``rewards`` (compiled answer hashing,
grading), ``kernels`` (fused Triton paths), ``trainer``/``train`` (DeepSpeed ZeRO-3 trainer), ``evaluate``.
"""
from . import gcpo as _gcpo  # noqa: F401  (registers gcpo_cd, gcpo_bot, gcpo_calibrated, kle)
from . import uncertainty as _uncertainty  # noqa: F401  (registers se_discrete, se_rao, se_mc)
from .advantages import compute_advantages
from .loss import PRESETS, SeedGRPOLoss, seed_grpo_loss
from .registry import (
    GroupContext,
    get_advantage,
    get_uncertainty,
    list_advantages,
    list_uncertainties,
    register_advantage,
    register_uncertainty,
)
from .uncertainty import semantic_entropy

__version__ = "0.1.0"

__all__ = [
    "seed_grpo_loss",
    "SeedGRPOLoss",
    "PRESETS",
    "compute_advantages",
    "semantic_entropy",
    "GroupContext",
    "register_advantage",
    "register_uncertainty",
    "get_advantage",
    "get_uncertainty",
    "list_advantages",
    "list_uncertainties",
    "answers",
    "rewards",
]


def __getattr__(name):
    # answers/rewards load the compiled extension and the grader: import them on first use only.
    if name in ("answers", "rewards"):  # the grading package's public modules
        import importlib

        return importlib.import_module(f".grading.{name}", __name__)
    if name in ("kernels", "evaluate", "trainer", "embeddings", "clustering", "gcpo"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'seedgrpo' has no attribute {name!r}")
