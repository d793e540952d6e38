"""Evaluate a model on the five math benchmarks: greedy accuracy or avg@n / pass@k, one table.

    seedgrpo eval --model runs/my-run/final --output-dir runs/my-run/eval     # the five, from the Hub
    seedgrpo eval --model runs/my-run/final --data-dir data/benchmarks        # or <dir>/<name>/test.jsonl
    seedgrpo eval --model DIR --n 16 --temperature 0.6 --top-p 0.95            # avg@16, pass@k

Without `--data-dir` each benchmark is read from its public Hugging Face dataset (`HUB_BENCHMARKS`: id,
config, split and fields; docs/evaluate.md) through `datasets`. Problems come from `data.load_problems`
(which knows each file's layout: AMC's float answers, Minerva's answer inside the solution's last
\\boxed{}, OlympiadBench's `question` and `final_answer` list), prompts
from `data.format_prompt`, grades from `rewards.math_reward`. The output directory gets `results.json`,
`results.md` (one row per benchmark plus their unweighted average, as papers report it) and
`<benchmark>.jsonl` with every completion, its extracted answer and its score.

The generation-free core, `grade_completions(problems, completions)` and `summarize(graded)`, scores
precomputed completions: tests feed it reference solutions, users can feed it another system's outputs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from seedgrpo.tasks.data import Problem, format_prompt, load_problems

BENCHMARKS = {
    "aime24": "aime24/test.jsonl",
    "amc23": "amc23/test.jsonl",
    "math500": "math500/test.jsonl",
    "minerva_math": "minerva_math/test.jsonl",
    "olympiadbench": "olympiadbench/test.jsonl",
}
# The same benchmarks on the Hugging Face Hub: (dataset id, config name, split, problem field, answer field).
# The fields are named explicitly (the detection would find them too) so a changed upstream layout is an
# error naming the field rather than a silent switch to another column. docs/evaluate.md lists the sources.
HUB_BENCHMARKS = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "problem", "answer"),          # 30
    "amc23": ("math-ai/amc23", None, "test", "question", "answer"),                     # 40, float answers
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "problem", "answer"),           # 500
    "minerva_math": ("math-ai/minervamath", None, "test", "question", "answer"),        # 272
    "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "question",
                      "final_answer"),                                                  # 675, answer lists
}
DATA_DIR_ENV = "SEEDGRPO_DATA_DIR"


# ---------------------------------------------------------------------------------------------- loading
def load_benchmark(name: str, data_dir: str | Path | None = None, *,
                   limit: int | None = None) -> list[Problem]:
    """The problems of one benchmark: `data_dir/<name>/test.jsonl`, or its Hub dataset without `data_dir`."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark={name!r} is unknown; choose from {', '.join(BENCHMARKS)}")
    if data_dir is None:
        dataset_id, config_name, split, problem_field, answer_field = HUB_BENCHMARKS[name]
        problems = load_problems(dataset_id, split=split, name=config_name, problem_field=problem_field,
                                 answer_field=answer_field, limit=limit)
        for problem in problems:
            problem.meta["source"] = name
        return problems
    path = Path(data_dir) / BENCHMARKS[name]
    if not path.is_file():
        raise ValueError(f"data_dir={str(data_dir)!r} has no {BENCHMARKS[name]}; pass the folder that holds "
                         f"<benchmark>/test.jsonl for {', '.join(BENCHMARKS)}, or leave --data-dir out to "
                         "read them from the Hugging Face Hub")
    return load_problems(path, limit=limit)


