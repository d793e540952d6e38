"""The per-token and per-row inputs of a policy-loss call, laid out for the kernels (float32, contiguous, on
the logits' device), and the masked-mean metrics every backend returns.

Only cheap structural checks live here (shapes, one of a pair); value ranges are checked once, by
``seedgrpo.seed_grpo_loss``, the public boundary.
"""
from __future__ import annotations

from typing import Optional

import torch

from .reference import PolicyOptions, masked_mean

__all__ = ["TokenInputs", "masked_metrics", "masked_mean", "STAT_NAMES"]

STAT_NAMES = ("clip_ratio_low", "clip_ratio_high", "kl", "entropy")


def _shape(t) -> tuple:
    return tuple(getattr(t, "shape", ()))


def _per_token(name: str, tensor: Optional[torch.Tensor], valid: torch.Tensor, device) -> Optional[torch.Tensor]:
    """A [B, T] input as contiguous float32 with 0 at padding (where unscorable tokens may carry NaN)."""
    if tensor is None:
        return None
    if not isinstance(tensor, torch.Tensor) or _shape(tensor) != tuple(valid.shape):
        raise ValueError(f"{name} must be a tensor of shape {tuple(valid.shape)} like completion_ids, got "
                         f"{type(tensor).__name__} of shape {_shape(tensor)}")
    x = tensor.detach().to(device=device, dtype=torch.float32)
    return torch.where(valid, x, 0.0).contiguous()


class TokenInputs:
    """``weights`` [B*T] float32 (0 = masked; the loss is sum(weights * per_token_loss), so they carry the loss
    type's normaliser), ``advantages`` [B] and optionally ``group_factor`` [B/G] (the per-group f(alpha*U),
    applied by the kernel: Â_b = advantages_b * group_factor[b // G])."""

    def __init__(self, completion_ids, completion_mask, *, weights, advantages, group_size=None, group_factor=None,
                 old_logprobs=None, ref_logprobs=None, sampling_logprobs=None, importance_sampling_ratio=None,
                 opts: PolicyOptions, device):
        if not isinstance(completion_ids, torch.Tensor) or completion_ids.dim() != 2 \
                or completion_ids.dtype.is_floating_point or completion_ids.dtype == torch.bool:
            raise ValueError(f"completion_ids must be a [B, T] integer tensor, got "
                             f"{type(completion_ids).__name__} of shape {_shape(completion_ids)}")
        B, T = completion_ids.shape
        self.B, self.T = B, T
        self.ids = completion_ids.to(device=device, dtype=torch.int64).contiguous()
        if not isinstance(completion_mask, torch.Tensor) or _shape(completion_mask) != (B, T):
            raise ValueError(f"completion_mask must be a tensor of shape {(B, T)}, got {_shape(completion_mask)}")
        self.valid = completion_mask.to(device) != 0
        self.mask = self.valid.float()
        if not isinstance(weights, torch.Tensor) or _shape(weights) != (B, T):
            raise ValueError(f"weights must be a [B, T] = {(B, T)} tensor of per-token loss weights (e.g. "
                             f"seedgrpo.loss.token_weights), got {_shape(weights)}")
        self.weights = _per_token("weights", weights, self.valid, device)
        self.old_logprobs = _per_token("old_logprobs", old_logprobs, self.valid, device)
        self.ref_logprobs = _per_token("ref_logprobs", ref_logprobs, self.valid, device)
        self.sampling_logprobs = _per_token("sampling_logprobs", sampling_logprobs, self.valid, device)
        if opts.beta != 0.0 and self.ref_logprobs is None:
            raise ValueError(f"beta={opts.beta} needs ref_logprobs (per-token log-probs of the reference model); "
                             "pass them, or beta=0.0 for no KL term")
        self.importance_sampling_ratio = None
        if importance_sampling_ratio is not None:
            isr = importance_sampling_ratio
            if not isinstance(isr, torch.Tensor) or _shape(isr) not in ((B, T), (B, 1), (B,)):
                raise ValueError(f"importance_sampling_ratio must be [B, T] (per token) or [B] / [B, 1] (per "
                                 f"sequence) with B, T = {(B, T)}, got {_shape(isr)}")
            isr = isr.detach().to(device=device, dtype=torch.float32)
            self.importance_sampling_ratio = isr.reshape(B, 1) if isr.dim() == 1 else isr
        if not isinstance(advantages, torch.Tensor) or _shape(advantages) != (B,):
            raise ValueError(f"advantages must be a tensor of shape ({B},), one per row, got {_shape(advantages)}")
        self.advantages = advantages.detach().to(device=device, dtype=torch.float32).contiguous()
        self.group_size, self.group_factor = 1, None
        if group_factor is not None:
            if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1 or B % group_size:
                raise ValueError(f"group_size must be a positive int dividing the {B} rows (rows g*G .. g*G+G-1 "
                                 f"are group g) when group_factor is given, got {group_size!r}")
            if not isinstance(group_factor, torch.Tensor) or _shape(group_factor) != (B // group_size,):
                raise ValueError(f"group_factor must be a tensor of shape ({B // group_size},), one f(alpha*U) "
                                 f"per group, got {_shape(group_factor)}")
            self.group_size = group_size
            self.group_factor = group_factor.detach().to(device=device, dtype=torch.float32).contiguous()

    def row_advantages(self) -> torch.Tensor:
        """Â [B] float32: the advantages times their group's factor."""
        if self.group_factor is None:
            return self.advantages
        return self.advantages * self.group_factor.repeat_interleave(self.group_size)


def masked_metrics(mask: torch.Tensor, kl, entropy, clip_low, clip_high) -> dict:
    """The metrics of every backend: masked token means over this call's tokens (0 when every token is masked)."""
    def mean(x):
        return masked_mean(x.reshape(mask.shape), mask).detach()

    return {"clip_ratio_low": mean(clip_low), "clip_ratio_high": mean(clip_high), "kl": mean(kl),
            "entropy": mean(entropy)}
