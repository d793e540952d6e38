"""The per-token math of the policy losses in plain PyTorch: the one definition that the reference loss
(``seedgrpo.loss``, impl="torch") and the kernels' torch backends use, and that the Triton kernels are tested
against. A leaf: it imports torch only.

Semantics are TRL 1.16's ``GRPOTrainer._compute_loss`` (``trl/trainer/grpo_trainer.py``). For row b, token t,
``logp`` the current log-prob (of ``logits / T``), ``old`` the old policy's, ``Â_b`` the advantage:

- ratio: ``ρ = exp(logp - old)`` per token (``importance_sampling_level="token"``) or, GSPO,
  ``ρ_b = exp(mean_t (logp - old))`` over row b's completion tokens (``"sequence"``);
- objective ``clip`` (loss types grpo/bnpo/dr_grpo/dapo/luspo): ``-min(min(ρ, δ)·Â, clip(ρ, 1-ε_low, 1+ε_high)·Â)``;
  ``cispo``: ``-sg(min(ρ, ε_high))·Â·logp``; ``sapo``: ``-σ(τ(ρ-1))·4/τ·Â`` with ``τ = τ_pos`` if ``Â > 0`` else
  ``τ_neg``; ``vespo``: ``-sg(φ(w_b))·Â·logp`` with ``φ(w) = e^λ w^k e^{-λw}`` of the sequence ratio ``w_b``
  (``Σ_t (logp - old)`` plus the log of ``importance_sampling_ratio``; k, λ by the sign of Â);
- then, in TRL's order: times the off-policy mask (rows with ``Â < 0`` whose mean ``sampling - logp`` exceeds
  ``off_policy_mask_threshold`` are dropped), times the entropy mask (tokens whose entropy is at least the
  ``1 - top_entropy_quantile`` quantile of the call's valid tokens), times ``importance_sampling_ratio``
  (not for vespo, which has it inside φ), plus ``β·KL`` (k3: ``e^{ref-logp} - (ref-logp) - 1``);
- ``loss = Σ_{b,t} w_{b,t}·loss_{b,t} - entropy_coef · Σ H·m_eff / N_H`` with the caller's token weights ``w``
  (0 at padding; they carry the loss type's normaliser), ``m_eff`` the completion mask times the entropy mask,
  ``N_H`` = ``entropy_normalizer`` or the number of tokens in ``m_eff``.

Masked positions take no part: their inputs may be NaN or inf (vLLM and TRL mark unscorable tokens NaN), so
they are selected away with ``torch.where``, never multiplied by 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["OBJECTIVES", "IMPORTANCE_SAMPLING_LEVELS", "PolicyOptions", "token_logprobs_and_entropy",
           "policy_loss", "entropy_threshold", "gamma_weights", "off_policy_keep", "masked_mean"]

# The per-token objectives; how a loss type aggregates them is the caller's token weights.
OBJECTIVES = ("clip", "cispo", "sapo", "vespo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
# TRL's clamp of the VESPO log-weights: log(1e-8) below, 20 above (and ±20 on each token's log-ratio).
_VESPO_LOG_MIN = math.log(1e-8)
_VESPO_LOG_MAX = 20.0


@dataclass(frozen=True)
class PolicyOptions:
    """The plain options of the per-token math (checked once, at ``seedgrpo.seed_grpo_loss``)."""
    objective: str = "clip"
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    delta: Optional[float] = None
    beta: float = 0.0
    temperature: float = 1.0
    importance_sampling_level: str = "token"
    top_entropy_quantile: float = 1.0
    off_policy_mask_threshold: Optional[float] = None
    sapo_temperature_pos: float = 1.0
    sapo_temperature_neg: float = 1.05
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    entropy_coef: float = 0.0
    entropy_normalizer: Optional[float] = None

    @property
    def one_pass(self) -> bool:
        """True when every token's loss depends on that token alone (and its row's advantage): the fused
        one-pass kernels compute it. Otherwise a row or batch statistic of the current log-probs or entropies
        is needed first (two sweeps)."""
        return (self.objective == "clip" and self.importance_sampling_level == "token"
                and self.top_entropy_quantile >= 1.0 and self.off_policy_mask_threshold is None
                and self.entropy_coef == 0.0)


def token_logprobs_and_entropy(logits: torch.Tensor, completion_ids: torch.Tensor, temperature: float = 1.0, *,
                               entropy_grad: bool = False):
    """Per-token ``log softmax(logits/T)[target]`` (differentiable) and entropy (detached unless
    ``entropy_grad``).

    Computed in float32, or float64 for float64 logits: bf16/fp16 logits are upcast because a log-sum-exp over
    a 150k vocabulary in bf16 loses the target's log-prob entirely.
    """
    x = logits if logits.dtype == torch.float64 else logits.float()
    if temperature != 1.0:
        x = x / temperature
    lse = torch.logsumexp(x, dim=-1)
    logp = x.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - lse
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        log_p = x - lse.unsqueeze(-1)
        entropy = -(torch.exp(log_p) * log_p).sum(-1)
    return logp, entropy if entropy_grad else entropy.detach()


def entropy_threshold(entropy: torch.Tensor, mask: torch.Tensor, quantile: float) -> Optional[torch.Tensor]:
    """The ``quantile`` quantile of the entropies of all valid tokens of this call, over every rank when
    torch.distributed is initialised (TRL pads, gathers and drops the padding the same way); None without any
    valid token."""
    local = entropy.detach()[mask.bool()]
    local = local if local.dtype == torch.float64 else local.float()
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        import torch.distributed as dist

        count = torch.tensor([local.numel()], device=local.device)
        counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
        dist.all_gather(counts, count)
        longest = int(max(c.item() for c in counts))
        padded = torch.full((longest,), -1.0, device=local.device, dtype=local.dtype)  # entropies are >= 0
        padded[:local.numel()] = local
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded)
        local = torch.cat([p[:int(c.item())] for p, c in zip(pieces, counts)])
    if local.numel() == 0:
        return None
    return torch.quantile(local, quantile)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the tokens where ``mask`` is set (0 without any); padding is selected away."""
    valid = mask.bool()
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.where(valid, x.to(dtype), 0.0).sum() / valid.sum().clamp(min=1).to(dtype)


