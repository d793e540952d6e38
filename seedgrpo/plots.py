"""PNG plots of a run's metrics and of learning curves across seeds (matplotlib, Agg backend: no display).

    from seedgrpo import plots
    plots.plot_run("runs/demo/metrics.jsonl", "runs/demo")   # accuracy.png, reward.png, ... vs step
    plots.plot_curves({"grpo": [(steps, acc), ...], "seed_grpo": [...]}, "curves.png", ylabel="accuracy")

A run's metrics.jsonl holds one JSON object per line with a "step" and any metrics; each panel takes the first
of its candidate keys that the records hold, and panels with no data are skipped rather than drawn empty.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

# Panel file name -> (title, candidate metric keys, first found wins): seedgrpo.training.trainer's names first;
# the demo logs its held-out accuracy as "eval/accuracy".
RUN_PANELS = {
    "accuracy": ("held-out greedy accuracy", ("eval/accuracy",)),
    "reward": ("mean reward of the rollouts", ("reward_mean", "reward")),
    "semantic_entropy": ("semantic entropy U (normalised, mean over groups)",
                         ("semantic_entropy_mean", "semantic_entropy")),
    "advantage_scale": ("advantage scale f(α·U) (mean over groups)",
                        ("advantage_scale_mean", "advantage_scale")),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on headless machines and in tests
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def series(records: list[dict], keys: tuple[str, ...] | str) -> tuple[str | None, list[float], list[float]]:
    """(key found, steps, values) for the first of `keys` that some record holds as a finite number."""
    for key in (keys,) if isinstance(keys, str) else keys:
        points = [(r["step"], r[key]) for r in records
                  if "step" in r and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if points:
            steps, values = zip(*points)
            return key, list(steps), list(values)
    return None, [], []


def plot_run(metrics: str | Path | list[dict], out_dir: str | Path, panels: dict | None = None) -> list[Path]:
    """One PNG per panel (`RUN_PANELS` by default) of metric vs step; returns the files written."""
    records = read_metrics(metrics) if isinstance(metrics, (str, Path)) else metrics
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    written = []
    for name, (title, keys) in (panels or RUN_PANELS).items():
        key, steps, values = series(records, keys)
        if key is None:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
        ax.plot(steps, values, marker="o" if len(steps) < 40 else None, markersize=3)
        ax.set(xlabel="RL step", ylabel=key, title=title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("values is empty: a mean needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, _T95.get(n - 1, 1.96) * math.sqrt(var / n)


# Two-sided 95% Student-t quantiles by degrees of freedom (seeds per configuration are few); 1.96 above 30.
_T95 = dict(enumerate([12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
                       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                       2.060, 2.056, 2.052, 2.048, 2.045, 2.042], start=1))


def plot_curves(curves: dict[str, list[tuple[list[float], list[float]]]], path: str | Path, *,
                ylabel: str = "held-out accuracy", title: str = "", max_bands: int = 6) -> Path:
    """Mean curve across seeds for each label, with its 95% CI band when there are at most `max_bands`
    labels (more bands only hide each other); seeds are aligned on their shared steps."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colors = plt.get_cmap("tab10").colors
    styles = ("-", "--", ":", "-.")  # ten colours per line style: every label gets its own pair
    for index, (label, runs) in enumerate(curves.items()):
        shared = sorted(set.intersection(*(set(steps) for steps, _ in runs))) if runs else []
        if not shared:
            continue
        lookup = [dict(zip(steps, values)) for steps, values in runs]
        stats = [mean_ci95([run[s] for run in lookup]) for s in shared]
        means = [m for m, _ in stats]
        color, style = colors[index % 10], styles[(index // 10) % len(styles)]
        ax.plot(shared, means, color=color, linestyle=style, label=f"{label} (n={len(runs)})")
        if len(curves) <= max_bands:
            ax.fill_between(shared, [m - h for m, h in stats], [m + h for m, h in stats], color=color,
                            alpha=0.12)
    ax.set(xlabel="RL step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
