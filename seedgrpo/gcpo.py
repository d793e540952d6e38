"""GCPO-style uncertainties: geometry-aware and reward-calibrated, from response embeddings.

"Why Semantic Entropy Fails" (GCPO, arXiv 2605.21801) names two gaps of semantic entropy: it counts any two
distinct answers as equally far apart (the anisotropic gap), and it ignores whether a group's rewards carry a
learnable signal (the calibration gap). The paper's formulas are not public in full; what follows is OUR
formalisation of those two ideas (docs/gcpo.md derives every normalisation), not the authors' code.

Each group g holds rows g*G .. g*G+G-1 (TRL's layout). Of those, the n rows that take part are the rows with
``mask`` True whose embedding is not all zeros (``policy_embeddings`` returns zeros for an empty completion);
everything is normalised by n, so a group with masked rows can still reach 1, and n <= 1 gives U = 0.
With unit embeddings ``e_i = x_i / |x_i|`` and ``ē`` their mean:

- ``gcpo_cd``          CD  = (1 - |ē|) / (1 - 1/√n), clipped to [0, 1]
- ``gcpo_bot``         BoT = Σ_k p_k |c_k - c̄|² / (1 - 1/n), clipped to [0, 1];  c_k = mean e_i of cluster k,
                       c̄ = Σ_k p_k c_k, p_k = the cluster's softmax(seq_logprobs) mass (counts without them)
- ``gcpo_calibrated``  U   = W / max(T, n·τ): T = Σ_i |e_i - ē|², W = the same within reward classes
                       (r_i above the group mean vs at or below it), τ = 1e-4
- ``kle``              KLE = S(K / n) / log n, S the von Neumann entropy, K_ij = cos²(e_i, e_j)

The reference point of CD and BoT is n mutually orthogonal answers, which give exactly 1: for unit vectors
with no negative cosine ``|ē| >= 1/√n`` and ``BoT <= 1 - Σ p_k² <= 1 - 1/n``, so clipping only acts on
groups whose answers point in net-opposite directions. ``reward_dispersion`` (RD = std_g(r) / 0.5) is the
strength of a group's reward signal; a diagnostic here, not an uncertainty. All four are registered with
``seedgrpo.register_uncertainty``; pass ``embeddings=E, uncertainty=name`` to ``compute_advantages``:

    E = seedgrpo.embeddings.minilm_embeddings(answer_spans)             # or policy_embeddings(hidden, mask)
    adv = seedgrpo.compute_advantages(rewards, 8, embeddings=E, uncertainty="gcpo_calibrated", alpha=1.0)

Everything is float64 over [num_groups, G, ·] tensors (G <= 64 in practice), with no loop over groups.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .registry import GroupContext, register_uncertainty

__all__ = [
    "cosine_dispersion",
    "barycentric_transport",
    "reward_dispersion",
    "calibrated_dispersion",
    "kernel_entropy",
    "MAX_REWARD_STD",
    "DISPERSION_FLOOR",
]

# Largest population std of rewards in [0, 1] (half the group at 0, half at 1): RD = std / MAX_REWARD_STD.
MAX_REWARD_STD = 0.5
# Mean squared distance to the centroid below which a group's spread counts as numerical noise in the
# calibrated ratio (without a floor, W/T of pure noise could be anything). 1e-4 is a chord of 0.01, cosine
# 0.99995: above the chord between two bf16 roundings of one vector (at most 2 * 2^-8 ~ 0.008), so rounding
# noise of identical answers stays under it.
DISPERSION_FLOOR = 1e-4
# Rewards closer than this (relative to the group's largest |r|) to the group mean count as "at the mean", so
# that all-equal rewards form one class whatever the rounding of the mean.
_REWARD_TIE_RTOL = 1e-6


# ----------------------------------------------------------------------------------------------- inputs


def _check_group_size(group_size, num_rows: int) -> int:
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int (num_generations), got {group_size!r}")
    if num_rows % group_size:
        raise ValueError(f"group_size={group_size} does not divide the batch of {num_rows} rows: every group "
                         "needs exactly group_size rows (rows g*G .. g*G+G-1)")
    return num_rows // group_size


def _check_row_tensor(name: str, t, num_rows: int) -> None:
    if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (num_rows,)):
        raise ValueError(f"{name} must be a tensor of shape ({num_rows},), one per row, got "
                         f"{type(t).__name__} of shape {tuple(getattr(t, 'shape', ()))}")


def _unit_rows(embeddings, group_size: int, mask: Optional[torch.Tensor]):
    """Unit embeddings [Ng, G, D] float64 (zeros where inactive), active rows [Ng, G], their count n [Ng]."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or embeddings.shape[1] < 1:
        raise ValueError(f"embeddings must be a [B, D] float tensor (one response embedding per row), got "
                         f"{type(embeddings).__name__} of shape {tuple(getattr(embeddings, 'shape', ()))}")
    if not embeddings.dtype.is_floating_point:
        raise ValueError(f"embeddings must be a float tensor, got dtype {embeddings.dtype}; "
                         "use seedgrpo.embeddings.policy_embeddings or minilm_embeddings")
    num_rows, dim = embeddings.shape
    num_groups = _check_group_size(group_size, num_rows)
    _check_row_tensor("mask", mask, num_rows)
    x = embeddings.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x).all(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"embeddings has NaN or inf in rows {bad[:8]}; embed the completions again, or mask "
                         "those rows out with mask=...")
    x = x.reshape(num_groups, group_size, dim)
    norms = x.norm(dim=-1)
    # An all-zero row carries no direction (policy_embeddings gives it for an empty completion): no part.
    active = norms > 0
    if mask is not None:
        active &= mask.detach().to(device=x.device).bool().reshape(num_groups, group_size)
    scaled = x / norms.clamp(min=torch.finfo(torch.float64).tiny).unsqueeze(-1)
    unit = torch.where(active.unsqueeze(-1), scaled, torch.zeros((), dtype=x.dtype, device=x.device))
    return unit, active, active.sum(dim=1).to(torch.float64)


