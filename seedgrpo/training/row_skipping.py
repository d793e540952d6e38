"""Which rows of a rollout run through the update, and how they are packed into micro-batches.

    from seedgrpo.training.row_skipping import skipping_is_exact, rows_to_run, plan_micro_batches
    run = rows_to_run(advantages, completion_mask) if skipping_is_exact(config) is None else all_rows
    plan = plan_micro_batches(run, rows_per_optimizer_step, micro, lockstep=zero3_multi_rank)
    # plan[k]: the micro-batch calls of optimizer step k, each a LongTensor of row indices (empty = padding)

Why it is exact. With β = 0 and no entropy bonus every supported loss type is, token by token, a function
of the ratio multiplied by the row's advantage Â (clipped surrogate, CISPO / SAPO / VESPO weights, the
off-policy mask, importance weights): a row with Â exactly 0 has a loss of exactly 0 and a gradient of
exactly 0, whatever its log-probs. Leaving it out of the forward and backward therefore changes nothing,
provided the loss normaliser (rows or tokens of the whole optimizer step, all ranks) is computed BEFORE
the rows are dropped, which the trainer does. A row with an all-zero completion mask has no token in the
loss at all and is left out too. Anything that reads every row breaks the argument, and turns skipping off
(`skipping_is_exact` says which): a KL term (β > 0: its gradient does not vanish with Â), an entropy bonus,
and an entropy quantile over the batch (the quantile of the rows that ran is another threshold).

Lockstep. Under multi-rank ZeRO-3 every forward gathers parameters and every backward reduce-scatters
gradients: all ranks must make the same number of calls per optimizer step. The number of calls is then
the largest any rank needs, and a rank with fewer rows pads with zero-weight calls (one row, advantage 0:
gradient exactly 0). An optimizer step with no row to run still makes one zero-weight call, so that the
optimizer steps on exactly zero gradients, as it would have without skipping (AdamW's moments still move).
"""
from __future__ import annotations

import math

import torch

from .. import dist


def skipping_is_exact(config) -> str | None:
    """None when leaving zero-advantage rows out leaves the update unchanged; else the reason it would not.

    Keys that other loss options add are read with defaults, so this holds before and after they exist."""
    if config.beta != 0:
        return f"beta={config.beta} (the KL term has a gradient on every row)"
    entropy_coef = getattr(config, "entropy_coef", 0.0) or 0.0
    if entropy_coef != 0:
        return f"entropy_coef={entropy_coef} (the entropy bonus has a gradient on every row)"
    quantile = getattr(config, "top_entropy_quantile", 1.0)
    if quantile is not None and quantile < 1:
        return f"top_entropy_quantile={quantile} (the entropy threshold is a quantile over every row)"
    return None


def rows_to_run(advantages: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """[rows] bool: the rows that carry a gradient (nonzero advantage and at least one completion token)."""
    return (advantages != 0) & (completion_mask.sum(1) > 0)


def plan_micro_batches(run: torch.Tensor, rows_per_optimizer_step: int, micro: int, *,
                       lockstep: bool) -> list[list[torch.Tensor]]:
    """For each optimizer step (consecutive blocks of `rows_per_optimizer_step` rows), the micro-batch calls:
    index tensors of its rows to run, in order, at most `micro` per call, and at least one call (an empty
    tensor is a zero-weight call). With `lockstep` the number of calls of each optimizer step is the largest
    over the ranks (a collective: every rank must call this). With every row kept, this is the plain split
    into consecutive micro-batches."""
    run = run.cpu()
    steps = [torch.nonzero(run[start:start + rows_per_optimizer_step]).flatten() + start
             for start in range(0, run.numel(), rows_per_optimizer_step)]
    calls = [max(1, math.ceil(rows.numel() / micro)) for rows in steps]
    if lockstep:
        calls = [int(n) for n in dist.all_reduce_max(torch.tensor(calls, dtype=torch.float64)).tolist()]
    plan = []
    for rows, n in zip(steps, calls):
        pieces = list(rows.split(micro)) if rows.numel() else []
        plan.append(pieces + [rows.new_empty(0)] * (n - len(pieces)))
    return plan


def zero_weight_piece(data: dict, row: int) -> dict:
    """A one-row micro-batch whose loss and gradient are exactly 0 (advantage 0): the padding call."""
    piece = {k: v[row:row + 1].clone() for k, v in data.items()}
    piece["advantages"].zero_()
    return piece
