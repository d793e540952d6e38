"""Time and peak memory of the GRPO loss: PyTorch eager, torch.compile, our kernels, Liger-Kernel.

GPU (the shapes the kernels are for; p50/p20/p80 from triton.testing.do_bench, peak from
torch.cuda.max_memory_allocated):

    python benchmarks/bench_loss.py                                   # B*T 2k/8k/32k, V 32k/152k, H 1536/3584

CPU (torch providers, small shapes; wall-clock quantiles; peak RSS above the inputs, one fresh process per
measurement so that nothing cached by an earlier provider hides memory):

    python benchmarks/bench_loss.py --device cpu --tokens 4096 --vocab 32000 --hidden 256 --modes full

Rows are appended to a CSV (kernel, provider, mode, shape, p50/p20/p80 ms, peak MB, device, versions, date)
and the run's rows are plotted to a PNG. Providers live in benchmarks/_providers.py.
"""
import argparse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--providers", default=None, help="comma list (default: every one available on the device)")
    p.add_argument("--modes", default="forward,backward,full", help="comma list of forward, backward, full")
    p.add_argument("--tokens", default=None, help="B*T values (default GPU 2048,8192,32768; CPU 4096)")
    p.add_argument("--vocab", default=None, help="V values (default GPU 32000,151936; CPU 32000)")
    p.add_argument("--hidden", default=None, help="H values for the linear providers (GPU 1536,3584; CPU 256)")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"], help="default GPU bf16, CPU fp32")
    p.add_argument("--seq-len", type=int, default=1024, help="completion length T; B = tokens / T")
    p.add_argument("--loss-type", default="dapo")
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--epsilon-low", type=float, default=0.2)
    p.add_argument("--epsilon-high", type=float, default=0.28)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=5, help="CPU repetitions (GPU: do_bench decides)")
    p.add_argument("--csv", default="benchmarks/out/bench_loss.csv")
    p.add_argument("--plot", default="benchmarks/out/bench_loss.png")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one CPU measurement, JSON out
    return p.parse_args(argv)


import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results_csv import append_csv  # noqa: E402
from _providers import PROVIDERS, LossSettings, make_inputs  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
QUANTILES = [0.5, 0.2, 0.8]
CSV_FIELDS = ["kernel", "provider", "mode", "n_tokens", "vocab", "hidden", "dtype", "p50_ms", "p20_ms", "p80_ms",
              "peak_mb", "device", "torch", "triton", "date", "note"]
# Below 64 KiB glibc serves allocations from its heap and may keep freed ones resident; above, every block is
# its own mapping returned on free, so the CPU peak RSS counts exactly what a measurement holds at once.
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _csv_list(text, cast):
    return [cast(v) for v in text.split(",") if v]


def _zero_grads(leaves):
    for leaf in leaves:
        leaf.grad = None


def _quantiles(times_ms):
    t = torch.tensor(times_ms, dtype=torch.float64)
    return [torch.quantile(t, q).item() for q in QUANTILES]


# ---------------------------------------------------------------------------------------------- GPU


def measure_cuda(provider, x, mode, settings):
    """(p50, p20, p80) ms and peak MB of one mode on CUDA."""
    import triton.testing

    def forward():
        return provider.run(x, settings)

    def full():
        forward().backward()

    full()  # warm-up: compilation, autotuning
    _zero_grads(x["leaves"])
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    loss = forward()
    if mode != "forward":
        loss.backward()
    torch.cuda.synchronize()
    peak_mb = torch.cuda.max_memory_allocated() / 2**20
    del loss
    _zero_grads(x["leaves"])
    if mode == "forward":
        times = triton.testing.do_bench(forward, quantiles=QUANTILES, grad_to_none=x["leaves"])
    elif mode == "full":
        times = triton.testing.do_bench(full, quantiles=QUANTILES, grad_to_none=x["leaves"])
    else:  # our gradients exist once per forward, so backward is timed around each backward alone
        samples = []
        for _ in range(20):
            _zero_grads(x["leaves"])
            loss = forward()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss.backward()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        times = _quantiles(samples)
    return list(times), peak_mb


# ---------------------------------------------------------------------------------------------- CPU


def _status_kb(field):
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak_rss():
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def measure_cpu_child(spec):
    """Runs inside a fresh process: every requested mode of one provider at one shape; returns rows."""
    provider = PROVIDERS[spec["provider"]]
    settings = LossSettings(**spec["settings"])
    torch.set_num_threads(spec["threads"])
    x = make_inputs(spec["n_tokens"], spec["vocab"], spec["hidden"], kind=provider.kind,
                    dtype=DTYPES[spec["dtype"]], device="cpu", seq_len=spec["seq_len"])
    provider.run(x, settings).backward()  # warm-up (torch.compile compiles here)
    results = {}
    for mode in spec["modes"]:
        _zero_grads(x["leaves"])
        gc.collect()
        rss_before = _status_kb("VmRSS")
        _reset_peak_rss()
        loss = provider.run(x, settings)
        if mode != "forward":
            loss.backward()
        peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
        del loss
        samples = []
        for _ in range(spec["reps"]):
            _zero_grads(x["leaves"])
            start = time.perf_counter()
            loss = provider.run(x, settings)
            forward_done = time.perf_counter()
            if mode != "forward":
                loss.backward()
            end = time.perf_counter()
            samples.append(1e3 * ((end - forward_done) if mode == "backward" else
                                  (forward_done - start) if mode == "forward" else (end - start)))
            del loss
        results[mode] = (_quantiles(samples), peak_mb)
    return results


