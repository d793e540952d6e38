"""The SEED-GRPO policy loss: the PyTorch reference (the oracle of every fast path) and the drop-in API.

This module owns ``loss_type``: the per-token weights and the normaliser are decided here, once, and every
caller (the trainer, the TRL drop-in, the kernels) takes them from here. The per-token math itself (ratios,
the objectives, masks, KL; TRL 1.16's semantics) is ``seedgrpo.kernels.reference``, shared with the kernels'
torch backends. Every ``loss_type`` is ``Σ_{b,t} w_{b,t}·loss_{b,t}`` (minus the entropy bonus) with

- ``grpo``, ``sapo``: ``w = m / (max(1, Σ_t m_b) · N)``, N = number of sequences (mean per sequence, then over
  sequences);
- ``luspo``: ``w = m / N``, N = number of sequences (sum per sequence, mean over sequences);
- ``bnpo``, ``dapo``, ``cispo``, ``vespo``: ``w = m / N``, N = number of completion tokens;
- ``dr_grpo``: ``w = m / N``, N = sequences × ``max_completion_length``.

``N`` is the ``normalizer`` argument: pass the *global* value (the whole generation batch, all ranks) and the
sum of the micro-batch losses equals the whole-batch loss, so gradients do not depend on how the batch is
split. Its default is this call's own batch.

    loss, metrics = seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask,
                                   rewards=rewards, group_size=8, cluster_ids=clusters)
    loss.backward()
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .advantages import DEFAULT_ALPHA, SCALE_FNS, SCALE_REWARDS, seed_advantages
from .kernels.reference import (IMPORTANCE_SAMPLING_LEVELS, PolicyOptions, masked_mean, policy_loss,
                                token_logprobs_and_entropy)
from .knobs import above, at_least, check_all, knob, within
from .registry import GroupContext, mean_token_logprobs

__all__ = [
    "seed_grpo_loss",
    "SeedGRPOLoss",
    "LossOptions",
    "PRESETS",
    "LOSS_TYPES",
    "IMPORTANCE_SAMPLING_LEVELS",
    "token_logprobs_and_entropy",
    "token_weights",
    "normalizer_for",
    "rollout_importance_ratio",
    "IMPORTANCE_SAMPLING_MODES",
    "default_normalizer",
    "masked_mean",
]

# TRL 1.16's loss types: the objective of each (the per-token math) and how it aggregates (the weights).
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
_OBJECTIVE = {"cispo": "cispo", "sapo": "sapo", "vespo": "vespo"}  # every other type: the clipped surrogate
_MEAN_PER_ROW = ("grpo", "sapo")  # mean over each row's tokens, then over rows
_PER_ROW = ("grpo", "sapo", "luspo")  # normalised by the number of rows
# TRL's vllm_importance_sampling_mode: granularity (token | sequence) x out-of-range handling (truncate | mask)
IMPORTANCE_SAMPLING_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
IMPLS = ("auto", "torch", "triton")

# Named configurations. `paper` is the released SEED-GRPO code's settings (DESIGN.md §2).
PRESETS: dict[str, dict] = {
    "paper": dict(uncertainty="se_rao", scale_fn="reciprocal", alpha=DEFAULT_ALPHA, loss_type="dr_grpo", epsilon=0.2,
                  beta=0.0, scale_rewards="none", group_size=8),
    "grpo": dict(alpha=0.0, loss_type="grpo", scale_rewards="group", epsilon=0.2, beta=0.0),
    "dr_grpo": dict(alpha=0.0, loss_type="dr_grpo", scale_rewards="none", epsilon=0.2, beta=0.0),
}


# ----------------------------------------------------------------------------------------------------------
# The policy-loss options: one validated object from config (or the drop-in's arguments) to the kernels
# ----------------------------------------------------------------------------------------------------------

# The per-token options' defaults are the kernels' (kernels/ imports nothing from the package, so they live
# there once); the knobs below only add TRL's names, the rules and the help.
_KERNEL = PolicyOptions()


@dataclass(frozen=True)
class LossOptions:
    """The policy-loss options, TRL 1.16's names and meanings; validated once, here. The trainer's config, the
    TRL adapter and ``seed_grpo_loss``'s keyword arguments all build it with ``from_object``; the kernels
    receive its plain form (``kernel_options``)."""
    loss_type: str = knob("dr_grpo", "aggregation and objective (README 'Loss types'): grpo, bnpo, dr_grpo, "
                          "dapo, luspo clip the ratio; cispo, sapo, vespo have their own objectives",
                          choices=LOSS_TYPES)
    epsilon: float = knob(_KERNEL.epsilon_low, "clip range ε: the ratio is clipped to [1 − ε, 1 + ε_high]",
                          within(0, 1))
    epsilon_high: Optional[float] = knob(None, "upper clip ε_high (DAPO's clip-higher, ≥ ε); null = ε",
                                         at_least(0))
    delta: Optional[float] = knob(_KERNEL.delta, "two-sided clipping: the ratio is also capped at δ (> 1) for "
                                  "negative advantages; null = off", above(1))
    beta: float = knob(_KERNEL.beta, "weight β of the k3 KL to the reference model; 0 = no reference model",
                       at_least(0))
    temperature: float = knob(_KERNEL.temperature, "sampling temperature; the logits are divided by it when "
                              "scored", above(0))
    importance_sampling_level: str = knob(_KERNEL.importance_sampling_level, "ratio per token, or per sequence "
                                          "(GSPO: the exp of the mean log-ratio for every token of the row)",
                                          choices=IMPORTANCE_SAMPLING_LEVELS)
    top_entropy_quantile: float = knob(_KERNEL.top_entropy_quantile, "train only the tokens whose entropy is "
                                       "in this top fraction (1 = all tokens)", within(0, 1))
    off_policy_mask_threshold: Optional[float] = knob(
        _KERNEL.off_policy_mask_threshold, "drop rows with negative advantage whose mean KL(sampler ‖ policy) "
        "exceeds this; null = off", at_least(0))
    sapo_temperature_pos: float = knob(_KERNEL.sapo_temperature_pos,
                                       "SAPO's gate temperature τ for positive advantages", above(0))
    sapo_temperature_neg: float = knob(_KERNEL.sapo_temperature_neg,
                                       "SAPO's gate temperature τ for negative advantages", above(0))
    vespo_k_pos: float = knob(_KERNEL.vespo_k_pos, "VESPO's k for non-negative advantages", at_least(0))
    vespo_lambda_pos: float = knob(_KERNEL.vespo_lambda_pos, "VESPO's λ for non-negative advantages",
                                   at_least(0))
    vespo_k_neg: float = knob(_KERNEL.vespo_k_neg, "VESPO's k for negative advantages", at_least(0))
    vespo_lambda_neg: float = knob(_KERNEL.vespo_lambda_neg, "VESPO's λ for negative advantages", at_least(0))
    entropy_coef: float = knob(_KERNEL.entropy_coef, "subtract entropy_coef × the mean entropy of the trained "
                               "tokens (an entropy bonus)", at_least(0))

    def __post_init__(self):
        check_all(self)
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon:
            raise ValueError(f"epsilon_high={self.epsilon_high} must be >= epsilon={self.epsilon} "
                             "(DAPO's clip-higher)")

    @classmethod
    def from_object(cls, source, **overrides) -> "LossOptions":
        """The options read by name from a config, TRL's GRPOConfig or a mapping; `overrides` win."""
        get = source.get if isinstance(source, dict) else (lambda name, default: getattr(source, name, default))
        values = {f.name: get(f.name, f.default) for f in dataclasses.fields(cls)}
        return cls(**{**values, **overrides})

    def kernel_options(self, entropy_normalizer: Optional[float] = None) -> PolicyOptions:
        """The plain options of the per-token math (kernels/reference.py)."""
        return PolicyOptions(
            objective=_OBJECTIVE.get(self.loss_type, "clip"), epsilon_low=float(self.epsilon),
            epsilon_high=float(self.epsilon if self.epsilon_high is None else self.epsilon_high),
            delta=self.delta, beta=float(self.beta), temperature=float(self.temperature),
            importance_sampling_level=self.importance_sampling_level,
            top_entropy_quantile=self.top_entropy_quantile, off_policy_mask_threshold=self.off_policy_mask_threshold,
            sapo_temperature_pos=self.sapo_temperature_pos, sapo_temperature_neg=self.sapo_temperature_neg,
            vespo_k_pos=self.vespo_k_pos, vespo_lambda_pos=self.vespo_lambda_pos, vespo_k_neg=self.vespo_k_neg,
            vespo_lambda_neg=self.vespo_lambda_neg, entropy_coef=self.entropy_coef,
            entropy_normalizer=entropy_normalizer)


