"""The SEED-GRPO policy loss: the PyTorch reference (the oracle of every fast path) and the drop-in API.

Per token (DESIGN.md §2, TRL's semantics): ``ρ = exp(logp - old_logp)`` with ``logp`` from ``logits / T``;
``loss = -min(min(ρ, δ)·Â, clip(ρ, 1-ε_low, 1+ε_high)·Â) + β·KL`` with the k3 estimator
``KL = e^{ref-logp} - (ref-logp) - 1``. Every ``loss_type`` is then ``Σ_{b,t} w_{b,t}·loss_{b,t}`` with

- ``grpo``: ``w = m / (max(1, Σ_t m_b) · N)``, N = number of sequences (mean per sequence, then over sequences);
- ``bnpo`` and ``dapo``: ``w = m / N``, N = number of completion tokens;
- ``dr_grpo``: ``w = m / N``, N = sequences × ``max_completion_length``.

``N`` is the ``normalizer`` argument: pass the *global* value (the whole generation batch, all ranks) and the
sum of the micro-batch losses equals the whole-batch loss, so gradients do not depend on how the batch is
split. Its default is this call's own batch.

    loss, metrics = seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask,
                                   rewards=rewards, group_size=8, cluster_ids=clusters)
    loss.backward()
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .advantages import SCALE_FNS, SCALE_REWARDS, seed_advantages
from .registry import GroupContext

__all__ = [
    "seed_grpo_loss",
    "SeedGRPOLoss",
    "PRESETS",
    "LOSS_TYPES",
    "token_logprobs_and_entropy",
    "per_token_loss",
    "token_weights",
    "default_normalizer",
    "masked_mean",
]

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
IMPLS = ("auto", "torch", "triton")

# Named configurations. `paper` is the released SEED-GRPO code's settings (DESIGN.md §2).
PRESETS: dict[str, dict] = {
    "paper": dict(uncertainty="se_rao", scale_fn="reciprocal", alpha=0.0417, loss_type="dr_grpo", epsilon=0.2,
                  beta=0.0, scale_rewards="none", group_size=8),
    "grpo": dict(alpha=0.0, loss_type="grpo", scale_rewards="group", epsilon=0.2, beta=0.0),
    "dr_grpo": dict(alpha=0.0, loss_type="dr_grpo", scale_rewards="none", epsilon=0.2, beta=0.0),
}


# ----------------------------------------------------------------------------------------------------------
# Reference math
# ----------------------------------------------------------------------------------------------------------

def token_logprobs_and_entropy(logits: torch.Tensor, completion_ids: torch.Tensor, temperature: float = 1.0):
    """Per-token ``log softmax(logits/T)[target]`` (differentiable) and entropy (detached).

    Computed in float32, or float64 for float64 logits: bf16/fp16 logits are upcast because a log-sum-exp over
    a 150k vocabulary in bf16 loses the target's log-prob entirely.
    """
    x = logits if logits.dtype == torch.float64 else logits.float()
    if temperature != 1.0:
        x = x / temperature
    lse = torch.logsumexp(x, dim=-1)
    logp = x.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - lse
    with torch.no_grad():
        entropy = lse - (torch.softmax(x, dim=-1) * x).sum(-1)
    return logp, entropy


def per_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                   ref_logp: Optional[torch.Tensor] = None, *, epsilon_low: float = 0.2,
                   epsilon_high: float = 0.2, delta: Optional[float] = None, beta: float = 0.0):
    """Clipped surrogate (+ β·k3 KL) per token; returns (loss, is_low_clipped, is_high_clipped, kl)."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).unsqueeze(-1)
    clipped = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    capped = torch.clamp(ratio, max=delta) if delta is not None else ratio  # two-sided clipping (TRL's delta)
    loss = -torch.min(capped * adv, clipped * adv)
    if ref_logp is not None:
        diff = ref_logp - logp
        kl = torch.exp(diff) - diff - 1.0
    else:
        kl = torch.zeros_like(logp)
    if beta != 0.0:
        loss = loss + beta * kl
    with torch.no_grad():
        is_low = (ratio < 1.0 - epsilon_low) & (adv < 0)
        is_high = (ratio > 1.0 + epsilon_high) & (adv > 0)
    return loss, is_low, is_high, kl


