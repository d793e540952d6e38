"""Pieces shared by the fused GRPO kernels: the streaming softmax statistics of one logit row (a
``@triton.jit`` helper), the one gradient sweep, where a kernel may run, chunk sizing and structural checks.

Nothing here is public; the kernel modules (``one_pass.py``, ``two_sweep.py``, ``persistent.py``,
``fused_linear_grpo.py``, ``selective_logprob.py``) import it.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# Triton decides at decoration time whether @triton.jit builds a GPU kernel or an interpreted one, so what
# matters is the environment when this module (imported before any kernel module) was first imported.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# A finite "minus infinity" for the running max: exp(m_old - m_new) stays 0 and 0 * (m_old - m_new) stays 0,
# where a true -inf would give inf - inf = NaN on the first block. (A constexpr: compiled Triton reads no
# other globals.)
NEG_BIG = tl.constexpr(-1.0e30)
# Under the interpreter every block is a numpy call, so big blocks are fast; 512 still splits the test
# vocabularies (1001) into several blocks so that the online log-sum-exp is exercised across blocks.
INTERPRETER_BLOCK_V = 512
# Default size of one chunk of logits in the chunked paths, counted in the bytes a chunk really holds
# (chunk_logit_bytes). On a GPU the chunk matmul must stay large enough to run at full speed, and the loss
# kernel needs enough rows to fill the SMs (one program per row; 132 SMs x several rows each) and to amortise
# the re-read of the float32 weight-gradient accumulator per chunk: so at least MIN_CHUNK_ROWS_GPU rows
# (1,024 bf16 rows of a 152k vocabulary = 297 MiB). The CPU torch path holds about three float32 copies of a
# chunk (logits, probabilities, a reduction temporary), so its budget is smaller.
DEFAULT_CHUNK_BYTES_GPU = 256 * 2**20
DEFAULT_CHUNK_BYTES_CPU = 32 * 2**20
MIN_CHUNK_ROWS_GPU = 1024
# Chunks above this many rows are rounded down to a multiple of it: aligned matmul shapes.
CHUNK_ALIGN = 64
# The autotune list of every row-streaming kernel (loss, selective log-prob): block width and warps decide the
# bandwidth reached. Wider blocks amortise the loop, more warps hide load latency; the best pair depends on V
# and the GPU. One num_stages only: these loops have no tl.dot, so the pipeliner leaves them alone and stages
# 1/2/3 compile to identical PTX (tests/test_kernels_compile.py checks it); listing them would triple the
# first-call tuning time for nothing.
GPU_CONFIGS = [
    triton.Config({"BLOCK_V": bv}, num_warps=nw, num_stages=1)
    for bv, nw in ((1024, 4), (2048, 4), (2048, 8), (4096, 8), (4096, 16), (8192, 16))
]


@triton.jit
def softmax_row_stats(row_ptr, V, inv_temperature, BLOCK_V: tl.constexpr):
    """Stream one row of V logits once; return (log-sum-exp, entropy) of softmax(x / T) in float32.

    Online form, per lane: lane j keeps the running max m_j of the z = x / T it has seen, l_j = sum exp(z - m_j)
    and s_j = sum exp(z - m_j) * (z - m_j), both rescaled when m_j grows; the lanes are combined once after
    the loop (M = max m_j, L = sum l_j e^(m_j - M), S = sum e^(m_j - M) (s_j + l_j (m_j - M))). So the loop
    has no cross-lane reduction (no barrier per block: the warps stream independently) and, since
    max(m, z) is one of m and z, one exp per element: exp(-|z - m|) is either the rescale or the new term.
    Then lse = M + log L and entropy = -sum p log p = log L - S / L; keeping s relative to m avoids the
    cancellation of lse - E[z] when the logits are large. Masked lanes and -inf logits read z = -inf: their
    term is 0 and their lane keeps m_j = NEG_BIG, l_j = 0, which the combination weighs by 0. (l_j is ``lsum``
    below.)
    """
    m = tl.full([BLOCK_V], NEG_BIG, tl.float32)
    lsum = tl.zeros([BLOCK_V], tl.float32)
    s = tl.zeros([BLOCK_V], tl.float32)
    for start in tl.range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        z = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32) * inv_temperature
        diff = z - m  # -inf for a -inf logit or a masked lane (m is finite)
        grows = diff > 0.0
        t = tl.exp(-tl.abs(diff))  # 0 for a -inf logit: a zero term
        alpha = tl.where(grows, t, 1.0)  # exp(m - m_new)
        e = tl.where(grows, 1.0, t)  # exp(z - m_new)
        rise = tl.where(grows, diff, 0.0)  # m_new - m, finite
        # z - m_new: 0 when z is the new max; 0 for a zero term too (its diff is -inf, and 0 * -inf is NaN).
        d = tl.where(grows | (t == 0.0), 0.0, diff)
        s = alpha * (s - lsum * rise) + e * d
        lsum = lsum * alpha + e
        m = tl.maximum(m, z)
    m_row = tl.max(m, axis=0)
    weight = tl.exp(m - m_row)  # 0 for lanes that saw only -inf (m_j = NEG_BIG), unless every lane did
    l_row = tl.sum(lsum * weight, axis=0)
    s_row = tl.sum(weight * (s + lsum * (m - m_row)), axis=0)
    log_l = tl.log(l_row)
    return m_row + log_l, log_l - s_row / l_row


@triton.jit
def target_logit(row_ptr, target, V, inv_temperature):
    """z[target] = x[target] / T in float32; an id outside [0, V) reads -inf (logp = -inf) instead of
    reading outside the row."""
    in_range = (target >= 0) & (target < V)
    return tl.load(row_ptr + target, mask=in_range, other=float("-inf")).to(tl.float32) * inv_temperature


@triton.jit
def round_to_bf16_nearest(x):
    """x (float32) rounded to the nearest-even bfloat16 value, still as float32 (NaN payloads aside).

    The interpreter converts float32 to bfloat16 by truncation where the GPU rounds to nearest even; rounding
    first makes the truncation exact, so that the CPU tests check the numerics the GPU produces."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def write_logit_grad(row_ptr, grad_ptr, V, target, lse, inv_temperature, coef, ent_coef, entropy,
                     HAS_ENTROPY_GRAD: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK_V: tl.constexpr):
    """The gradient sweep of every from-logits loss, over one row:

        grad[v] = coef * (onehot(target)[v] - p_v) - ent_coef * p_v * (log p_v + H)

    with p = softmax(z), z = x / T, and the coefficients already divided by T: ``coef`` = d loss / d logp / T
    (weighted), ``ent_coef`` = d loss / d H / T (read only with HAS_ENTROPY_GRAD; dH/dz_v = -p_v (log p_v + H),
    log p_v = z_v - lse). The one-pass kernel has no entropy term; the two-sweep kernel may.
    ``grad_ptr`` may equal ``row_ptr``: each block is read before it is overwritten, and the target logit was
    read before the sweep. ``ROUND_BF16``: see round_to_bf16_nearest (interpreter only).
    """
    for start in tl.range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        valid = cols < V
        z = tl.load(row_ptr + cols, mask=valid, other=float("-inf")).to(tl.float32) * inv_temperature
        p = tl.exp(z - lse)
        g = coef * (tl.where(cols == target, 1.0, 0.0) - p)
        if HAS_ENTROPY_GRAD:
            # p == 0 for -inf logits, whose log p is -inf: 0 * -inf would be NaN
            g -= ent_coef * p * tl.where(p > 0.0, z - lse + entropy, 0.0)
        if ROUND_BF16:
            g = round_to_bf16_nearest(g)
        tl.store(grad_ptr + cols, g.to(grad_ptr.dtype.element_ty), mask=valid)