LOSS_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(LossOptions))


# ----------------------------------------------------------------------------------------------------------
# Weights and normalisers: the one place
# ----------------------------------------------------------------------------------------------------------

def normalizer_for(loss_type: str, *, rows: float, tokens: float, max_completion_length: Optional[int]) -> float:
    """The denominator of ``loss_type`` for ``rows`` sequences holding ``tokens`` completion tokens (pass the
    global counts of an optimizer step to make the loss independent of the micro-batch and rank split)."""
    if loss_type in _PER_ROW:
        return float(max(rows, 1))
    if loss_type == "dr_grpo":
        return float(max(rows, 1) * max_completion_length)
    return float(max(tokens, 1))


def default_normalizer(completion_mask: torch.Tensor, loss_type: str,
                       max_completion_length: Optional[int] = None) -> float:
    """This batch's denominator of ``loss_type`` (pass the global one for micro-batches and ranks)."""
    rows, length = completion_mask.shape
    tokens = int((completion_mask != 0).sum().item()) if loss_type not in _PER_ROW + ("dr_grpo",) else 0
    return normalizer_for(loss_type, rows=rows, tokens=tokens,
                          max_completion_length=max_completion_length or length)


def token_weights(completion_mask: torch.Tensor, loss_type: str, normalizer, dtype=torch.float32) -> torch.Tensor:
    """``w[b, t]`` such that the loss is ``Σ w · per_token_loss`` (see the module docstring)."""
    m = (completion_mask != 0).to(dtype)
    if loss_type in _MEAN_PER_ROW:
        return m / (m.sum(-1, keepdim=True).clamp(min=1.0) * normalizer)
    return m / normalizer


