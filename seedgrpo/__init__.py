"""seedgrpo: SEED-GRPO (semantic-entropy enhanced GRPO) and GCPO-style training for reasoning LLMs.

    import seedgrpo
    loss, metrics = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask,
                                            rewards=rewards, group_size=8, cluster_ids=clusters)

The public API is what this package exports (docs/architecture.md draws the rest): the loss
(``seed_grpo_loss``, ``SeedGRPOLoss``, ``PRESETS``, ``LossOptions``), ``compute_advantages``,
``semantic_entropy``, the estimator registry, the trainer (``Trainer``, ``TrainConfig``, ``load_config``), and
the modules ``answers`` and ``rewards`` (answer reading, hashing, grading), ``evaluate``, ``kernels`` and
``integrations``. Everything loads on first use (PEP 562): ``import seedgrpo`` imports no torch, and grading
alone never does.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself.
_EXPORTS = {
    "seed_grpo_loss": (".loss", "seed_grpo_loss"),
    "SeedGRPOLoss": (".loss", "SeedGRPOLoss"),
    "PRESETS": (".loss", "PRESETS"),
    "LossOptions": (".loss", "LossOptions"),
    "rollout_importance_ratio": (".loss", "rollout_importance_ratio"),
    "normalizer_for": (".loss", "normalizer_for"),
    "token_weights": (".loss", "token_weights"),
    "compute_advantages": (".advantages", "compute_advantages"),
    "seed_advantages": (".advantages", "seed_advantages"),
    "DEFAULT_ALPHA": (".advantages", "DEFAULT_ALPHA"),
    "semantic_entropy": (".uncertainty", "semantic_entropy"),
    "GroupContext": (".registry", "GroupContext"),
    "register_advantage": (".registry", "register_advantage"),
    "register_uncertainty": (".registry", "register_uncertainty"),
    "get_advantage": (".registry", "get_advantage"),
    "get_uncertainty": (".registry", "get_uncertainty"),
    "list_advantages": (".registry", "list_advantages"),
    "list_uncertainties": (".registry", "list_uncertainties"),
    "group_context": (".registry", "group_context"),
    "semantic_cluster_ids": (".clustering", "semantic_cluster_ids"),
    "minilm_embeddings": (".embeddings", "minilm_embeddings"),
    "policy_embeddings": (".embeddings", "policy_embeddings"),
    "Trainer": (".training.trainer", "Trainer"),
    "TrainConfig": (".training.config", "TrainConfig"),
    "load_config": (".training.config", "load_config"),
    "answers": (".grading.answers", None),
    "rewards": (".grading.rewards", None),
    "evaluate": (".evaluate", None),
    "kernels": (".kernels", None),
    "integrations": (".integrations", None),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'seedgrpo' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
