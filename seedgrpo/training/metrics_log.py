"""Run-directory logging on rank 0: resolved config, metrics.jsonl, samples.jsonl, and the `report_to` trackers.

    log = RunLogger(output_dir, config, resume_step=0)
    log.metrics(step, {"loss": ..., "reward_mean": ...})     # one JSON row per step, and to every tracker
    log.samples(step, rows)                                  # a few completions with their rewards
    log.close()

Trackers (`report_to`, TRL's key: a name, a list, "all" or "none"): `tensorboard` (events in
output_dir/tensorboard), `wandb` (`WANDB_MODE=offline` writes the run under output_dir/wandb without a
network), `trackio` (a local SQLite database, `TRACKIO_DIR`; `trackio show` opens it). Each gets the run
config once and the metrics row of every logged step. Each is an optional package: asking for one that is not
installed stops the run before any work with a one-line error naming it. `auto` (the default) keeps the
older `tensorboard` key's meaning: TensorBoard when `tensorboard: true` and the package is installed.

On resume the rows of steps after the checkpoint (written by the interrupted run) are dropped first, so
metrics.jsonl holds each step once; wandb continues the same run (its id is kept in output_dir).
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from .. import dist
from .config import TrainConfig, save_config, to_dict

TRACKERS = ("tensorboard", "wandb", "trackio")
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[name]) is not None


def resolve_report_to(config: TrainConfig) -> list[str]:
    """The trackers this run reports to; raises a one-line ValueError for one that is not installed."""
    wanted = list(config.report_to)
    if wanted == ["none"]:
        return []
    if wanted == ["auto"]:
        return ["tensorboard"] if config.tensorboard and _installed("tensorboard") else []
    if wanted == ["all"]:
        return [name for name in TRACKERS if _installed(name)]
    for name in wanted:
        if not _installed(name):
            raise ValueError(f"report_to={config.report_to!r}: {name!r} needs the {_PACKAGES[name]} package, "
                             f"which is not installed; pip install {_PACKAGES[name]}, or drop it from report_to")
    return list(dict.fromkeys(wanted))


class RunLogger:
    def __init__(self, output_dir, config: TrainConfig, *, resume_step: int = 0):
        self.enabled = dist.is_main()
        self.dir = Path(output_dir)
        self.trackers = []
        if not self.enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        save_config(config, self.dir / "config.yaml")
        for name in ("metrics.jsonl", "samples.jsonl"):
            _truncate_after(self.dir / name, resume_step)
        names = resolve_report_to(config)
        run_name = config.run_name or self.dir.resolve().name
        for name in names:
            self.trackers.append(_OPEN[name](self.dir, config, run_name, resumed=resume_step > 0))

    def metrics(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        with (self.dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                   and not isinstance(v, bool) and math.isfinite(v)}
        for tracker in self.trackers:
            tracker.log(scalars, step)

    def samples(self, step: int, rows: list[dict]) -> None:
        if not self.enabled or not rows:
            return
        with (self.dir / "samples.jsonl").open("a") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}) + "\n")

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []


# ------------------------------------------------------------------------------------------- trackers
class _TensorBoard:
    def __init__(self, directory: Path, config: TrainConfig, run_name: str, resumed: bool):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(directory / "tensorboard"))
        if not resumed:
            import yaml

            self.writer.add_text("config", "```\n" + yaml.safe_dump(to_dict(config), sort_keys=False) + "```")

    def log(self, scalars: dict, step: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, directory: Path, config: TrainConfig, run_name: str, resumed: bool):
        import wandb

        id_file = directory / "wandb_run_id"
        run_id = id_file.read_text().strip() if resumed and id_file.is_file() else None
        self.run = wandb.init(project=config.project, name=run_name, config=to_dict(config), dir=str(directory),
                              id=run_id, resume="allow" if run_id else None)
        id_file.write_text(self.run.id)

    def log(self, scalars: dict, step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class _Trackio:
    def __init__(self, directory: Path, config: TrainConfig, run_name: str, resumed: bool):
        import trackio

        self.trackio = trackio
        trackio.init(project=config.project, name=run_name, config=to_dict(config), embed=False,
                     resume="allow" if resumed else "never")

    def log(self, scalars: dict, step: int) -> None:
        self.trackio.log(scalars, step=step)

    def close(self) -> None:
        self.trackio.finish()


_OPEN = {"tensorboard": _TensorBoard, "wandb": _Wandb, "trackio": _Trackio}


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
