"""Run-directory logging on rank 0: resolved config, metrics.jsonl, samples.jsonl, TensorBoard when installed.

    log = RunLogger(output_dir, config, resume_step=0)
    log.metrics(step, {"loss": ..., "reward_mean": ...})     # one JSON row per step
    log.samples(step, rows)                                  # a few completions with their rewards
    log.close()

On resume the rows of steps after the checkpoint (written by the interrupted run) are dropped first, so
metrics.jsonl holds each step once.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from . import dist
from .config import TrainConfig, save_config


class RunLogger:
    def __init__(self, output_dir, config: TrainConfig, *, resume_step: int = 0, tensorboard: bool = True):
        self.enabled = dist.is_main()
        self.dir = Path(output_dir)
        self.writer = None
        if not self.enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.dir / "config.yaml")
        for name in ("metrics.jsonl", "samples.jsonl"):
            _truncate_after(self.dir / name, resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def metrics(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        with (self.dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", value, step)
            self.writer.flush()

    def samples(self, step: int, rows: list[dict]) -> None:
        if not self.enabled or not rows:
            return
        with (self.dir / "samples.jsonl").open("a") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    if step == 0:
        path.unlink()
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
