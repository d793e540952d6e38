"""Group-relative advantages and their semantic-uncertainty modulation (DESIGN.md §2).

``A_i = r_i - mean_g(r)``, divided by ``std_g(r) + 1e-4`` (``scale_rewards="group"``, unbiased std as in TRL),
by the std of the whole batch (``"batch"``), or not at all (``"none"``: Dr.GRPO). SEED-GRPO then scales each
group by ``f(α·U_g)`` where ``U_g ∈ [0, 1]`` is the group's uncertainty (a registered estimator, e.g. the
normalised semantic entropy) and ``f`` a decreasing map with ``f(0) = 1``, so that prompts the model is unsure
about take smaller steps. The factor is detached: it weights the policy gradient, it is not optimised.

    adv = compute_advantages(rewards, 8, cluster_ids, seq_logprobs)         # SEED-GRPO, the paper's settings
    adv = compute_advantages(rewards, 8, alpha=0.0)                          # plain Dr.GRPO
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .registry import GroupContext, get_advantage, get_uncertainty, register_advantage

__all__ = ["compute_advantages", "seed_advantages", "base_advantages", "scale_factor", "AdvantageResult",
           "SCALE_FNS", "SCALE_REWARDS", "STD_EPS", "FOCAL_GAMMA"]

STD_EPS = 1e-4  # TRL's epsilon in (r - mean) / (std + eps): keeps all-equal groups at advantage 0
FOCAL_GAMMA = 2.0  # the focal exponent the design fixes
SCALE_FNS = ("linear", "exp", "focal", "reciprocal")
# The released SEED-GRPO code's alpha (arXiv 2505.12346): the one default every entry point takes.
DEFAULT_ALPHA = 0.0417
SCALE_REWARDS = ("none", "group", "batch")
# Uncertainties defined on answer clusters: without cluster ids there is nothing to measure, so no scaling.
CLUSTER_UNCERTAINTIES = ("se_discrete", "se_rao", "se_mc")


def scale_factor(x: torch.Tensor, scale_fn: str) -> torch.Tensor:
    """``f(x)`` for ``x = α·U ≥ 0``: linear ``1-x`` and focal ``(1-x)^γ`` clamp at 0; exp ``e^{-x}``;
    reciprocal ``1/(1+x)``."""
    if scale_fn == "linear":
        return (1.0 - x).clamp(min=0.0)
    if scale_fn == "exp":
        return torch.exp(-x)
    if scale_fn == "focal":
        return (1.0 - x).clamp(min=0.0) ** FOCAL_GAMMA
    if scale_fn == "reciprocal":
        return 1.0 / (1.0 + x)
    raise ValueError(f"scale_fn={scale_fn!r} is not one of {SCALE_FNS}")


def base_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "none") -> torch.Tensor:
    """``r - mean_g(r)`` [/ std], in float32 or wider (float64 rewards stay float64)."""
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards={scale_rewards!r} is not one of {SCALE_REWARDS}")
    dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
    r = rewards.detach().to(dtype)
    grouped = r.view(-1, group_size)
    adv = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)
    if scale_rewards == "group":
        # torch.std of a single element is NaN; a group of one has no spread, so its advantage stays 0.
        std = grouped.std(dim=1) if group_size > 1 else torch.zeros_like(grouped[:, 0])
        adv = adv / (std.repeat_interleave(group_size) + STD_EPS)
    elif scale_rewards == "batch":
        std = r.std() if r.numel() > 1 else torch.zeros((), dtype=dtype, device=r.device)
        adv = adv / (std + STD_EPS)
    return adv


@dataclass
class AdvantageResult:
    advantages: torch.Tensor  # [B] final (scaled) advantages
    uncertainty: Optional[torch.Tensor]  # [num_groups] U in [0, 1], None when no scaling was applied
    factor: Optional[torch.Tensor]  # [num_groups] f(α·U), None when no scaling was applied
    base: Optional[torch.Tensor] = None  # [B] the advantages before the factor (the kernels apply it in-pass)


def _check_rewards(rewards, group_size) -> None:
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1:
        raise ValueError(f"rewards must be a 1-D tensor with one reward per completion, got "
                         f"{type(rewards).__name__} of shape {tuple(getattr(rewards, 'shape', ()))}")
    if not rewards.dtype.is_floating_point:
        raise ValueError(f"rewards must be a float tensor, got {rewards.dtype}; use rewards.float()")
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int (num_generations), got {group_size!r}")
    if rewards.numel() % group_size:
        raise ValueError(f"group_size={group_size} does not divide the {rewards.numel()} rewards: pass all "
                         "group_size completions of every prompt (rows g*G .. g*G+G-1)")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf; check the reward function")


def _check_context(ctx: GroupContext) -> None:
    n = ctx.rewards.numel()
    for name in ("cluster_ids", "seq_logprobs", "hashes", "mask"):
        t = getattr(ctx, name)
        if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,)):
            raise ValueError(f"{name} must be a tensor of shape ({n},), one per row like rewards, got "
                             f"{type(t).__name__} of shape {tuple(getattr(t, 'shape', ()))}")
    e = ctx.embeddings
    if e is not None and (not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[0] != n):
        raise ValueError(f"embeddings must be a [{n}, D] tensor (one vector per row), got "
                         f"{type(e).__name__} of shape {tuple(getattr(e, 'shape', ()))}")
    for name in ("answers", "texts"):
        v = getattr(ctx, name)
        if v is not None and len(v) != n:
            raise ValueError(f"{name} must have one entry per row ({n}), got {len(v)}")


def _check_alpha(alpha) -> None:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (0 disables the scaling), got {alpha!r}")


def seed_advantages(ctx: GroupContext, *, uncertainty: Optional[str] = "se_rao", scale_fn: str = "reciprocal",
                    alpha: float = DEFAULT_ALPHA, scale_rewards: str = "none") -> AdvantageResult:
    """Base advantages times the per-group factor ``f(α·U_g)``, with the statistics behind them."""
    _check_rewards(ctx.rewards, ctx.group_size)
    _check_context(ctx)
    _check_alpha(alpha)
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"scale_fn={scale_fn!r} is not one of {SCALE_FNS}")
    adv = base_advantages(ctx.rewards, ctx.group_size, scale_rewards)
    if uncertainty in (None, "none"):
        return AdvantageResult(adv, None, None)
    estimator = get_uncertainty(uncertainty)  # validates the name even when the scaling turns out unused
    if uncertainty in CLUSTER_UNCERTAINTIES and ctx.cluster_ids is None:
        return AdvantageResult(adv, None, None)
    u = estimator(ctx).detach().to(device=adv.device, dtype=torch.float64)
    if u.shape != (ctx.num_groups,):
        raise ValueError(f"uncertainty {uncertainty!r} returned shape {tuple(u.shape)}; a registered "
                         f"uncertainty must return one value per group, shape ({ctx.num_groups},)")
    if not torch.isfinite(u).all() or (u < 0).any() or (u > 1).any():
        raise ValueError(f"uncertainty {uncertainty!r} returned values outside [0, 1]: {u.tolist()}")
    factor = scale_factor(alpha * u, scale_fn)
    scaled = adv * factor.to(adv.dtype).repeat_interleave(ctx.group_size)
    return AdvantageResult(scaled, u, factor, base=adv)


@register_advantage("grpo")
def grpo_advantages(ctx: GroupContext, *, scale_rewards: str = "none", **_: object) -> torch.Tensor:
    """Group-relative advantages without any uncertainty scaling (GRPO / Dr.GRPO)."""
    _check_rewards(ctx.rewards, ctx.group_size)
    return base_advantages(ctx.rewards, ctx.group_size, scale_rewards)


@register_advantage("seed_grpo")
def seed_grpo_advantages(ctx: GroupContext, **options) -> torch.Tensor:
    """SEED-GRPO: group-relative advantages scaled by ``f(α·U)`` of each group's uncertainty."""
    return seed_advantages(ctx, **options).advantages


