"""The one-pass kernel: the GRPO / SEED-GRPO loss from logits in one Triton launch: advantages in, loss,
metrics and d(loss)/d(logits) out.

One program per token row streams the vocabulary once with an online log-sum-exp (temperature applied),
which gives the token's log-prob and entropy; then, in the same program, the advantage (the row's, times its
group's f(alpha*U) factor when given), the ratio against the old log-prob, TRL's clipped
surrogate (epsilon_low, epsilon_high, delta) and the k3 KL against the reference; and when a gradient is
needed the gradient sweep over the row (_utils.write_logit_grad, shared with the two-sweep loss) writes

    d loss / d logits[v] = w * d loss_tok / d logp * (onehot(target)[v] - softmax(z)[v]) / T

into a gradient buffer, or over the logits themselves with ``inplace=True``; backward (backward.py) only
multiplies that buffer by grad_output. Everything exp/log is float32 whatever the logits' dtype (fp32, bf16,
fp16).

Token-local losses only: ``dispatch.grpo_loss_from_logits`` (the entry point) sends the losses whose token
terms need a statistic of the row or the batch first (GSPO's sequence ratio, cispo, sapo, vespo, the entropy
and off-policy masks, importance-sampling ratios, the entropy bonus) to the two sweeps of ``two_sweep.py``:
the same traffic (each row read twice, its gradient written once). ``persistent.py`` runs this kernel's body
on a persistent grid; ``fused_linear_grpo.py`` launches it on chunks of logits.

Runs on CUDA, or on the CPU through the Triton interpreter (TRITON_INTERPRET=1 set before import; tests only).
Tests: ``pytest tests/test_kernels_grpo_loss.py``; benchmark: ``python benchmarks/bench_loss.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._inputs import STAT_NAMES, TokenInputs, masked_metrics
from ._utils import (GPU_CONFIGS, INTERPRET, block_v_for, row_layout, softmax_row_stats, target_logit,
                     write_logit_grad, write_zero_row)
from .backward import keep_logit_grad, logit_grad_buffer, scaled_logit_grad
from .reference import PolicyOptions

__all__ = ["OnePassLossFromLogits", "launch_one_pass", "takes_one_pass", "one_pass_args", "new_outputs",
           "OUTPUT_NAMES"]

# The per-token float32 outputs of a launch.
OUTPUT_NAMES = ("loss", "kl", "entropy", "clip_low", "clip_high")

# Rows of the throw-away buffer the autotuner benchmarks on (see _tune_on_scratch): enough rows to fill the
# GPU for a representative timing, few enough that the buffer costs nothing next to the real launch.
TUNE_ROWS = 1024


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
        write_logit_grad(row_ptr, grad_ptr, V, target, lse, inv_temperature,
                         w * d_loss_d_logp * inv_temperature, 0.0, 0.0, False, ROUND_BF16, BLOCK_V)


# One kernel object per mode: the interpreter cannot benchmark configs (it would need do_bench=), so it
# launches the plain kernel with a fixed block; on a GPU the autotuned wrapper picks BLOCK_V and warps per V.
_grpo_loss_kernel_tuned = None if INTERPRET else triton.autotune(
    configs=GPU_CONFIGS, key=["V", "WRITE_GRAD", "HAS_KL_LOSS"])(_grpo_loss_kernel)
_tuned_keys: set = set()


def takes_one_pass(config: PolicyOptions, tokens: TokenInputs) -> bool:
    """Whether this kernel computes the loss: token-local terms only (PolicyOptions.one_pass) and no
    importance-sampling ratio (a per-sequence ratio needs the row first); else the two sweeps."""
    return config.one_pass and tokens.importance_sampling_ratio is None


def one_pass_args(logits: torch.Tensor, tokens: TokenInputs, config: PolicyOptions, *,
                  grad: Optional[torch.Tensor], token_offset: int, token_index: Optional[torch.Tensor],
                  outputs: dict) -> dict:
    """The kernel's arguments (all but the launch constexprs BLOCK_V and ROUND_BF16) for ``logits``: shared
    by the default launch here and the persistent launch (persistent.py)."""
    if logits.stride(-1) != 1:
        raise ValueError("logits must have a contiguous last (vocabulary) dimension; call .contiguous()")
    sb, st, logits_rows = row_layout(logits)
    if grad is None:
        grad_t, gb, gt = logits, sb, st  # never written: WRITE_GRAD is off
    else:
        if grad.stride(-1) != 1:
            raise ValueError("the gradient buffer must have a contiguous last dimension")
        grad_t, (gb, gt, _) = grad, row_layout(grad)
    return dict(
        LOGITS=logits, stride_logits_b=sb, stride_logits_t=st,
        GRAD=grad_t, stride_grad_b=gb, stride_grad_t=gt,
        IDS=tokens.ids.view(-1), WEIGHTS=tokens.weights.view(-1),
        OLD_LOGP=None if tokens.old_logprobs is None else tokens.old_logprobs.view(-1),
        REF_LOGP=None if tokens.ref_logprobs is None else tokens.ref_logprobs.view(-1),
        ADVANTAGES=tokens.advantages, GROUP_FACTOR=tokens.group_factor,
        TOKEN_INDEX=token_index, LOSS=outputs["loss"], KL=outputs["kl"], ENTROPY=outputs["entropy"],
        CLIP_LOW=outputs["clip_low"], CLIP_HIGH=outputs["clip_high"],
        token_offset=token_offset, logits_rows=logits_rows, T=tokens.T, V=logits.shape[-1],
        G=tokens.group_size, inv_temperature=1.0 / config.temperature, epsilon_low=config.epsilon_low,
        epsilon_high=config.epsilon_high, delta=config.delta if config.delta is not None else 0.0,
        beta=config.beta,
        HAS_DELTA=config.delta is not None, HAS_KL_LOSS=config.beta != 0.0, WRITE_GRAD=grad is not None,
    )


def new_outputs(tokens: TokenInputs, device) -> dict:
    """One float32 [B*T] tensor per output name (uninitialised: every token is written by a full launch)."""
    return {k: torch.empty(tokens.B * tokens.T, device=device, dtype=torch.float32) for k in OUTPUT_NAMES}


def launch_inputs(logits: torch.Tensor, tokens: TokenInputs, config: PolicyOptions, *,
                  grad: Optional[torch.Tensor], token_offset: int, token_index: Optional[torch.Tensor],
                  outputs: Optional[dict]) -> tuple[dict, dict, int]:
    """What both launches (this one and persistent.launch_persistent) start from: the output buffers (new
    ones unless given), the kernel's arguments, and the number of logits rows to score."""
    if outputs is None:
        outputs = new_outputs(tokens, logits.device)
    args = one_pass_args(logits, tokens, config, grad=grad, token_offset=token_offset,
                         token_index=token_index, outputs=outputs)
    return outputs, args, logits.numel() // logits.shape[-1]


