"""GRPO / SEED-GRPO loss from the last hidden states and the lm_head weight, never holding the full
[tokens x vocab] logits: the loss of a Qwen-size vocabulary (151,936) without its memory.

The unmasked tokens are packed (padding costs no matmul) and taken ``chunk`` at a time:

    logits = hidden_chunk @ weight.T (+ bias)                    # [chunk, V], the only vocab-sized buffer
    one-pass loss kernel, in place: logits <- w * dloss/dlogits  # kernels/one_pass.py
    grad_hidden[chunk] = dlogits @ weight
    grad_weight += dlogits.T @ hidden_chunk                      # accumulated in float32
    grad_bias   += dlogits.sum(0)

so the gradients are ready when the forward returns and backward only scales them by grad_output. The
``backend="torch"`` path is the same algorithm in chunked PyTorch (float32 per chunk: log-softmax, the
per-token math of kernels/reference.py with its gradient w.r.t. the chunk's log-probs, then the analytic
d logp / d logits), which keeps CPU training memory-light too. Losses that need a statistic of the row or the
batch (sequence-level ratios, vespo, the entropy and off-policy masks, ...) take two passes over the chunks:
see FusedLinearGRPOLoss.

    loss, metrics = fused_linear_grpo_loss(hidden, model.lm_head.weight, ids, mask, advantages=adv,
                                           weights=mask / mask.sum())

DeepSpeed ZeRO-3 partitions lm_head.weight; gather it around the call (the backward needs no weight):

    with deepspeed.zero.GatheredParameters([lm_head.weight], modifier_rank=None):
        loss, metrics = fused_linear_grpo_loss(hidden, lm_head.weight, ids, mask, ...)
    engine.backward(loss)   # the full [V, H] gradient reaches lm_head.weight like any autograd leaf's

Tests: ``pytest tests/test_kernels_fused_linear.py``; benchmark: ``python benchmarks/bench_loss.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._inputs import STAT_NAMES, TokenInputs, masked_metrics
from ._utils import check_linear, check_triton_device, chunk_logit_bytes, chunk_rows
from .backward import logit_grad_buffer
from .one_pass import OUTPUT_NAMES, launch_one_pass, takes_one_pass
from .reference import PolicyOptions, policy_loss
from .selective_logprob import _launch as launch_selective_logprob
from .selective_logprob import _torch_rows
from .two_sweep import launch_logit_grad, token_coefficients, torch_logit_grad

__all__ = ["fused_linear_grpo_loss", "FusedLinearGRPOLoss"]

BACKENDS = ("triton", "torch")
_fp32_out_addmm: dict = {}  # device type -> whether addmm(..., out_dtype=float32, out=acc) works in place


def _accumulate_weight_grad(acc: torch.Tensor, grad_logits: torch.Tensor, x: torch.Tensor) -> None:
    """acc [V, H] float32 += grad_logits.T @ x, without a [V, H] temporary when the inputs are bf16/fp16 on
    CUDA (cuBLAS accumulates the low-precision product straight into the float32 buffer)."""
    if grad_logits.dtype == torch.float32:
        acc.addmm_(grad_logits.t(), x.float())
        return
    if acc.is_cuda and _supports_fp32_out_addmm(acc.device):
        torch.addmm(acc, grad_logits.t(), x, out_dtype=torch.float32, out=acc)
        return
    acc.add_(grad_logits.t() @ x)  # product rounded to the input dtype once per chunk, summed in float32


# _fp16_hidden_grad scales a chunk's gradient so that its largest entry lies in [2^12, 2^13): far above fp16's
# subnormals, and low enough that a row's product with the weight (at most 2 x its largest entry x max |W|,
# since a row of onehot - softmax sums to 2 (1 - p) in absolute value) stays below fp16's 65504 for |W| < 4.
_FP16_GRAD_EXPONENT = 12


def _fp16_hidden_grad(grad_logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """float32 grad_logits [c, V] @ fp16 weight [V, H] -> float32 [c, H] without an fp16 rounding that flushes
    the small entries and without a float32 copy of the weight: the gradient is cast to fp16 at a power-of-two
    scale (exact to apply and undo; a device tensor, so no sync), multiplied, and unscaled in float32."""
    low, high = grad_logits.aminmax()
    amax = torch.maximum(-low, high).clamp_min(torch.finfo(torch.float32).tiny)
    scale = torch.exp2((_FP16_GRAD_EXPONENT - torch.floor(torch.log2(amax))).clamp(max=100.0))
    scaled = torch.empty(grad_logits.shape, device=grad_logits.device, dtype=torch.float16)
    torch.mul(grad_logits, scale, out=scaled)
    return (scaled @ weight).float().div_(scale)


def _supports_fp32_out_addmm(device: torch.device) -> bool:
    """Probe once whether this torch build has addmm with out_dtype (torch >= 2.8 on CUDA) and accumulates in
    place through out=; otherwise fall back to a rounded product."""
    if device.type not in _fp32_out_addmm:
        a = torch.randn(8, 16, device=device, dtype=torch.bfloat16)
        b = torch.randn(16, 4, device=device, dtype=torch.bfloat16)
        acc = torch.ones(8, 4, device=device, dtype=torch.float32)
        try:
            torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
            ok = torch.allclose(acc, 1.0 + a.float() @ b.float(), rtol=1e-3, atol=1e-3)
        except (RuntimeError, TypeError):
            ok = False
        _fp32_out_addmm[device.type] = ok
    return _fp32_out_addmm[device.type]


def _torch_chunk(logits: torch.Tensor, token_index: torch.Tensor, tokens: TokenInputs, config: PolicyOptions,
                 row_advantages: torch.Tensor, outputs: dict, want_grad: bool) -> Optional[torch.Tensor]:
    """The torch backend of the one-pass path on one chunk of logits [c, V] (ours to overwrite) scoring
    flattened tokens ``token_index``: writes the per-token outputs, returns d(weighted loss)/d(logits) [c, V]
    float32."""
    z = logits.float()  # a float32 copy of bf16/fp16 logits; fp32 logits are our own chunk already
    if config.temperature != 1.0:
        z.div_(config.temperature)
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    log_p = z.sub_(lse)
    ids = tokens.ids.view(-1)[token_index]
    logp = log_p.gather(1, ids.unsqueeze(1))  # [c, 1]: each token is a row of one for the per-token math
    probs = torch.exp(log_p)
    entropy = -torch.bmm(probs.unsqueeze(1), log_p.unsqueeze(2)).view(-1)
    del log_p, z

    def per_token(name):
        t = getattr(tokens, name)
        return None if t is None else t.view(-1)[token_index].unsqueeze(1)

    with torch.enable_grad():
        logp = logp.detach().requires_grad_(want_grad)
        weighted, stats = policy_loss(
            logp, None, mask=torch.ones_like(logp, dtype=torch.bool), weights=per_token("weights"),
            advantages=row_advantages[token_index // tokens.T], old_logp=per_token("old_logprobs"),
            ref_logp=per_token("ref_logprobs"), opts=config)
        if want_grad:
            (d_logp,) = torch.autograd.grad(weighted, logp)
    for name, value in (("loss", stats["loss"]), ("kl", stats["kl"]), ("entropy", entropy),
                        ("clip_low", stats["clip_low"]), ("clip_high", stats["clip_high"])):
        outputs[name][token_index] = value.detach().view(-1).float()
    if not want_grad:
        return None
    # d logp / d logits = (onehot - softmax) / T, written over the probabilities.
    coef = d_logp / config.temperature  # [c, 1]
    return probs.mul_(-coef).scatter_add_(1, ids.unsqueeze(1), coef)


def _chunks(active: torch.Tensor, rows_per_chunk: int):
    for start in range(0, active.numel(), rows_per_chunk):
        yield start, active[start:start + rows_per_chunk]


class FusedLinearGRPOLoss(torch.autograd.Function):
    """loss(hidden @ weight.T + bias) with every gradient computed chunk by chunk in the forward.

    Token-local losses take one pass over the chunks (the loss kernel writes each chunk's logit gradient in
    place). The others take two: pass 1 computes each chunk's log-probs and entropies, the per-token math
    between the passes gives d loss / d logp and d loss / d H, and pass 2 recomputes each chunk's matmul (the
    price of never holding all the logits) and writes its logit gradient (two_sweep.py)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, tokens: TokenInputs, config: PolicyOptions, rows_per_chunk: int,
                backend: str, entropy_cutoff):
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        want_grad = need_hidden or need_weight or need_bias
        n, H = tokens.B * tokens.T, hidden.shape[-1]
        x = hidden.reshape(n, H)
        device = hidden.device
        # fp16: the chunk gradients stay float32 until backward applies grad_output (backward.logit_grad_buffer).
        fp16 = weight.dtype == torch.float16
        grad_hidden = (torch.zeros(x.shape, device=device, dtype=torch.float32) if fp16 else torch.zeros_like(x)) \
            if need_hidden else None
        grad_weight = torch.zeros(weight.shape, device=device, dtype=torch.float32) if need_weight else None
        grad_bias = torch.zeros(weight.shape[0], device=device, dtype=torch.float32) if need_bias else None
        # Only unmasked tokens cost a matmul; masked ones keep zero outputs and zero gradients.
        one_pass = takes_one_pass(config, tokens)
        active = (tokens.weights if one_pass else tokens.valid).view(-1).nonzero().view(-1)

        def accumulate(index, x_chunk, grad_logits):
            if need_hidden:
                grad_hidden.index_copy_(0, index, _fp16_hidden_grad(grad_logits.float(), weight) if fp16
                                        else (grad_logits.to(weight.dtype) @ weight).to(x.dtype))
            if need_weight:
                _accumulate_weight_grad(grad_weight, grad_logits, x_chunk)
            if need_bias:
                grad_bias.add_(grad_logits.sum(0, dtype=torch.float32))

        if one_pass:
            outputs = {k: torch.zeros(n, device=device, dtype=torch.float32) for k in OUTPUT_NAMES}
            row_advantages = tokens.row_advantages() if backend == "torch" else None
            for start, index in _chunks(active, rows_per_chunk):
                x_chunk = x.index_select(0, index)
                logits = F.linear(x_chunk, weight, bias)
                if backend == "triton":
                    # the chunk is ours: its gradient overwrites it (fp16: a float32 buffer)
                    grad_logits = logit_grad_buffer(logits, inplace=True) if want_grad else None
                    launch_one_pass(logits, tokens, config, grad=grad_logits,
                                     token_offset=start, token_index=active, outputs=outputs)
                else:
                    grad_logits = _torch_chunk(logits, index, tokens, config, row_advantages, outputs, want_grad)
                del logits
                if want_grad:
                    accumulate(index, x_chunk, grad_logits)
                del grad_logits
            loss = (tokens.weights.view(-1) * outputs["loss"]).sum()
            stats = outputs
        else:
            loss, stats = _two_pass(x, weight, bias, tokens, config, rows_per_chunk, backend, entropy_cutoff,
                                    active, want_grad, accumulate)
        metrics = masked_metrics(tokens.mask, stats["kl"], stats["entropy"], stats["clip_low"], stats["clip_high"])
        out = torch.stack([metrics[k].float() for k in STAT_NAMES])
        ctx.mark_non_differentiable(out)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.shapes = (hidden.shape, weight.dtype, None if bias is None else bias.dtype)
        ctx.backward_done = False
        return loss.float(), out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_stats):
        if ctx.backward_done:
            raise RuntimeError("FusedLinearGRPOLoss.backward runs once: its gradients are scaled in place")
        ctx.backward_done = True
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        hidden_shape, weight_dtype, bias_dtype = ctx.shapes
        scale = None if not grad_loss.ne(1.0).item() else grad_loss  # loss.backward() passes exactly 1.0
        if grad_hidden is not None:
            if scale is not None:
                grad_hidden.mul_(scale.to(grad_hidden.dtype))
            grad_hidden = grad_hidden.view(hidden_shape).to(weight_dtype)  # float32 (fp16) -> fp16, else a no-op
        if grad_weight is not None:
            if scale is not None:
                grad_weight.mul_(scale)
            grad_weight = grad_weight.to(weight_dtype)
        if grad_bias is not None:
            if scale is not None:
                grad_bias.mul_(scale)
            grad_bias = grad_bias.to(bias_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def _two_pass(x, weight, bias, tokens: TokenInputs, config: PolicyOptions, rows_per_chunk: int, backend: str,
              entropy_cutoff, active: torch.Tensor, want_grad: bool, accumulate):
    """The two chunk passes of a loss that needs row or batch statistics (see FusedLinearGRPOLoss)."""
    n, device = tokens.B * tokens.T, x.device
    ids = tokens.ids.view(-1)[active].contiguous()  # packed: chunk row i is packed token start + i
    logp = torch.zeros(active.numel(), device=device, dtype=torch.float32)
    entropy = torch.zeros_like(logp)
    with torch.no_grad():
        for start, index in _chunks(active, rows_per_chunk):
            logits = F.linear(x.index_select(0, index), weight, bias)
            if backend == "triton":
                launch_selective_logprob(logits, ids, logp, entropy, config.temperature, token_offset=start)
            else:
                lp, ent = _torch_rows(logits, ids[start:start + index.numel()], config.temperature, True)
                logp[start:start + index.numel()], entropy[start:start + index.numel()] = lp, ent
            del logits
    full_logp = torch.zeros(n, device=device, dtype=torch.float32).index_copy_(0, active, logp)
    full_entropy = torch.zeros(n, device=device, dtype=torch.float32).index_copy_(0, active, entropy)
    shape = (tokens.B, tokens.T)
    loss, stats, c_logp, c_ent = token_coefficients(full_logp.view(shape), full_entropy.view(shape), tokens,
                                                    config, entropy_cutoff, want_grad)
    if want_grad:
        c_logp = c_logp[active].contiguous()
        c_ent = None if c_ent is None else c_ent[active].contiguous()
        with torch.no_grad():
            for start, index in _chunks(active, rows_per_chunk):
                x_chunk = x.index_select(0, index)
                logits = F.linear(x_chunk, weight, bias)  # recomputed: the logits are never held whole
                end = start + index.numel()
                if backend == "triton":
                    grad_logits = logit_grad_buffer(logits, inplace=True)
                    launch_logit_grad(logits, grad_logits, ids, logp, entropy, c_logp, c_ent, config.temperature,
                                      token_offset=start)
                else:
                    grad_logits = torch_logit_grad(logits, ids[start:end], entropy[start:end], c_logp[start:end],
                                                   None if c_ent is None else c_ent[start:end],
                                                   config.temperature)
                del logits
                accumulate(index, x_chunk, grad_logits)
                del grad_logits
    return loss, dict(stats, entropy=full_entropy)


def fused_linear_grpo_loss(hidden: torch.Tensor, weight: torch.Tensor, completion_ids: torch.Tensor,
                           completion_mask: torch.Tensor, *, weights: torch.Tensor, advantages: torch.Tensor,
                           bias: Optional[torch.Tensor] = None, group_size: Optional[int] = None,
                           group_factor: Optional[torch.Tensor] = None, old_logprobs: Optional[torch.Tensor] = None,
                           ref_logprobs: Optional[torch.Tensor] = None,
                           sampling_logprobs: Optional[torch.Tensor] = None,
                           importance_sampling_ratio: Optional[torch.Tensor] = None,
                           entropy_cutoff: Optional[torch.Tensor] = None, chunk_size: Optional[int] = None,
                           max_chunk_bytes: Optional[int] = None, backend: str = "triton", **options):
    """Policy loss of ``hidden`` [B, T, H] through ``weight`` [V, H] (+ ``bias`` [V]) without the full logits:
    ``(hidden @ weight.T)[b, t]`` scores ``completion_ids[b, t]``.

    Same keywords as :func:`seedgrpo.kernels.dispatch.grpo_loss_from_logits` (``weights``, ``advantages``,
    ``group_factor``, the per-token inputs and the PolicyOptions fields). ``chunk_size`` tokens are processed
    at a time (default: as many as fit ``max_chunk_bytes`` of float32 logits: 256 MiB on CUDA, 32 MiB on the
    CPU). ``backend``: "triton" (CUDA, or the interpreter under TRITON_INTERPRET=1) or "torch" (any device).
    The weight (and bias) gradient is accumulated in float32 and cast to the weight's dtype. Losses that need
    row or batch statistics take two passes over the chunks, the second recomputing each chunk's matmul.
    Returns (loss, metrics) as the from-logits function does.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    if not isinstance(completion_ids, torch.Tensor) or completion_ids.dim() != 2:
        raise ValueError(f"completion_ids must be a [B, T] integer tensor, got "
                         f"{type(completion_ids).__name__} of shape {tuple(getattr(completion_ids, 'shape', ()))}")
    check_linear(hidden, weight, bias, completion_ids.shape)
    if backend == "triton":
        check_triton_device(hidden, "hidden", "backend='torch'")
    config = PolicyOptions(**options)
    tokens = TokenInputs(completion_ids, completion_mask, weights=weights, advantages=advantages,
                         group_size=group_size, group_factor=group_factor, old_logprobs=old_logprobs,
                         ref_logprobs=ref_logprobs, sampling_logprobs=sampling_logprobs,
                         importance_sampling_ratio=importance_sampling_ratio, opts=config, device=hidden.device)
    logit_bytes = chunk_logit_bytes(weight.dtype, with_grad=True) if backend == "triton" else 4
    rows = chunk_rows(max(1, tokens.B * tokens.T), weight.shape[0], hidden.device, chunk_size, max_chunk_bytes,
                      logit_bytes)
    loss, stats = FusedLinearGRPOLoss.apply(hidden, weight, bias, tokens, config, rows, backend, entropy_cutoff)
    return loss, {name: stats[i] for i, name in enumerate(STAT_NAMES)}