def default_normalizer(completion_mask: torch.Tensor, loss_type: str,
                       max_completion_length: Optional[int] = None) -> float:
    """This batch's denominator of ``loss_type`` (pass the global one for micro-batches and ranks)."""
    rows, length = completion_mask.shape
    if loss_type == "grpo":
        return float(rows)
    if loss_type == "dr_grpo":
        return float(rows * (max_completion_length or length))
    return float(max(int(completion_mask.sum().item()), 1))


def token_weights(completion_mask: torch.Tensor, loss_type: str, normalizer, dtype=torch.float32) -> torch.Tensor:
    """``w[b, t]`` such that the loss is ``Σ w · per_token_loss`` (see the module docstring)."""
    m = completion_mask.to(dtype)
    if loss_type == "grpo":
        return m / (m.sum(-1, keepdim=True).clamp(min=1.0) * normalizer)
    return m / normalizer


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    return (x.to(m.dtype) * m).sum() / m.sum().clamp(min=1.0)


def _reference_loss(logits, completion_ids, completion_mask, advantages, old_logprobs, ref_logprobs, *,
                    loss_type, normalizer, epsilon_low, epsilon_high, delta, beta, temperature, logp=None,
                    entropy=None):
    if logp is None:
        logp, entropy = token_logprobs_and_entropy(logits, completion_ids, temperature)
    old = logp.detach() if old_logprobs is None else old_logprobs.to(logp.dtype)
    ref = None if ref_logprobs is None else ref_logprobs.to(logp.dtype)
    loss_tok, is_low, is_high, kl = per_token_loss(logp, old, advantages, ref, epsilon_low=epsilon_low,
                                                   epsilon_high=epsilon_high, delta=delta, beta=beta)
    loss = (token_weights(completion_mask, loss_type, normalizer, logp.dtype) * loss_tok).sum()
    metrics = {
        "clip_ratio_low": masked_mean(is_low, completion_mask),
        "clip_ratio_high": masked_mean(is_high, completion_mask),
        "kl": masked_mean(kl.detach(), completion_mask),
        "entropy": masked_mean(entropy, completion_mask),
    }
    return loss, metrics


# ----------------------------------------------------------------------------------------------------------
# Argument checking: every error names the argument, the value and the fix.
# ----------------------------------------------------------------------------------------------------------