@torch.no_grad()
def rollout_importance_ratio(train_logprobs: torch.Tensor, sampling_logprobs: torch.Tensor,
                             completion_mask: torch.Tensor, *, mode: str = "sequence_mask",
                             clip_min: Optional[float] = None, clip_max: Optional[float] = 3.0) -> torch.Tensor:
    """The rollout-mismatch weights TRL 1.16 computes when the sampler's log-probs are not the training
    model's (``vllm_importance_sampling_correction``): ``exp(train - sampling)`` per token ([B, T], 1 at
    padding and where the sampler gave NaN) or of the row's summed difference (``sequence_*``: [B, 1]), then
    clamped to [clip_min, clip_max] (``*_truncate``) or set to 0 outside it (``*_mask``). Pass the result to
    ``seed_grpo_loss(importance_sampling_ratio=...)``."""
    if mode not in IMPORTANCE_SAMPLING_MODES:
        raise ValueError(f"vllm_importance_sampling_mode={mode!r} is not one of {IMPORTANCE_SAMPLING_MODES}")
    valid = completion_mask.bool()
    diff = torch.where(valid, (train_logprobs.float() - sampling_logprobs.float()).nan_to_num(nan=0.0), 0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    low = -math.inf if clip_min is None else clip_min
    high = math.inf if clip_max is None else clip_max
    return ratio.masked_fill((ratio < low) | (ratio > high), 0.0)


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
                  advantages, rewards, group_size, beta, max_completion_length, scale_rewards, scale_fn, alpha,
                  normalizer, impl, family):
    """The tensors and the per-call arguments (the policy-loss options are LossOptions' own checks)."""
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
    for name, t in (("old_logprobs", old_logprobs), ("ref_logprobs", ref_logprobs),
                    ("sampling_logprobs", family["sampling_logprobs"])):
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
    _check_family(family, bt)