# ---------------------------------------------------------------------------------------------- grading
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 − C(n−c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials: C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def grade_completions(problems: list[Problem], completions: list[list[str]] | list[str]) -> list[dict]:
    """Score each problem's completions against its reference answer with `rewards.math_reward`.

    `completions[i]` is a list of samples for `problems[i]` (or one string). Returns one record per
    problem: id, problem, gold, completions, extracted answers, scores (1.0 / 0.0) and the number correct.
    """
    from seedgrpo.grading import answers, rewards

    if len(completions) != len(problems):
        raise ValueError(f"completions has {len(completions)} entries for {len(problems)} problems; "
                         "give one list of samples per problem")
    samples = [[c] if isinstance(c, str) else list(c) for c in completions]
    flat = [text for group in samples for text in group]
    golds = [p.answer for p, group in zip(problems, samples) for _ in group]
    scores = rewards.math_reward(flat, golds) if flat else []
    graded, start = [], 0
    for problem, group in zip(problems, samples):
        group_scores = [float(s) for s in scores[start:start + len(group)]]
        start += len(group)
        graded.append({
            "id": problem.id, "problem": problem.problem, "gold": problem.answer,
            "completions": group, "answers": [answers.extract_answer(text) for text in group],
            "scores": group_scores, "num_correct": int(sum(s > 0.5 for s in group_scores)),
        })
    return graded


def summarize(graded: list[dict], ks: list[int] | None = None) -> dict:
    """avg@n (mean score over all samples) and unbiased pass@k for each k <= n, in percent.

    Every problem must have the same number n of samples. `ks` defaults to the powers of two up to n, and n
    (none when n == 1: pass@1 would repeat avg@1).
    """
    if not graded:
        raise ValueError("graded is empty: nothing to summarize (check --limit and the benchmark files)")
    n = len(graded[0]["scores"])
    if n == 0 or any(len(g["scores"]) != n for g in graded):
        raise ValueError("graded records hold different (or zero) numbers of samples; summarize needs the "
                         "same n >= 1 for every problem")
    if ks is None:
        ks = [] if n == 1 else [2 ** i for i in range(n.bit_length()) if 2 ** i <= n] + [n]
    ks = sorted(set(ks))
    if any(not 1 <= k <= n for k in ks):
        raise ValueError(f"ks={ks} must lie in 1..n={n}")
    avg = 100.0 * sum(sum(g["scores"]) for g in graded) / (n * len(graded))
    summary = {"num_problems": len(graded), "n": n, f"avg@{n}": avg}
    for k in ks:
        summary[f"pass@{k}"] = 100.0 * sum(pass_at_k(n, g["num_correct"], k) for g in graded) / len(graded)
    return summary


# ------------------------------------------------------------------------------------------- generation
@torch.no_grad()
def generate_completions(model, tokenizer, prompts: list[str], *, n: int = 1, temperature: float = 0.0,
                         top_p: float = 1.0, max_new_tokens: int = 3000, batch_size: int = 32,
                         seed: int = 0, progress: bool = False) -> list[list[str]]:
    """`n` completions per prompt with transformers' `generate` (greedy when temperature == 0).

    Prompts are left-padded in batches of `batch_size` prompts; special tokens are stripped from the text.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if temperature == 0 and n > 1:
        raise ValueError(f"n={n} greedy samples would be identical; set temperature > 0 (e.g. 0.6) or n=1")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # common for base models; only used for padding
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else \
        dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    generator = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
    results: list[list[str]] = []
    try:
        with generator:
            torch.manual_seed(seed)
            starts = range(0, len(prompts), batch_size)
            if progress:
                from seedgrpo.training.console import progress_bar
                starts = progress_bar(starts, desc="generate", unit="batch", leave=False)
            for start in starts:
                chunk = prompts[start:start + batch_size]
                # A chat template already holds the BOS token where the model wants one; don't add another.
                add_special = not (tokenizer.bos_token and chunk[0].startswith(tokenizer.bos_token))
                batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=add_special)
                batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                out = model.generate(**batch, max_new_tokens=max_new_tokens, num_return_sequences=n,
                                     pad_token_id=tokenizer.pad_token_id, **sampling)
                texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
                results.extend(texts[i * n:(i + 1) * n] for i in range(len(chunk)))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return results


def accuracy(model, tokenizer, problems: list[Problem], *, template: str = "none", max_new_tokens: int = 16,
             batch_size: int = 256, system_prompt: str | None = None,
             graded_out: list | None = None) -> float:
    """Greedy accuracy (a fraction in [0, 1]) of an in-memory model on `problems` (the demos' check);
    `graded_out`, when given, receives the graded records (completions, answers, scores)."""
    prompts = [format_prompt(p, template, tokenizer, system_prompt) for p in problems]
    completions = generate_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                       batch_size=batch_size)
    graded = grade_completions(problems, completions)
    if graded_out is not None:
        graded_out.extend(graded)
    return sum(g["num_correct"] for g in graded) / max(1, len(graded))


class _VLLMGenerator:
    """vLLM's offline engine, loaded once for all benchmarks (a GPU with vllm installed).

    Evaluation needs greedy decoding and no log-probs, so it uses `vllm.LLM` directly rather than the
    trainer's rollout engine (which samples at temperature > 0 and syncs weights from a training model).
    """

    def __init__(self, model_dir: str, seed: int):
        try:
            import vllm
        except ImportError as err:
            raise ValueError("engine='vllm' needs vllm installed (a CUDA machine: pip install vllm); "
                             "use --engine hf on this machine") from err
        self.vllm = vllm
        self.llm = vllm.LLM(model=model_dir, seed=seed)

    def __call__(self, prompts: list[str], *, n, temperature, top_p, max_new_tokens, seed) -> list[list[str]]:
        params = self.vllm.SamplingParams(n=n, temperature=temperature,
                                          top_p=top_p if temperature > 0 else 1.0,
                                          max_tokens=max_new_tokens, seed=seed)
        return [[o.text for o in out.outputs] for out in self.llm.generate(prompts, params)]


# ------------------------------------------------------------------------------------------------ runner
def evaluate(model_dir: str | Path, benchmarks: list[str], data_dir: str | Path | None = None, *,
             output_dir=None, template: str = "qwen_math", n: int = 1, temperature: float = 0.0,
             top_p: float = 1.0, max_new_tokens: int = 3000, batch_size: int = 32, limit: int | None = None,
             engine: str = "hf", dtype: str = "auto", seed: int = 0, ks: list[int] | None = None,
             system_prompt: str | None = None, gguf_file: str | None = None) -> dict:
    """Generate, grade and summarize each benchmark; write the output files when `output_dir` is given.

    `data_dir=None` reads the benchmarks from the Hugging Face Hub (HUB_BENCHMARKS). `model_dir` is a
    directory, a hub id or a .gguf file (or a directory + `gguf_file`), loaded as the trainer loads it."""
    from seedgrpo.modeling import loading

    if engine not in ("hf", "vllm"):
        raise ValueError(f"engine={engine!r} must be 'hf' or 'vllm'")
    if n < 1 or (temperature == 0 and n > 1):
        raise ValueError(f"n={n} with temperature={temperature}: n must be >= 1, and greedy decoding "
                         "(temperature 0) gives n identical samples; set --temperature > 0 or --n 1")
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown or not benchmarks:
        raise ValueError(f"benchmarks={benchmarks} holds unknown names {unknown}; choose from "
                         f"{', '.join(BENCHMARKS)}")
    problem_sets = {name: load_benchmark(name, data_dir, limit=limit) for name in benchmarks}
    source = loading.model_source(str(model_dir), gguf_file)
    if engine == "vllm" and source.gguf_file is not None:
        raise ValueError(f"engine='vllm' with model={str(model_dir)!r}: give vLLM a HF directory (a run's "
                         "final/ is one), or use --engine hf for a .gguf file")
    tokenizer = loading.load_tokenizer(source)
    model = _load_model(source, dtype) if engine == "hf" else None
    vllm_generate = _VLLMGenerator(str(model_dir), seed) if engine == "vllm" else None
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    results = {}
    for name, problems in problem_sets.items():
        started = time.perf_counter()
        prompts = [format_prompt(p, template, tokenizer, system_prompt) for p in problems]
        gen = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
        if engine == "hf":
            completions = generate_completions(model, tokenizer, prompts, batch_size=batch_size,
                                               progress=True, **gen)
        else:
            completions = vllm_generate(prompts, **gen)
        graded = grade_completions(problems, completions)
        results[name] = summarize(graded, ks) | {"seconds": round(time.perf_counter() - started, 2)}
        print(f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in results[name].items()
                                      if k.startswith(("avg@", "pass@"))), flush=True)
        if out is not None:
            with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
                for prompt, record in zip(prompts, graded):
                    f.write(json.dumps({"prompt": prompt, **record}, ensure_ascii=False) + "\n")

    report = {
        "model": str(model_dir), "data": str(data_dir) if data_dir else "hub", "template": template,
        "system_prompt": system_prompt, "n": n, "temperature": temperature, "top_p": top_p,
        "max_new_tokens": max_new_tokens, "limit": limit, "engine": engine, "seed": seed,
        "benchmarks": results, "average": _average(results),
    }
    if out is not None:
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "results.md").write_text(render_table(report) + "\n")
    return report


def _load_model(source, dtype: str):
    from seedgrpo.modeling.loading import load_causal_lm

    dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype={dtype!r} must be one of {', '.join(dtypes)}")
    if source.gguf_file is not None and dtype == "auto":
        dtype = "float32"  # the file's tensors are dequantised to float32
    model = load_causal_lm(source, dtype=dtypes[dtype])
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def _average(results: dict) -> dict:
    """Unweighted mean over benchmarks of every metric they all share (the papers' "Avg." column)."""
    shared = set.intersection(*(set(r) for r in results.values())) if results else set()
    keys = [k for k in next(iter(results.values()), {}) if k in shared and k.startswith(("avg@", "pass@"))]
    return {k: sum(r[k] for r in results.values()) / len(results) for k in keys}


def render_table(report: dict) -> str:
    """A markdown table: one row per benchmark (problems, avg@n, pass@k) and the average."""
    results = report["benchmarks"]
    metrics = [k for k in report["average"]]
    lines = ["| benchmark | problems | " + " | ".join(metrics) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in metrics) + " |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['num_problems']} | " + " | ".join(f"{r[k]:.1f}" for k in metrics) + " |")
    lines.append("| **average** | | " + " | ".join(f"**{report['average'][k]:.1f}**" for k in metrics) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seedgrpo eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="a model directory (save_pretrained layout), a hub id or a "
                   ".gguf file")
    p.add_argument("--gguf-file", "--gguf_file", dest="gguf_file", default=None,
                   help="a .gguf file inside --model (a directory or hub id)")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=os.environ.get(DATA_DIR_ENV),
                   help=f"folder holding <benchmark>/test.jsonl (default: ${DATA_DIR_ENV}; unset: each "
                        "benchmark's public Hugging Face dataset, read with `datasets`)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None,
                   help="where results.json, results.md and <benchmark>.jsonl go (default: <model>/eval)")
    p.add_argument("--template", default="qwen_math",
                   help="qwen_math, r1, chat (the tokenizer's chat template), none, or a string with "
                        "{problem}")
    p.add_argument("--system-prompt", "--system_prompt", dest="system_prompt", default=None,
                   help="with --template chat: a system turn before each problem")
    p.add_argument("--n", type=int, default=1, help="samples per problem (avg@n, pass@k)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (needs n = 1)")
    p.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=1.0)
    p.add_argument("--k", default=None, help="comma-separated k for pass@k (default: powers of two up to n)")
    p.add_argument("--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int, default=3000)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32,
                   help="prompts per generate call (hf engine)")
    p.add_argument("--limit", type=int, default=None, help="first N problems of each benchmark")
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (hf engine)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.system_prompt is not None and args.template != "chat":
        raise ValueError(f"--system-prompt needs --template chat (got --template {args.template!r})")
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    ks = [int(k) for k in args.k.split(",")] if args.k else None
    model_path = Path(args.model)
    if model_path.is_file():  # a .gguf file: <dir>/<name>-eval beside it
        default_out = model_path.parent / f"{model_path.stem}-eval"
    else:  # a directory: <dir>/eval; a hub id: runs/eval/<org>__<name>
        default_out = model_path / "eval" if model_path.is_dir() else \
            Path("runs") / "eval" / args.model.replace("/", "__")
    output_dir = args.output_dir or str(default_out)
    report = evaluate(args.model, benchmarks, args.data_dir or None, output_dir=output_dir,
                      template=args.template, system_prompt=args.system_prompt, gguf_file=args.gguf_file,
                      n=args.n, temperature=args.temperature, top_p=args.top_p,
                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                      engine=args.engine, dtype=args.dtype, seed=args.seed, ks=ks)
    print(render_table(report))
    print(f"wrote {output_dir}/results.json, results.md and one .jsonl of graded completions per benchmark")
    return report


if __name__ == "__main__":
    main()
