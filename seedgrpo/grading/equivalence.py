"""Answer equivalence with a hard time budget: value rules in this process, then worker processes.

    from seedgrpo.grading.equivalence import is_equivalent, check_answer_pairs
    is_equivalent("Thus the total is $36$ apples.", "36")               # True (prose read, no process)
    is_equivalent("\\frac{\\sqrt3}{3}", "\\frac{1}{\\sqrt{3}}")        # True (sympy in a worker)
    check_answer_pairs([("25\\%", "0.25"), ("11:00", "2:00")])          # [True, False]

Rules (docs/answers.md §4): both sides are read as a grader reads them (seedgrpo.grading.reading: boxes,
answer phrase, prose, repairs), rewritten into forms (labels, chains, lists, inequalities), and settled here
when the value rules can (equal canonical forms, exact rationals, percent, rounded decimals, times) or when
seedgrpo.grading.quick_values shows them certainly different. Only the rest reach a worker of
seedgrpo.grading.pool (seedgrpo.grading.worker: sympy, plain-text math, math-verify where our parser gives
up), which is killed when the pair runs past `timeout_s`; the budget therefore holds from any thread and
needs no signals. Results are cached by the pair of answer hashes.
"""
from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from typing import Sequence

from . import canonical, pool, quick_values, reading, rules, second_opinion
from .reference import _split_top
from .worker import grade_pair, symbolic_equal  # noqa: F401  (the worker's comparison, for in-process use)

CACHE_SIZE = 200_000  # pairs; ~100 bytes each
# One pair checked on its own gets math-verify's default budget; a reward batch (math_reward) keeps 1 s a
# pair.
IS_EQUIVALENT_TIMEOUT_S = 5.0
_RATIONAL = re.compile(r"-?\d+(?:/\d+)?\Z")

__all__ = ["is_equivalent", "check_answer_pairs", "check_final_answer_pairs", "check_canonical_pairs",
           "grading_answer", "answer_to_canonical", "symbolic_equal", "grade_pair", "IS_EQUIVALENT_TIMEOUT_S",
           "tier_counts", "record_tiers", "TIERS"]


# ------------------------------------------------------------------------------------ caller side
def _answer_text(answer: object, name: str) -> str:
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise ValueError(f"{name} must be a str or a number, got {type(answer).__name__} {answer!r}")
    return answer if isinstance(answer, str) else repr(answer)


def answer_to_canonical(answer: object, name: str = "answer") -> str:
    """Canonical form of a reference or predicted answer: numbers via repr (27.0 -> '27'), a string with
    \\boxed in it is extracted first."""
    text = _answer_text(answer, name)
    if "\\boxed" in text or "\\fbox" in text:
        text = canonical.extract_answer(text) or text
    return canonical.canonicalize(text)


def grading_answer(answer: object, name: str = "answer") -> str:
    """The final answer a grader reads in a prediction or gold (seedgrpo.grading.reading.final_answer):
    numbers via repr, boxes (several boxes joined), answer tag or phrase, the cued value of prose."""
    text = _answer_text(answer, name)
    try:
        return reading.final_answer(text)
    except Exception:  # noqa: BLE001 - a policy's text must never stop training: read it as no answer
        return ""


def is_equivalent(pred: str | int | float, gold: str | int | float, *,
                  timeout_s: float = IS_EQUIVALENT_TIMEOUT_S) -> bool:
    """True when two answers are the same, as a grader reads them (docs/answers.md §4): `pred` may be a whole
    model output (boxes, answer phrase, prose); labels, chains, percent, rounded decimals, plain-text math are
    graded by value; what the value rules leave open goes to sympy in a worker process, at most `timeout_s`
    seconds (default 5 s, math-verify's; False when the budget runs out). Safe from any thread; results are
    cached."""
    return check_answer_pairs([(pred, gold)], timeout_s=timeout_s)[0]


def check_answer_pairs(pairs: Sequence[tuple[object, object]], *, timeout_s: float = 1.0) -> list[bool]:
    """Equivalence of each (prediction, gold) pair of raw answers or outputs. Pairs that the value rules
    settle (equal canonical forms, exact rationals, times, percent, rounded decimals) cost no process;
    only distinct pairs left undecided and not cached reach the worker pool."""
    _check_timeout(timeout_s)
    final = [(grading_answer(p, "pred"), grading_answer(g, "gold")) for p, g in pairs]
    return _grade(final, timeout_s, canonical_forms=False)


def check_final_answer_pairs(pairs: Sequence[tuple[str, str]], *, timeout_s: float = 1.0) -> list[bool]:
    """check_answer_pairs for pairs already read by grading_answer (what math_reward holds)."""
    _check_timeout(timeout_s)
    return _grade(list(pairs), timeout_s, canonical_forms=False)