def _check_family(f: dict, bt: tuple) -> None:
    """The per-call inputs of the policy-loss family (TRL 1.16's names)."""
    threshold = f["entropy_threshold"]
    threshold = float(threshold) if isinstance(threshold, torch.Tensor) and threshold.numel() == 1 else threshold
    _check_number("entropy_threshold", threshold, allow_none=True)
    norm = f["entropy_normalizer"]
    norm = float(norm) if isinstance(norm, torch.Tensor) and norm.numel() == 1 else norm
    _check_number("entropy_normalizer", norm, low=0, low_inclusive=False, allow_none=True)
    isr = f["importance_sampling_ratio"]
    if isr is not None and (not isinstance(isr, torch.Tensor) or not isr.dtype.is_floating_point
                            or tuple(isr.shape) not in (bt, (bt[0],), (bt[0], 1))):
        raise ValueError(f"importance_sampling_ratio must be a float tensor of shape {bt} (per token) or "
                         f"({bt[0]},) / ({bt[0]}, 1) (per sequence), got {_shape(isr)}")


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
                   scale_fn: str = "reciprocal", alpha: float = DEFAULT_ALPHA, normalizer=None, impl: str = "auto",
                   importance_sampling_level: str = "token", top_entropy_quantile: float = 1.0,
                   importance_sampling_ratio: Optional[torch.Tensor] = None,
                   off_policy_mask_threshold: Optional[float] = None, sapo_temperature_pos: float = 1.0,
                   sapo_temperature_neg: float = 1.05, vespo_k_pos: float = 2.0, vespo_lambda_pos: float = 3.0,
                   vespo_k_neg: float = 3.0, vespo_lambda_neg: float = 2.0, entropy_coef: float = 0.0,
                   entropy_normalizer=None, sampling_logprobs: Optional[torch.Tensor] = None,
                   entropy_threshold=None, inplace: bool = False, options: Optional[LossOptions] = None):
    """SEED-GRPO loss of a batch of completions; returns ``(loss, metrics)``.

    Inputs: ``logits`` [B, T, V] aligned with ``completion_ids`` [B, T] (``logits[b, t]`` scores
    ``completion_ids[b, t]``), or the fused-linear form ``hidden`` [B, T, H] + ``weight`` [V, H] that never
    materialises the logits. ``completion_mask`` [B, T] marks completion tokens; the per-token inputs may hold
    NaN/inf at masked positions (they take no part).

    Advantages: ``advantages`` [B] are used as given; otherwise they are computed from ``rewards`` [B]
    (``group_size`` rows per prompt) with ``scale_rewards`` and scaled by ``f(α·U)`` of each group's
    ``uncertainty`` (``cluster_ids`` for the ``se_*`` estimators, ``embeddings`` for the GCPO-style ones); the
    fused kernels apply the factor in their pass. ``seq_logprobs`` [B] weights the clusters (``se_rao``); when
    absent it is the masked mean of ``old_logprobs``, or of the current log-probs (detached).

    Policy terms (TRL 1.16's names and semantics; kernels/reference.py gives the math): ``old_logprobs=None``
    is on-policy; ``epsilon``/``epsilon_high``/``delta`` clip the ratio; ``importance_sampling_level`` token or
    sequence (GSPO); ``loss_type`` also picks the objective (cispo, sapo with ``sapo_temperature_*``, vespo
    with ``vespo_*``; the others clip); ``beta`` > 0 adds the k3 KL to ``ref_logprobs``; ``temperature``
    divides the logits. ``top_entropy_quantile`` < 1 trains only the tokens whose entropy is in that top
    fraction of the call's valid tokens (across ranks under torch.distributed, as TRL); ``off_policy_mask_
    threshold`` drops rows with Â < 0 whose mean ``sampling_logprobs - logp`` (default ``old_logprobs``)
    exceeds it; ``importance_sampling_ratio`` [B, T] or [B] multiplies the per-token loss (rollout
    correction). ``entropy_threshold`` gives the entropy mask's cut-off precomputed (e.g. over a whole batch
    with ``seedgrpo.kernels.reference.entropy_threshold``) instead. ``entropy_coef`` subtracts
    ``coef × Σ H / entropy_normalizer`` over the trained tokens (default: their count in this call, TRL's
    per-call mean). ``normalizer`` is the global denominator of
    ``loss_type`` (see the module docstring).

    ``impl``: ``"torch"`` (reference; chunked for hidden/weight), ``"triton"`` (fused kernels), ``"auto"``
    (Triton on CUDA tensors, PyTorch otherwise). ``inplace=True`` lets the Triton path from logits write the
    gradient over ``logits`` (when nothing else reads them afterwards).

    Metrics (detached 0-d tensors): ``clip_ratio_low``, ``clip_ratio_high`` (cispo: the tokens whose ratio
    its ε_high caps; 0 for sapo and vespo), ``kl``, ``entropy`` (masked token means), ``semantic_entropy``
    (mean normalised uncertainty U of the groups) and ``advantage_scale`` (mean factor f(α·U)); the last two
    are NaN when advantages were given.

    ``options``: the policy-loss options as one ``LossOptions`` (what the trainer and the TRL adapter pass)
    instead of the keyword arguments of the same names.
    """
    arguments = locals()
    options = _options(options, {name: arguments[name] for name in LOSS_OPTION_NAMES})
    loss_type, epsilon, epsilon_high = options.loss_type, options.epsilon, options.epsilon_high
    beta, temperature, entropy_coef = options.beta, options.temperature, options.entropy_coef
    _check_inputs(logits, hidden, weight, completion_ids, completion_mask, old_logprobs, ref_logprobs,
                  advantages, rewards, group_size, beta, max_completion_length, scale_rewards, scale_fn, alpha,
                  normalizer, impl, dict(entropy_normalizer=entropy_normalizer,
                                         importance_sampling_ratio=importance_sampling_ratio,
                                         sampling_logprobs=sampling_logprobs, entropy_threshold=entropy_threshold))
    source = logits if logits is not None else hidden
    if impl == "auto":
        impl = "triton" if source.is_cuda else "torch"
    if normalizer is None:
        normalizer = default_normalizer(completion_mask, loss_type, max_completion_length)
    normalizer = float(normalizer)
    if isinstance(entropy_normalizer, torch.Tensor):
        entropy_normalizer = float(entropy_normalizer)
    opts = options.kernel_options(entropy_normalizer)
    row_mask = completion_mask.bool().any(-1)
    cutoff = None if entropy_threshold is None else torch.as_tensor(float(entropy_threshold))

    # The from-logits torch path needs the per-token log-probs anyway: compute them once.
    logp = entropy = None
    if impl == "torch" and logits is not None:
        logp, entropy = token_logprobs_and_entropy(logits, completion_ids, temperature,
                                                   entropy_grad=entropy_coef != 0.0)

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
            if impl == "triton":  # the kernels multiply each row by its group's factor in their pass
                advantages = result.base
        else:
            sem_entropy, adv_scale = torch.tensor(0.0), torch.tensor(1.0)

    weights = token_weights(completion_mask, loss_type, normalizer,
                            torch.float64 if logp is not None and logp.dtype == torch.float64 else torch.float32)
    per_token = dict(old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, sampling_logprobs=sampling_logprobs,
                     importance_sampling_ratio=importance_sampling_ratio)
    if impl == "torch" and logits is not None:
        isr = importance_sampling_ratio
        isr = isr.view(-1, 1) if isr is not None and isr.dim() == 1 else isr
        loss, stats = policy_loss(logp, entropy, mask=completion_mask, weights=weights,
                                  advantages=advantages.to(logp.dtype), old_logp=old_logprobs,
                                  ref_logp=ref_logprobs, sampling_logp=sampling_logprobs,
                                  importance_sampling_ratio=isr, opts=opts, entropy_cutoff=cutoff)
        metrics = {"clip_ratio_low": masked_mean(stats["clip_low"], completion_mask),
                   "clip_ratio_high": masked_mean(stats["clip_high"], completion_mask),
                   "kl": masked_mean(stats["kl"], completion_mask),
                   "entropy": masked_mean(entropy.detach(), completion_mask)}
    else:
        if impl == "triton":
            _require_triton(source)
        factor_args = (dict(group_size=group_size, group_factor=group_factor) if group_factor is not None
                       and impl == "triton" else {})
        kernel_args = dict(weights=weights, advantages=advantages, **factor_args, **per_token,
                           entropy_cutoff=cutoff, **_fields(opts))
        if logits is not None:
            from .kernels.dispatch import grpo_loss_from_logits
            loss, metrics = grpo_loss_from_logits(logits, completion_ids, completion_mask, inplace=inplace,
                                                  **kernel_args)
        else:
            from .kernels.fused_linear_grpo import fused_linear_grpo_loss
            loss, metrics = fused_linear_grpo_loss(hidden, weight, completion_ids, completion_mask,
                                                   **kernel_args, backend=impl)
    metrics = {k: v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
               for k, v in metrics.items()}
    metrics["semantic_entropy"] = sem_entropy.detach()
    metrics["advantage_scale"] = adv_scale.detach()
    return loss, metrics