def compute_advantages(rewards: torch.Tensor, group_size: int, cluster_ids: Optional[torch.Tensor] = None,
                       seq_logprobs: Optional[torch.Tensor] = None, *, embeddings: Optional[torch.Tensor] = None,
                       uncertainty: Optional[str] = "se_rao", scale_fn: str = "reciprocal",
                       alpha: float = DEFAULT_ALPHA, scale_rewards: str = "none", answers: Optional[list] = None,
                       texts: Optional[list] = None, hashes: Optional[torch.Tensor] = None,
                       mask: Optional[torch.Tensor] = None, estimator: str = "seed_grpo") -> torch.Tensor:
    """Per-row advantages ``Â = (r - mean_g r)[/std] · f(α·U_g)``, detached, shape [B].

    ``cluster_ids`` (from :func:`seedgrpo.answers.cluster_ids`) is needed by the ``se_*`` uncertainties;
    without it no scaling is applied. ``seq_logprobs`` (mean token log-prob of each completion) turns
    ``se_rao`` from cluster frequencies into likelihood-weighted masses. ``embeddings`` [B, D] feed the
    GCPO-style uncertainties. ``answers``/``texts``/``hashes``/``mask`` are passed to registered estimators;
    ``estimator`` picks a registered advantage estimator (``seed_grpo``, ``grpo`` or your own).
    """
    ctx = GroupContext(rewards=rewards, group_size=group_size, cluster_ids=cluster_ids, seq_logprobs=seq_logprobs,
                       embeddings=embeddings, texts=texts, answers=answers, hashes=hashes, mask=mask)
    fn = get_advantage(estimator)
    return fn(ctx, uncertainty=uncertainty, scale_fn=scale_fn, alpha=alpha, scale_rewards=scale_rewards)
