"""GRPO / SEED-GRPO loss from logits in one Triton launch: advantages in, loss, metrics and d(loss)/d(logits)
out.

One program per token row streams the vocabulary once with an online log-sum-exp (temperature applied),
which gives the token's log-prob and entropy; then, in the same program, the advantage (the row's, times its
group's f(alpha*U) factor when given), the ratio against the old log-prob, TRL's clipped
surrogate (epsilon_low, epsilon_high, delta) and the k3 KL against the reference; and when a gradient is
needed a second sweep over the row writes

    d loss / d logits[v] = w * d loss_tok / d logp * (onehot(target)[v] - softmax(z)[v]) / T

into a gradient buffer, or over the logits themselves with ``inplace=True``. Backward only multiplies that
buffer by grad_output. Everything exp/log is float32 whatever the logits' dtype (fp32, bf16, fp16).

    loss, metrics = grpo_loss_from_logits(logits, ids, mask, advantages=adv, weights=mask / mask.sum(),
                                          epsilon_low=0.2, epsilon_high=0.28)
    loss.backward()

The per-token weights carry the loss type's normaliser (``seedgrpo.loss.token_weights``). Losses whose token
terms need a statistic of the row or the batch first (GSPO's sequence ratio, cispo, sapo, vespo, the entropy
and off-policy masks, importance-sampling ratios, the entropy bonus) take the two sweeps of
``logit_grad.py`` instead: the same traffic (each row read twice, its gradient written once).

Runs on CUDA, or on the CPU through the Triton interpreter (TRITON_INTERPRET=1 set before import; tests only).
Tests: ``pytest tests/test_kernels_grpo_loss.py``; benchmark: ``python benchmarks/bench_loss.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._inputs import STAT_NAMES, TokenInputs, masked_metrics
from ._utils import (INTERPRET, block_v_for, check_triton_device, fp16_grad_buffer, softmax_row_stats,
                     target_logit, write_logit_grad, write_zero_row)
from .reference import PolicyOptions

__all__ = ["grpo_loss_from_logits", "GRPOLossFromLogits", "launch_grpo_loss"]

# Rows of the throw-away buffer the autotuner benchmarks on (see _tune_on_scratch): enough rows to fill the GPU
# for a representative timing, few enough that the buffer costs nothing next to the real launch.
TUNE_ROWS = 1024
# The autotune list shared by every row-streaming kernel (see _utils.GPU_CONFIGS).
from ._utils import GPU_CONFIGS as _GPU_CONFIGS  # noqa: E402


@triton.jit
def _grpo_loss_kernel(
    LOGITS, stride_logits_b, stride_logits_t,  # [*, logits_rows, V], last dim contiguous
    GRAD, stride_grad_b, stride_grad_t,  # same layout; may be LOGITS itself (inplace)
    IDS, WEIGHTS, OLD_LOGP, REF_LOGP,  # [B*T] contiguous; OLD_LOGP None = on-policy, REF_LOGP None = no KL
    ADVANTAGES, GROUP_FACTOR,  # [B] and [B/G] (None: no per-group factor)
    TOKEN_INDEX,  # [n] int64 token of each logits row (packed unmasked tokens), or None: rows are consecutive
    LOSS, KL, ENTROPY, CLIP_LOW, CLIP_HIGH,  # [B*T] float32 outputs (0 on masked tokens)
    token_offset, logits_rows, T, V, G,
    inv_temperature, epsilon_low, epsilon_high, delta, beta,
    HAS_DELTA: tl.constexpr, HAS_KL_LOSS: tl.constexpr, WRITE_GRAD: tl.constexpr, ROUND_BF16: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    # Program i owns logits row i (row i // logits_rows, i % logits_rows of the logits tensor) and token
    # n = token_offset + i of the flattened [B, T] per-token inputs (or TOKEN_INDEX[token_offset + i]): the
    # fused-linear path passes one chunk of rows at a time.
    pid = tl.program_id(0).to(tl.int64)
    row_ptr = LOGITS + (pid // logits_rows) * stride_logits_b + (pid % logits_rows) * stride_logits_t
    grad_ptr = GRAD + (pid // logits_rows) * stride_grad_b + (pid % logits_rows) * stride_grad_t
    if TOKEN_INDEX is None:
        n = token_offset + pid
    else:
        n = tl.load(TOKEN_INDEX + token_offset + pid)
    b = n // T

    w = tl.load(WEIGHTS + n)
    if w == 0.0:
        tl.store(LOSS + n, 0.0)
        tl.store(KL + n, 0.0)
        tl.store(ENTROPY + n, 0.0)
        tl.store(CLIP_LOW + n, 0.0)
        tl.store(CLIP_HIGH + n, 0.0)
        if WRITE_GRAD:
            write_zero_row(grad_ptr, V, BLOCK_V)
        return

    lse, entropy = softmax_row_stats(row_ptr, V, inv_temperature, BLOCK_V)
    target = tl.load(IDS + n)
    logp = target_logit(row_ptr, target, V, inv_temperature) - lse

    adv = tl.load(ADVANTAGES + b).to(tl.float32)
    if GROUP_FACTOR is not None:  # SEED-GRPO's f(alpha*U) of the row's group, in the same pass
        adv = adv * tl.load(GROUP_FACTOR + b // G).to(tl.float32)

    # Ratio against the old policy; on-policy (no OLD_LOGP) old = logp detached, so rho = 1 with d rho = rho.
    if OLD_LOGP is None:
        rho = tl.exp(logp - logp)
    else:
        rho = tl.exp(logp - tl.load(OLD_LOGP + n))
    # TRL: coef_2 = clamp(rho) from the unclamped rho; delta caps coef_1 only.
    coef_2 = tl.minimum(tl.maximum(rho, 1.0 - epsilon_low), 1.0 + epsilon_high)
    d_coef_2 = tl.where((rho >= 1.0 - epsilon_low) & (rho <= 1.0 + epsilon_high), 1.0, 0.0)
    if HAS_DELTA:
        coef_1 = tl.minimum(rho, delta)
        d_coef_1 = tl.where(rho <= delta, 1.0, 0.0)
    else:
        coef_1 = rho
        d_coef_1 = 1.0
    surrogate_1 = coef_1 * adv
    surrogate_2 = coef_2 * adv
    loss = -tl.minimum(surrogate_1, surrogate_2)
    # d min(a, b): the smaller side's derivative; a tie splits it evenly, as torch.minimum's backward does.
    d_min = tl.where(surrogate_1 < surrogate_2, d_coef_1,
                     tl.where(surrogate_1 > surrogate_2, d_coef_2, 0.5 * (d_coef_1 + d_coef_2)))
    d_loss_d_logp = -adv * d_min * rho

    kl = 0.0
    if REF_LOGP is not None:
        ref_minus_logp = tl.load(REF_LOGP + n) - logp
        kl = tl.exp(ref_minus_logp) - ref_minus_logp - 1.0
        if HAS_KL_LOSS:
            loss += beta * kl
            d_loss_d_logp += beta * (1.0 - tl.exp(ref_minus_logp))

    tl.store(LOSS + n, loss)
    tl.store(KL + n, kl)
    tl.store(ENTROPY + n, entropy)
    tl.store(CLIP_LOW + n, tl.where((rho < 1.0 - epsilon_low) & (adv < 0.0), 1.0, 0.0))
    tl.store(CLIP_HIGH + n, tl.where((rho > 1.0 + epsilon_high) & (adv > 0.0), 1.0, 0.0))
    if WRITE_GRAD:
        write_logit_grad(row_ptr, grad_ptr, V, target, lse, inv_temperature, w * d_loss_d_logp, BLOCK_V,
                         ROUND_BF16)


# One kernel object per mode: the interpreter cannot benchmark configs (it would need do_bench=), so it
# launches the plain kernel with a fixed block; on a GPU the autotuned wrapper picks BLOCK_V and warps per V.
_grpo_loss_kernel_tuned = None if INTERPRET else triton.autotune(
    configs=_GPU_CONFIGS, key=["V", "WRITE_GRAD", "HAS_KL_LOSS"])(_grpo_loss_kernel)
_tuned_keys: set = set()


def _as_rows(x: torch.Tensor):
    """(tensor, stride_b, stride_t, logits_rows) for a [R, V] or [B, T, V] tensor with a contiguous last dim."""
    if x.dim() == 2:
        return x, 0, x.stride(0), x.shape[0]
    return x, x.stride(0), x.stride(1), x.shape[1]


def launch_grpo_loss(logits: torch.Tensor, tokens: TokenInputs, config: PolicyOptions, *,
                     grad: Optional[torch.Tensor],
                     token_offset: int = 0, token_index: Optional[torch.Tensor] = None,
                     outputs: Optional[dict] = None, rows_in_flight: Optional[int] = None) -> dict:
    """Run the kernel on ``logits``: [B, T, V], or a [rows, V] chunk whose row i scores flattened token
    ``token_offset + i`` (or ``token_index[token_offset + i]``). ``grad`` (same shape; may be ``logits``)
    receives d(loss)/d(logits) unscaled by grad_output, or None for no gradient. Returns the per-token float32
    outputs [B*T]: loss, kl, entropy, clip_low, clip_high (``outputs``, when given, is filled in place: the
    chunks of one call share one set, zero-filled by the caller when rows are packed). ``rows_in_flight``:
    None = one program per row; an int (or a grpo_loss_persistent.PersistentGrid, which also sets the block) =
    the persistent grid of that many programs (for measuring L2 reuse; same results)."""
    if logits.stride(-1) != 1:
        raise ValueError("logits must have a contiguous last (vocabulary) dimension; call .contiguous()")
    rows = logits.numel() // logits.shape[-1]
    V = logits.shape[-1]
    n_tokens = tokens.B * tokens.T
    if outputs is None:
        outputs = {k: torch.empty(n_tokens, device=logits.device, dtype=torch.float32)
                   for k in ("loss", "kl", "entropy", "clip_low", "clip_high")}
    if rows == 0:
        return outputs
    logits_t, sb, st, logits_rows = _as_rows(logits)
    if grad is None:
        grad_t, gb, gt = logits_t, sb, st  # never written: WRITE_GRAD is off
    else:
        if grad.stride(-1) != 1:
            raise ValueError("the gradient buffer must have a contiguous last dimension")
        grad_t, gb, gt, _ = _as_rows(grad)
    args = dict(
        LOGITS=logits_t, stride_logits_b=sb, stride_logits_t=st, GRAD=grad_t, stride_grad_b=gb, stride_grad_t=gt,
        IDS=tokens.ids.view(-1), WEIGHTS=tokens.weights.view(-1),
        OLD_LOGP=None if tokens.old_logprobs is None else tokens.old_logprobs.view(-1),
        REF_LOGP=None if tokens.ref_logprobs is None else tokens.ref_logprobs.view(-1),
        ADVANTAGES=tokens.advantages, GROUP_FACTOR=tokens.group_factor,
        TOKEN_INDEX=token_index, LOSS=outputs["loss"], KL=outputs["kl"], ENTROPY=outputs["entropy"],
        CLIP_LOW=outputs["clip_low"], CLIP_HIGH=outputs["clip_high"],
        token_offset=token_offset, logits_rows=logits_rows, T=tokens.T, V=V, G=tokens.group_size,
        inv_temperature=1.0 / config.temperature, epsilon_low=config.epsilon_low,
        epsilon_high=config.epsilon_high, delta=config.delta if config.delta is not None else 0.0,
        beta=config.beta,
        HAS_DELTA=config.delta is not None, HAS_KL_LOSS=config.beta != 0.0, WRITE_GRAD=grad is not None,
    )
    if rows_in_flight is not None:
        from .grpo_loss_persistent import launch_persistent  # lazy: it imports this module's kernel

        launch_persistent(args, rows, rows_in_flight, round_bf16=INTERPRET and grad is not None
                          and grad.dtype == torch.bfloat16)
        return outputs
    if INTERPRET:
        _grpo_loss_kernel[(rows,)](**args, BLOCK_V=block_v_for(V), num_warps=4,
                                   ROUND_BF16=grad is not None and grad.dtype == torch.bfloat16)
        return outputs
    if grad is not None and grad.data_ptr() == logits.data_ptr():
        _tune_on_scratch(logits, args)
    _grpo_loss_kernel_tuned[(rows,)](**args, ROUND_BF16=False)
    return outputs


def _tune_on_scratch(logits: torch.Tensor, args: dict) -> None:
    """The autotuner runs each config several times; with the gradient written over the logits, every run
    after the first would read gradients as logits. So the first in-place call for a key tunes on a copy of
    at most TUNE_ROWS rows, with its own outputs (same dtypes and flags, hence the same autotuner key), and the
    real launch then reuses the cached config. No full-size clone is made (restore_value would clone all).
    The scratch rows read the per-token inputs of tokens 0 .. rows-1 (or TOKEN_INDEX[0 .. rows-1]), which
    exist: rows never exceeds the real launch's."""
    # At least as fine as the autotuner's own key (the key= values and every tensor's dtype), so a call
    # counted as tuned here never makes the autotuner benchmark on the caller's buffer.
    key = (args["V"],) + tuple((k, v if isinstance(v, bool) else getattr(v, "dtype", v))
                               for k, v in args.items() if isinstance(v, (bool, torch.Tensor)) or v is None)
    if key in _tuned_keys:
        return
    # Timing does not depend on the values, so random logits do (and slicing a strided [B, T, V] view into
    # rows would copy all of it).
    rows = min(TUNE_ROWS, logits.numel() // logits.shape[-1])
    scratch = torch.randn(rows, logits.shape[-1], device=logits.device, dtype=logits.dtype)
    scratch_args = dict(args, LOGITS=scratch, stride_logits_b=0, stride_logits_t=scratch.stride(0),
                        GRAD=scratch, stride_grad_b=0, stride_grad_t=scratch.stride(0),
                        token_offset=0, logits_rows=rows)
    for name in ("LOSS", "KL", "ENTROPY", "CLIP_LOW", "CLIP_HIGH"):
        scratch_args[name] = torch.empty_like(args[name])
    _grpo_loss_kernel_tuned[(rows,)](**scratch_args, ROUND_BF16=False)
    _tuned_keys.add(key)


class GRPOLossFromLogits(torch.autograd.Function):
    """loss = sum(w * per_token_loss) with the gradient computed in the forward launch.

    With ``inplace=True`` the gradient overwrites ``logits`` (no second [B, T, V] buffer): the logits are
    garbage afterwards, so only use it when nothing else reads them (the usual case: logits come from the
    lm_head matmul, whose backward needs its inputs, not its output). Backward can run once.

    fp16 logits get a float32 gradient buffer instead (see _utils.fp16_grad_buffer), cast to fp16 only after
    backward has applied grad_output: into the logits' storage with ``inplace=True``, else a new tensor.
    """

    @staticmethod
    def forward(ctx, logits, tokens: TokenInputs, config: PolicyOptions, inplace: bool):
        needs_grad = ctx.needs_input_grad[0]
        grad = None
        if needs_grad:
            grad = fp16_grad_buffer(logits)
            if grad is None:
                grad = logits if inplace else torch.empty_like(logits)
        ctx.cast_grad = grad is not None and grad.dtype != logits.dtype
        ctx.cast_inplace = ctx.cast_grad and inplace
        out = launch_grpo_loss(logits, tokens, config, grad=grad)
        loss = (tokens.weights.view(-1) * out["loss"]).sum()
        metrics = masked_metrics(tokens.mask, out["kl"], out["entropy"], out["clip_low"], out["clip_high"])
        if needs_grad:
            ctx.save_for_backward(grad, logits if ctx.cast_inplace else None)
        ctx.backward_done = False
        stats = torch.stack([metrics[k] for k in STAT_NAMES])
        ctx.mark_non_differentiable(stats)
        return loss, stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_stats):
        return scaled_logit_grad(ctx, grad_loss, "GRPOLossFromLogits"), None, None, None


