"""Does the loss kernel's second sweep over a row come from L2? The rows-in-flight sweep of the persistent
grid (seedgrpo/kernels/persistent.py) against the default one-program-per-row launch.

The from-logits kernel reads every row twice (statistics, then the gradient) and writes it once: 3 x the
logits' bytes from HBM, unless the second read hits L2, which needs the rows in flight (rows_in_flight x V x
2 bytes for bf16) to fit the 50-60 MB L2. Each launch here is the full fwd+bwd work (loss, metrics and the
in-place gradient in one launch) on the trainer's layout ([B, T+1, V] logits sliced to [:, :-1]); the columns
``gbps_2x`` / ``gbps_3x`` divide the 2 x (read once + write once) and 3 x byte counts by the p50 time:
``gbps_2x`` near the HBM bandwidth means the second read came from L2.

    python benchmarks/bench_rows_in_flight.py                       # B*T 8,192, V 151,936, bf16, every config
    python benchmarks/bench_rows_in_flight.py --tokens 32768 --rows-in-flight 132,264,528 --configs 4096/8

CUDA only: on a machine without one it prints why and exits 0, measuring nothing. ``--smoke`` runs one tiny
shape through the CPU interpreter (TRITON_INTERPRET=1 set by the script) to check the script end to end; its
"times" are interpreter wall-clock, marked as such in the CSV, never a GPU figure. Rows are appended to a CSV
(benchmarks/out/bench_rows_in_flight.csv) like bench_loss.py's.
"""
import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", default="8192", help="B*T values, comma list")
    p.add_argument("--vocab", default="151936", help="V values, comma list")
    p.add_argument("--seq-len", type=int, default=1024, help="completion length T; B = tokens / T")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--rows-in-flight", default=None,
                   help="comma list (default: 1, 2, 4 and 8 x the SM count, and the count whose rows fill L2)")
    p.add_argument("--configs", default=None, help="BLOCK_V/num_warps comma list, e.g. 4096/8,8192/16 (default: "
                   "every config of the autotune list, seedgrpo.kernels._utils.GPU_CONFIGS)")
    p.add_argument("--csv", default="benchmarks/out/bench_rows_in_flight.csv")
    p.add_argument("--smoke", action="store_true", help="tiny shape under the CPU interpreter (no timing value)")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.smoke:
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are imported

import datetime  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _providers import LossSettings, make_inputs  # noqa: E402
from _results_csv import append_csv  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
QUANTILES = [0.5, 0.2, 0.8]
CSV_FIELDS = ["kernel", "provider", "rows_in_flight", "block_v", "num_warps", "n_tokens", "vocab", "dtype",
              "p50_ms", "p20_ms", "p80_ms", "gbps_2x", "gbps_3x", "rows_in_flight_mb", "l2_mb", "sms", "device",
              "torch", "triton", "date", "note"]


def _csv_list(text, cast):
    return [cast(v) for v in text.split(",") if v]


def loss_inputs(x, settings):
    """The kernel's checked inputs (TokenInputs, PolicyOptions) for make_inputs' batch: per-token weights of
    the loss type's normaliser, the advantages as given."""
    from seedgrpo.kernels._inputs import TokenInputs
    from seedgrpo.kernels.reference import PolicyOptions
    from seedgrpo.loss import token_weights

    config = PolicyOptions(epsilon_low=settings.epsilon_low, epsilon_high=settings.epsilon_high, delta=None,
                           beta=settings.beta, temperature=settings.temperature)
    tokens = TokenInputs(x["ids"], x["mask"], weights=token_weights(x["mask"], settings.loss_type, x["normalizer"]),
                         advantages=x["advantages"], old_logprobs=x["old"], ref_logprobs=x["ref"], opts=config,
                         device=x["ids"].device)
    return tokens, config


def launcher(logits, tokens, config, rows_in_flight, block):
    """One in-place launch (the trainer's inplace=True): the default autotuned kernel, or the persistent grid
    at ``block`` = (BLOCK_V, num_warps)."""
    from seedgrpo.kernels.one_pass import launch_one_pass
    from seedgrpo.kernels.persistent import PersistentGrid, launch_persistent

    if rows_in_flight is None:
        return lambda: launch_one_pass(logits, tokens, config, grad=logits)
    grid = PersistentGrid(rows_in_flight, *block)
    return lambda: launch_persistent(logits, tokens, config, grad=logits, rows_in_flight=grid)