@torch.no_grad()
def gamma_weights(advantages: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor,
                  importance_sampling_ratio: Optional[torch.Tensor], opts: PolicyOptions) -> torch.Tensor:
    """VESPO's φ(w_b) [B, 1] (detached), in log space as TRL computes it."""
    valid = mask.bool()
    clamped = torch.where(valid, log_ratio.clamp(-_VESPO_LOG_MAX, _VESPO_LOG_MAX), 0.0)
    seq_log_ratio = clamped.sum(-1, keepdim=True)
    if importance_sampling_ratio is not None:  # [B, T] (padding: 1) or [B, 1]
        log_is = torch.log(importance_sampling_ratio.to(log_ratio.dtype)).clamp(_VESPO_LOG_MIN, _VESPO_LOG_MAX)
        if log_is.shape == log_ratio.shape:
            log_is = torch.where(valid, log_is, 0.0)
        seq_log_ratio = seq_log_ratio + log_is.sum(-1, keepdim=True)
    log_w = seq_log_ratio.clamp(_VESPO_LOG_MIN, _VESPO_LOG_MAX)
    nonneg = advantages >= 0
    k = torch.where(nonneg, opts.vespo_k_pos, opts.vespo_k_neg).to(log_w.dtype)
    lam = torch.where(nonneg, opts.vespo_lambda_pos, opts.vespo_lambda_neg).to(log_w.dtype).clamp(min=1e-4)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return phi.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