def scaled_logit_grad(ctx, grad_loss: torch.Tensor, name: str) -> torch.Tensor:
    """The backward of a loss whose forward wrote d(loss)/d(logits) into a saved buffer: that buffer times
    grad_output (once: it is scaled in place), cast back to fp16 when it was kept in float32 for fp16 logits."""
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


def grpo_loss_from_logits(logits: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor, *,
                          weights: torch.Tensor, advantages: torch.Tensor, group_size: Optional[int] = None,
                          group_factor: Optional[torch.Tensor] = None, old_logprobs: Optional[torch.Tensor] = None,
                          ref_logprobs: Optional[torch.Tensor] = None,
                          sampling_logprobs: Optional[torch.Tensor] = None,
                          importance_sampling_ratio: Optional[torch.Tensor] = None,
                          entropy_cutoff: Optional[torch.Tensor] = None, inplace: bool = False, **options):
    """Policy loss of ``logits`` [B, T, V] (``logits[b, t]`` scores ``completion_ids[b, t]``).

    ``weights`` [B, T]: the loss is ``sum(weights * per-token loss)`` (0 at padding; they carry the loss type's
    normaliser: ``seedgrpo.loss.token_weights``). ``advantages`` [B], times ``group_factor`` [B/G] (the
    per-group f(alpha*U), rows g*G .. g*G+G-1 of group g) when given, inside the kernel.
    ``old_logprobs=None`` is on-policy. ``options`` are the fields of
    :class:`seedgrpo.kernels.reference.PolicyOptions` (objective, epsilon_low, epsilon_high, delta, beta,
    temperature, importance_sampling_level, top_entropy_quantile, ...), whose docstring module gives the math.
    ``inplace=True`` writes the gradient over ``logits`` (see :class:`GRPOLossFromLogits`). Returns (loss,
    metrics) with metrics clip_ratio_low, clip_ratio_high, kl, entropy (masked token means, detached).

    Token-local losses run the one-pass kernel; the others the two sweeps of ``logit_grad.py``.
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
                         importance_sampling_ratio=importance_sampling_ratio, opts=config, device=logits.device)
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if config.one_pass and tokens.importance_sampling_ratio is None:
        loss, stats = GRPOLossFromLogits.apply(logits, tokens, config, bool(inplace))
    else:
        from .logit_grad import TwoSweepLossFromLogits

        loss, stats = TwoSweepLossFromLogits.apply(logits, tokens, config, bool(inplace), entropy_cutoff)
    return loss, {name: stats[i] for i, name in enumerate(STAT_NAMES)}