def _centroid(unit: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return unit.sum(dim=1) / n.clamp(min=1.0).unsqueeze(-1)  # [Ng, D]


# ----------------------------------------------------------------------------------------------- measures


def cosine_dispersion(embeddings: torch.Tensor, group_size: int, *,
                      mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """CD of each group, float64 [num_groups] in [0, 1]: ``(1 - |ē|) / (1 - 1/√n)``, clipped.

    0 when every answer points the same way, 1 for n mutually orthogonal answers (|ē| = 1/√n) or any group
    whose answers point in net-opposite directions (|ē| < 1/√n, only possible with negative cosines).
    """
    unit, active, n = _unit_rows(embeddings, group_size, mask)
    mean_norm = _centroid(unit, n).norm(dim=-1)
    reference = 1.0 - n.clamp(min=1.0).rsqrt()  # 1 - |ē| at n orthogonal unit vectors
    cd = (1.0 - mean_norm) / reference.clamp(min=1e-12)
    return torch.where(n >= 2, cd.clamp(0.0, 1.0), torch.zeros_like(cd))


def _same_cluster(cluster_ids: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """[Ng, G, G] bool: rows i and j are both active and share an answer (negative id: its own cluster)."""
    num_groups, group_size = active.shape
    ids = cluster_ids.detach().to(active.device).reshape(num_groups, group_size)
    eye = torch.eye(group_size, dtype=torch.bool, device=active.device)
    same = ((ids.unsqueeze(2) == ids.unsqueeze(1)) & (ids >= 0).unsqueeze(2)) | eye
    return same & active.unsqueeze(1) & active.unsqueeze(2)


def _row_weights(seq_logprobs: Optional[torch.Tensor], active: torch.Tensor) -> torch.Tensor:
    """[Ng, G] float64 weights of the active rows summing to 1 per group: softmax of seq_logprobs, or 1/n."""
    if seq_logprobs is None:
        ell = torch.zeros(active.shape, dtype=torch.float64, device=active.device)
    else:
        ell = seq_logprobs.detach().to(device=active.device, dtype=torch.float64).reshape(active.shape)
    ell = ell.masked_fill(~active, -math.inf)
    w = torch.softmax(ell, dim=1)
    return torch.nan_to_num(w, nan=0.0)  # a group with no active row: all -inf -> NaN -> no weight


def barycentric_transport(embeddings: torch.Tensor, group_size: int, cluster_ids: torch.Tensor,
                          seq_logprobs: Optional[torch.Tensor] = None, *,
                          mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """BoT of each group, float64 [num_groups] in [0, 1]: ``Σ_k p_k |c_k - c̄|² / (1 - 1/n)``, clipped.

    ``c_k`` is the mean unit embedding of answer cluster k, ``p_k`` its mass (softmax of ``seq_logprobs``
    summed over its rows, as SE's Rao estimator; row counts without them) and ``c̄ = Σ_k p_k c_k``. For
    orthogonal clusters this is the Gini-Simpson index ``1 - Σ p_k²`` over its largest value on n rows,
    ``1 - 1/n``.
    """
    unit, active, n = _unit_rows(embeddings, group_size, mask)
    num_rows = unit.shape[0] * group_size
    if not isinstance(cluster_ids, torch.Tensor) or cluster_ids.dtype.is_floating_point \
            or cluster_ids.dtype == torch.bool:
        raise ValueError(f"cluster_ids must be an integer tensor of shape ({num_rows},), got "
                         f"{getattr(cluster_ids, 'dtype', type(cluster_ids).__name__)}; use "
                         "answers.cluster_ids (math) or clustering.semantic_cluster_ids (free text)")
    _check_row_tensor("cluster_ids", cluster_ids, num_rows)
    _check_row_tensor("seq_logprobs", seq_logprobs, num_rows)
    if seq_logprobs is not None and not torch.isfinite(seq_logprobs.detach()).all():
        raise ValueError("seq_logprobs has NaN or inf; pass the mean token log-prob of each completion")
    same = _same_cluster(cluster_ids, active).to(torch.float64)
    weights = _row_weights(seq_logprobs, active)
    # Per row i: c_{k(i)}, the centroid of its cluster; Σ_k p_k f(c_k) = Σ_i w_i f(c_{k(i)}) as p_k sums w_i.
    row_centroid = same @ unit / same.sum(dim=2, keepdim=True).clamp(min=1.0)
    barycenter = (weights.unsqueeze(-1) * row_centroid).sum(dim=1, keepdim=True)
    transport = (weights * (row_centroid - barycenter).pow(2).sum(dim=-1)).sum(dim=1)
    reference = 1.0 - 1.0 / n.clamp(min=1.0)  # Gini-Simpson of n equal singletons
    bot = transport / reference.clamp(min=1e-12)
    return torch.where(n >= 2, bot.clamp(0.0, 1.0), torch.zeros_like(bot))


def reward_dispersion(rewards: torch.Tensor, group_size: int, *,
                      mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RD of each group, float64 [num_groups] in [0, 1]: population std of the active rewards / 0.5, clipped.

    The strength of the group's learning signal: 0 when all rewards are equal (no advantage), 1 for half 0
    and half 1. The population std (not TRL's unbiased one), whose exact maximum for rewards in [0, 1] is 0.5.
    """
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1 or not rewards.dtype.is_floating_point:
        raise ValueError(f"rewards must be a 1-D float tensor, got {type(rewards).__name__} of shape "
                         f"{tuple(getattr(rewards, 'shape', ()))}")
    if not torch.isfinite(rewards.detach()).all():
        raise ValueError("rewards contain NaN or inf; check the reward function")
    num_groups = _check_group_size(group_size, rewards.numel())
    _check_row_tensor("mask", mask, rewards.numel())
    r = rewards.detach().to(torch.float64).reshape(num_groups, group_size)
    active = (torch.ones_like(r, dtype=torch.bool) if mask is None
              else mask.detach().to(r.device).bool().reshape(r.shape))
    n = active.sum(dim=1).to(torch.float64)
    mean = torch.where(active, r, 0.0).sum(dim=1) / n.clamp(min=1.0)
    var = torch.where(active, (r - mean.unsqueeze(1)) ** 2, 0.0).sum(dim=1) / n.clamp(min=1.0)
    rd = var.sqrt() / MAX_REWARD_STD
    return torch.where(n >= 2, rd.clamp(0.0, 1.0), torch.zeros_like(rd))


def calibrated_dispersion(embeddings: torch.Tensor, rewards: torch.Tensor, group_size: int, *,
                          mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Reward-calibrated U of each group, float64 [num_groups] in [0, 1]: ``W / max(T, n·τ)``.

    ``T = Σ_i |e_i - ē|²`` is the group's embedding dispersion; ``W`` is the part left within the two reward
    classes (rewards above the group mean, and at or below it: exactly correct/incorrect for 0/1 rewards),
    so ``T - W`` is the part the rewards explain. U = 0 when each reward class says one thing (all spread is
    signal), U = 1 when the classes have the same centroid (the spread is unrelated to reward). All rewards
    equal is one class: U = 1 when the answers differ (nothing explains their spread; the advantages are 0
    anyway) and 0 when they agree. ``τ = DISPERSION_FLOOR`` keeps the numerical noise of identical answers
    from giving U ≈ 1.
    """
    unit, active, n = _unit_rows(embeddings, group_size, mask)
    _check_row_tensor("rewards", rewards, unit.shape[0] * group_size)
    if not rewards.dtype.is_floating_point or not torch.isfinite(rewards.detach()).all():
        raise ValueError("rewards must be a finite float tensor (one reward per row)")
    r = rewards.detach().to(device=unit.device, dtype=torch.float64).reshape(active.shape)
    mean_r = torch.where(active, r, 0.0).sum(dim=1, keepdim=True) / n.clamp(min=1.0).unsqueeze(1)
    scale = torch.where(active, r.abs(), 0.0).amax(dim=1, keepdim=True).clamp(min=1.0)
    above = (r - mean_r > _REWARD_TIE_RTOL * scale) & active
    below = ~above & active

    def spread(members: torch.Tensor) -> torch.Tensor:  # Σ_{i in members} |e_i - mean of members|²
        m = members.unsqueeze(-1).to(torch.float64)
        count = members.sum(dim=1, keepdim=True).to(torch.float64).clamp(min=1.0)
        centre = (unit * m).sum(dim=1) / count
        return ((unit - centre.unsqueeze(1)).pow(2).sum(dim=-1) * members).sum(dim=1)

    total = spread(active)
    within = spread(above) + spread(below)
    u = within / torch.maximum(total, n * DISPERSION_FLOOR).clamp(min=1e-300)
    return torch.where(n >= 2, u.clamp(0.0, 1.0), torch.zeros_like(u))


def kernel_entropy(embeddings: torch.Tensor, group_size: int, *,
                   mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """KLE of each group, float64 [num_groups] in [0, 1]: von Neumann entropy of ``K / n`` over ``log n``.

    ``K_ij = cos²(e_i, e_j)`` is positive semi-definite (the Schur product of the Gram matrix with itself),
    has unit diagonal so ``K / n`` has unit trace, and entries in [0, 1]: 0 for identical answers (rank
    one), 1 for n mutually orthogonal ones (``K = I``). Antipodal answers count as identical (cos² = 1),
    which text encoders, whose cosines are rarely negative, do not produce in practice.
    """
    unit, active, n = _unit_rows(embeddings, group_size, mask)
    kernel = (unit @ unit.transpose(1, 2)).pow(2)  # inactive rows are zero vectors: zero rows and columns
    density = kernel / n.clamp(min=1.0).view(-1, 1, 1)
    eigenvalues = torch.linalg.eigvalsh(density).clamp(min=0.0)
    entropy = -torch.special.xlogy(eigenvalues, eigenvalues).sum(dim=1)
    kle = entropy / n.clamp(min=2.0).log()
    return torch.where(n >= 2, kle.clamp(0.0, 1.0), torch.zeros_like(kle))


# ----------------------------------------------------------------------------------------------- registry


@register_uncertainty("gcpo_cd")
def gcpo_cd(ctx: GroupContext) -> torch.Tensor:
    """Cosine dispersion of the group's response embeddings (needs ``embeddings``)."""
    return cosine_dispersion(ctx.require("embeddings", "gcpo_cd"), ctx.group_size, mask=ctx.mask)


@register_uncertainty("gcpo_bot")
def gcpo_bot(ctx: GroupContext) -> torch.Tensor:
    """Barycentric transport between answer clusters (needs ``embeddings`` and ``cluster_ids``)."""
    embeddings = ctx.require("embeddings", "gcpo_bot")
    cluster_ids = ctx.require("cluster_ids", "gcpo_bot")
    return barycentric_transport(embeddings, ctx.group_size, cluster_ids, ctx.seq_logprobs, mask=ctx.mask)


@register_uncertainty("gcpo_calibrated")
def gcpo_calibrated(ctx: GroupContext) -> torch.Tensor:
    """Share of the embedding dispersion the rewards do not explain (needs ``embeddings``)."""
    embeddings = ctx.require("embeddings", "gcpo_calibrated")
    return calibrated_dispersion(embeddings, ctx.rewards, ctx.group_size, mask=ctx.mask)


@register_uncertainty("kle")
def kle(ctx: GroupContext) -> torch.Tensor:
    """Kernel (von Neumann) entropy of the cos² kernel of the embeddings (needs ``embeddings``)."""
    return kernel_entropy(ctx.require("embeddings", "kle"), ctx.group_size, mask=ctx.mask)
