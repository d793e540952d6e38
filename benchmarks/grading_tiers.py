"""False "equal" verdicts and accuracy per case set, and which tier decided each verdict (issue 24 item 4).

    .venv/bin/python benchmarks/grading_tiers.py                       # this checkout
    PYTHONPATH=<checkout of an older commit> .venv/bin/python benchmarks/grading_tiers.py --legacy

Grades every case set in the repository (tests/grading_cases.py, tests/grading_cases_forms.py, each set of
tests/fresh_cases) one pair at a time through `check_answer_pairs` (10 s budget, cache cleared per set), so
that equivalence.tier_counts() names the tier of each verdict. `--legacy` grades with `seedgrpo.grader`, the
module before the grading/ package (no tiers: the "before" column); the case files are always this
checkout's.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def case_sets() -> dict[str, list[tuple[str, str, bool]]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fresh_cases import SETS, cases
    from grading_cases import FAMILIES
    from grading_cases_forms import FAMILIES as FORM_FAMILIES

    sets = {"grading_cases": [c for f in FAMILIES.values() for c in f],
            "grading_cases_forms": [c for f in FORM_FAMILIES.values() for c in f]}
    for name in SETS:
        sets[f"fresh_cases/{name}"] = [(p, g, e) for p, g, e, _ in cases(name)]
    return sets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--legacy", action="store_true", help="grade with seedgrpo.grader (before grading/)")
    args = p.parse_args()
    if args.legacy:
        from seedgrpo import grader as grading
    else:
        from seedgrpo.grading import equivalence as grading
    print("grader:", grading.__file__)
    wrong = []
    for name, cases in case_sets().items():
        grading._CACHE.clear()
        has_tiers = hasattr(grading, "tier_counts")
        if has_tiers:
            grading.tier_counts()
        right = false_equal = 0
        tiers, tier_right, tier_false = collections.Counter(), collections.Counter(), collections.Counter()
        for pred, gold, want in cases:
            (got,) = grading.check_answer_pairs([(pred, gold)], timeout_s=10.0)
            tier = next(t for t, k in grading.tier_counts().items() if k) if has_tiers else "-"
            tiers[tier] += 1
            right += got == want
            false_equal += got and not want
            tier_right[tier] += got == want
            tier_false[tier] += got and not want
            if got != want:
                wrong.append((name, tier, want, pred, gold))
        print(f"{name:30} n={len(cases):4} right={right:4} ({right / len(cases):.4f}) false_equal={false_equal}  "
              + " ".join(f"{t}:{tiers[t]}/{tier_right[t]}/{tier_false[t]}" for t in sorted(tiers)), flush=True)
    for name, tier, want, pred, gold in wrong:
        print(f"wrong: {name} tier={tier} want={want} {pred[:80]!r} | {gold[:50]!r}")


if __name__ == "__main__":
    main()