def _options(options: Optional[LossOptions], arguments: dict) -> LossOptions:
    """`options`, or the keyword arguments of the same names as one validated LossOptions (not both)."""
    if options is None:
        return LossOptions(**arguments)
    if not isinstance(options, LossOptions):
        raise ValueError(f"options must be a seedgrpo.LossOptions, got {type(options).__name__}")
    defaults = {f.name: f.default for f in dataclasses.fields(LossOptions)}
    clash = sorted(name for name, value in arguments.items() if value != defaults[name])
    if clash:
        raise ValueError(f"{clash} were given both in options= and as keyword arguments; set each in one place")
    return options


def _fields(opts: PolicyOptions) -> dict:
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}


def _derive_seq_logprobs(logp, old_logprobs, logits, hidden, weight, completion_ids, completion_mask,
                         temperature, impl):
    """Mean token log-prob of each completion, for ``se_rao``/``se_mc`` when the caller gave none."""
    if old_logprobs is not None:
        return mean_token_logprobs(old_logprobs.detach().double(), completion_mask)
    if logp is not None:
        return mean_token_logprobs(logp.detach().double(), completion_mask)
    # Fused paths never hold the log-probs before the loss: one no-grad pass gets them.
    from .kernels.selective_logprob import selective_logprob
    with torch.no_grad():
        if logits is not None:
            current = selective_logprob(logits, completion_ids, temperature=temperature, backend=impl)
        else:
            current = selective_logprob(None, completion_ids, hidden=hidden, weight=weight,
                                        temperature=temperature, backend=impl)
    return mean_token_logprobs(current.double(), completion_mask)