def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _check_number(name, value, *, low=None, low_inclusive=True, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")


def _check_inputs(logits, hidden, weight, completion_ids, completion_mask, old_logprobs, ref_logprobs,
                  advantages, rewards, group_size, loss_type, epsilon, epsilon_high, delta, beta, temperature,
                  max_completion_length, scale_rewards, scale_fn, alpha, normalizer, impl):
    if (logits is None) == (hidden is None):
        raise ValueError("pass either logits [B, T, V] or hidden [B, T, H] + weight [V, H] (the fused-linear "
                         "form), not both and not neither")
    if not isinstance(completion_ids, torch.Tensor) or completion_ids.dim() != 2 \
            or completion_ids.dtype.is_floating_point or completion_ids.dtype == torch.bool:
        raise ValueError(f"completion_ids must be an integer tensor [B, T] (the sampled tokens that logits[b, t] "
                         f"scores), got {_shape(completion_ids)}"
                         + (f" of dtype {completion_ids.dtype}" if isinstance(completion_ids, torch.Tensor) else ""))
    bt = tuple(completion_ids.shape)
    if not isinstance(completion_mask, torch.Tensor) or tuple(completion_mask.shape) != bt:
        raise ValueError(f"completion_mask must be a tensor of shape {bt} like completion_ids (1 = completion "
                         f"token, 0 = padding), got {_shape(completion_mask)}")
    if logits is not None:
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or tuple(logits.shape[:2]) != bt:
            raise ValueError(f"logits must be [B, T, V] with B, T = {bt} (aligned so that logits[b, t] scores "
                             f"completion_ids[b, t]), got {_shape(logits)}")
        if not logits.dtype.is_floating_point:
            raise ValueError(f"logits must be floating point, got {logits.dtype}")
        vocab = logits.shape[-1]
    else:
        if weight is None:
            raise ValueError("hidden was given without weight: pass weight [V, H] (the lm_head weight)")
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or tuple(hidden.shape[:2]) != bt:
            raise ValueError(f"hidden must be [B, T, H] with B, T = {bt}, got {_shape(hidden)}")
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
            raise ValueError(f"weight must be [V, H] with H = {hidden.shape[2]} (hidden's last dim), "
                             f"got {_shape(weight)}")
        vocab = weight.shape[0]
    if weight is not None and hidden is None:
        raise ValueError("weight was given without hidden: pass hidden [B, T, H] too, or logits alone")
    if completion_ids.numel():
        lo, hi = int(completion_ids.min()), int(completion_ids.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"completion_ids must lie in [0, {vocab}) (the vocabulary), got values in "
                             f"[{lo}, {hi}]; replace padding ids by any valid id (the mask zeroes them)")
    for name, t in (("old_logprobs", old_logprobs), ("ref_logprobs", ref_logprobs)):
        if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != bt
                              or not t.dtype.is_floating_point):
            raise ValueError(f"{name} must be a float tensor of shape {bt} (per-token log-probs), "
                             f"got {_shape(t)}")
    if advantages is not None:
        if not isinstance(advantages, torch.Tensor) or tuple(advantages.shape) != (bt[0],) \
                or not advantages.dtype.is_floating_point:
            raise ValueError(f"advantages must be a float tensor of shape ({bt[0]},), one per sequence, "
                             f"got {_shape(advantages)}")
    elif rewards is None:
        raise ValueError("pass advantages [B], or rewards [B] with group_size to compute them")
    else:
        if not isinstance(rewards, torch.Tensor) or tuple(rewards.shape) != (bt[0],):
            raise ValueError(f"rewards must be a tensor of shape ({bt[0]},), one per sequence, "
                             f"got {_shape(rewards)}")
        if group_size is None:
            raise ValueError("rewards were given without group_size: pass group_size=G (num_generations)")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r} is not one of {LOSS_TYPES}")
    _check_number("epsilon", epsilon, low=0)
    _check_number("epsilon_high", epsilon_high, low=0, allow_none=True)
    _check_number("delta", delta, low=1, low_inclusive=False, allow_none=True)
    _check_number("beta", beta, low=0)
    _check_number("temperature", temperature, low=0, low_inclusive=False)
    _check_number("alpha", alpha, low=0)
    if beta > 0 and ref_logprobs is None:
        raise ValueError(f"beta={beta} > 0 needs ref_logprobs [B, T] (the reference model's per-token log-probs); "
                         "pass them or set beta=0")
    if max_completion_length is not None and (not isinstance(max_completion_length, int)
                                              or isinstance(max_completion_length, bool)
                                              or max_completion_length < bt[1]):
        raise ValueError(f"max_completion_length must be an int >= T = {bt[1]} (the padded completion length), "
                         f"got {max_completion_length!r}")
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards={scale_rewards!r} is not one of {SCALE_REWARDS}")
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"scale_fn={scale_fn!r} is not one of {SCALE_FNS}")
    if normalizer is not None:
        value = float(normalizer) if isinstance(normalizer, torch.Tensor) and normalizer.numel() == 1 else normalizer
        _check_number("normalizer", value, low=0, low_inclusive=False)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {IMPLS}")


