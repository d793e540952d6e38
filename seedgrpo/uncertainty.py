"""Semantic entropy of each group of completions: the reference estimators (DESIGN.md §2).

Group ``g`` holds rows ``g*G .. g*G+G-1``. Rows with equal cluster id share a cluster (the same final answer);
a row with a negative id (no extractable answer) is a cluster of its own; masked-out rows take no part.
With cluster masses ``p_k``:

- ``discrete``: ``p_k = n_k / n``, ``SE = -Σ p_k log p_k`` (needs no log-probs).
- ``rao``: ``p_k = Σ_{i∈C_k} e^{ℓ_i} / Σ_j e^{ℓ_j}`` with ``ℓ_i`` the mean token log-prob of row i under the
  rollout policy (a softmax, so it is computed as one), ``SE = -Σ p_k log p_k``. Without log-probs it is the
  discrete estimator (all ``ℓ_i`` equal).
- ``mc``: the paper's printed form, ``SE = -(1/K) Σ_k log p_k`` over the K clusters, same ``p_k``.

The registered uncertainties ``se_discrete``, ``se_rao`` and ``se_mc`` return ``U = SE / log G`` clamped to
[0, 1] (``mc`` can exceed ``log G`` for very uneven masses; ``G = 1`` gives 0).
Everything is computed in float64 over a [num_groups, G, G] "same cluster" matrix: G is small (≤ 64 in
practice), and the matrix form has no Python loop over groups.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .registry import GroupContext, register_uncertainty

__all__ = ["semantic_entropy", "ESTIMATORS"]

ESTIMATORS = ("discrete", "rao", "mc")


def _check_group_inputs(cluster_ids: torch.Tensor, group_size: int, seq_logprobs, mask) -> int:
    if not isinstance(cluster_ids, torch.Tensor) or cluster_ids.dim() != 1:
        raise ValueError(f"cluster_ids must be a 1-D tensor of per-row cluster ids, got "
                         f"{type(cluster_ids).__name__} of shape {tuple(getattr(cluster_ids, 'shape', ()))}")
    if cluster_ids.dtype.is_floating_point or cluster_ids.dtype == torch.bool:
        raise ValueError(f"cluster_ids must be an integer tensor, got dtype {cluster_ids.dtype}; "
                         "use seedgrpo.answers.cluster_ids(hashes, group_size)")
    n = cluster_ids.numel()
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if n % group_size:
        raise ValueError(f"group_size={group_size} does not divide the batch of {n} rows: every group "
                         "needs exactly group_size rows (TRL's layout, rows g*G .. g*G+G-1)")
    for name, t in (("seq_logprobs", seq_logprobs), ("mask", mask)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.shape != cluster_ids.shape):
            raise ValueError(f"{name} must be a tensor of shape {tuple(cluster_ids.shape)} (one per row), "
                             f"got {tuple(getattr(t, 'shape', ()))}")
    if seq_logprobs is not None and not torch.isfinite(seq_logprobs.detach()).all():
        raise ValueError("seq_logprobs has non-finite values; pass the mean token log-prob of each completion "
                         "(masked mean over its completion tokens)")
    return n // group_size


def _cluster_masses(cluster_ids, group_size, seq_logprobs, mask):
    """Per row: log of its own weight, log of its cluster's mass, and its cluster's row count, all [Ng, G]."""
    num_groups = cluster_ids.numel() // group_size
    ids = cluster_ids.detach().reshape(num_groups, group_size)
    active = (torch.ones_like(ids, dtype=torch.bool) if mask is None
              else mask.detach().reshape(num_groups, group_size).bool())
    eye = torch.eye(group_size, dtype=torch.bool, device=ids.device)
    same = (ids.unsqueeze(2) == ids.unsqueeze(1)) & (ids >= 0).unsqueeze(2)  # no answer: own singleton
    same = (same | eye) & active.unsqueeze(1) & active.unsqueeze(2)
    if seq_logprobs is None:
        ell = torch.zeros(ids.shape, dtype=torch.float64, device=ids.device)
    else:
        ell = seq_logprobs.detach().to(torch.float64).reshape(num_groups, group_size)
    ell = ell.masked_fill(~active, -math.inf)
    log_w = ell - torch.logsumexp(ell, dim=1, keepdim=True)  # softmax weights of the rows, in log space
    # log p of row i's cluster = logsumexp over the rows j in the same cluster
    log_p = torch.logsumexp(log_w.unsqueeze(1).masked_fill(~same, -math.inf), dim=2)
    counts = same.sum(dim=2).to(torch.float64)
    return log_w, log_p, counts, active


def semantic_entropy(cluster_ids: torch.Tensor, group_size: int, seq_logprobs: Optional[torch.Tensor] = None,
                     *, estimator: str = "rao", mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Semantic entropy (nats) of each group: a float64 tensor of shape [num_groups].

    Args:
        cluster_ids: [B] integer cluster id per row (equal within a group = same answer; negative = no answer).
        group_size: G, rows per group (B must be a multiple of it).
        seq_logprobs: [B] mean token log-prob of each completion under the rollout policy (``rao``/``mc``).
        estimator: ``"discrete"``, ``"rao"`` or ``"mc"`` (see the module docstring).
        mask: [B] bool, rows that take part (a group with no active row has entropy 0).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} is not one of {ESTIMATORS}")
    _check_group_inputs(cluster_ids, group_size, seq_logprobs, mask)
    if estimator == "discrete":
        seq_logprobs = None
    log_w, log_p, counts, active = _cluster_masses(cluster_ids, group_size, seq_logprobs, mask)
    zero = torch.zeros((), dtype=torch.float64, device=log_w.device)
    if estimator in ("discrete", "rao"):
        # -Σ_k p_k log p_k = -Σ_i w_i log p_{k(i)}: each row carries its own weight.
        terms = torch.where(active, log_w.exp() * log_p, zero)
        return -terms.sum(dim=1)
    # mc: -(1/K) Σ_k log p_k, each cluster counted once by giving each of its rows 1/n_k of it.
    inv_count = torch.where(active, 1.0 / counts.clamp(min=1.0), zero)
    num_clusters = inv_count.sum(dim=1)
    total = torch.where(active, inv_count * log_p, zero).sum(dim=1)
    return torch.where(num_clusters > 0, -total / num_clusters.clamp(min=1.0), zero)


def _normalised(ctx: GroupContext, estimator: str, name: str) -> torch.Tensor:
    cluster_ids = ctx.require("cluster_ids", name)
    se = semantic_entropy(cluster_ids, ctx.group_size, ctx.seq_logprobs, estimator=estimator, mask=ctx.mask)
    if ctx.group_size == 1:
        return torch.zeros_like(se)
    return (se / math.log(ctx.group_size)).clamp(0.0, 1.0)


@register_uncertainty("se_discrete")
def se_discrete(ctx: GroupContext) -> torch.Tensor:
    """Normalised discrete semantic entropy: cluster frequencies only."""
    return _normalised(ctx, "discrete", "se_discrete")


@register_uncertainty("se_rao")
def se_rao(ctx: GroupContext) -> torch.Tensor:
    """Normalised Rao-style semantic entropy: clusters weighted by sequence likelihood (the default)."""
    return _normalised(ctx, "rao", "se_rao")


@register_uncertainty("se_mc")
def se_mc(ctx: GroupContext) -> torch.Tensor:
    """Normalised Monte-Carlo semantic entropy, the SEED-GRPO paper's printed form."""
    return _normalised(ctx, "mc", "se_mc")
