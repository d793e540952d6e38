"""Toy-scale ablation of advantage estimators, through the real trainer: does semantic-entropy scaling help?

    python benchmarks/ablation_toy.py --list                                   # the configurations
    python benchmarks/ablation_toy.py --subset grpo,dr_grpo,seed_reciprocal_a1 --seeds 0,1,2 --steps 100
    python benchmarks/ablation_toy.py --report --steps 100                    # table + curves of what ran

Every run is the demo's (seedgrpo/demo.py): the same cached warm start per seed (a tiny Qwen2 brought to
~30% dev accuracy on `a op b`), then `--steps` RL steps of 64 prompts × G=8 with one advantage estimator,
greedy held-out accuracy every `--eval-every` steps. Configurations:

- `grpo`: base advantages divided by the group std (scale_rewards="group"), TRL's "grpo" loss.
- `dr_grpo`: no std division, Dr.GRPO loss (the base SEED-GRPO builds on).
- `seed_<f>_a<α>`: Dr.GRPO with Â = A · f(α·U), U the Rao semantic entropy, f in linear/exp/focal/
  reciprocal, α in {0.0417 (the paper's), 0.25, 0.5, 1}.
- `gcpo_cd`, `gcpo_bot`, `gcpo_calibrated`, `kle`: the same modulation with GCPO-style uncertainties from
  policy embeddings (reciprocal, α = 1), when seedgrpo.gcpo registers them.

Resumable: one JSON per (configuration, seed, steps) in --results-dir; a run whose JSON exists is skipped.
Runs take minutes each on 2 CPU cores, so run a --subset with fewer --steps where time is short, and say so.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seedgrpo import demo, plots  # noqa: E402

ALPHAS = {"0.0417": 0.0417, "0.25": 0.25, "0.5": 0.5, "1": 1.0}
SCALE_FNS = ("linear", "exp", "focal", "reciprocal")
GCPO_UNCERTAINTIES = ("gcpo_cd", "gcpo_bot", "gcpo_calibrated", "kle")


def configurations() -> dict[str, dict]:
    """Name -> RLSettings overrides."""
    configs = {
        "grpo": dict(advantage="grpo", uncertainty="none", scale_rewards="group", loss_type="grpo"),
        "dr_grpo": dict(advantage="grpo", uncertainty="none", scale_rewards="none", loss_type="dr_grpo"),
    }
    for fn in SCALE_FNS:
        for label, alpha in ALPHAS.items():
            configs[f"seed_{fn}_a{label}"] = dict(advantage="seed_grpo", uncertainty="se_rao", scale_fn=fn,
                                                  alpha=alpha, scale_rewards="none", loss_type="dr_grpo")
    for name in GCPO_UNCERTAINTIES:
        configs[name] = dict(advantage="seed_grpo", uncertainty=name, scale_fn="reciprocal", alpha=1.0,
                             scale_rewards="none", loss_type="dr_grpo")
    return configs


def registered_uncertainties() -> set[str]:
    import seedgrpo.uncertainty  # noqa: F401  (registers se_*)
    from seedgrpo.registry import list_uncertainties

    try:
        import seedgrpo.gcpo  # noqa: F401  (registers gcpo_* and kle)
    except ImportError:
        pass
    return set(list_uncertainties()) | {"none"}


def result_path(results_dir: Path, name: str, seed: int, steps: int) -> Path:
    return results_dir / f"{name}-seed{seed}-steps{steps}.json"


def run_one(name: str, overrides: dict, seed: int, args) -> dict:
    warm = demo.WarmStartSettings(seed=seed)
    rl = replace(demo.RLSettings(), steps=args.steps, eval_every=args.eval_every, **overrides)
    started = time.perf_counter()
    summary = demo.run(warm, rl, Path(args.work_dir) / f"{name}-seed{seed}-steps{args.steps}",
                       cache_dir=args.cache_dir, progress=False, plots=False)
    return {
        "config": name, "seed": seed, "steps": args.steps, "rl_settings": asdict(rl),
        "initial_accuracy": summary["initial_accuracy"], "final_accuracy": summary["final_accuracy"],
        "gain_points": summary["gain_points"], "best_accuracy": summary["best_accuracy"],
        "curve": summary["accuracy_curve"], "semantic_entropy_mean": summary["semantic_entropy_mean"],
        "advantage_scale_mean": summary["advantage_scale_mean"], "reward_mean": summary["reward_mean"],
        "warm_start": summary["warm_start"], "seconds": round(time.perf_counter() - started, 1),
        "rl_seconds_per_step": summary["seconds"]["rl_per_step"],
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {_cpus()} CPUs",
        "command": " ".join(sys.argv), "revision": _revision(),
    }


def _revision() -> str:
    """The code's git commit: runs of different revisions may differ by float rounding in sampling."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ------------------------------------------------------------------------------------------------ report