def _seq_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(per_token.dtype)
    return (per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------------
# The public loss
# ----------------------------------------------------------------------------------------------------------

def seed_grpo_loss(logits: Optional[torch.Tensor] = None, *, hidden: Optional[torch.Tensor] = None,
                   weight: Optional[torch.Tensor] = None, completion_ids: torch.Tensor,
                   completion_mask: torch.Tensor, advantages: Optional[torch.Tensor] = None,
                   rewards: Optional[torch.Tensor] = None, group_size: Optional[int] = None,
                   cluster_ids: Optional[torch.Tensor] = None, seq_logprobs: Optional[torch.Tensor] = None,
                   embeddings: Optional[torch.Tensor] = None, old_logprobs: Optional[torch.Tensor] = None,
                   ref_logprobs: Optional[torch.Tensor] = None, loss_type: str = "dr_grpo",
                   epsilon: float = 0.2, epsilon_high: Optional[float] = None, delta: Optional[float] = None,
                   beta: float = 0.0, temperature: float = 1.0, max_completion_length: Optional[int] = None,
                   scale_rewards: str = "none", uncertainty: Optional[str] = "se_rao",
                   scale_fn: str = "reciprocal", alpha: float = 0.0417, normalizer=None, impl: str = "auto"):
    """SEED-GRPO loss of a batch of completions; returns ``(loss, metrics)``.

    Inputs: ``logits`` [B, T, V] aligned with ``completion_ids`` [B, T] (``logits[b, t]`` scores
    ``completion_ids[b, t]``), or the fused-linear form ``hidden`` [B, T, H] + ``weight`` [V, H] that never
    materialises the logits. ``completion_mask`` [B, T] marks completion tokens.

    Advantages: ``advantages`` [B] are used as given; otherwise they are computed from ``rewards`` [B]
    (``group_size`` rows per prompt) with ``scale_rewards`` and scaled by ``f(α·U)`` of each group's
    ``uncertainty`` (``cluster_ids`` for the ``se_*`` estimators, ``embeddings`` for the GCPO-style ones).
    ``seq_logprobs`` [B] weights the clusters (``se_rao``); when absent it is the masked mean of
    ``old_logprobs``, or of the current log-probs (detached).

    Policy terms: ``old_logprobs=None`` is on-policy; ``epsilon``/``epsilon_high``/``delta`` clip the ratio;
    ``beta`` > 0 adds the k3 KL to ``ref_logprobs``; ``temperature`` divides the logits. ``normalizer`` is the
    global denominator of ``loss_type`` (see the module docstring).

    ``impl``: ``"torch"`` (reference; chunked for hidden/weight), ``"triton"`` (fused kernels), ``"auto"``
    (Triton on CUDA tensors, PyTorch otherwise).

    Metrics (detached 0-d tensors): ``clip_ratio_low``, ``clip_ratio_high``, ``kl``, ``entropy`` (masked token
    means), ``semantic_entropy`` (mean normalised uncertainty U of the groups) and ``advantage_scale`` (mean
    factor f(α·U)); the last two are NaN when advantages were given.
    """
    _check_inputs(logits, hidden, weight, completion_ids, completion_mask, old_logprobs, ref_logprobs,
                  advantages, rewards, group_size, loss_type, epsilon, epsilon_high, delta, beta, temperature,
                  max_completion_length, scale_rewards, scale_fn, alpha, normalizer, impl)
    source = logits if logits is not None else hidden
    if impl == "auto":
        impl = "triton" if source.is_cuda else "torch"
    epsilon_low = float(epsilon)
    epsilon_high = float(epsilon if epsilon_high is None else epsilon_high)
    if normalizer is None:
        normalizer = default_normalizer(completion_mask, loss_type, max_completion_length)
    row_mask = completion_mask.bool().any(-1)

    # The from-logits torch path needs the per-token log-probs anyway: compute them once.
    logp = entropy = None
    if impl == "torch" and logits is not None:
        logp, entropy = token_logprobs_and_entropy(logits, completion_ids, temperature)

    sem_entropy = adv_scale = torch.tensor(float("nan"))
    group_factor = None
    if advantages is None:
        if (seq_logprobs is None and cluster_ids is not None and alpha > 0
                and uncertainty in ("se_rao", "se_mc", "gcpo_bot")):
            seq_logprobs = _derive_seq_logprobs(logp, old_logprobs, logits, hidden, weight, completion_ids,
                                                completion_mask, temperature, impl)
        ctx = GroupContext(rewards=rewards, group_size=group_size, cluster_ids=cluster_ids,
                           seq_logprobs=seq_logprobs, embeddings=embeddings, mask=row_mask)
        result = seed_advantages(ctx, uncertainty=uncertainty, scale_fn=scale_fn, alpha=alpha,
                                 scale_rewards=scale_rewards)
        advantages = result.advantages
        if result.factor is not None:
            sem_entropy, adv_scale = result.uncertainty.float().mean(), result.factor.float().mean()
            group_factor = result.factor
        else:
            sem_entropy, adv_scale = torch.tensor(0.0), torch.tensor(1.0)

    policy = dict(old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, loss_type=loss_type, normalizer=normalizer,
                  epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta, beta=float(beta),
                  temperature=float(temperature))
    if impl == "torch" and logits is not None:
        loss, metrics = _reference_loss(logits, completion_ids, completion_mask, advantages, old_logprobs,
                                        ref_logprobs, loss_type=loss_type, normalizer=normalizer,
                                        epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta,
                                        beta=float(beta), temperature=float(temperature), logp=logp,
                                        entropy=entropy)
    else:
        if impl == "triton":
            _require_triton(source)
        # The kernels can form the advantages themselves from rewards and the per-group factor; batch-std
        # scaling needs a reduction over the whole batch, so those advantages are passed ready-made.
        in_kernel = rewards is not None and group_factor is not None and scale_rewards != "batch"
        adv_args = (dict(rewards=rewards, group_size=group_size, group_factor=group_factor,
                         scale_rewards=scale_rewards) if in_kernel else dict(advantages=advantages))
        if logits is not None:
            from .kernels.grpo_loss import grpo_loss_from_logits
            loss, metrics = grpo_loss_from_logits(logits, completion_ids, completion_mask, **adv_args, **policy)
        else:
            from .kernels.fused_linear_grpo import fused_linear_grpo_loss
            loss, metrics = fused_linear_grpo_loss(hidden, weight, completion_ids, completion_mask, **adv_args,
                                                   **policy, backend=impl)
    metrics = {k: v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
               for k, v in metrics.items()}
    metrics["semantic_entropy"] = sem_entropy.detach()
    metrics["advantage_scale"] = adv_scale.detach()
    return loss, metrics


def _derive_seq_logprobs(logp, old_logprobs, logits, hidden, weight, completion_ids, completion_mask,
                         temperature, impl):
    """Mean token log-prob of each completion, for ``se_rao``/``se_mc`` when the caller gave none."""
    if old_logprobs is not None:
        return _seq_mean(old_logprobs.detach().double(), completion_mask)
    if logp is not None:
        return _seq_mean(logp.detach().double(), completion_mask)
    # Fused paths never hold the log-probs before the loss: one no-grad pass gets them.
    from .kernels.selective_logprob import selective_logprob
    with torch.no_grad():
        if logits is not None:
            current = selective_logprob(logits, completion_ids, temperature=temperature, backend=impl)
        else:
            current = selective_logprob(None, completion_ids, hidden=hidden, weight=weight,
                                        temperature=temperature, backend=impl)
    return _seq_mean(current.double(), completion_mask)


def _require_triton(source: torch.Tensor) -> None:
    import os

    if not source.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before importing "
                         "seedgrpo, for testing on CPU); use impl='torch' or impl='auto' on CPU")


