"""Grading-only shapes: matrices written other ways, and the elements of a tuple, list or matrix as written.

The canonical form knows `pmatrix` and `bmatrix`; a grader also reads `\\left[\\begin{array}{cc}…\\end{array}
\\right]`, a plain-text list of rows `[[1,2],[3,4]]` (against a matrix), and a scalar in front of a matrix
(multiplied into its entries), and a vector as a tuple, `\\langle…\\rangle` or an i/j/k combination against a
one-column or one-row matrix (entry by entry, in order). `vmatrix` is a determinant, a number: never a matrix.
`elements` splits an answer as written (decimals intact) into its structure, so that the worker can apply the
decimal tolerance element by element: `(1.4142, 1.7321)` = `(\\sqrt2, \\sqrt3)`. docs/answers.md §4 is the spec.

    from seedgrpo.grading.shapes import matrix_form
    matrix_form("2\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\4\\end{pmatrix}", split_top)
    # '\\begin{pmatrix}2\\\\4\\end{pmatrix}'

Pure Python (re, fractions; no torch): the grader's worker processes import it.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["matrix_form", "elements"]

_BEGIN, _END = "\\begin{pmatrix}", "\\end{pmatrix}"
_ENV = re.compile(r"\\begin\{([pb]matrix|array)\}(\{[^{}]*\})?(.*)\\end\{\1\}\s*\Z", re.S)
_LAYOUT = re.compile(r"\\(?:left|right)(?![A-Za-z])\.?|\\[!]")
_SPACES = re.compile(r"(?<!\\)\\[,;: ]|\\q?quad(?![A-Za-z])|~")  # not the `\ ` of a row break `\\ `


def matrix_form(s: str, other: str, split_top) -> str:
    """s as a `pmatrix` when it is a matrix written another way and the other side is a matrix: an `array`
    in brackets, rows `[[1,2],[3,4]]`, or `c \\begin{pmatrix}…\\end{pmatrix}` with c multiplied in."""
    if "\\begin{" not in other or "vmatrix" in other:
        return s
    t = _LAYOUT.sub("", s).strip()
    rows = _array_rows(t, split_top) or _list_rows(t, split_top) or _vector_rows(t, other, split_top)
    if rows is None:
        return s
    return _BEGIN + "\\\\".join("&".join(row) for row in rows) + _END


_UNIT_VECTOR = r"\\(?:mathbf|hat|vec|boldsymbol|bm)\s*\{?\s*(?:\\)?([ijk])(?:math)?\s*\}?"
_VECTOR_TERM = re.compile(rf"\s*([-+]?)\s*([^-+]*?)\s*(?:\\cdot\s*)?{_UNIT_VECTOR}\s*")


def _vector_rows(t: str, other: str, split_top) -> list[list[str]] | None:
    """A vector written as a tuple `(1,-2,3)`, `\\langle 1,-2,3\\rangle` or `\\mathbf{i}-2\\mathbf{j}+3\\mathbf{k}`,
    against a one-column or one-row matrix of as many entries: its entries in that matrix's orientation."""
    m = _ENV.match(_LAYOUT.sub("", other).strip())
    if not m or m[1] == "array":
        return None
    shape = [split_top(row, "&") for row in split_top(m[3], "\\\\") if row.strip()]
    column = all(len(row) == 1 for row in shape)
    if not column and len(shape) != 1:
        return None
    size = len(shape) if column else len(shape[0])
    entries = _vector_entries(t, size, split_top)
    if entries is None or len(entries) != size or size < 2:
        return None
    return [[e] for e in entries] if column else [entries]


def _vector_entries(t: str, size: int, split_top) -> list[str] | None:
    # `(1,2)` may be a point or an open interval as much as a vector: a tuple counts from three entries
    for open_, close, least in (("(", ")", 3), ("\\langle", "\\rangle", 2)):
        if t.startswith(open_) and t.endswith(close) and _balanced(t[len(open_):len(t) - len(close)]):
            entries = [x.strip() for x in split_top(t[len(open_):len(t) - len(close)], ",")]
            return entries if len(entries) >= least else None
    position, found = 0, {}
    for term in _VECTOR_TERM.finditer(t):
        if term.start() != position or term[3] in found or (position and not term[1]):
            return None
        coefficient = term[2].strip() or "1"
        found[term[3]] = f"-{coefficient}" if term[1] == "-" else coefficient
        position = term.end()
    if not found or position != len(t) or size not in (2, 3) or (size == 2 and "k" in found):
        return None
    return [found.get(axis, "0") for axis in "ijk"[:size]]


