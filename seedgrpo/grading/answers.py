"""Final answers of completions: extraction, canonicalization, hashing, per-group clustering, equivalence.

The public facade of the grading package (`from seedgrpo import answers`); the work is done in
seedgrpo.grading.canonical (the compiled extraction, canonical form, hash and clusters) and
seedgrpo.grading.equivalence (the grader). docs/answers.md is the spec.

SEED-GRPO clusters the G completions of a prompt by meaning; for math, by final answer. Raw string
comparison counts `1/2`, `\\frac12` and `0.5` as three answers and inflates the semantic entropy; here they
share one canonical form and one hash, while `(1,2)` and `1,2` (or `1,000` and `1,0`) stay apart.
`backend="c"` (default) runs the C++ core seedgrpo._C; `backend="python"` the readable reference
seedgrpo.grading.reference; both give identical output (tests/test_answers_equivalence.py).

    from seedgrpo import answers
    answers.extract_answer("... so the answer is $\\boxed{\\frac12}$.")   # '\\frac12'
    answers.canonicalize("0.5")                                           # '1/2'
    hashes = answers.answer_hashes(completions)                           # LongTensor, < 0: no answer
    ids = answers.cluster_ids(hashes, group_size=8)                       # 0..k-1 within each group
    answers.is_equivalent("\\frac{\\sqrt3}{3}", "1/\\sqrt{3}")            # True (sympy in a worker, 5 s)
"""
from __future__ import annotations

from .canonical import (  # noqa: F401
    MAX_ANSWER_BYTES,
    MAX_DIGITS,
    MAX_EXPONENT,
    MAX_NESTING,
    answer_hashes,
    canonical_hash,
    canonicalize,
    cluster_ids,
    extract_and_canonicalize,
    extract_answer,
)
from .equivalence import IS_EQUIVALENT_TIMEOUT_S, is_equivalent  # noqa: F401

__all__ = [
    "extract_answer", "canonicalize", "extract_and_canonicalize", "answer_hashes", "cluster_ids",
    "canonical_hash", "is_equivalent", "MAX_ANSWER_BYTES", "MAX_NESTING", "MAX_DIGITS", "MAX_EXPONENT",
]
