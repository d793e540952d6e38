"""Our grader against math-verify on a real model's completions (issue 22, item 5).

    .venv/bin/python benchmarks/grader_on_outputs.py \\
        --eval before=runs/smollm2-eval-before --eval after=runs/demo-real/final/eval \\
        --task before=runs/demo-real/heldout_before.jsonl --task after=runs/demo-real/heldout_after.jsonl \\
        --out benchmarks/out/grader_on_outputs.md

`--eval LABEL=DIR`: a folder written by `seedgrpo eval` (one `<benchmark>.jsonl` per benchmark: the
completions with their gold answers); `--task LABEL=FILE`: a held-out file of `make demo-real`
(`heldout_before.jsonl` / `heldout_after.jsonl`, the same record layout). Every completion is graded twice,
on the whole completion text as a user of either grader would pass it:

- ours: `seedgrpo.grading.rewards.math_reward(completions, golds)` (what the trainer and `seedgrpo eval` use);
- math-verify: `verify(parse(gold), parse(completion))` with its default extraction (LaTeX, then plain
  expressions) and its default timeouts; a gold without `$` or `\\boxed` is wrapped in `$...$` first (its
  documented way of reading a bare gold). A gold that is a list of alternatives (OlympiadBench) is right
  when any alternative is.

Prints one table row per (label, set): completions, how many each grader read an answer from, right by each
grader, agreement; and writes every disagreement, and every benchmark completion both call right (the gold,
what each side read, the completion's tail), to `--out` for a person to judge.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAIL = 300  # characters of a completion shown with a disagreement


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold_alternatives(gold) -> list[str]:
    return [str(g) for g in gold] if isinstance(gold, list) else [str(gold)]


def math_verify_verdict(completion: str, gold) -> tuple[bool, str]:
    """(math-verify's verdict, what it read from the completion)."""
    from math_verify import parse, verify

    try:
        parsed = parse(completion)
    except Exception as error:  # noqa: BLE001 - a parser error is "no answer read"
        return False, f"<parse error {type(error).__name__}>"
    read = str(parsed[1]) if len(parsed) > 1 else (str(parsed[0]) if parsed else "")
    for alternative in gold_alternatives(gold):
        delimited = "$" in alternative or "\\boxed" in alternative
        try:
            if verify(parse(alternative if delimited else f"${alternative}$"), parsed):
                return True, read
        except Exception:  # noqa: BLE001 - a verifier error is "not equal"
            continue
    return False, read


def grade_set(records: list[dict]) -> list[dict]:
    """One row per completion: gold, our verdict and extracted answer, math-verify's verdict and reading."""
    from seedgrpo.grading import equivalence, rewards

    completions = [text for r in records for text in r["completions"]]
    golds = [r["gold"] for r in records for _ in r["completions"]]
    ids = [r.get("id") or r.get("problem", "")[:40] for r in records for _ in r["completions"]]
    ours = rewards.math_reward(completions, golds)
    rows = []
    for ident, text, gold, score in zip(ids, completions, golds, ours):
        mv, mv_read = math_verify_verdict(text, gold)
        rows.append(dict(id=ident, gold=gold, completion=text, ours=float(score) > 0.5,
                         ours_read=equivalence.grading_answer(text, "completion"), mv=mv, mv_read=mv_read))
    return rows


def sets_of(args) -> list[tuple[str, str, list[dict]]]:
    """(label, set name, records) for every --eval folder's benchmarks and every --task file."""
    found = []
    for spec in args.eval:
        label, _, folder = spec.partition("=")
        files = sorted(Path(folder).glob("*.jsonl"))
        if not files:
            sys.exit(f"--eval {spec}: no <benchmark>.jsonl in {folder} (run `seedgrpo eval --output-dir` first)")
        found += [(label, path.stem, read_records(path)) for path in files]
    for spec in args.task:
        label, _, file = spec.partition("=")
        found.append((label, "task (word sums)", read_records(Path(file))))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--task", action="append", default=[], metavar="LABEL=FILE")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "grader_on_outputs.md"))
    args = parser.parse_args(argv)
    table = ["| model | set | completions | an answer read (ours / math-verify) | right (ours) | right (math-verify) "
             "| agree | only ours right | only math-verify right |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    disagreements, both_right = [], []
    totals = [0, 0]
    for label, name, records in sets_of(args):
        rows = grade_set(records)
        only_ours = [r for r in rows if r["ours"] and not r["mv"]]
        only_mv = [r for r in rows if r["mv"] and not r["ours"]]
        agree = len(rows) - len(only_ours) - len(only_mv)
        totals[0] += agree
        totals[1] += len(rows)
        read = f"{sum(bool(r['ours_read']) for r in rows)} / {sum(bool(r['mv_read']) for r in rows)}"
        table.append(f"| {label} | {name} | {len(rows)} | {read} | {sum(r['ours'] for r in rows)} | "
                     f"{sum(r['mv'] for r in rows)} | {agree} ({agree / max(1, len(rows)):.1%}) | "
                     f"{len(only_ours)} | {len(only_mv)} |")
        disagreements += [(label, name, r) for r in only_ours + only_mv]
        if not name.startswith("task"):  # few on the benchmarks: agreeing on "right" can be wrong twice
            both_right += [(label, name, r) for r in rows if r["ours"] and r["mv"]]
    table.append(f"| all | | {totals[1]} | | | | {totals[0]} ({totals[0] / max(1, totals[1]):.1%}) | | |")
    lines = ["# Our grader against math-verify on real completions", "", *table, ""]
    for title, cases in ((f"Disagreements ({len(disagreements)})", disagreements),
                         (f"Right by both, benchmarks ({len(both_right)})", both_right)):
        lines += [f"## {title}", ""]
        for label, name, r in cases:
            tail = r["completion"][-TAIL:].replace("\n", " ")
            lines += [f"### {label} / {name} / {r['id']}: ours {'right' if r['ours'] else 'wrong'}, math-verify "
                      f"{'right' if r['mv'] else 'wrong'}",
                      f"- gold: `{r['gold']}`", f"- ours read: `{r['ours_read']}`",
                      f"- math-verify read: `{r['mv_read']}`",
                      f"- completion (last {TAIL} characters): {tail!r}", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(table))
    print(f"{len(disagreements)} disagreements written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
