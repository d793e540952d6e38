"""Answer grading: reading a final answer, its canonical form and hash, equivalence, and the math reward.

Public entry points are seedgrpo.answers and seedgrpo.rewards (this package's `answers` and `rewards`
modules). Inside, imports go one way, leaves first (no cycles; tests/test_grading_layout.py checks it):

    reference, units, shapes, sets, quick_values   pure Python leaves (no torch)
    rules        -> reference, units, shapes, sets  forms a grader also accepts (labels, chains, intervals)
    reading      -> reference, rules, units         the final answer a grader reads in an output
    second_opinion -> reference, rules, units       when math-verify is asked, when its "equal" is vetoed
    worker       -> reference, rules, second_opinion, shapes   sympy, then math-verify (a separate process)
    canonical    -> reference (+ seedgrpo._C)       compiled extraction, canonical form, hash, clusters
    pool                                            the worker processes (`python -m seedgrpo.grading.worker`)
    equivalence  -> canonical, pool, quick_values, reading, rules, reference, second_opinion, worker
    answers      -> canonical, equivalence          the public facade
    rewards      -> canonical, equivalence          math_reward

Importing this package imports nothing else (PEP 562): `seedgrpo.grading.answers` is loaded on first use.
"""
from __future__ import annotations

import importlib

_SUBMODULES = ("answers", "canonical", "equivalence", "pool", "quick_values", "reading", "reference",
               "rewards", "rules", "second_opinion", "sets", "shapes", "units", "worker")

__all__ = list(_SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