def _require_triton(source: torch.Tensor) -> None:
    import os

    if not source.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before importing "
                         "seedgrpo, for testing on CPU); use impl='torch' or impl='auto' on CPU")


class SeedGRPOLoss(nn.Module):
    """``seed_grpo_loss`` with its configuration held once: ``SeedGRPOLoss(**config)(logits, **batch)``.

    ``SeedGRPOLoss.from_preset("paper", alpha=0.1)`` starts from a named configuration (see ``PRESETS``).
    """

    # the per-call settings besides the policy-loss options (LossOptions' fields, checked once here)
    _CALL_KEYS = ("group_size", "max_completion_length", "scale_rewards", "uncertainty", "scale_fn", "alpha",
                  "normalizer", "impl", "entropy_normalizer", "entropy_threshold", "inplace")

    def __init__(self, **config):
        super().__init__()
        allowed = self._CALL_KEYS + LOSS_OPTION_NAMES
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise ValueError(f"SeedGRPOLoss got unknown configuration keys {unknown}; allowed: "
                             f"{list(allowed)} (per-batch tensors go to forward())")
        self.options = LossOptions(**{k: v for k, v in config.items() if k in LOSS_OPTION_NAMES})
        self.config = {k: v for k, v in config.items() if k not in LOSS_OPTION_NAMES}
        self._given = dict(config)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SeedGRPOLoss":
        if name not in PRESETS:
            raise ValueError(f"preset {name!r} is not one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(self, logits: Optional[torch.Tensor] = None, **batch):
        clash = sorted(set(batch) & set(self._given))
        if clash:
            raise ValueError(f"{clash} were set in the SeedGRPOLoss configuration and again in forward(); "
                             "set each in one place")
        if set(batch) & set(LOSS_OPTION_NAMES + ("options",)):
            return seed_grpo_loss(logits, **self.config, **{**_fields(self.options), **batch})
        return seed_grpo_loss(logits, **self.config, options=self.options, **batch)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._given.items())