def time_ms(fn, on_gpu):
    """(p50, p20, p80) ms: triton.testing.do_bench on a GPU (it clears L2 between runs, as a training step's
    other work would); interpreter wall-clock in the smoke run."""
    if on_gpu:
        import triton.testing

        return list(triton.testing.do_bench(fn, quantiles=QUANTILES))
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    t = torch.tensor(samples, dtype=torch.float64)
    return [torch.quantile(t, q).item() for q in QUANTILES]


def main(args):
    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        print("bench_rows_in_flight: needs a CUDA GPU (it measures L2 reuse of the loss kernel); nothing measured. "
              "Use --smoke to check the script on the CPU interpreter.")
        return 0
    import triton

    from seedgrpo.kernels.persistent import gpu_block_configs

    device = "cuda" if on_gpu else "cpu"
    dtype = DTYPES[args.dtype]
    tokens = _csv_list(args.tokens, int) if not args.smoke else [6]
    vocabs = _csv_list(args.vocab, int) if not args.smoke else [1001]
    seq_len = args.seq_len if not args.smoke else 3
    if on_gpu:
        props = torch.cuda.get_device_properties(0)
        sms, l2_bytes = props.multi_processor_count, getattr(props, "L2_cache_size", 0)
        device_name = torch.cuda.get_device_name()
    else:
        sms, l2_bytes, device_name = 2, 0, "CPU interpreter (smoke: not a timing)"
    configs = ([tuple(int(v) for v in c.split("/")) for c in args.configs.split(",")] if args.configs
               else gpu_block_configs())
    if args.smoke:
        configs = configs[:1]
    settings = LossSettings()
    common = dict(kernel="grpo_loss_from_logits_inplace", dtype=args.dtype, l2_mb=round(l2_bytes / 2**20, 1),
                  sms=sms, device=device_name, torch=torch.__version__, triton=triton.__version__,
                  date=datetime.date.today().isoformat(), note="" if on_gpu else "interpreter smoke, not a timing")
    for n_tokens in tokens:
        for vocab in vocabs:
            row_bytes = vocab * dtype.itemsize
            if args.rows_in_flight:
                sweep = _csv_list(args.rows_in_flight, int)
            else:
                fill_l2 = max(1, l2_bytes // row_bytes) if l2_bytes else None
                sweep = sorted({k * sms for k in (1, 2, 4, 8)} | ({fill_l2} if fill_l2 else set()))
            x = make_inputs(n_tokens, vocab, 0, kind="logits", dtype=dtype, device=device, seq_len=seq_len)
            if args.smoke:
                # Each in-place launch reads the previous gradient as logits; with a training-sized normalizer
                # the gradients stay small and the repeats finite, as at the GPU shapes.
                x["normalizer"] = 8192.0
            logits = x["logits_full"].detach()[:, :-1]
            tokens_in, config = loss_inputs(x, settings)
            rows = logits.numel() // vocab
            bytes_2x = 2 * rows * row_bytes
            cases = [("default", None, (None, None))] + [("persistent", k, c) for c in configs for k in sweep]
            for provider, rows_in_flight, block in cases:
                fn = launcher(logits, tokens_in, config, rows_in_flight, block)
                fn()  # warm-up: compilation (and the default kernel's autotuning on a scratch copy)
                p50, p20, p80 = time_ms(fn, on_gpu)
                note = common["note"] or ("" if bool(torch.isfinite(logits).all()) else
                                          "non-finite logits after the repeated in-place launches")
                bandwidth = on_gpu and p50 > 0
                row = dict(common, note=note, provider=provider,
                           rows_in_flight="" if rows_in_flight is None else rows_in_flight,
                           block_v="" if block[0] is None else block[0],
                           num_warps="" if block[1] is None else block[1], n_tokens=n_tokens, vocab=vocab,
                           p50_ms=round(p50, 4), p20_ms=round(p20, 4), p80_ms=round(p80, 4),
                           gbps_2x=round(bytes_2x / (p50 * 1e6), 1) if bandwidth else "",
                           gbps_3x=round(1.5 * bytes_2x / (p50 * 1e6), 1) if bandwidth else "",
                           rows_in_flight_mb="" if rows_in_flight is None else
                           round(min(rows, rows_in_flight) * row_bytes / 2**20, 1))
                append_csv(row, args.csv, CSV_FIELDS)
                print(f"{provider:10s} rows_in_flight={row['rows_in_flight']!s:>5} block={row['block_v']!s:>5}/"
                      f"{row['num_warps']!s:<2} N={n_tokens} V={vocab} p50={row['p50_ms']} ms "
                      f"2x={row['gbps_2x']} GB/s 3x={row['gbps_3x']} GB/s {row['note']}", flush=True)
            del x, logits
            if on_gpu:
                torch.cuda.empty_cache()
    print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
