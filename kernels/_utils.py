"""Pieces shared by the fused GRPO kernels: the streaming softmax statistics of one logit row (a
``@triton.jit`` helper), the gradient sweeps, where a kernel may run, chunk sizing and structural checks.

Nothing here is public; ``grpo_loss.py``, ``fused_linear_grpo.py`` and ``selective_logprob.py`` import it.
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
# Default size of one chunk of logits in the chunked paths. On a GPU the chunk matmul must stay large enough
# to run at full speed (256 MiB = 862 rows of a 152k bf16 vocabulary); the CPU torch path holds about three
# float32 copies of a chunk (logits, probabilities, a reduction temporary), so its budget is smaller.
DEFAULT_CHUNK_BYTES_GPU = 256 * 2**20
DEFAULT_CHUNK_BYTES_CPU = 32 * 2**20
# Chunks above this many rows are rounded down to a multiple of it: aligned matmul shapes.
CHUNK_ALIGN = 64


@triton.jit
def softmax_row_stats(row_ptr, V, inv_temperature, BLOCK_V: tl.constexpr):
    """Stream one row of V logits once; return (log-sum-exp, entropy) of softmax(x / T) in float32.

    Online form: m is the running max of z = x / T, l = sum exp(z - m), s = sum exp(z - m) * (z - m), both
    rescaled when m grows. Then lse = m + log l and entropy = -sum p log p = log l - s / l. Keeping s relative
    to m avoids the cancellation of lse - E[z] when the logits are large.
    """
    m = NEG_BIG
    l = 0.0
    s = 0.0
    for start in tl.range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        z = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32) * inv_temperature
        m_new = tl.maximum(m, tl.max(z, axis=0))
        alpha = tl.exp(m - m_new)
        e = tl.exp(z - m_new)
        # e == 0 for padding and -inf logits, whose (z - m) is -inf: 0 * -inf would be NaN.
        d = tl.where(e > 0.0, z - m_new, 0.0)
        s = alpha * (s + l * (m - m_new)) + tl.sum(e * d, axis=0)
        l = l * alpha + tl.sum(e, axis=0)
        m = m_new
    log_l = tl.log(l)
    return m + log_l, log_l - s / l


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
def write_logit_grad(row_ptr, grad_ptr, V, target, lse, inv_temperature, scale, BLOCK_V: tl.constexpr,
                     ROUND_BF16: tl.constexpr):
    """Second pass over the row: grad[v] = scale * (onehot(target)[v] - softmax(z)[v]) / T.

    ``scale`` is d(loss)/d(logp) of this token (already weighted). ``grad_ptr`` may equal ``row_ptr``: each
    block is read before it is overwritten, and the target logit was read in the first pass. ``ROUND_BF16``:
    see round_to_bf16_nearest (interpreter only).
    """
    coef = scale * inv_temperature
    for start in tl.range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        valid = cols < V
        z = tl.load(row_ptr + cols, mask=valid, other=float("-inf")).to(tl.float32) * inv_temperature
        p = tl.exp(z - lse)
        g = coef * (tl.where(cols == target, 1.0, 0.0) - p)
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


def block_v_for(V: int) -> int:
    """Vocabulary block of the interpreter launch (the GPU launch autotunes it)."""
    return min(triton.next_power_of_2(V), INTERPRETER_BLOCK_V)


def chunk_rows(n_rows: int, vocab: int, device: torch.device, chunk_size=None, max_chunk_bytes=None) -> int:
    """Rows of logits per chunk: ``chunk_size`` if given, else as many float32 rows as fit ``max_chunk_bytes``."""
    if chunk_size is not None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int (tokens per chunk) or None, got {chunk_size!r}")
        return chunk_size
    if max_chunk_bytes is None:
        max_chunk_bytes = DEFAULT_CHUNK_BYTES_GPU if device.type == "cuda" else DEFAULT_CHUNK_BYTES_CPU
    if not isinstance(max_chunk_bytes, int) or isinstance(max_chunk_bytes, bool) or max_chunk_bytes < 1:
        raise ValueError(f"max_chunk_bytes must be a positive int or None, got {max_chunk_bytes!r}")
    rows = max(1, max_chunk_bytes // (4 * vocab))
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
