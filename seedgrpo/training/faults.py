"""Test-only fault points: kill this process at a named point of the training loop.

    SEEDGRPO_FAULT=update@3:1 python -m seedgrpo.train ...    # rank 1 SIGKILLs itself in step 3's update

`SEEDGRPO_FAULT=<point>[@<step>][:<rank>]` names one point of `POINTS`; without `@step` the first time the
point is reached, without `:rank` on every rank. The process sends itself SIGKILL (no handler, no cleanup,
no flushing: what a node failure, the OOM killer or a scheduler's hard kill do). Before dying it writes one
line to stderr, `SEEDGRPO_FAULT <point> step <s> rank <r> at <unix time>`, so a test can time how long the
launcher takes to end the other ranks. Unset (the normal case) every call is one dictionary lookup.
"""
from __future__ import annotations

import os
import signal
import sys
import time

ENV = "SEEDGRPO_FAULT"
POINTS = (
    "rollout",             # inside the rollout of a step (after the prompts are drawn)
    "update",              # inside the update, after the first micro-batch's backward
    "checkpoint_shards",   # a checkpoint: model/optimizer shards and RNG written, trainer state not yet
    "checkpoint_latest",   # a checkpoint complete, `latest`'s temporary file written, not yet renamed
    "serve_generate",      # `seedgrpo serve`, as it starts its N-th request (@N; the server process dies)
)


def parse(spec: str) -> tuple[str, int | None, int | None]:
    """`point[@step][:rank]` -> (point, step or None, rank or None); a bad spec is an error, not ignored."""
    rest, _, rank = spec.partition(":")
    point, _, step = rest.partition("@")
    if point not in POINTS or (step and not step.isdigit()) or (rank and not rank.isdigit()):
        raise ValueError(f"{ENV}={spec!r} is not valid; give <point>[@<step>][:<rank>] with point one of "
                         f"{list(POINTS)}, e.g. {ENV}=update@3:1")
    return point, int(step) if step else None, int(rank) if rank else None


def fault_point(point: str, step: int) -> None:
    """SIGKILL this process if SEEDGRPO_FAULT names this point (and step and rank)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, wanted_step, wanted_rank = parse(spec)
    if point not in POINTS:
        raise ValueError(f"fault_point({point!r}): unknown point; known: {list(POINTS)}")
    rank = int(os.environ.get("RANK", 0))
    if wanted != point or (wanted_step is not None and wanted_step != step) or \
            (wanted_rank is not None and wanted_rank != rank):
        return
    sys.stderr.write(f"{ENV} {point} step {step} rank {rank} at {time.time():.3f}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
