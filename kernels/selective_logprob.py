"""Per-token log-probs (and entropies) of the sampled tokens, without the gradient: the old-policy and
reference passes of GRPO.

``logp[b, t] = log softmax(logits[b, t] / T)[completion_ids[b, t]]`` in float32, from the logits [B, T, V]
or from hidden [B, T, H] + lm_head weight [V, H] in chunks of tokens (at most one chunk of logits exists).
The Triton backend streams each logit row once (online log-sum-exp, the same helper as the loss kernel);
the torch backend does the same algorithm chunk by chunk in float32, so it also bounds memory on the CPU.

    with torch.no_grad():
        old_logp = selective_logprob(None, ids, hidden=h, weight=model.lm_head.weight, temperature=0.7)
        logp, entropy = selective_logprob(logits, ids, with_entropy=True, backend="torch")

Tests: ``pytest tests/test_kernels_selective.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._utils import (GPU_CONFIGS, INTERPRET, block_v_for, check_linear, check_triton_device, chunk_logit_bytes,
                     chunk_rows, row_layout, softmax_row_stats, target_logit)

__all__ = ["selective_logprob"]

BACKENDS = ("triton", "torch")
# A bandwidth-bound row stream, like the loss kernel's first pass; no in-place writes, so plain autotuning
# over the list every row-streaming kernel shares (_utils.GPU_CONFIGS).


@triton.jit
def _selective_logprob_kernel(LOGITS, stride_b, stride_t, IDS, LOGP, ENTROPY, token_offset, logits_rows, V,
                              inv_temperature, BLOCK_V: tl.constexpr):
    # Program i reads logits row i and writes flattened token token_offset + i; ENTROPY None = not wanted.
    pid = tl.program_id(0).to(tl.int64)
    row_ptr = LOGITS + (pid // logits_rows) * stride_b + (pid % logits_rows) * stride_t
    n = token_offset + pid
    lse, entropy = softmax_row_stats(row_ptr, V, inv_temperature, BLOCK_V)
    target = tl.load(IDS + n)
    tl.store(LOGP + n, target_logit(row_ptr, target, V, inv_temperature) - lse)
    if ENTROPY is not None:
        tl.store(ENTROPY + n, entropy)


_selective_logprob_kernel_tuned = None if INTERPRET else triton.autotune(
    configs=GPU_CONFIGS, key=["V"])(_selective_logprob_kernel)


def _launch(logits: torch.Tensor, ids: torch.Tensor, logp: torch.Tensor, entropy: Optional[torch.Tensor],
            temperature: float, token_offset: int = 0) -> None:
    """logits [B, T, V] or a [rows, V] chunk of flattened tokens starting at ``token_offset``."""
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    V = logits.shape[-1]
    rows = logits.numel() // V
    if rows == 0:
        return
    sb, st, logits_rows = row_layout(logits)
    args = (logits, sb, st, ids, logp, entropy, token_offset, logits_rows, V, 1.0 / temperature)
    if INTERPRET:
        _selective_logprob_kernel[(rows,)](*args, BLOCK_V=block_v_for(V), num_warps=4)
    else:
        _selective_logprob_kernel_tuned[(rows,)](*args)


def _rows_view(x: torch.Tensor) -> Optional[torch.Tensor]:
    """[B, T, V] as [B*T, V] without a copy, or None when the strides do not allow it (e.g. logits[:, :-1])."""
    try:
        return x.view(-1, x.shape[-1])
    except RuntimeError:
        return None


def _torch_rows(logits: torch.Tensor, ids: torch.Tensor, temperature: float, with_entropy: bool):
    """The torch backend on [rows, V]: float32 log-prob of ``ids`` [rows] (and entropy)."""
    z = logits.float()
    owned = z is not logits  # a copy of ours may be overwritten in place; the caller's logits may not
    if temperature != 1.0:
        z = z.div_(temperature) if owned else z / temperature
        owned = True
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    log_p = z.sub_(lse) if owned else z - lse
    logp = log_p.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp, None
    # -sum p log p rather than lse - sum p z, which cancels badly in float32 when logits are large; as a
    # batched dot, so that no second [rows, V] temporary is made.
    entropy = -torch.bmm(torch.exp(log_p).unsqueeze(1), log_p.unsqueeze(2)).view(-1)
    return logp, entropy


@torch.no_grad()
def selective_logprob(logits: Optional[torch.Tensor] = None, completion_ids: Optional[torch.Tensor] = None, *,
                      hidden: Optional[torch.Tensor] = None, weight: Optional[torch.Tensor] = None,
                      bias: Optional[torch.Tensor] = None, temperature: float = 1.0, with_entropy: bool = False,
                      backend: str = "triton", chunk_size: Optional[int] = None,
                      max_chunk_bytes: Optional[int] = None):
    """Per-token ``log softmax(logits / T)[completion_ids]`` [B, T] in float32 (and the entropy [B, T]).

    Give ``logits`` [B, T, V], or ``hidden`` [B, T, H] + ``weight`` [V, H] (+ ``bias``): then the tokens are
    processed ``chunk_size`` at a time (default: as many as fit ``max_chunk_bytes``, counted at the logits'
    real dtype on the Triton path and as float32 on the torch path).
    ``backend``: "triton" (CUDA, or the interpreter under TRITON_INTERPRET=1) or "torch" (any device).
    Returns ``logp``, or ``(logp, entropy)`` with ``with_entropy=True``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    if not isinstance(completion_ids, torch.Tensor) or completion_ids.dim() != 2 \
            or completion_ids.dtype.is_floating_point or completion_ids.dtype == torch.bool:
        raise ValueError(f"completion_ids must be a [B, T] integer tensor, got {type(completion_ids).__name__} "
                         f"of shape {tuple(getattr(completion_ids, 'shape', ()))}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    temperature = float(temperature)
    if (logits is None) == (hidden is None):
        raise ValueError("pass either logits [B, T, V] or hidden [B, T, H] + weight [V, H], not both or neither")
    B, T = completion_ids.shape
    if logits is not None:
        if logits.dim() != 3 or tuple(logits.shape[:2]) != (B, T):
            raise ValueError(f"logits must be [B, T, V] with B, T = {(B, T)} (completion_ids' shape), got "
                             f"{tuple(logits.shape)}")
        source, vocab = logits, logits.shape[-1]
    else:
        check_linear(hidden, weight, bias, (B, T))
        source, vocab = hidden, weight.shape[0]
    if backend == "triton":
        check_triton_device(source, "logits" if logits is not None else "hidden", "backend='torch'")
    device = source.device
    ids = completion_ids.to(device=device, dtype=torch.int64).reshape(-1).contiguous()
    n = B * T
    logp = torch.empty(n, device=device, dtype=torch.float32)
    entropy = torch.empty(n, device=device, dtype=torch.float32) if with_entropy else None

    if logits is not None and backend == "triton":
        _launch(logits, ids, logp, entropy, temperature)
    else:
        logit_bytes = chunk_logit_bytes(weight.dtype, with_grad=False) \
            if logits is None and backend == "triton" else 4
        rows_per_chunk = chunk_rows(n, vocab, device, chunk_size, max_chunk_bytes, logit_bytes)
        flat = _rows_view(logits) if logits is not None else hidden.reshape(n, hidden.shape[-1])
        if logits is not None and flat is None:
            rows_per_chunk = T  # one sequence at a time rather than a copy of all the logits
        for start in range(0, n, rows_per_chunk):
            end = min(start + rows_per_chunk, n)
            if logits is None:
                chunk = torch.nn.functional.linear(flat[start:end], weight, bias)
            elif flat is not None:
                chunk = flat[start:end]
            else:
                chunk = logits[start // T]
            if backend == "triton":
                _launch(chunk, ids, logp, entropy, temperature, token_offset=start)
            else:
                lp, ent = _torch_rows(chunk, ids[start:end], temperature, with_entropy)
                logp[start:end] = lp
                if with_entropy:
                    entropy[start:end] = ent
    logp = logp.view(B, T)
    return (logp, entropy.view(B, T)) if with_entropy else logp
