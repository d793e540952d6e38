"""A persistent-grid launch of the from-logits GRPO kernel: ``rows_in_flight`` programs, each looping over the
rows ``pid, pid + rows_in_flight, ...``, so that the number of logit rows being streamed at once is a
parameter rather than whatever the hardware schedules.

Why: the loss kernel reads each row twice (statistics, then the gradient sweep), so it moves 3 x the logits
unless the second read hits L2. It can only when the rows in flight fit there: rows_in_flight x V x 2 bytes
(bf16) against H100/H200's 50-60 MB of L2, i.e. about 170 rows at V = 151,936. With one program per row
(the default launch) every SM holds as many rows as its occupancy allows, which may not fit; this variant
lets ``benchmarks/bench_rows_in_flight.py`` sweep the count and measure whether the second sweep then runs at
L2 rather than HBM speed. It is opt-in: ``launch_persistent(..., rows_in_flight=k)`` takes the arguments of
``one_pass.launch_one_pass`` (the one-program-per-row launch that every loss uses) plus the grid.

Each iteration calls the per-row kernel body itself (``one_pass._grpo_loss_kernel`` as a @triton.jit
helper) on one row, so the loss math lives in one place: the row's pointers are computed here and passed with
zero strides, and the token offset is shifted so that the body's own ``program_id`` lands on this row's token.

Tests: ``pytest tests/test_kernels_persistent.py`` (interpreter: equal to the default launch) and
``tests/test_kernels_compile.py`` (sm_90 compile, spills, vector loads).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import triton
import triton.language as tl

from ._inputs import TokenInputs
from ._utils import GPU_CONFIGS, INTERPRET, block_v_for
from .one_pass import _grpo_loss_kernel, launch_inputs
from .reference import PolicyOptions

# The block configuration of a GPU launch unless the caller gives one: the persistent launch is a measurement
# tool, swept over rows in flight at a fixed block (the benchmark also sweeps the GPU_CONFIGS), not autotuned:
# autotuning in place would need the scratch-buffer dance of one_pass._tune_on_scratch for a second kernel.
DEFAULT_BLOCK_V = 4096
DEFAULT_NUM_WARPS = 8


@triton.jit
def _grpo_loss_kernel_persistent(
    LOGITS, stride_logits_b, stride_logits_t, GRAD, stride_grad_b, stride_grad_t,
    IDS, WEIGHTS, OLD_LOGP, REF_LOGP, ADVANTAGES, GROUP_FACTOR, TOKEN_INDEX,
    LOSS, KL, ENTROPY, CLIP_LOW, CLIP_HIGH,
    token_offset, logits_rows, T, V, G,
    inv_temperature, epsilon_low, epsilon_high, delta, beta,
    n_rows, rows_in_flight,
    HAS_DELTA: tl.constexpr, HAS_KL_LOSS: tl.constexpr, WRITE_GRAD: tl.constexpr, ROUND_BF16: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    # Same arguments as _grpo_loss_kernel, plus the row count (the default launch's grid) and the grid of this
    # one. The body reads row program_id(0) = pid of a tensor whose row pointer is given (logits_rows = 1,
    # zero strides), as token token_offset + pid: so pass this row's pointers and token_offset + row - pid.
    pid = tl.program_id(0).to(tl.int64)
    for row in tl.range(pid, n_rows, rows_in_flight):
        row_ptr = LOGITS + (row // logits_rows) * stride_logits_b + (row % logits_rows) * stride_logits_t
        grad_ptr = GRAD + (row // logits_rows) * stride_grad_b + (row % logits_rows) * stride_grad_t
        _grpo_loss_kernel(row_ptr, 0, 0, grad_ptr, 0, 0, IDS, WEIGHTS, OLD_LOGP, REF_LOGP, ADVANTAGES,
                          GROUP_FACTOR, TOKEN_INDEX, LOSS, KL, ENTROPY, CLIP_LOW, CLIP_HIGH,
                          token_offset + row - pid, 1, T, V, G, inv_temperature, epsilon_low, epsilon_high,
                          delta, beta, HAS_DELTA, HAS_KL_LOSS, WRITE_GRAD, ROUND_BF16, BLOCK_V)


@dataclass(frozen=True)
class PersistentGrid:
    """A persistent launch: ``rows_in_flight`` programs at one block configuration (on a GPU; the
    interpreter uses its own block)."""
    rows_in_flight: int
    block_v: int = DEFAULT_BLOCK_V
    num_warps: int = DEFAULT_NUM_WARPS


def check_rows_in_flight(rows_in_flight) -> PersistentGrid:
    """An int or a PersistentGrid with a positive row count, with a one-line error naming the argument."""
    grid = rows_in_flight if isinstance(rows_in_flight, PersistentGrid) else PersistentGrid(rows_in_flight)
    count = grid.rows_in_flight
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"rows_in_flight must be a positive int (logit rows streamed at once, e.g. 2 x the "
                         f"SM count) or a PersistentGrid (one_pass.launch_one_pass is the one-program-per-"
                         f"row launch), got {count!r}")
    return grid


def launch_persistent(logits: torch.Tensor, tokens: TokenInputs, config: PolicyOptions, *,
                      grad: Optional[torch.Tensor], rows_in_flight, token_offset: int = 0,
                      token_index: Optional[torch.Tensor] = None, outputs: Optional[dict] = None) -> dict:
    """``one_pass.launch_one_pass`` (same arguments, same results) on a grid of min(rows, rows_in_flight)
    programs, each looping over the rows ``rows_in_flight`` apart (``rows_in_flight``: an int or a
    PersistentGrid, which also sets the GPU block)."""
    grid = check_rows_in_flight(rows_in_flight)
    outputs, args, rows = launch_inputs(logits, tokens, config, grad=grad, token_offset=token_offset,
                                        token_index=token_index, outputs=outputs)
    if rows == 0:
        return outputs
    programs = min(rows, grid.rows_in_flight)
    block_v, num_warps = (block_v_for(args["V"]), 4) if INTERPRET else (grid.block_v, grid.num_warps)
    round_bf16 = INTERPRET and grad is not None and grad.dtype == torch.bfloat16
    _grpo_loss_kernel_persistent[(programs,)](**args, n_rows=rows, rows_in_flight=programs, BLOCK_V=block_v,
                                              num_warps=num_warps, num_stages=1, ROUND_BF16=round_bf16)
    return outputs


def gpu_block_configs() -> list:
    """(BLOCK_V, num_warps) of every autotune config, for a sweep that wants them all."""
    return [(c.kwargs["BLOCK_V"], c.num_warps) for c in GPU_CONFIGS]


__all__ = ["PersistentGrid", "launch_persistent", "check_rows_in_flight", "gpu_block_configs"]
