"""The shared prompt prefix in the training forward: time of forward + backward with and without it.

    .venv/bin/python benchmarks/bench_prefix.py                       # CPU, the default shapes
    .venv/bin/python benchmarks/bench_prefix.py --device cuda --hidden 1024 --layers 8

G rows per prompt, prompts of `--prompt` tokens, completions of `--completion` tokens (lengths uniform in
[completion/2, completion], right-padded), a locally built Qwen2 (seedgrpo.tasks.toy's architecture at the given
width and depth, float32). Each measurement: `completion_forward(...)` -> a weighted sum of the hidden states
-> backward, as the trainer's update does; the two settings take turns, median of `--reps` after a warm-up.
Rows are appended to benchmarks/out/prefix.csv.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _results_csv import append_csv  # noqa: E402  (this script's folder is on sys.path)

OUT = REPO / "benchmarks" / "out" / "prefix.csv"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=4, help="distinct prompts per micro-batch")
    p.add_argument("--generations", type=int, default=8, help="G rows per prompt")
    p.add_argument("--prompt", type=int, nargs="+", default=[32, 256], help="prompt lengths (tokens)")
    p.add_argument("--completion", type=int, nargs="+", default=[64], help="completion lengths (tokens)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing on (both settings)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from seedgrpo.tasks import toy
    from seedgrpo.modeling.training_forward import completion_forward

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = toy.make_tokenizer()
    longest = max(args.prompt) + max(args.completion) + 8
    model = toy.make_model(tokenizer, layers=args.layers, hidden=args.hidden, seed=0,
                           max_positions=longest).to(args.device).train()
    if args.checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    generator = torch.Generator().manual_seed(0)
    rows = args.prompts * args.generations
    print(f"{rows} rows ({args.prompts} prompts x G={args.generations}), "
          f"Qwen2 L={args.layers} H={args.hidden}, "
          f"{args.device}, {args.threads} threads, checkpointing {'on' if args.checkpointing else 'off'}, "
          f"torch {torch.__version__}")
    print("| prompt | completion | full fwd+bwd (ms) | shared prefix (ms) | shared / full |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for prompt_len in args.prompt:
        for completion_len in args.completion:
            vocab = len(tokenizer)
            prompt_ids = torch.randint(3, vocab, (args.prompts, prompt_len), generator=generator)
            prompt_ids = prompt_ids.repeat_interleave(args.generations, 0)
            prompt_mask = torch.ones_like(prompt_ids)
            completion_ids = torch.randint(3, vocab, (rows, completion_len), generator=generator)
            lengths = torch.randint(completion_len // 2, completion_len + 1, (rows,), generator=generator)
            completion_mask = (torch.arange(completion_len)[None] < lengths[:, None]).long()
            tensors = [t.to(args.device) for t in (prompt_ids, prompt_mask, completion_ids, completion_mask)]
            weights = torch.randn(rows, completion_len, args.hidden, generator=generator).to(args.device)

            def step(share, tensors=tensors, weights=weights):  # this iteration's inputs, bound now
                model.zero_grad(set_to_none=True)
                hidden = completion_forward(model, *tensors, output="hidden", share_prefix=share)
                (hidden * weights).sum().backward()
                if args.device != "cpu":
                    torch.cuda.synchronize()

            times = {False: [], True: []}
            for share in (False, True):
                step(share)  # warm-up
            for _ in range(args.reps):
                for share in (False, True):
                    start = time.perf_counter()
                    step(share)
                    times[share].append(time.perf_counter() - start)
            full, shared = (1000 * statistics.median(times[k]) for k in (False, True))
            print(f"| {prompt_len} | {completion_len} | {full:.1f} | {shared:.1f} | {shared / full:.2f}x |")
            append_csv(dict(prompt=prompt_len, completion=completion_len, rows=rows, layers=args.layers,
                            hidden=args.hidden, device=args.device, threads=args.threads,
                            checkpointing=args.checkpointing, full_ms=f"{full:.2f}",
                            shared_ms=f"{shared:.2f}", ratio=f"{shared / full:.3f}",
                            machine=platform.machine(), torch=torch.__version__,
                            date=datetime.date.today().isoformat()), OUT)

if __name__ == "__main__":
    main()
