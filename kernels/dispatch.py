"""The from-logits entry point: checks the call, then runs the one-pass kernel (``one_pass.py``) for
token-local losses, or the two sweeps (``two_sweep.py``) for losses whose token terms need a statistic of the
row or the batch first (GSPO's sequence ratio, cispo, sapo, vespo, the entropy and off-policy masks,
importance-sampling ratios, the entropy bonus): the same traffic (each row read twice, its gradient written
once).

    from seedgrpo.kernels.dispatch import grpo_loss_from_logits

    loss, metrics = grpo_loss_from_logits(logits, ids, mask, advantages=adv, weights=mask / mask.sum(),
                                          epsilon_low=0.2, epsilon_high=0.28)
    loss.backward()

The per-token weights carry the loss type's normaliser (``seedgrpo.loss.token_weights``).
Tests: ``pytest tests/test_kernels_grpo_loss.py tests/test_policy_family.py``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._inputs import STAT_NAMES, TokenInputs
from ._utils import check_triton_device
from .one_pass import OnePassLossFromLogits, takes_one_pass
from .reference import PolicyOptions
from .two_sweep import TwoSweepLossFromLogits

__all__ = ["grpo_loss_from_logits"]


def grpo_loss_from_logits(logits: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                          *, weights: torch.Tensor, advantages: torch.Tensor,
                          group_size: Optional[int] = None,
                          group_factor: Optional[torch.Tensor] = None,
                          old_logprobs: Optional[torch.Tensor] = None,
                          ref_logprobs: Optional[torch.Tensor] = None,
                          sampling_logprobs: Optional[torch.Tensor] = None,
                          importance_sampling_ratio: Optional[torch.Tensor] = None,
                          entropy_cutoff: Optional[torch.Tensor] = None, inplace: bool = False, **options):
    """Policy loss of ``logits`` [B, T, V] (``logits[b, t]`` scores ``completion_ids[b, t]``).

    ``weights`` [B, T]: the loss is ``sum(weights * per-token loss)`` (0 at padding; they carry the loss
    type's normaliser: ``seedgrpo.loss.token_weights``). ``advantages`` [B], times ``group_factor`` [B/G] (the
    per-group f(alpha*U), rows g*G .. g*G+G-1 of group g) when given, inside the kernel.
    ``old_logprobs=None`` is on-policy. ``options`` are the fields of
    :class:`seedgrpo.kernels.reference.PolicyOptions` (objective, epsilon_low, epsilon_high, delta, beta,
    temperature, importance_sampling_level, top_entropy_quantile, ...), whose docstring module gives the math.
    ``inplace=True`` writes the gradient over ``logits`` (see one_pass.OnePassLossFromLogits). Returns (loss,
    metrics) with metrics clip_ratio_low, clip_ratio_high, kl, entropy (masked token means, detached).

    Token-local losses run the one-pass kernel (``one_pass.py``), the others the two sweeps
    (``two_sweep.py``).
    ``completion_ids`` must lie in [0, V) on unmasked tokens; they are not checked here (that would cost a
    device sync; ``seed_grpo_loss`` checks them): an id outside reads logp = -inf rather than foreign memory.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be a [B, T, V] tensor, got {type(logits).__name__} of shape "
                         f"{tuple(getattr(logits, 'shape', ()))}")
    if logits.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"logits must be float32, bfloat16 or float16, got {logits.dtype}")
    check_triton_device(logits, "logits", "seedgrpo.seed_grpo_loss(impl='torch')")
    if not isinstance(completion_ids, torch.Tensor) or tuple(completion_ids.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"completion_ids must have shape {tuple(logits.shape[:2])} (logits[b, t] scores "
                         f"completion_ids[b, t]), got {tuple(getattr(completion_ids, 'shape', ()))}")
    config = PolicyOptions(**options)
    tokens = TokenInputs(completion_ids, completion_mask, weights=weights, advantages=advantages,
                         group_size=group_size, group_factor=group_factor, old_logprobs=old_logprobs,
                         ref_logprobs=ref_logprobs, sampling_logprobs=sampling_logprobs,
                         importance_sampling_ratio=importance_sampling_ratio, opts=config,
                         device=logits.device)
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if takes_one_pass(config, tokens):
        loss, stats = OnePassLossFromLogits.apply(logits, tokens, config, bool(inplace))
    else:
        loss, stats = TwoSweepLossFromLogits.apply(logits, tokens, config, bool(inplace), entropy_cutoff)
    return loss, {name: stats[i] for i, name in enumerate(STAT_NAMES)}