def check_canonical_pairs(pairs: Sequence[tuple[str, str]], *, timeout_s: float = 1.0) -> list[bool]:
    """Equivalence of each (canonical, canonical) pair (what math_reward holds after its C++ batch)."""
    _check_timeout(timeout_s)
    return _grade(list(pairs), timeout_s, canonical_forms=True)


def _check_timeout(timeout_s: object) -> None:
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")


def _grade(pairs: list[tuple[str, str]], timeout_s: float, *, canonical_forms: bool) -> list[bool]:
    results: list[bool | None] = [None] * len(pairs)
    todo: dict[tuple[int, int], list[int]] = {}
    if not canonical_forms:  # an option with its text against a letter or a value (`(B) 12` / `B`)
        pairs = [_choice_pair(a, b) for a, b in pairs]
    tiers: list[str] = []
    for i, (a, b) in enumerate(pairs):
        if a == b:
            results[i] = True
            tiers.append("exact")
            continue
        if canonical_forms and _RATIONAL.match(a) and _RATIONAL.match(b):
            results[i] = False  # canonical rationals are unique (a canonical form has lost its decimals)
            tiers.append("exact")
            continue
        verdict = None if canonical_forms else _rules_verdict(a, b, canonical.canonicalize)
        if verdict is not None:
            results[i] = verdict
            tiers.append("rules")
            continue
        key = (canonical_forms, *_pair_key(a, b))
        cached = _CACHE.get(key)
        if cached is not None:
            results[i] = cached
            tiers.append("cache")
        else:
            todo.setdefault(key, []).append(i)
    if todo:
        keys = list(todo)
        verdicts = pool.pool().check_tiers([pairs[todo[key][0]] for key in keys], timeout_s)
        for key, (verdict, tier) in zip(keys, verdicts):
            _CACHE.put(key, verdict)
            for i in todo[key]:
                results[i] = verdict
                tiers.append(tier)
    record_tiers(tiers)
    return [bool(r) for r in results]


_TIER_COUNTS: Counter = Counter()
_TIER_LOCK = threading.Lock()
TIERS = ("hash", "exact", "rules", "cache", "sympy", "math_verify", "veto", "timeout", "crash", "error")


def record_tiers(tiers: Sequence[str]) -> None:
    """Count verdicts by the tier that decided them (math_reward records its exact-hash fast path as
    "hash")."""
    with _TIER_LOCK:
        _TIER_COUNTS.update(tiers)


def tier_counts(reset: bool = True) -> dict[str, int]:
    """Verdicts per deciding tier since the last reset, every tier named (0 where none): "hash" (math_reward's
    equal canonical hashes), "exact" (equal texts), "rules" (the value rules in this process), "cache",
    "sympy" (a worker's rules and sympy, certain), "math_verify" (we were unsure: math-verify decided),
    "veto" (math-verify's "equal" overruled where it is known wrong), "timeout" (past the budget: False),
    "crash" / "error" (a worker died or raised: False). The trainer logs them as `grader/tier_<name>`."""
    with _TIER_LOCK:
        counts = {tier: _TIER_COUNTS.get(tier, 0) for tier in TIERS}
        if reset:
            _TIER_COUNTS.clear()
    return counts


def _choice_pair(a: str, b: str) -> tuple[str, str]:
    try:
        return reading.choice_pair(a, b)
    except Exception:  # noqa: BLE001 - hostile text: compare the pair as written
        return a, b


def _rules_verdict(a: str, b: str, canonicalize) -> bool | None:
    """The in-process value rules' verdict on one pair: True, False, or None (undecided: the worker pool
    decides). Whatever a policy writes, this never raises: a rule that fails on a hostile form (`9/0`, a tower
    of powers, malformed LaTeX) leaves the pair to the worker, which runs under the pair's budget and is killed
    past it."""
    try:
        undecided = False
        for fa, fb in rules.pair_forms(a, b):
            form = rules.form_verdict(fa, fb, canonicalize, _certainly_different)
            if form:
                return True
            undecided |= form is None
        # "different" is ours to say only when we are certain; otherwise the worker asks math-verify
        return None if undecided or second_opinion.unsure(a, b) else False
    except Exception:  # noqa: BLE001 - see above
        return None


def _certainly_different(a: str, b: str) -> bool:
    return quick_values.certainly_different(a, b, _split_top)


def _pair_key(a: str, b: str) -> tuple[int, int]:
    return canonical.canonical_hash(a), canonical.canonical_hash(b)


class _LRU:
    def __init__(self, size: int):
        self._size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_CACHE = _LRU(CACHE_SIZE)
