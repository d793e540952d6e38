"""Long random run of the answer pipeline: the C++ core must match the Python reference on every str and
must neither crash nor leave its buffers on any bytes.

    .venv/bin/python benchmarks/fuzz_answers.py --seconds 300          # a long run
    scripts/asan-answers.sh 120                                        # the same under AddressSanitizer

Inputs mix: LaTeX-shaped strings glued from pieces that hit every rule of docs/answers.md, mutations of
the benchmark answers and solutions in ../shared/data (insert / delete / duplicate / swap), random Unicode
(lone surrogates and NUL included), random bytes (C++ only), and now and then a hostile giant (1 MB,
deep nesting, unbalanced braces). Every 64 inputs also go through the threaded batch calls. Exits 1 on the
first mismatch, printing it. Imports only seedgrpo._C and seedgrpo.grading.reference (no torch), so that
the AddressSanitizer build runs it without noise from other libraries.
"""
from __future__ import annotations

import argparse
import array
import json
import random
import sys
import time
from pathlib import Path

from seedgrpo import _C
from seedgrpo.grading import reference

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PIECES = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\{", "\\}", "(", ")", "[", "]", ",", " ", "\n", "\t", "0",
    "1", "2", "5", "9", "000", "123", ".", "-", "+", "/", "e", "E", "x", "=", "^", "_", "\\frac", "\\dfrac",
    "\\sqrt", "\\times", "\\cdot", "10^{", "\\text{", "\\mbox{", "\\mathrm{", " cm", "inches", "degrees",
    " per ", "km/h", "^2", "\\circ", "^\\circ", "\\degree", "%", "\\%", "$", "\\$", "\\!", "\\,", "~", "\\ ",
    "\\quad", "\\left", "\\right", "\\left.", "\\begin{pmatrix}", "\\end{pmatrix}", "\\\\", "&", "answer",
    "Answer:", "answer is", "<answer>", "</answer>", "**", "\\", "A", "B", "(B)", "\\in", "\\pi", "\\infty",
    "\\cup", "{,}", "1\\frac{1}{2}", "x_{1}", "f(x)", "\\le", "\\cot", "\u2212", "\u00b0", "\u00d7", "\u03c0",
    "\u221a", "\u00a0", "\u00e9", "\ud800", "\udfff", "\x00", "\U0001f600",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--c-only", action="store_true", help="skip the comparison with the Python reference")
    return p.parse_args()


def corpus() -> list[str]:
    out = []
    for name in ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"]:
        path = DATA / name / "test.jsonl"
        if not path.exists():
            continue
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            for key in ("answer", "final_answer", "solution"):
                value = record.get(key)
                values = value if isinstance(value, list) else [value]
                out += [v for v in values if isinstance(v, str)]
    return out or ["\\boxed{\\frac12}", "The answer is 5."]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        op = rng.randrange(4)
        if op == 0:
            text = text[:i] + rng.choice(PIECES) + text[i:]
        elif op == 1:
            text = text[:i] + text[j:]
        elif op == 2:
            text = text[:i] + text[i:j] * rng.randint(2, 4) + text[j:]
        else:
            text = text[:i] + text[j:] + text[i:j]
    return text


def giant(rng: random.Random) -> str:
    unit = rng.choice(["\\boxed{", "{", "(", "\\frac", "1,", "answer", "\\left(", "x^", "\\{", "\\\\"])
    return unit * (1_000_000 // len(unit)) + rng.choice(["", "}", "\\boxed{1}", "answer: 2"])


def generate(rng: random.Random, texts: list[str]) -> str:
    kind = rng.random()
    if kind < 0.35:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
    if kind < 0.75:
        return mutate(rng, rng.choice(texts))
    if kind < 0.9995:
        length = rng.randint(0, 60)
        return "".join(chr(rng.choice([rng.randrange(128), rng.randrange(0x110000)])) for _ in range(length))
    return giant(rng)


def check_str(text: str, flags: int, compare: bool) -> None:
    got = _C.extract_answer(text)
    for item in (text, got) if got is not None else (text,):
        canonical = _C.canonicalize(item, flags)
        if compare and len(item) < 200_000:
            want = reference.canonicalize(item, flags)
            if canonical != want:
                fail("canonicalize", item, flags, canonical, want)
    if compare and len(text) < 200_000:
        want = reference.extract_answer(text)
        if got != want:
            fail("extract_answer", text, flags, got, want)


def check_batch(batch: list[str], flags: int, compare: bool) -> None:
    out = array.array("q", bytes(8 * len(batch)))
    _C.answer_hashes(batch, out, 2, flags)
    canonical = _C.extract_and_canonicalize(batch, 2, flags)
    for i, (text, value, form) in enumerate(zip(batch, out, canonical)):
        expected = -1 - i if form is None else reference.canonical_hash(form)
        if value != expected:
            fail("answer_hashes", text, flags, value, expected)
        if compare and len(text) < 200_000:
            answer = reference.extract_answer(text)
            want = (reference.canonicalize(answer, flags) or None) if answer is not None else None
            if form != want:
                fail("extract_and_canonicalize", text, flags, form, want)


def fail(what: str, text, flags: int, got, want) -> None:
    print(f"MISMATCH in {what} (flags={flags}):\n  input {text!r}\n  c      {got!r}\n  python {want!r}")
    sys.exit(1)


def main() -> None:
    args = parse_args()
    rng = random.Random(args.seed)
    texts = corpus()
    print(f"seedgrpo._C from {_C.__file__}", flush=True)
    start, n, n_bytes, batch = time.monotonic(), 0, 0, []
    while time.monotonic() - start < args.seconds:
        flags = rng.randrange(8)
        text = generate(rng, texts)
        check_str(text, flags, not args.c_only)
        batch.append(text)
        if len(batch) == 64:
            check_batch(batch, flags, not args.c_only)
            batch = []
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
        _C.extract_answer_bytes(data)
        _C.canonicalize_bytes(data, flags)
        _C.canonicalize_bytes(text.encode("utf-8", "surrogatepass")[: rng.randint(0, 2000)], flags)
        n, n_bytes = n + 1, n_bytes + 2
    print(f"ok: {n:,} strings compared with the reference, {n_bytes:,} byte strings, "
          f"{time.monotonic() - start:.0f} s, seed {args.seed}")


if __name__ == "__main__":
    main()