@triton.jit
def write_zero_row(grad_ptr, V, BLOCK_V: tl.constexpr):
    """A masked token's logits get a zero gradient (needed when the gradient overwrites the logits)."""
    for start in tl.range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        tl.store(grad_ptr + cols, tl.zeros([BLOCK_V], dtype=grad_ptr.dtype.element_ty), mask=cols < V)


def check_triton_device(tensor: torch.Tensor, name: str, fallback: str) -> None:
    """Raise a ValueError when a Triton kernel cannot run on ``tensor``: it needs CUDA, or the interpreter."""
    if tensor.is_cuda:
        if INTERPRET:
            raise ValueError(f"{name} is on {tensor.device} but TRITON_INTERPRET=1 was set when seedgrpo.kernels "
                             "was imported, so the kernels were built for the CPU interpreter; unset it to "
                             "run them on the GPU")
        return
    if not INTERPRET:
        raise ValueError(f"the Triton kernel needs {name} on a CUDA device (got {tensor.device}), or "
                         "TRITON_INTERPRET=1 set before seedgrpo.kernels is first imported (slow CPU "
                         f"interpreter, for tests); on the CPU use {fallback}")


def row_layout(x: torch.Tensor) -> tuple:
    """(stride_b, stride_t, logits_rows) of a [rows, V] or [B, T, V] tensor whose last dim is contiguous: the
    kernels read row i at ``(i // logits_rows) * stride_b + (i % logits_rows) * stride_t``, so a strided
    [B, T, V] view (e.g. the trainer's logits[:, :-1]) needs no copy."""
    if x.dim() == 2:
        return 0, x.stride(0), x.shape[0]
    return x.stride(0), x.stride(1), x.shape[1]


