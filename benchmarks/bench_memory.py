"""Where host memory goes in a training run (Linux): the peak of each trainer phase, AdamW's step, and what a
training forward keeps for backward (issue 22's peak-RSS target).

    .venv/bin/python benchmarks/bench_memory.py phases --model DIR --steps 6   # peak RSS per rollout / update
    .venv/bin/python benchmarks/bench_memory.py optimizer                      # AdamW: foreach vs loop vs fused
    .venv/bin/python benchmarks/bench_memory.py saved --model DIR [--lean]     # autograd's saved tensors per token
    .venv/bin/python benchmarks/bench_memory.py lean_time --model DIR          # lean layers', trims' time: fwd+bwd

`phases` runs bench_e2e's `ours` worker (`--model smollm2` shape; DIR: a plain HF directory, e.g. SmolLM2
rebuilt as bench_e2e does) and resets the kernel's peak-RSS mark (`VmHWM`, by writing 5 to
/proc/self/clear_refs) around each `Trainer._rollout` and `Trainer._update`, printing the resident memory
before, the phase's own peak and the resident memory after. `optimizer` steps torch.optim.AdamW over
SmolLM2-135M's parameter shapes (135M float32, random gradients) with each implementation and prints the
step time and the peak above the resident memory before it. `saved` runs one decoder layer of DIR's model
forward under `saved_tensors_hooks` and prints the floats per token that autograd keeps (parameters and
views of them included: subtract the weight-shaped rows); `--lean` first gives the model's MLP and norms their
memory-lean forms (seedgrpo/modeling/lean_layers.py), as the trainer does by default.
"""
from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def resident_mb() -> dict[str, int]:
    """{"VmRSS": now, "VmHWM": peak since the last reset} in MiB."""
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) >> 10 for line in status
                if line.startswith(("VmHWM", "VmRSS"))}


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def phases(args) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_e2e

    from seedgrpo.training import trainer as trainer_module

    def measured(name):
        original = getattr(trainer_module.Trainer, name)

        def wrapper(self, *a, **k):
            before = resident_mb()["VmRSS"]
            reset_peak()
            out = original(self, *a, **k)
            now = resident_mb()
            print(f"step {self.step} {name}: resident before {before} MB, peak {now['VmHWM']} MB, "
                  f"after {now['VmRSS']} MB", flush=True)
            return out
        setattr(trainer_module.Trainer, name, wrapper)

    for name in ("_rollout", "_update"):
        measured(name)
    worker = ["--model", "smollm2", "--model_dir", args.model, "--worker", "ours", "--steps", str(args.steps),
              "--result", "/dev/null", "--threads", str(args.threads)]
    if args.micro_batch:
        worker += ["--micro_batch", str(args.micro_batch)]
    bench_e2e.worker(bench_e2e.parse_args(worker))


def optimizer(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    vocab, hidden, inner, kv, layers = 49152, 576, 1536, 192, 30  # SmolLM2-135M
    shapes = [(vocab, hidden)] + [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden),
                                  (inner, hidden), (inner, hidden), (hidden, inner), (hidden,), (hidden,)] * layers
    for label, options in (("foreach", dict(foreach=True)), ("loop", dict(foreach=False)),
                           ("fused", dict(fused=True))):
        params = [torch.nn.Parameter(torch.randn(shape)) for shape in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        step = torch.optim.AdamW(params, lr=1e-5, **options)
        step.step()  # the state exists from here on
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        times, peaks = [], []
        for _ in range(3):
            before = resident_mb()["VmRSS"]
            reset_peak()
            started = time.perf_counter()
            step.step()
            times.append(time.perf_counter() - started)
            peaks.append(resident_mb()["VmHWM"] - before)
        print(f"{label}: step {min(times):.3f} s, peak above resident {max(peaks)} MB "
              f"({sum(p.numel() for p in params) / 1e6:.1f}M parameters)", flush=True)
        del params, step


def saved(args) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.model.layers = model.model.layers[:1]
    if args.lean:
        from seedgrpo.modeling import lean_layers

        print(f"lean forms for {lean_layers.apply(model)} modules")
    rows, tokens = 4, 110
    ids = torch.randint(0, model.config.vocab_size, (rows, tokens))
    kept = {}

    def pack(tensor):
        kept[tensor.untyped_storage().data_ptr()] = (tuple(tensor.shape), tensor.untyped_storage().nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model(input_ids=ids)
    per_token = rows * tokens
    print(f"one layer keeps {sum(n for _, n in kept.values()) / 4 / per_token:.0f} floats per token "
          "(float32; parameters included):")
    for shape, nbytes in sorted(kept.values(), key=lambda v: -v[1]):
        print(f"  {shape}: {nbytes / 4 / per_token:.0f} per token")


def lean_time(args) -> None:
    """The training forward + backward of one micro-batch (8 rows: 2 prompts of 40 tokens shared by 4 rows
    each, 64-token completions) with the trainer's host-memory settings: the model plain, with its lean
    layers, and with them and the backward trims (host_memory.py: every tenth layer, the default, and every
    layer), interleaved; medians after the first repetition."""
    import copy
    import statistics

    import torch
    from transformers import AutoModelForCausalLM

    from seedgrpo.modeling import lean_layers
    from seedgrpo.modeling.training_forward import completion_forward
    from seedgrpo.training.host_memory import keep_freed_host_memory, return_freed_memory_in_backward

    torch.set_num_threads(args.threads)
    keep_freed_host_memory()
    plain = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    lean = copy.deepcopy(plain)
    print(f"lean forms for {lean_layers.apply(lean)} modules")
    trimmed = copy.deepcopy(lean)  # copied before the hooks: a deep copy would carry them
    trimmed_all = copy.deepcopy(lean)
    print(f"trims before the backward of {return_freed_memory_in_backward(trimmed)} modules (the default), "
          f"of {return_freed_memory_in_backward(trimmed_all, every=1)} (every layer)")
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, plain.config.vocab_size, (2, 40), generator=g).repeat_interleave(4, 0)
    completions = torch.randint(0, plain.config.vocab_size, (8, 64), generator=g)

    def seconds(model):
        start = time.perf_counter()
        hidden = completion_forward(model, prompts, torch.ones_like(prompts), completions,
                                    torch.ones_like(completions))
        hidden.square().mean().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times = {"plain": [], "lean": [], "lean+trims": [], "lean+trims every layer": []}
    for _ in range(args.reps):
        for name, model in (("plain", plain), ("lean", lean), ("lean+trims", trimmed),
                            ("lean+trims every layer", trimmed_all)):
            times[name].append(seconds(model))
    for name, values in times.items():
        print(f"{name}: forward+backward median {statistics.median(values[1:]):.3f} s over {args.reps - 1} "
              f"(all: {', '.join(f'{v:.2f}' for v in values)})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("phases", "optimizer", "saved", "lean_time"))
    parser.add_argument("--model", help="a plain HF model directory (phases, saved)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--micro_batch", type=int, default=None, help="phases: ours' per_device_train_batch_size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lean", action="store_true", help="saved: with the lean MLP and norm forms")
    parser.add_argument("--reps", type=int, default=10, help="lean_time: repetitions of each")
    args = parser.parse_args(argv)
    if args.what != "optimizer" and not args.model:
        parser.error(f"{args.what} needs --model DIR (a plain HF directory)")
    {"phases": phases, "optimizer": optimizer, "saved": saved, "lean_time": lean_time}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