@torch.no_grad()
def off_policy_keep(advantages: torch.Tensor, logp: torch.Tensor, sampling_logp: torch.Tensor, mask: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """[B, 1]: 1 keeps row b, 0 drops it (DeepSeek-V3.2's off-policy sequence mask, as TRL): drop a row with
    Â < 0 whose mean KL(sampler || policy) over its tokens exceeds ``threshold``. NaN sampling log-probs
    (unscorable tokens) count as 0."""
    valid = mask.bool()
    kl = torch.where(valid, (sampling_logp.to(logp.dtype) - logp.detach()).nan_to_num(nan=0.0), 0.0)
    mean_kl = kl.sum(-1, keepdim=True) / valid.sum(-1, keepdim=True).clamp(min=1)
    return ((advantages >= 0) | (mean_kl <= threshold)).to(logp.dtype)


def policy_loss(logp: torch.Tensor, entropy: Optional[torch.Tensor], *, mask: torch.Tensor,
                weights: torch.Tensor, advantages: torch.Tensor, old_logp: Optional[torch.Tensor] = None,
                ref_logp: Optional[torch.Tensor] = None, sampling_logp: Optional[torch.Tensor] = None,
                importance_sampling_ratio: Optional[torch.Tensor] = None, opts: PolicyOptions,
                entropy_cutoff: Optional[torch.Tensor] = None):
    """The loss of one call (a 0-d tensor, differentiable in ``logp`` and, for the entropy bonus, ``entropy``)
    and its per-token statistics (detached [B, T]: loss (unweighted, without the entropy bonus), kl, clip_low,
    clip_high).

    ``logp``, ``entropy``, ``mask``, ``weights``, ``old_logp``, ``ref_logp``, ``sampling_logp`` (the sampler's,
    for the off-policy mask; default ``old_logp``): [B, T]; ``advantages``: [B] (already scaled);
    ``importance_sampling_ratio``: [B, T] or [B, 1]. ``entropy_cutoff``: the entropy-mask threshold when the
    caller computed it (else :func:`entropy_threshold` of this call).
    """
    dtype = logp.dtype
    valid = mask.bool()
    detached = logp.detach()
    # Invalid inputs at padding never reach the arithmetic (0 * NaN would be NaN).
    old = detached if old_logp is None else torch.where(valid, old_logp.to(dtype), detached)
    adv = advantages.to(dtype).unsqueeze(-1)
    log_ratio = logp - old
    if opts.importance_sampling_level == "sequence":
        m = valid.to(dtype)
        log_weight = (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
    else:
        log_weight = log_ratio
    coef_1 = torch.exp(log_weight)
    isr = None
    if importance_sampling_ratio is not None:
        isr = importance_sampling_ratio.to(dtype)
        if isr.shape == logp.shape:
            isr = torch.where(valid, isr, 0.0)

    zeros = torch.zeros_like(coef_1, dtype=torch.bool)
    clip_low, clip_high = zeros, zeros
    if opts.objective == "clip":
        coef_2 = torch.clamp(coef_1, 1.0 - opts.epsilon_low, 1.0 + opts.epsilon_high)
        capped = torch.clamp(coef_1, max=opts.delta) if opts.delta is not None else coef_1
        pg = -torch.min(capped * adv, coef_2 * adv)
        clip_low = (coef_1 < 1.0 - opts.epsilon_low) & (adv < 0)
        clip_high = (coef_1 > 1.0 + opts.epsilon_high) & (adv > 0)
    elif opts.objective == "cispo":
        pg = -torch.clamp(coef_1, max=opts.epsilon_high).detach() * adv * logp
        clip_high = (coef_1 > opts.epsilon_high) & (adv > 0)
    elif opts.objective == "sapo":
        tau = torch.where(adv > 0, opts.sapo_temperature_pos, opts.sapo_temperature_neg).to(dtype)
        pg = -torch.sigmoid(tau * (coef_1 - 1.0)) * 4.0 / tau * adv
    elif opts.objective == "vespo":
        phi = gamma_weights(adv, log_ratio.detach(), mask, isr, opts)
        pg = -phi * adv * logp
    else:
        raise ValueError(f"objective={opts.objective!r} is not one of {OBJECTIVES}")
    pg = pg.expand(logp.shape)

    if opts.off_policy_mask_threshold is not None:
        sampler = old if sampling_logp is None else torch.where(valid, sampling_logp.to(dtype), old)
        pg = pg * off_policy_keep(advantages.to(dtype).unsqueeze(-1), logp, sampler, mask,
                                  opts.off_policy_mask_threshold)
    effective = valid
    if opts.top_entropy_quantile < 1.0:
        cutoff = entropy_cutoff
        if cutoff is None:
            cutoff = entropy_threshold(entropy, mask, 1.0 - opts.top_entropy_quantile)
        high = (torch.zeros_like(valid) if cutoff is None
                else torch.where(valid, entropy.detach(), 0.0) >= cutoff.to(entropy.dtype))
        effective = valid & high
        pg = pg * effective.to(dtype)
    if isr is not None and opts.objective != "vespo":
        pg = pg * isr

    kl = torch.zeros_like(detached)
    per_token = pg
    if ref_logp is not None:
        diff = torch.where(valid, ref_logp.to(dtype), detached) - logp
        kl_grad = torch.exp(diff) - diff - 1.0
        kl = kl_grad.detach()
        if opts.beta != 0.0:
            per_token = per_token + opts.beta * kl_grad
    loss = torch.where(valid, weights.to(dtype) * per_token, 0.0).sum()
    if opts.entropy_coef != 0.0:
        count = opts.entropy_normalizer if opts.entropy_normalizer is not None else \
            effective.sum().clamp(min=1).to(dtype)
        loss = loss - opts.entropy_coef * torch.where(effective, entropy.to(dtype), 0.0).sum() / count
    stats = dict(loss=torch.where(valid, per_token.detach(), 0.0), kl=kl,
                 clip_low=clip_low.expand(logp.shape).to(dtype), clip_high=clip_high.expand(logp.shape).to(dtype))
    return loss, stats
