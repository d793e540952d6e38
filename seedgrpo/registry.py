"""Extension points: register your own uncertainty or advantage estimator by name.

Unlike TRL's and verl's hooks, a registered function receives the whole per-sample context of the batch
(rewards, cluster ids, answers, hashes, texts, log-probs, embeddings), so estimators that need the
completions themselves plug in without forking the trainer.

    import seedgrpo

    @seedgrpo.register_uncertainty("answer_length_spread")
    def answer_length_spread(ctx: seedgrpo.GroupContext) -> torch.Tensor:
        lengths = torch.tensor([len(a or "") for a in ctx.answers], dtype=torch.float64)
        spread = lengths.view(-1, ctx.group_size).std(dim=1, unbiased=False)
        return (spread / (1 + spread)).float()           # one value per group, in [0, 1]

    adv = seedgrpo.compute_advantages(rewards, 8, uncertainty="answer_length_spread", answers=answers)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch

__all__ = [
    "GroupContext",
    "group_context",
    "mean_token_logprobs",
    "EMBEDDING_UNCERTAINTIES",
    "register_uncertainty",
    "register_advantage",
    "get_uncertainty",
    "get_advantage",
    "list_uncertainties",
    "list_advantages",
]


@dataclass
class GroupContext:
    """Everything known about one batch of ``B = num_groups * group_size`` completions.

    Rows ``g*G .. g*G+G-1`` form group ``g`` (TRL's layout). Optional fields are ``None`` when the caller
    did not provide them; an estimator that needs one raises a ValueError naming it.
    """

    rewards: torch.Tensor  # [B] float
    group_size: int
    cluster_ids: Optional[torch.Tensor] = None  # [B] int64; equal within a group = same answer; < 0 = none
    seq_logprobs: Optional[torch.Tensor] = None  # [B] mean token log-prob of each completion under pi_old
    embeddings: Optional[torch.Tensor] = None  # [B, D] response embeddings
    texts: Optional[list] = None  # [B] completions
    answers: Optional[list] = None  # [B] canonical answers (None = no answer)
    hashes: Optional[torch.Tensor] = None  # [B] int64 answer hashes (< 0 = no answer)
    mask: Optional[torch.Tensor] = None  # [B] bool: rows taking part (False = masked out)

    @property
    def num_groups(self) -> int:
        return self.rewards.numel() // self.group_size

    def require(self, field: str, who: str):
        """Return the field, or raise a ValueError saying which estimator needs it."""
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"uncertainty/advantage {who!r} needs `{field}`, which was not given: pass "
                             f"{field}=... to compute_advantages / seed_grpo_loss, or pick another estimator")
        return value


# The built-in uncertainties that read response embeddings, and those that read no text at all.
EMBEDDING_UNCERTAINTIES = ("gcpo_cd", "gcpo_bot", "gcpo_calibrated", "kle")
TEXT_FREE_UNCERTAINTIES = ("none", "se_discrete", "se_rao", "se_mc") + EMBEDDING_UNCERTAINTIES
TEXT_FREE_ADVANTAGES = ("seed_grpo", "grpo")


def mean_token_logprobs(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's mean token log-prob over its completion tokens (se_rao's sequence weights), in the input's
    dtype; unscorable tokens (NaN, e.g. a sampler that returned none) take no part."""
    per_token = logprobs.detach()
    valid = mask.bool() & torch.isfinite(per_token)
    return torch.where(valid, per_token, 0.0).sum(-1) / valid.sum(-1).clamp(min=1).to(per_token.dtype)


def reads_text(uncertainty: str, advantage: str = "seed_grpo") -> bool:
    """Whether the estimators may read the completions' texts and canonical answers (a registered one may)."""
    return uncertainty not in TEXT_FREE_UNCERTAINTIES or advantage not in TEXT_FREE_ADVANTAGES


def group_context(*, rewards: torch.Tensor, group_size: int, texts: Optional[list], hashes: torch.Tensor,
                  uncertainty: str, advantage: str = "seed_grpo", seq_logprobs: Optional[torch.Tensor] = None,
                  embeddings: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                  answer_backend: str = "c") -> GroupContext:
    """The per-group context of a batch, built one way for the trainer and the TRL adapter: clusters from the
    answer hashes; the texts and canonical answers only for estimators that may read them (a registered one;
    the built-ins read hashes, clusters, log-probs and embeddings)."""
    from .grading.canonical import cluster_ids, extract_and_canonicalize

    texts = texts if reads_text(uncertainty, advantage) else None  # (the caller may skip gathering them)
    return GroupContext(rewards=rewards, group_size=group_size, cluster_ids=cluster_ids(hashes, group_size),
                        seq_logprobs=seq_logprobs, embeddings=embeddings, texts=texts, hashes=hashes, mask=mask,
                        answers=None if texts is None else extract_and_canonicalize(texts, backend=answer_backend))


_UNCERTAINTIES: dict[str, Callable[[GroupContext], torch.Tensor]] = {}
_ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {}
# The modules holding the built-in estimators; they register themselves when the registry is first used (not
# when seedgrpo is imported). Named, not imported: they import this module, which imports none of them.
BUILTIN_MODULES = ("seedgrpo.uncertainty", "seedgrpo.gcpo", "seedgrpo.advantages")
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True  # first: the modules below call back into _register while importing
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _register(table: dict, kind: str, name: str):
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_{kind}(name): name must be a non-empty string, got {name!r}")

    def decorator(fn):
        _load_builtins()  # a user's name that takes a built-in's is refused, whatever the import order
        if name in table and table[name] is not fn:
            raise ValueError(f"{kind} {name!r} is already registered; pick another name")
        table[name] = fn
        return fn

    return decorator


def register_uncertainty(name: str):
    """Decorator: ``fn(ctx: GroupContext) -> Tensor[num_groups]`` with values in [0, 1] (detached)."""
    return _register(_UNCERTAINTIES, "uncertainty", name)


def register_advantage(name: str):
    """Decorator: ``fn(ctx: GroupContext, **options) -> Tensor[B]``, the final per-row advantages."""
    return _register(_ADVANTAGES, "advantage", name)


def _get(table: dict, kind: str, name: str):
    _load_builtins()
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"{kind}={name!r} is not registered; choose one of {sorted(table)} "
                         f"or register it with seedgrpo.register_{kind}") from None


def get_uncertainty(name: str):
    return _get(_UNCERTAINTIES, "uncertainty", name)


def get_advantage(name: str):
    return _get(_ADVANTAGES, "advantage", name)


def list_uncertainties() -> list[str]:
    _load_builtins()
    return sorted(_UNCERTAINTIES)


def list_advantages() -> list[str]:
    _load_builtins()
    return sorted(_ADVANTAGES)