class SeedGRPOLoss(nn.Module):
    """``seed_grpo_loss`` with its configuration held once: ``SeedGRPOLoss(**config)(logits, **batch)``.

    ``SeedGRPOLoss.from_preset("paper", alpha=0.1)`` starts from a named configuration (see ``PRESETS``).
    """

    _CONFIG_KEYS = ("group_size", "loss_type", "epsilon", "epsilon_high", "delta", "beta", "temperature",
                    "max_completion_length", "scale_rewards", "uncertainty", "scale_fn", "alpha", "normalizer",
                    "impl")

    def __init__(self, **config):
        super().__init__()
        unknown = sorted(set(config) - set(self._CONFIG_KEYS))
        if unknown:
            raise ValueError(f"SeedGRPOLoss got unknown configuration keys {unknown}; allowed: "
                             f"{list(self._CONFIG_KEYS)} (per-batch tensors go to forward())")
        self.config = dict(config)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SeedGRPOLoss":
        if name not in PRESETS:
            raise ValueError(f"preset {name!r} is not one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(self, logits: Optional[torch.Tensor] = None, **batch):
        clash = sorted(set(batch) & set(self.config))
        if clash:
            raise ValueError(f"{clash} were set in the SeedGRPOLoss configuration and again in forward(); "
                             "set each in one place")
        return seed_grpo_loss(logits, **self.config, **batch)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
