"""The shared backward of the from-logits losses (the one-pass kernel, the two sweeps, the fused-linear
chunks): the forward writes d(loss)/d(logits) into a buffer before grad_output is known, and backward only
scales that buffer.

    grad = logit_grad_buffer(logits, inplace=inplace)     # forward: where the kernel writes the gradient
    ... launch a kernel that writes into grad ...
    keep_logit_grad(ctx, logits, grad, inplace=inplace)   # forward: saved for backward
    return scaled_logit_grad(ctx, grad_loss, "Name")      # backward: the buffer x grad_output, once

Why a float32 buffer for fp16 logits: the unscaled gradient entries, about w * p with w = 1/normalizer,
fall below fp16's smallest normal (6.1e-5) and flush to 0, and DeepSpeed's initial loss scale 65536 is
itself above fp16's largest value (65504), so scaling an fp16 buffer gives inf and NaN. bf16 has float32's
range, so only fp16 needs it (at 2x the logits' bytes); the result is cast to fp16 after grad_output.
"""
from __future__ import annotations

import torch

__all__ = ["logit_grad_buffer", "keep_logit_grad", "scaled_logit_grad"]


def logit_grad_buffer(logits: torch.Tensor, *, inplace: bool) -> torch.Tensor:
    """The tensor d(loss)/d(logits) is written into: a new float32 buffer for fp16 logits (see the module
    docstring), else ``logits`` itself with ``inplace=True`` (the logits are garbage afterwards: only when
    nothing else reads them), else a new tensor like ``logits``."""
    if logits.dtype == torch.float16:
        return torch.empty(logits.shape, device=logits.device, dtype=torch.float32)
    return logits if inplace else torch.empty_like(logits)


def keep_logit_grad(ctx, logits: torch.Tensor, grad: torch.Tensor, *, inplace: bool) -> None:
    """Save ``grad`` (from logit_grad_buffer) for scaled_logit_grad; with fp16 logits and ``inplace``, the
    logits too, whose storage receives the cast result."""
    ctx.cast_grad = grad.dtype != logits.dtype
    ctx.cast_inplace = ctx.cast_grad and inplace
    ctx.save_for_backward(grad, logits if ctx.cast_inplace else None)
    ctx.backward_done = False


def scaled_logit_grad(ctx, grad_loss: torch.Tensor, name: str) -> torch.Tensor:
    """The backward of a loss whose forward wrote d(loss)/d(logits) into a saved buffer (keep_logit_grad):
    that buffer times grad_output (once: it is scaled in place), cast back to fp16 when it was kept in
    float32 for fp16 logits."""
    if ctx.backward_done:
        raise RuntimeError(f"{name}.backward runs once: its gradient buffer is scaled in place")
    ctx.backward_done = True
    grad, logits = ctx.saved_tensors
    # loss.backward() passes exactly 1.0: skip a full pass over a [B, T, V] buffer then.
    if grad_loss.ne(1.0).item():
        grad.mul_(grad_loss.to(grad.dtype))
    if ctx.cast_grad:  # fp16 logits: the float32 buffer, scaled, then cast
        grad = logits.copy_(grad) if ctx.cast_inplace else grad.to(torch.float16)
    return grad