def _array_rows(t: str, split_top) -> list[list[str]] | None:
    scalar, env = _scalar_and_env(t)
    if env is None:
        return None
    rows = [split_top(row, "&") for row in split_top(env, "\\\\") if row.strip()]
    if scalar:
        rows = [[_times(scalar, cell) for cell in row] for row in rows]
    return rows


def _scalar_and_env(t: str) -> tuple[str, str | None]:
    """('2', '1\\\\2') for `2\\begin{pmatrix}1\\\\2\\end{pmatrix}`; an array needs brackets around it or
    nothing (`[\\begin{array}…\\end{array}]`)."""
    start = t.find("\\begin{")
    if start < 0:
        return "", None
    prefix, body = t[:start].strip(), t[start:]
    if body.startswith("\\begin{array}"):
        if prefix in ("[", "(") and body.endswith("]" if prefix == "[" else ")"):
            prefix, body = "", body[:-1].rstrip()
        elif prefix:
            return "", None
    m = _ENV.match(body)
    if not m or "\\begin{" in m[3]:
        return "", None
    prefix = re.sub(r"\\cdot\s*\Z|\\times\s*\Z", "", prefix).strip()
    if prefix and (re.search(r"[=,&]|\\\\", prefix) or not _balanced(prefix)):
        return "", None
    return prefix, m[3]


def _list_rows(t: str, split_top) -> list[list[str]] | None:
    """`[[1,2],[3,4]]` -> [['1','2'], ['3','4']]: brackets of rows of equal length."""
    if not (t.startswith("[") and t.endswith("]")):
        return None
    rows = [r.strip() for r in split_top(t[1:-1], ",")]
    if not rows or not all(r.startswith("[") and r.endswith("]") for r in rows):
        return None
    cells = [[c.strip() for c in split_top(r[1:-1], ",")] for r in rows]
    if len({len(r) for r in cells}) != 1 or any(not c or "[" in c for r in cells for c in r):
        return None
    return cells


def _times(scalar: str, cell: str) -> str:
    """scalar · cell, exact when both are plain rationals (so that the caller settles it without sympy)."""
    a, b = _rational(scalar), _rational(cell)
    if a is not None and b is not None:
        v = a * b
        if v.denominator == 1:
            return str(v.numerator)
        return f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
    return f"{scalar}\\cdot({cell.strip()})"


def _rational(s: str) -> Fraction | None:
    t = re.sub(r"\s+", "", s).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    if re.fullmatch(r"[-+]?\d+(?:\.\d+)?", t):
        return Fraction(t)
    m = re.fullmatch(r"([-+]?)(?:\\frac\{(\d+)\}\{(\d+)\}|\\frac(\d)(\d)|(\d+)/(\d+))", t)
    if not m:
        return None
    top, bottom = (int(x) for x in ((m[2], m[3]) if m[2] else (m[4], m[5]) if m[4] else (m[6], m[7])))
    return None if bottom == 0 else Fraction(top, bottom) * (-1 if m[1] == "-" else 1)


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += c in "({["
        depth -= c in ")}]"
        if depth < 0:
            return False
    return depth == 0


def elements(s: str, split_top) -> tuple[str, list] | None:
    """The structure of an answer as written: ('list', items) for a top-level list of two or more,
    (open + close, items) for one bracket group `( [ \\{` with commas inside, ('matrix', rows) for a
    `pmatrix` / `bmatrix`; None for a plain element. Items keep their text (decimals intact)."""
    t = _SPACES.sub(" ", _LAYOUT.sub("", s)).strip()
    parts = split_top(t, ",")
    if len(parts) > 1:
        return "list", [p.strip() for p in parts]
    m = _ENV.match(t)
    if m and m[1] != "array" and t.startswith("\\begin{"):
        return "matrix", [[c.strip() for c in split_top(row, "&")] for row in split_top(m[3], "\\\\") if row.strip()]
    for open_, close in (("\\{", "\\}"), ("(", ")"), ("[", "]"), ("(", "]"), ("[", ")")):
        if t.startswith(open_) and t.endswith(close) and _balanced(_unescaped(t[len(open_):len(t) - len(close)])):
            inner = split_top(t[len(open_):len(t) - len(close)], ",")
            if len(inner) > 1:
                return open_ + close, [x.strip() for x in inner]
    return None


def _unescaped(s: str) -> str:
    return s.replace("\\{", "{").replace("\\}", "}")