def launch_one_pass(logits: torch.Tensor, tokens: TokenInputs, config: PolicyOptions, *,
                    grad: Optional[torch.Tensor], token_offset: int = 0,
                    token_index: Optional[torch.Tensor] = None, outputs: Optional[dict] = None) -> dict:
    """Run the kernel on ``logits``: [B, T, V], or a [rows, V] chunk whose row i scores flattened token
    ``token_offset + i`` (or ``token_index[token_offset + i]``), one program per row. ``grad`` (same shape;
    may be ``logits``) receives d(loss)/d(logits) unscaled by grad_output, or None for no gradient. Returns
    the per-token float32 outputs [B*T]: loss, kl, entropy, clip_low, clip_high (``outputs``, when given, is
    filled in place: the chunks of one call share one set, zero-filled by the caller when rows are packed).
    persistent.launch_persistent runs the same on a persistent grid."""
    outputs, args, rows = launch_inputs(logits, tokens, config, grad=grad, token_offset=token_offset,
                                        token_index=token_index, outputs=outputs)
    if rows == 0:
        return outputs
    if INTERPRET:
        _grpo_loss_kernel[(rows,)](**args, BLOCK_V=block_v_for(args["V"]), num_warps=4,
                                   ROUND_BF16=grad is not None and grad.dtype == torch.bfloat16)
        return outputs
    if grad is not None and grad.data_ptr() == logits.data_ptr():
        _tune_on_scratch(logits, args)
    _grpo_loss_kernel_tuned[(rows,)](**args, ROUND_BF16=False)
    return outputs


def _tune_on_scratch(logits: torch.Tensor, args: dict) -> None:
    """The autotuner runs each config several times; with the gradient written over the logits, every run
    after the first would read gradients as logits. So the first in-place call for a key tunes on a copy of
    at most TUNE_ROWS rows, with its own outputs (same dtypes and flags, hence the same autotuner key), and
    the real launch then reuses the cached config. No full-size clone is made (restore_value would clone all).
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


class OnePassLossFromLogits(torch.autograd.Function):
    """loss = sum(w * per_token_loss) with the gradient computed in the forward launch.

    With ``inplace=True`` the gradient overwrites ``logits`` (no second [B, T, V] buffer): the logits are
    garbage afterwards, so only use it when nothing else reads them (the usual case: logits come from the
    lm_head matmul, whose backward needs its inputs, not its output). Backward can run once.

    fp16 logits get a float32 gradient buffer instead (backward.logit_grad_buffer), cast to fp16 only after
    backward has applied grad_output: into the logits' storage with ``inplace=True``, else a new tensor.
    """

    @staticmethod
    def forward(ctx, logits, tokens: TokenInputs, config: PolicyOptions, inplace: bool):
        needs_grad = ctx.needs_input_grad[0]
        grad = logit_grad_buffer(logits, inplace=inplace) if needs_grad else None
        out = launch_one_pass(logits, tokens, config, grad=grad)
        loss = (tokens.weights.view(-1) * out["loss"]).sum()
        metrics = masked_metrics(tokens.mask, out["kl"], out["entropy"], out["clip_low"], out["clip_high"])
        if needs_grad:
            keep_logit_grad(ctx, logits, grad, inplace=inplace)
        stats = torch.stack([metrics[k] for k in STAT_NAMES])
        ctx.mark_non_differentiable(stats)
        return loss, stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_stats):
        return scaled_logit_grad(ctx, grad_loss, "OnePassLossFromLogits"), None, None, None
