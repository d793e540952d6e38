"""Rule-based math reward: 1.0 when a completion's final answer is equivalent to the reference, else 0.0.

    from seedgrpo.grading.rewards import math_reward
    math_reward(["... so \\boxed{0.5}", "I think 3"], ["\\frac12", 27.0])      # [1.0, 0.0]

Answers are extracted and canonicalized in one threaded C++ batch (seedgrpo.grading.canonical); a
completion whose canonical answer equals a canonical gold is correct at once (the exact-hash fast path).
Every other completion is read as the grader reads it (seedgrpo.grading.reading: several boxes, answer
phrase, prose) and graded by seedgrpo.grading.equivalence: the value rules (exact rationals, percent,
rounded decimals, times) settle most pairs in this process; only the remaining distinct pairs go to the
worker pool (`timeout_s` per pair). A batch that needs no sympy starts no process.

Golds: a number (AMC's 27.0), a string (a `\\boxed{}` inside it is extracted first), or a list of strings
holding *alternatives* (correct if any matches; OlympiadBench's `final_answer`). Several answers inside
one string (`$69$,$84$`) form one multi-part answer: all parts must match, in any order (docs/answers.md §4).
"""
from __future__ import annotations

from typing import Sequence

from . import canonical, units
from . import equivalence as grader

__all__ = ["math_reward", "gold_answers"]


def gold_answers(gold: object) -> list[str]:
    """The canonical forms a completion may match: one per alternative."""
    if isinstance(gold, (list, tuple)):
        if not gold:
            raise ValueError("a gold answer list must hold at least one answer, got []")
        return [grader.answer_to_canonical(g, "gold") for g in gold]
    return [grader.answer_to_canonical(gold, "gold")]


def math_reward(completions: Sequence[str], golds: Sequence[object], *, timeout_s: float = 1.0,
                threads: int = 0) -> list[float]:
    """1.0 for each completion whose final answer is equivalent to its gold, else 0.0 (no answer: 0.0)."""
    if isinstance(completions, str):
        raise ValueError("completions must be a list of str, got a single str: wrap it in a list")
    if len(completions) != len(golds):
        raise ValueError(f"completions and golds must have the same length, got {len(completions)} and "
                         f"{len(golds)}: pass one gold per completion (repeat it for each of the G samples)")
    predicted = canonical.extract_and_canonicalize(completions, threads=threads)
    rewards = [0.0] * len(completions)
    candidates: list[tuple[int, str, str]] = []  # (row, final answer, gold alternative) left for the grader
    gold_cache: dict[tuple[str, str], tuple[list[str], list[str]]] = {}  # G rows share a gold: read it once
    fast = 0
    for row, (pred, gold) in enumerate(zip(predicted, golds)):
        key = (type(gold).__name__, repr(gold))
        if key not in gold_cache:
            texts = _gold_texts(gold)
            # The canonical form drops unit words (right against a bare gold), so against a gold with a unit
            # an equal hash may hide another unit (`3 hours` / `3 days`): the grader compares the units.
            hashed = [] if any(units.read_unit(t) for t in texts) else gold_answers(gold)
            gold_cache[key] = (hashed, texts)
        canonical_golds, gold_texts = gold_cache[key]
        if pred is not None and pred in canonical_golds:
            rewards[row] = 1.0  # the exact-hash fast path
            fast += 1
            continue
        final = grader.grading_answer(completions[row], "completions[i]")  # boxes, answer phrase, prose
        if final:
            candidates.extend((row, final, g) for g in gold_texts)
    grader.record_tiers(["hash"] * fast)
    if candidates:
        verdicts = grader.check_final_answer_pairs([(p, g) for _, p, g in candidates], timeout_s=timeout_s)
        for (row, _, _), ok in zip(candidates, verdicts):
            if ok:
                rewards[row] = 1.0
    return rewards


def _gold_texts(gold: object) -> list[str]:
    """The final answer of each alternative, as the grader reads it."""
    return [grader.grading_answer(g, "gold") for g in (gold if isinstance(gold, (list, tuple)) else [gold])]

