"""Answer-pipeline benchmark: throughput of extract + canonicalize + hash, and grading quality on real data.

    .venv/bin/python benchmarks/bench_answers.py                 # throughput + quality -> RESULTS-answers.md
    .venv/bin/python benchmarks/bench_answers.py --no-quality    # throughput only
    .venv/bin/python benchmarks/bench_answers.py --strings 20000 --python-strings 2000 --mv-strings 300

Grading speed: math_reward against math-verify's parse + verify on the quality section's pairs, in turn in
one run (our cache cleared before each run). Families: accuracy on tests/grading_cases*.py and the fresh case
sets (tests/fresh_cases), both graders.

Throughput: the solutions of MATH500 + Minerva + OlympiadBench (full worked solutions, ~1 KB each),
repeated to `--strings`, through `answers.answer_hashes` (c: 1 thread and all threads; python: the
reference, fewer strings) and through math-verify's `parse` + `verify` against the parsed gold (fewer
strings). Each provider runs `--repeats` times; the table gives the median and the best run.

Quality: for each of the five benchmarks, a completion "… so the answer is \\boxed{<gold>}." is graded by
`rewards.math_reward` against its own gold (should be correct) and against the gold of the next problem
whose gold is written differently (should be wrong), and the same pairs are graded by math-verify.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEEDGRPO_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "RESULTS-answers.md"
THROUGHPUT_SETS = ["math500", "minerva_math", "olympiadbench"]
QUALITY_SETS = ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"]

sys.path.insert(0, str(ROOT))
from seedgrpo.grading import answers, equivalence, pool  # noqa: E402
from seedgrpo.grading.rewards import math_reward  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strings", type=int, default=100_000, help="strings for the c provider")
    p.add_argument("--python-strings", type=int, default=5_000, help="strings for the python reference")
    p.add_argument("--mv-strings", type=int, default=1_000, help="strings for math-verify")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-quality", action="store_true")
    p.add_argument("--grading-repeats", type=int, default=3, help="runs of the grading-speed comparison")
    p.add_argument("--grading-only", action="store_true",
                   help="only the grading-speed and family sections, appended to --out with date and command")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args()


def load_records(name: str) -> list[dict]:
    with open(DATA / name / "test.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def solution_text(record: dict) -> str:
    solution = record["solution"]
    return "\n".join(solution) if isinstance(solution, list) else solution


def gold_of(name: str, record: dict):
    if name == "olympiadbench":
        return record["final_answer"]
    if name == "minerva_math":  # no answer field: the reference is the last \boxed{} of the solution
        return answers.extract_answer(record["solution"])
    return record["answer"]


def gold_text(gold) -> str:
    return gold[0] if isinstance(gold, list) else repr(gold) if isinstance(gold, float) else gold


def repeat_to(items: list, n: int) -> list:
    return (items * (n // len(items) + 1))[:n]


def time_runs(fns: list, repeats: int) -> list[tuple[list[float], list[float]]]:
    """(wall seconds, process CPU seconds) of each run of each fn; the fns take turns, so that a change in
    the machine's load hits all of them alike. CPU time counts all threads: on a shared machine it shows
    whether a second thread got a second core."""
    timings = [([], []) for _ in fns]
    for _ in range(repeats):
        for fn, (wall, cpu) in zip(fns, timings):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return timings


# ------------------------------------------------------------------------------------- throughput
def throughput(args) -> list[dict]:
    pairs = [(solution_text(r), gold_of(name, r)) for name in THROUGHPUT_SETS for r in load_records(name)]
    texts = [t for t, _ in pairs]
    rows = []

    def add(provider: str, n: int, timing: tuple[list[float], list[float]]) -> None:
        wall, cpu = timing
        median, best = statistics.median(wall), min(wall)
        per_cpu_s, cores = n / statistics.median(cpu), sum(cpu) / sum(wall)
        rows.append(dict(provider=provider, strings=n, per_s_median=n / median, per_s_best=n / best,
                         per_cpu_s=per_cpu_s, cores=cores))
        print(f"{provider:28s} {n:>8d} strings  median {n / median:>12,.0f}/s  best {n / best:>12,.0f}/s  "
              f"per CPU-s {per_cpu_s:>12,.0f}  cores used {cores:.2f}", flush=True)

    big = repeat_to(texts, args.strings)
    answers.answer_hashes(big[:1000])  # warm-up: page in the extension
    one, two = time_runs([lambda: answers.answer_hashes(big, threads=1),
                          lambda: answers.answer_hashes(big, threads=2)], args.repeats)
    add("c, threads=1", len(big), one)
    add("c, threads=2", len(big), two)
    # Each 2-thread run follows its 1-thread run: the ratio within a pair sees the same machine load, so the
    # median of the paired ratios is the steadiest speed-up figure on a shared host.
    rows[-1]["paired_speedups"] = sorted(w1 / w2 for w1, w2 in zip(one[0], two[0]))
    empty = [""] * len(big)
    add("c, conversion floor (\"\")", len(big),
        time_runs([lambda: answers.answer_hashes(empty, threads=1)], args.repeats)[0])
    small = repeat_to(texts, args.python_strings)
    add("python reference", len(small),
        time_runs([lambda: answers.answer_hashes(small, backend="python")], max(1, args.repeats // 2))[0])
    try:
        from math_verify import parse, verify
    except ImportError:
        print("math-verify is not installed: skipped")
        return rows
    if args.mv_strings <= 0:
        return rows
    mv = repeat_to(pairs, args.mv_strings)
    parsed_golds = {id(g): parse("$" + gold_text(g) + "$") for _, g in pairs if g is not None}

    def run_math_verify():
        for text, gold in mv:
            verify(parsed_golds.get(id(gold), []), parse(text))

    add("math-verify parse+verify", len(mv), time_runs([run_math_verify], 1)[0])
    return rows


# ---------------------------------------------------------------------------------------- quality
def quality() -> list[dict]:
    from math_verify import parse, verify

    rows = []
    for name in QUALITY_SETS:
        golds = [gold_of(name, r) for r in load_records(name)]
        n = len(golds)

        def written(g):
            return gold_text(g).replace("$", "").replace(" ", "")

        others = []
        for i in range(n):
            j = (i + 1) % n
            while written(golds[j]) == written(golds[i]):
                j = (j + 1) % n
            others.append(golds[j])
        completions = [f"Reasoning...\nso the answer is \\boxed{{{gold_text(g)}}}." for g in golds]
        start = time.perf_counter()
        own = math_reward(completions, golds)
        other = math_reward(completions, others)
        seconds = time.perf_counter() - start
        mv_own = [verify(parse("$" + gold_text(g) + "$"), parse(c)) for g, c in zip(golds, completions)]
        mv_other = [verify(parse("$" + gold_text(g) + "$"), parse(c)) for g, c in zip(others, completions)]
        agree = sum((a == 1.0) == bool(b) for a, b in zip(own + other, mv_own + mv_other))
        ours, theirs = own + other, [bool(v) for v in mv_own + mv_other]
        disagreements = [("own" if k < n else "other", gold_text(golds[k % n]),
                          gold_text((golds if k < n else others)[k % n]), ours[k], theirs[k])
                         for k in range(2 * n) if (ours[k] == 1.0) != theirs[k]]
        row = dict(benchmark=name, problems=n, own_correct=sum(own) / n, other_correct=sum(other) / n,
                   mv_own_correct=sum(map(bool, mv_own)) / n, mv_other_correct=sum(map(bool, mv_other)) / n,
                   agreement=agree / (2 * n), seconds=seconds, disagreements=disagreements,
                   other_matches=[(gold_text(golds[i]), gold_text(others[i]))
                                  for i in range(n) if other[i] > 0],
                   own_misses=[gold_text(golds[i]) for i in range(n) if own[i] < 1])
        rows.append(row)
        print(f"{name:14s} own {row['own_correct']:.4f} other {row['other_correct']:.4f} "
              f"math-verify own {row['mv_own_correct']:.4f} other {row['mv_other_correct']:.4f} "
              f"agreement {row['agreement']:.4f} ({seconds:.1f} s)", flush=True)
    pool.shutdown()
    return rows


def gold_pairs() -> tuple[list[str], list]:
    """The quality section's pairs, all five benchmarks together: each reference answer as a completion
    against its own gold and against the next differently written gold."""
    completions, golds = [], []
    for name in QUALITY_SETS:
        own = [gold_of(name, r) for r in load_records(name)]
        n = len(own)

        def written(g):
            return gold_text(g).replace("$", "").replace(" ", "")

        for i, gold in enumerate(own):
            j = (i + 1) % n
            while written(own[j]) == written(gold):
                j = (j + 1) % n
            text = f"Reasoning...\nso the answer is \\boxed{{{gold_text(gold)}}}."
            completions += [text, text]
            golds += [gold, own[j]]
    return completions, golds


def grading_speed(repeats: int) -> dict:
    """math_reward vs math-verify's parse + verify on the same (completion, gold) pairs, taking turns in one
    run. Our cache is cleared before every run (no cache hits); the worker pool is started before timing
    (a trainer keeps it for the whole run). math-verify runs with its signal timeouts off, as in a worker."""
    from math_verify import parse, verify

    completions, golds = gold_pairs()
    math_reward(["\\boxed{x+1}"], ["1+x"])  # start the pool

    def ours():
        equivalence._CACHE.clear()
        math_reward(completions, golds)

    def theirs():
        for completion, gold in zip(completions, golds):
            verify(parse("$" + gold_text(gold) + "$", parsing_timeout=None),
                   parse(completion, parsing_timeout=None), timeout_seconds=None)

    equivalence._CACHE.clear()
    pooled = {"pairs": 0}
    original = pool.SympyPool.check_tiers

    def counting(self, pairs, timeout_s):
        pooled["pairs"] += len(pairs)
        return original(self, pairs, timeout_s)

    pool.SympyPool.check_tiers = counting
    ours()
    pool.SympyPool.check_tiers = original
    (ours_wall, ours_cpu), (mv_wall, mv_cpu) = time_runs([ours, theirs], repeats)
    row = dict(pairs=len(completions), pooled=pooled["pairs"], repeats=repeats,
               ours_median=statistics.median(ours_wall), mv_median=statistics.median(mv_wall),
               ours_cpu=statistics.median(ours_cpu), mv_cpu=statistics.median(mv_cpu),
               ratios=sorted(m / o for o, m in zip(ours_wall, mv_wall)))
    print(f"grading {row['pairs']} pairs: ours {row['ours_median']:.2f} s ({row['pooled']} to the pool), "
          f"math-verify {row['mv_median']:.2f} s: {row['mv_median'] / row['ours_median']:.1f}x", flush=True)
    return row


def _math_verify_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict, given its best chance: a gold or prediction without `$` or `\\boxed` is wrapped
    in `$…$` (a prediction that then yields nothing is parsed as written: prose); its timeouts off."""
    from math_verify import parse, verify

    try:
        parsed_gold = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$", parsing_timeout=None)
        delimited = "$" in pred or "\\boxed" in pred
        parsed_pred = parse(pred if delimited else f"${pred}$", parsing_timeout=None) or (
            [] if delimited else parse(pred, parsing_timeout=None))
        return bool(verify(parsed_gold, parsed_pred, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a parser error is "not equal"
        return False


def _score(label: str, cases: list[tuple[str, str, bool]]) -> dict:
    """Both graders on one case set; ours one pair at a time, so that each verdict's tier is known."""
    equivalence._CACHE.clear()
    equivalence.tier_counts()
    ours, tiers, seconds = [], [], []
    for p, g, _ in cases:
        start = time.perf_counter()
        ours += equivalence.check_answer_pairs([(p, g)], timeout_s=10.0)
        seconds.append(time.perf_counter() - start)
        tiers.append(next(t for t, k in equivalence.tier_counts().items() if k))
    theirs = [_math_verify_equal(p, g) for p, g, _ in cases]
    want = [e for _, _, e in cases]
    by_tier: dict[str, list] = {}  # tier: [verdicts, right, wrong "equal", seconds]
    for o, w, t, sec in zip(ours, want, tiers, seconds):
        row = by_tier.setdefault(t, [0, 0, 0, 0.0])
        row[0], row[1], row[2], row[3] = row[0] + 1, row[1] + (o == w), row[2] + (o and not w), row[3] + sec
    return dict(family=label, n=len(cases), ours=sum(o == w for o, w in zip(ours, want)),
                mv=sum(t == w for t, w in zip(theirs, want)),
                ours_fp=sum(o and not w for o, w in zip(ours, want)),
                mv_fp=sum(t and not w for t, w in zip(theirs, want)), tiers=by_tier)


def families() -> tuple[list[dict], list[dict]]:
    """Accuracy and wrong "equal" verdicts, ours vs math-verify: on the family cases the rules were written
    against (tests/grading_cases.py, tests/grading_cases_forms.py), and on the fresh sets (tests/fresh_cases)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fresh_cases import SETS, cases
    from grading_cases import FAMILIES
    from grading_cases_forms import FAMILIES as FORM_FAMILIES

    rows = [_score(family, c) for family, c in {**FAMILIES, **FORM_FAMILIES}.items()]
    fresh = [_score(name, [(p, g, e) for p, g, e, _ in cases(name)]) for name in SETS]
    return rows, fresh


def _tier_table(sets: list[dict]) -> list[str]:
    """Per case set and deciding tier: verdicts, right, wrong "equal" (equivalence.tier_counts' names)."""
    tiers = [t for t in equivalence.TIERS if any(t in r["tiers"] for r in sets)]
    lines = ["| set | " + " | ".join(tiers) + " |", "| --- |" + " ---: |" * len(tiers)]
    for r in sets:
        cells = [("{} / {} / {}".format(*r["tiers"][t][:3]) if t in r["tiers"] else "–") for t in tiers]
        lines.append(f"| {r['family']} | " + " | ".join(cells) + " |")
    return lines


def _tier_cost_table(sets: list[dict]) -> list[str]:
    """Mean wall time of one verdict per deciding tier, over every case set (one pair per call)."""
    lines = ["| tier | verdicts | mean ms per verdict |", "| --- | ---: | ---: |"]
    for t in equivalence.TIERS:
        n = sum(r["tiers"][t][0] for r in sets if t in r["tiers"])
        sec = sum(r["tiers"][t][3] for r in sets if t in r["tiers"])
        if n:
            lines.append(f"| {t} | {n} | {1000 * sec / n:.1f} |")
    return lines


def write_results(path: Path, args, perf: list[dict], qual: list[dict] | None, speed: dict | None = None,
                  fams: tuple[list[dict], list[dict]] | None = None) -> None:
    import torch

    c1 = next(r for r in perf if r["provider"] == "c, threads=1")
    c2 = next(r for r in perf if r["provider"] == "c, threads=2")
    py = next(r for r in perf if r["provider"] == "python reference")
    mv = next((r for r in perf if r["provider"].startswith("math-verify")), None)
    lines = [
        "# Answer pipeline: throughput and grading quality",
        "",
        f"Date: {datetime.date.today().isoformat()}. Machine: 2-core x86_64 CPU (AMD EPYC), 24 GiB, "
        f"shared with other jobs (load average at the end of the run: {_load()}). "
        f"Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/bench_answers.py", *sys.argv[1:]]) + "`",
        "",
        "## Throughput (extract + canonicalize + hash, `answers.answer_hashes`)",
        "",
        "Inputs: the full solutions of MATH500 + Minerva + OlympiadBench (1,447 texts), repeated. "
        "math-verify: `parse(solution)` + `verify(parsed gold, parsed solution)`, signal timeouts on "
        "(main thread). Wall-clock rates depend on what else ran; *answers per CPU-second* (process CPU "
        "time, all threads) depends much less on it for single-threaded providers. *cores used* = CPU time / wall "
        "time: it shows how much of a second core the 2-thread run actually got. The two c runs take turns.",
        "",
        "| provider | strings | median answers/s | best answers/s | answers per CPU-second | cores used |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in perf:
        lines.append(f"| {r['provider']} | {r['strings']:,} | {r['per_s_median']:,.0f} | "
                     f"{r['per_s_best']:,.0f} | {r['per_cpu_s']:,.0f} | {r['cores']:.2f} |")
    lines += [
        "",
        f"- c (1 thread) / python: **{c1['per_cpu_s'] / py['per_cpu_s']:.0f}×** per CPU-second, "
        f"{c1['per_s_median'] / py['per_s_median']:.0f}× wall-clock (median).",
        f"- c, 2 threads / 1 thread: **{c2['per_s_median'] / c1['per_s_median']:.2f}×** (median), "
        f"{c2['per_s_best'] / c1['per_s_best']:.2f}× (best); the 2-thread runs got {c2['cores']:.2f} cores "
        f"(the 1-thread runs {c1['cores']:.2f}).",
        f"- c, 2 threads / 1 thread, paired (each 2-thread run against the 1-thread run just before it): "
        f"median **{statistics.median(c2['paired_speedups']):.2f}×**, range "
        f"{c2['paired_speedups'][0]:.2f}×–{c2['paired_speedups'][-1]:.2f}× over "
        f"{len(c2['paired_speedups'])} pairs.",
    ]
    if mv:
        lines.append(f"- c (1 thread) / math-verify: **{c1['per_cpu_s'] / mv['per_cpu_s']:,.0f}×** per "
                     f"CPU-second, {c1['per_s_median'] / mv['per_s_median']:,.0f}× wall-clock.")
    if qual:
        lines += [
            "",
            "## Grading quality (`rewards.math_reward`, 1 s sympy budget per pair)",
            "",
            "Completion = `Reasoning...\\nso the answer is \\boxed{<gold>}.`; *own* = graded against its own "
            "gold (want 1.0), *other* = against the gold of the next problem whose gold is written "
            "differently (want 0.0). math-verify: `verify(parse('$'+gold+'$'), parse(completion))` on the "
            "same pairs; agreement = fraction of all 2n pairs where both graders give the same verdict.",
            "",
            "| benchmark | problems | own correct | other correct | math-verify own | math-verify other "
            "| agreement | time |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in qual:
            lines.append(f"| {r['benchmark']} | {r['problems']} | {r['own_correct']:.4f} | "
                         f"{r['other_correct']:.4f} | {r['mv_own_correct']:.4f} | "
                         f"{r['mv_other_correct']:.4f} | {r['agreement']:.4f} | {r['seconds']:.1f} s |")
        lines += ["", "Cases behind the figures:", ""]
        for r in qual:
            for gold in r["own_misses"]:
                lines.append(f"- {r['benchmark']}: own gold not matched: `{gold}`")
            for a, b in r["other_matches"]:
                lines.append(f"- {r['benchmark']}: other gold matched: `{a}` vs `{b}`")
            for kind, completion_gold, gold, ours, theirs in r["disagreements"]:
                lines.append(f"- {r['benchmark']} ({kind}): completion `{completion_gold}` vs gold `{gold}`: "
                             f"ours {'correct' if ours else 'wrong'}, "
                             f"math-verify {'correct' if theirs else 'wrong'}")
    lines += _grading_lines(speed, fams)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def write_results_sections(path: Path, speed: dict, fams: tuple[list[dict], list[dict]]) -> None:
    path.write_text("\n".join(_grading_lines(speed, fams)) + "\n", encoding="utf-8")


def _grading_lines(speed: dict | None, fams: tuple[list[dict], list[dict]] | None) -> list[str]:
    lines: list[str] = []
    if speed:
        lines += [
            "",
            "## Grading speed (`rewards.math_reward` vs math-verify `parse` + `verify`, same pairs)",
            "",
            f"The quality section's {speed['pairs']:,} pairs (the five benchmarks' reference answers as "
            "completions, each against its own gold and a differently written one), graded by both in "
            f"turn, {speed['repeats']} runs each. Our cache is cleared before each run (no cache hits); "
            f"{speed['pooled']} distinct pairs reach the worker pool, started before timing. math-verify: "
            "`verify(parse('$'+gold+'$'), parse(completion))`, its signal timeouts off.",
            "",
            "| grader | median wall s | median CPU s (this process) |",
            "| --- | ---: | ---: |",
            f"| seedgrpo `math_reward` | {speed['ours_median']:.2f} | {speed['ours_cpu']:.2f} |",
            f"| math-verify parse+verify | {speed['mv_median']:.2f} | {speed['mv_cpu']:.2f} |",
            "",
            f"- math-verify / ours, wall-clock: **{speed['mv_median'] / speed['ours_median']:.1f}×** (median); "
            f"per run {', '.join(f'{r:.1f}×' for r in speed['ratios'])}.",
        ]
    if fams:
        rows, fresh = fams
        lines += [
            "",
            "## Fresh case sets (tests/fresh_cases, written in this project by four independent writers)",
            "",
            "Accuracy and wrong \"equal\" verdicts of `equivalence.check_answer_pairs` (10 s budget) and of "
            "math-verify given its best chance (an answer without `$` or `\\boxed` wrapped in `$…$`; a "
            "prediction that then yields nothing parsed as written). The rules of this session were then fixed "
            "against these sets, so the figures below "
            "are coverage; the first-run figures (before any fix) are in the notes.",
            "",
        ] + _family_table(fresh) + [
            "",
            "## Failure families (tests/grading_cases.py, tests/grading_cases_forms.py, written with the rules)",
            "",
        ] + _family_table(rows)
        merged = []
        for label, source in (("grading_cases.py + grading_cases_forms.py (all families)", rows),
                              *((r["family"], [r]) for r in fresh)):
            total: dict[str, list[int]] = {}
            for r in source:
                for t, counts in r["tiers"].items():
                    total[t] = [a + b for a, b in zip(total.get(t, [0, 0, 0, 0.0]), counts)]
            merged.append(dict(family=label, tiers=total))
        lines += [
            "",
            "## Which tier decided (each cell: verdicts / right / wrong \"equal\")",
            "",
            "hash: equal canonical hashes (math_reward only); exact: equal texts; rules: the value rules in the "
            "caller's process; cache; sympy: a worker's rules and sympy, certain; math_verify: we were unsure "
            "and math-verify's parse + verify decided; veto: math-verify said equal where it is known wrong "
            "(seedgrpo.grading.second_opinion); timeout: past the budget.",
            "",
        ] + _tier_table(merged) + [
            "",
            "What a verdict costs, by the tier that decided it (`equivalence.check_answer_pairs` on one pair at "
            "a time, cache cleared per set, the worker pool warm; wall time on this shared machine):",
            "",
        ] + _tier_cost_table(merged)
    return lines


def _family_table(rows: list[dict]) -> list[str]:
    n = sum(r["n"] for r in rows)
    lines = ["| family | cases | ours right | math-verify right | ours wrong equal | math-verify wrong equal |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows + [dict(family="**all**", n=n, ours=sum(r["ours"] for r in rows), mv=sum(r["mv"] for r in rows),
                          ours_fp=sum(r["ours_fp"] for r in rows), mv_fp=sum(r["mv_fp"] for r in rows))]:
        lines.append(f"| {r['family']} | {r['n']} | {r['ours'] / r['n']:.3f} | {r['mv'] / r['n']:.3f} | "
                     f"{r['ours_fp']} | {r['mv_fp']} |")
    return lines


def _load() -> str:
    try:
        return ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    args = parse_args()
    if args.grading_only:
        speed, fams = grading_speed(args.grading_repeats), families()
        pool.shutdown()
        scratch = args.out.with_suffix(".grading.tmp")
        write_results_sections(scratch, speed, fams)
        header = (f"\n# Grading: speed and families (appended {datetime.date.today().isoformat()})\n\n"
                  f"Machine: 2-core x86_64 CPU, shared with other jobs (load average at the end: {_load()}). "
                  "Command: `" + " ".join([".venv/bin/python benchmarks/bench_answers.py", *sys.argv[1:]]) + "`\n")
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(header + scratch.read_text(encoding="utf-8"))
        scratch.unlink()
        return
    perf = throughput(args)
    qual = None if args.no_quality else quality()
    speed = None if args.no_quality else grading_speed(args.grading_repeats)
    fams = None if args.no_quality else families()
    pool.shutdown()
    write_results(args.out, args, perf, qual, speed, fams)


if __name__ == "__main__":
    main()