def measure_cpu(provider, n_tokens, vocab, hidden, dtype, modes, args, settings):
    spec = dict(provider=provider.name, n_tokens=n_tokens, vocab=vocab, hidden=hidden, dtype=dtype, modes=modes,
                reps=args.reps, seq_len=args.seq_len, settings=settings.__dict__, threads=torch.get_num_threads())
    env = dict(os.environ, **CHILD_ENV)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        return {mode: (None, None, proc.stderr.strip().splitlines()[-1][:200]) for mode in modes}
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {mode: (times, peak, "") for mode, (times, peak) in results.items()}


# ---------------------------------------------------------------------------------------------- output


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def plot(rows, path):
    """p50 time and peak memory against tokens, one column per (V, mode), one line per provider."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if r["p50_ms"] != ""]
    panels = sorted({(r["vocab"], r["mode"]) for r in good})
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels), 7), squeeze=False)
    for col, (vocab, mode) in enumerate(panels):
        for row_idx, (field, label) in enumerate((("p50_ms", "p50 ms"), ("peak_mb", "peak MB"))):
            ax = axes[row_idx][col]
            lines = sorted({(r["provider"], r["hidden"]) for r in good if (r["vocab"], r["mode"]) == (vocab, mode)})
            for provider, hidden in lines:
                pts = sorted((r["n_tokens"], r[field]) for r in good if (r["vocab"], r["mode"], r["provider"],
                                                                        r["hidden"]) == (vocab, mode, provider, hidden))
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        label=provider + (f" H={hidden}" if hidden != "" else ""))
            ax.set_xscale("log", base=2)
            ax.set_title(f"V={vocab} {mode}")
            ax.set_xlabel("tokens (B*T)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(args):
    if args.child is not None:
        print(json.dumps(measure_cpu_child(json.loads(args.child))))
        return
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    on_gpu = device == "cuda"
    tokens = _csv_list(args.tokens or ("2048,8192,32768" if on_gpu else "4096"), int)
    vocabs = _csv_list(args.vocab or ("32000,151936" if on_gpu else "32000"), int)
    hiddens = _csv_list(args.hidden or ("1536,3584" if on_gpu else "256"), int)
    dtype = args.dtype or ("bf16" if on_gpu else "fp32")
    modes = _csv_list(args.modes, str)
    names = _csv_list(args.providers, str) if args.providers else [n for n, p in PROVIDERS.items()
                                                                   if p.available(device)]
    for name in names:
        if name not in PROVIDERS or not PROVIDERS[name].available(device):
            raise SystemExit(f"--providers: {name!r} is not available on {device} "
                             f"(available: {[n for n, p in PROVIDERS.items() if p.available(device)]})")
    settings = LossSettings(loss_type=args.loss_type, beta=args.beta, epsilon_low=args.epsilon_low,
                            epsilon_high=args.epsilon_high, temperature=args.temperature)
    import triton

    common = dict(kernel="grpo_loss", dtype=dtype, device=device_name(device), torch=torch.__version__,
                  triton=triton.__version__, date=datetime.date.today().isoformat())
    rows = []
    for kind in ("logits", "linear"):
        kind_names = [n for n in names if PROVIDERS[n].kind == kind]
        for n_tokens in tokens:
            for vocab in vocabs:
                for hidden in (hiddens if kind == "linear" else [""]):
                    x = None
                    for name in kind_names:
                        provider = PROVIDERS[name]
                        shape = dict(n_tokens=n_tokens, vocab=vocab, hidden=hidden)
                        if on_gpu:
                            results = {}
                            try:
                                if x is None:
                                    x = make_inputs(n_tokens, vocab, hidden or 0, kind=kind, dtype=DTYPES[dtype],
                                                    device=device, seq_len=args.seq_len)
                                for mode in modes:
                                    times, peak = measure_cuda(provider, x, mode, settings)
                                    results[mode] = (times, peak, "")
                            except torch.cuda.OutOfMemoryError:
                                for mode in modes:
                                    results.setdefault(mode, (None, None, "OOM"))
                            if x is not None:
                                _zero_grads(x["leaves"])
                            gc.collect()
                            torch.cuda.empty_cache()
                        else:
                            results = measure_cpu(provider, n_tokens, vocab, hidden or 0, dtype, modes, args,
                                                  settings)
                        for mode, (times, peak, note) in results.items():
                            row = dict(common, provider=name, mode=mode, **shape, note=note,
                                       p50_ms="" if times is None else round(times[0], 4),
                                       p20_ms="" if times is None else round(times[1], 4),
                                       p80_ms="" if times is None else round(times[2], 4),
                                       peak_mb="" if peak is None else round(peak, 1))
                            rows.append(row)
                            append_csv(row, args.csv, CSV_FIELDS)
                            print(f"{name:24s} {mode:8s} N={n_tokens:6d} V={vocab:6d} H={str(hidden):5s} "
                                  f"p50={row['p50_ms']!s:>10} ms  peak={row['peak_mb']!s:>9} MB {note}", flush=True)
                    del x
                    if on_gpu:
                        torch.cuda.empty_cache()
    plot(rows, args.plot)
    print(f"wrote {args.csv} and {args.plot}")


if __name__ == "__main__":
    main(parse_args())