def load_results(results_dir: Path, steps: int) -> dict[str, list[dict]]:
    by_config: dict[str, list[dict]] = {}
    for path in sorted(results_dir.glob(f"*-steps{steps}.json")):
        record = json.loads(path.read_text())
        by_config.setdefault(record["config"], []).append(record)
    return by_config


def report(results_dir: Path, steps: int, curves_png: Path, baseline: str = "dr_grpo") -> str:
    """A markdown table (mean ± 95% CI over seeds) and a learning-curve PNG of the results so far.

    Runs of one seed share the warm start and the held-out set, so configurations are also compared seed by
    seed with `baseline`: "Δ gain vs baseline" is the mean ± 95% CI of the per-seed gain differences.
    """
    by_config = load_results(results_dir, steps)
    if not by_config:
        return f"no results for --steps {steps} in {results_dir}"
    base = {r["seed"]: r["gain_points"] for r in by_config.get(baseline, [])}
    order = [name for name in configurations() if name in by_config]
    lines = [f"| configuration | seeds | initial acc. % | final acc. % | gain, points | "
             f"Δ gain vs {baseline} | mean SE (Rao) | mean f(αU) | s/step |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    curves = {}
    for name in order:
        runs = by_config[name]
        initial, _ = plots.mean_ci95([100 * r["initial_accuracy"] for r in runs])
        final, final_ci = plots.mean_ci95([100 * r["final_accuracy"] for r in runs])
        gain, gain_ci = plots.mean_ci95([r["gain_points"] for r in runs])
        paired = [r["gain_points"] - base[r["seed"]] for r in runs if r["seed"] in base]
        if name == baseline or not paired:
            delta = "—"
        else:
            d, d_ci = plots.mean_ci95(paired)
            delta = f"{d:+.1f} ± {d_ci:.1f} (n={len(paired)})"
        u = _mean(r["semantic_entropy_mean"].get("mean") for r in runs)
        f = _mean(r["advantage_scale_mean"].get("mean") for r in runs)
        per_step = _mean(r["rl_seconds_per_step"] for r in runs)
        lines.append(f"| {name} | {len(runs)} | {initial:.1f} | {final:.1f} ± {final_ci:.1f} | "
                     f"{gain:+.1f} ± {gain_ci:.1f} | {delta} | {u:.3f} | {f:.3f} | {per_step:.2f} |")
        # Gain over each seed's own warm start: the seeds start 17 points apart, which would swamp the bands.
        curves[name] = [(r["curve"]["steps"], [100 * (acc - r["initial_accuracy"])
                                                for acc in r["curve"]["accuracy"]]) for r in runs]
    plots.plot_curves(curves, curves_png, ylabel="held-out accuracy gain over the warm start (points)",
                      title=f"toy arithmetic, {steps} RL steps, mean over seeds"
                            + (" ± 95% CI" if len(curves) <= 6 else ""))
    return "\n".join(lines) + f"\n\nlearning curves: {curves_png}"


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


# --------------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", default=None, help="comma-separated configuration names (default: all)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=demo.RLSettings().steps, help="RL steps per run")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "out" / "ablation_toy"))
    p.add_argument("--work-dir", default=str(REPO / "runs" / "ablation_toy"), help="trainer run directories")
    p.add_argument("--cache-dir", default=None, help="warm-start cache (default: the demo's)")
    p.add_argument("--baseline", default="dr_grpo", help="configuration the others are compared with, per seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = auto, as the demo)")
    p.add_argument("--list", action="store_true", help="print the configurations and exit")
    p.add_argument("--report", action="store_true", help="only summarise the results already there")
    args = p.parse_args(argv)

    configs = configurations()
    demo.set_threads(args.threads)
    if args.list:
        for name, overrides in configs.items():
            print(f"{name:28s} {overrides}")
        return
    results_dir = Path(args.results_dir)
    curves_png = results_dir / f"curves-steps{args.steps}.png"
    if not args.report:
        names = [n.strip() for n in args.subset.split(",")] if args.subset else list(configs)
        unknown = [n for n in names if n not in configs]
        if unknown:
            raise ValueError(f"--subset names unknown configurations {unknown}; see --list")
        available = registered_uncertainties()
        seeds = [int(s) for s in args.seeds.split(",")]
        results_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if configs[name]["uncertainty"] not in available:
                print(f"skip {name}: uncertainty {configs[name]['uncertainty']!r} is not registered",
                      flush=True)
                continue
            for seed in seeds:
                path = result_path(results_dir, name, seed, args.steps)
                if path.is_file():
                    continue
                record = run_one(name, configs[name], seed, args)
                path.write_text(json.dumps(record, indent=2) + "\n")
                print(f"{name} seed {seed}: {100 * record['initial_accuracy']:.1f}% -> "
                      f"{100 * record['final_accuracy']:.1f}% ({record['gain_points']:+.1f}) "
                      f"in {record['seconds']:.0f} s", flush=True)
    print(report(results_dir, args.steps, curves_png, baseline=args.baseline))


if __name__ == "__main__":
    main()