def block_v_for(V: int) -> int:
    """Vocabulary block of the interpreter launch (the GPU launch autotunes it)."""
    return min(triton.next_power_of_2(V), INTERPRETER_BLOCK_V)


def chunk_logit_bytes(dtype: torch.dtype, with_grad: bool) -> int:
    """Bytes per logit a Triton-path chunk holds: the logits in their own dtype (the gradient overwrites them),
    plus the float32 gradient buffer of fp16 logits (backward.logit_grad_buffer). The torch paths work on float32
    copies: they size by 4 bytes, chunk_rows' default."""
    return dtype.itemsize + (4 if with_grad and dtype == torch.float16 else 0)


def chunk_rows(n_rows: int, vocab: int, device: torch.device, chunk_size=None, max_chunk_bytes=None,
               logit_bytes: int = 4) -> int:
    """Rows of logits per chunk: ``chunk_size`` if given, else as many rows of ``vocab`` logits of
    ``logit_bytes`` each (chunk_logit_bytes; 4 = float32) as fit ``max_chunk_bytes``, and with the default
    budget on a GPU at least MIN_CHUNK_ROWS_GPU."""
    if chunk_size is not None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int (tokens per chunk) or None, got {chunk_size!r}")
        return chunk_size
    min_rows = 1
    if max_chunk_bytes is None:
        on_gpu = device.type == "cuda"
        max_chunk_bytes = DEFAULT_CHUNK_BYTES_GPU if on_gpu else DEFAULT_CHUNK_BYTES_CPU
        min_rows = MIN_CHUNK_ROWS_GPU if on_gpu else 1
    if not isinstance(max_chunk_bytes, int) or isinstance(max_chunk_bytes, bool) or max_chunk_bytes < 1:
        raise ValueError(f"max_chunk_bytes must be a positive int or None, got {max_chunk_bytes!r}")
    rows = max(min_rows, max_chunk_bytes // (logit_bytes * vocab))
    if rows > CHUNK_ALIGN:
        rows -= rows % CHUNK_ALIGN
    return max(1, min(rows, n_rows))


def check_linear(hidden, weight, bias, ids_shape) -> None:
    """hidden [B, T, H], weight [V, H], bias [V] or None, all of one floating dtype and device."""
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(ids_shape):
        raise ValueError(f"hidden must be [B, T, H] with B, T = {tuple(ids_shape)} (completion_ids' shape), got "
                         f"{type(hidden).__name__} of shape {tuple(getattr(hidden, 'shape', ()))}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
        raise ValueError(f"weight must be [V, H] with H = {hidden.shape[2]} (hidden's last dim), got "
                         f"{type(weight).__name__} of shape {tuple(getattr(weight, 'shape', ()))}; under "
                         "DeepSpeed ZeRO-3 gather it first (deepspeed.zero.GatheredParameters)")
    if hidden.dtype != weight.dtype or not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share one floating dtype; "
                         "cast one of them (e.g. hidden.to(weight.dtype))")
    if hidden.device != weight.device:
        raise ValueError(f"hidden is on {hidden.device} but weight on {weight.device}; move them together")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (weight.shape[0],)
                             or bias.dtype != weight.dtype):
        raise ValueError(f"bias must be None or a [{weight.shape[0]}] tensor of dtype {weight.dtype}, got "
                         f"{type(bias).__name__} of shape {tuple(getattr(bias, 'shape', ()))}")
