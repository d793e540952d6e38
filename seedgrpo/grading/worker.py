"""The grader's worker process: one answer pair in, one verdict out (seedgrpo.grading.pool runs and times it).

    python -m seedgrpo.grading.worker       # JSON lines [task, pred, gold] on stdin -> [task, verdict]

`grade_pair(pred, gold)` is the whole comparison (docs/answers.md §4): the pair and its rewritten forms
(seedgrpo.grading.rules.pair_forms) are compared by value rules (times, ratios, percent, decimals), then
structurally with sympy (parsed by latex2sympy2_extended, checked by exact equality, equation
proportionality, then 50-digit evaluation at fixed rational points); where that leaves us unsure (a side
not parsed, labels, several parts, forms read by pattern: seedgrpo.grading.second_opinion), math-verify's
parse + verify decides, and our certainty vetoes its "equal" where it is known to be wrong. There is no
time limit in here: the pool kills a worker that runs past its budget, so it needs no signals. A worker
imports only sympy, math-verify and the pure-Python grading modules (reference, rules, second_opinion,
shapes, units, sets): no torch.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from fractions import Fraction

from . import reference, rules, second_opinion, shapes

_NUMERIC_DIGITS = 50  # evaluation precision
_RELATIVE_TOLERANCE = 1e-25  # far below any decimal an answer would be written with
_POINTS = 4  # evaluation points when the difference has free symbols
_DECIMAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")
_CONTROL_WORD = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")


def symbolic_equal(a: str, b: str) -> bool:
    """The worker's comparison of two canonical forms (no time limit here: the pool enforces it)."""
    split = reference._split_top
    return _lists_equal(split(a, ","), split(b, ","), ordered=False)


def _lists_equal(xs: list[str], ys: list[str], *, ordered: bool) -> bool:
    if len(xs) != len(ys):
        return False
    if ordered or len(xs) == 1:
        return all(_element_equal(x, y) for x, y in zip(xs, ys))
    return _match_any_order(xs, ys, _element_equal)  # a bare list is a collection of answers


def _match_any_order(xs: list, ys: list, equal) -> bool:
    """Whether every x has its own y with equal(x, y) (as many of each: a multiset match, greedy)."""
    if len(xs) != len(ys):
        return False
    unused = list(ys)
    for x in xs:
        match = next((k for k, y in enumerate(unused) if equal(x, y)), None)
        if match is None:
            return False
        del unused[match]
    return True


def _bracket_group(e: str) -> tuple[str, str, str] | None:
    if not e or e[0] == "{" or reference._bracket_at(e, 0)[0] <= 0:
        return None
    close, close_len = reference._matching_bracket(e, 0)
    if close != len(e):
        return None
    open_len = 2 if e[0] == "\\" else 1
    return e[:open_len], e[open_len:len(e) - close_len], e[len(e) - close_len:]


def _matrix_rows(e: str) -> list[list[str]] | None:
    begin, end = "\\begin{pmatrix}", "\\end{pmatrix}"
    if not (e.startswith(begin) and e.endswith(end)):
        return None
    split = reference._split_top
    return [split(row, "&") for row in split(e[len(begin):len(e) - len(end)], "\\\\")]


def _element_equal(x: str, y: str) -> bool:
    if x == y:
        return True
    gx, gy = _bracket_group(x), _bracket_group(y)
    if gx or gy:  # tuples, intervals, sets: same brackets, then the elements
        if not (gx and gy) or gx[0] != gy[0] or gx[2] != gy[2]:
            return False
        split = reference._split_top
        is_set = gx[0] == "\\{" and gx[2] == "\\}"
        return _lists_equal(split(gx[1], ","), split(gy[1], ","), ordered=not is_set)
    mx, my = _matrix_rows(x), _matrix_rows(y)
    if mx or my:
        return (mx is not None and my is not None and [len(r) for r in mx] == [len(r) for r in my]
                and all(_element_equal(a, b) for ra, rb in zip(mx, my) for a, b in zip(ra, rb)))
    if _is_text(x) or _is_text(y):  # words (Evelyn, east, even) are compared as written
        return False
    ex, ey = _parse(x), _parse(y)
    return ex is not None and ey is not None and _sympy_equal(ex, ey)


def _is_text(e: str) -> bool:
    """A word outside control words (rules.reads_as_word): latex2sympy would read `Evelyn` as
    E*E*l*n*v*y, equal to `Evenly`; `mgh` and `GMm` are products and are parsed."""
    return any(rules.reads_as_word(w) for w in _WORD.findall(_CONTROL_WORD.sub(" ", e)))


def _parse(e: str):
    import sympy
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from latex2sympy2_extended.math_normalization import NormalizationConfig

    exact = _DECIMAL.sub(lambda m: "\\frac{%s%s}{1%s}" % (m[1], m[2], "0" * len(m[2])), e)  # no floats
    try:
        expr = latex2sympy(
            exact,
            normalization_config=NormalizationConfig(basic_latex=True, units=False, malformed_operators=False,
                                                     nits=False, boxed="none", equations=False),
            conversion_config=ConversionConfig(interpret_as_mixed_fractions=False,
                                               interpret_simple_eq_as_assignment=False,
                                               interpret_contains_as_eq=False, lowercase_symbols=False))
    except Exception:  # noqa: BLE001 - unparsable LaTeX is simply not equivalent
        _unparsed.append(e)
        return None
    if not isinstance(expr, (sympy.Basic, sympy.MatrixBase)):
        _unparsed.append(e)
        return None
    return _real_odd_roots(expr) if isinstance(expr, sympy.Expr) else expr


def _real_odd_roots(expr):
    """`\\sqrt[3]{-8}` is -2 as an answer is written, not sympy's principal root 1 + i√3."""
    return expr.replace(
        lambda x: x.is_Pow and x.exp.is_Rational and not x.exp.is_Integer and x.exp.q % 2 == 1
        and x.base.is_number and x.base.is_negative,
        lambda x: (-1) ** x.exp.p * (-x.base) ** x.exp)


def _sympy_equal(x, y) -> bool:
    import sympy
    from sympy.core.relational import Relational

    try:
        if x == y:
            return True
    except Exception:  # noqa: BLE001
        return False
    if isinstance(x, sympy.MatrixBase) or isinstance(y, sympy.MatrixBase):
        return (isinstance(x, sympy.MatrixBase) and isinstance(y, sympy.MatrixBase) and x.shape == y.shape
                and all(_sympy_equal(a, b) for a, b in zip(x, y)))
    if isinstance(x, sympy.Set) or isinstance(y, sympy.Set):
        return _sets_equal(x, y)
    if isinstance(x, Relational) or isinstance(y, Relational):
        x, y = getattr(x, "canonical", x), getattr(y, "canonical", y)  # 2 <= k is k >= 2
        if type(x) is not type(y):
            return False
        dx, dy = x.lhs - x.rhs, y.lhs - y.rhs
        if isinstance(x, sympy.Eq):  # a x + b = 0 is the same equation as 2 a x + 2 b = 0
            return _constant_ratio(dx, dy)
        return _expressions_equal(dx, dy)
    if isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr):
        return _expressions_equal(x, y)
    return False


def _sets_equal(x, y) -> bool:
    import sympy

    if type(x) is not type(y):
        return False
    if isinstance(x, sympy.Interval):
        return (x.left_open == y.left_open and x.right_open == y.right_open
                and _sympy_equal(x.start, y.start) and _sympy_equal(x.end, y.end))
    if isinstance(x, (sympy.FiniteSet, sympy.Union, sympy.Intersection)):
        return _match_any_order(list(x.args), list(y.args), _sympy_equal)
    return False


def _points(symbols) -> list[dict]:
    import random

    import sympy

    rng = random.Random(20261123)  # fixed: the same pair always gets the same verdict
    return [{s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 41)) for s in symbols}
            for _ in range(_POINTS)]


def _value(expr, point):
    """expr at point with _NUMERIC_DIGITS digits (a sympy number), or None when not a finite number."""
    try:
        v = expr.evalf(_NUMERIC_DIGITS, subs=point)
        return v if v.is_number and v.is_finite else None
    except Exception:  # noqa: BLE001 - undefined functions, unevaluable objects
        return None


def _close(a, b) -> bool:
    """Relative comparison carried out in sympy at _NUMERIC_DIGITS digits (floats would stop at 1e-16)."""
    return bool(abs(a - b) <= _RELATIVE_TOLERANCE * max(1, abs(a), abs(b)))


def _expressions_equal(x, y) -> bool:
    import sympy

    imaginary = sympy.Symbol("i")
    if imaginary in x.free_symbols | y.free_symbols:  # `3+4i`, `(1+i)^2`: i is the imaginary unit
        x, y = x.subs(imaginary, sympy.I), y.subs(imaginary, sympy.I)
    exact = _exact_rational(x - y)
    if exact is not None:  # integers and fractions: 2^{100} differs from 2^{100}+1 (50 digits do not see it)
        return exact == 0

    symbols = sorted(x.free_symbols | y.free_symbols, key=str)
    points = _points(symbols) if symbols else [{}]
    numeric = True
    for point in points:
        vx, vy = _value(x, point), _value(y, point)
        if vx is None or vy is None:
            numeric = False
            break
        if not _close(vx, vy):
            return False
    if numeric:
        return True
    try:
        difference = sympy.expand(x - y)
        if difference == 0:
            return True
        nx, ny = _names(x), _names(y)
        if nx - ny and ny - nx:  # each side has a name the other lacks: no identity makes them one
            return False
        # simplify takes seconds on long expressions: only small differences get it
        return sympy.count_ops(difference) <= _MAX_SIMPLIFY_OPS and sympy.simplify(difference) == 0
    except Exception:  # noqa: BLE001
        return False


def _names(expr) -> set[str]:
    """The symbols and undefined functions (`\\theta(t)`, `u(t)`) an expression is written in."""
    from sympy.core.function import AppliedUndef

    return {str(s) for s in expr.free_symbols} | {str(f.func) for f in expr.atoms(AppliedUndef)}


_MAX_SIMPLIFY_OPS = 40  # operations in a difference that simplify() may still try (it is slow beyond)
_MAX_EXACT_EXPONENT = 4096  # 2^{4096} has 1,234 digits: cheap; larger powers are left to evaluation


def _exact_rational(expr):
    """expr's exact value when it is built from integers by + - * / and small integer powers, else None."""
    import sympy

    if expr.free_symbols or any(not isinstance(a, sympy.Rational) for a in expr.atoms(sympy.Number)):
        return None
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            if not (node.exp.is_Integer and abs(int(node.exp)) <= _MAX_EXACT_EXPONENT):
                return None
        elif not isinstance(node, (sympy.Add, sympy.Mul, sympy.Rational)):
            return None
    value = expr.doit()
    return value if isinstance(value, sympy.Rational) else None


def _constant_ratio(dx, dy) -> bool:
    symbols = sorted(dx.free_symbols | dy.free_symbols, key=str)
    ratios = []
    for point in _points(symbols) if symbols else [{}]:
        vx, vy = _value(dx, point), _value(dy, point)
        if vx is None or vy is None or vy == 0:
            return _expressions_equal(dx, dy)
        ratios.append(vx / vy)
    return ratios[0] != 0 and all(_close(r, ratios[0]) for r in ratios)


def grade_pair(pred: str, gold: str) -> bool:
    """The worker's verdict on a (pred, gold) pair of final answers (already extracted by the caller)."""
    return grade_pair_tier(pred, gold)[0]


def grade_pair_tier(pred: str, gold: str, deadline: float | None = None) -> tuple[bool, str]:
    """The verdict on a pair of final answers and the tier that decided it: "sympy" (our value rules and
    sympy: equal, or different and certain), "math_verify" (we were unsure: math-verify's parse + verify
    decided), "veto" (math-verify said equal where it is known to be wrong: seedgrpo.grading.second_opinion)."""
    undecided = []
    for fp, fg in rules.pair_forms(pred, gold):
        verdict = rules.form_verdict(fp, fg, _canonical)
        if verdict:
            return True, "sympy"
        if verdict is None:
            undecided.append((fp, fg))
    _unparsed.clear()
    for fp, fg in undecided:
        for a, b in rules.value_pairs(fp, fg):
            if _values_equal(a, b):
                return True, "sympy"
    if not (_unparsed or second_opinion.unsure_form(pred, gold)):
        return False, "sympy"  # both sides read whole, in forms we model: certain
    try:
        with _time_limit(None if deadline is None else deadline - time.monotonic()):
            if not second_opinion.math_verify_equal(pred, gold):
                return False, "math_verify"
    except _OutOfTime:
        return False, "math_verify_timeout"  # our "different" stands; the worker lives on
    if second_opinion.veto_reason(pred, gold) is not None:
        return False, "veto"
    return True, "math_verify"


_unparsed: list[str] = []  # answers our parsers could not read during the current grade_pair

# The second opinion gets what is left of the pair's budget, less this margin, by a timer in this process
# (its main thread): a slow math-verify then ends with our verdict instead of a killed worker, whose
# replacement costs an interpreter start (sympy, math-verify) on the trainer's CPUs.
_SECOND_OPINION_MARGIN_S = 0.1


class _OutOfTime(BaseException):
    """Not an Exception: math-verify's and sympy's `except Exception` must not swallow the timer."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise _OutOfTime in this (main) thread after `seconds`; no limit for None (in-process callers)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    if seconds <= 0:
        raise _OutOfTime

    def expire(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _canonical(answer: str) -> str:
    return reference.canonicalize(answer)


def _values_equal(a: str, b: str) -> bool:
    ca, cb = _canonical(a), _canonical(b)
    if ":" in ca + cb:
        return False
    if _is_plain_math(a) or _is_plain_math(b):
        ex = _parse_plain(a) if _is_plain_math(a) else _parse(ca)
        ey = _parse_plain(b) if _is_plain_math(b) else _parse(cb)
        return ex is not None and ey is not None and _sympy_equal(ex, ey)
    return symbolic_equal(ca, cb) or _rounds_to(a, cb) or _rounds_to(b, ca) or _elements_equal(a, b)


def _elements_equal(a: str, b: str) -> bool:
    """The decimal tolerance element by element, on the answers as written (the canonical form has turned
    `1.4142` into 7071/5000): `(1.4142, 1.7321)` = `(\\sqrt2, \\sqrt3)`, `0.1429, 0.5` = `\\frac17, \\frac12`, a
    matrix of `0.7071`. Same structure and bracket kinds; tuples and matrices in order, lists and sets in
    any order."""
    if not (_DECIMAL.search(a) or _DECIMAL.search(b)):
        return False
    split = reference._split_top
    sa, sb = shapes.elements(a, split), shapes.elements(b, split)
    if sa is None or sb is None or sa[0] != sb[0] or len(sa[1]) != len(sb[1]):
        return False
    xs, ys = sa[1], sb[1]
    if sa[0] == "matrix":
        if [len(r) for r in xs] != [len(r) for r in ys]:
            return False
        return all(_values_equal(x, y) for rx, ry in zip(xs, ys) for x, y in zip(rx, ry))
    if sa[0] not in ("list", "\\{\\}"):
        return all(_values_equal(x, y) for x, y in zip(xs, ys))
    return _match_any_order(xs, ys, _values_equal)


# Plain-text math (`sqrt(2)/2`, `3**(1/3)`, `pi/4`): read by sympy's own parser, after a whitelist check, since
# parse_expr evaluates Python: only these names, digits, one-letter symbols and operators get through.
_PLAIN_NAMES = {"sqrt": "sqrt", "pi": "pi", "e": "E", "exp": "exp", "log": "log", "ln": "log", "sin": "sin",
                "cos": "cos", "tan": "tan", "i": "I", "abs": "Abs", "arcsin": "asin", "arccos": "acos",
                "arctan": "atan", "asin": "asin", "acos": "acos", "atan": "atan"}
_PLAIN_CHARS = re.compile(r"[0-9A-Za-z+\-*/^().\s]+\Z")
_PLAIN_HINT = re.compile(r"\*\*|\*|(?<![A-Za-z])(?:sqrt|exp|log|ln|sin|cos|tan|abs|arcsin|arccos|arctan|asin|acos"
                         r"|atan)\(|(?<![A-Za-z\\])pi(?![A-Za-z])")


def _is_plain_math(e: str) -> bool:
    return "\\" not in e and bool(_PLAIN_CHARS.match(e)) and bool(_PLAIN_HINT.search(e)) and all(
        name in _PLAIN_NAMES or len(name) == 1 for name in re.findall(r"[A-Za-z]+", e))


def _parse_plain(e: str):
    import sympy
    from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    names = {k: getattr(sympy, v) for k, v in _PLAIN_NAMES.items()}
    names.update({c: sympy.Symbol(c) for c in set(re.findall(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", e))
                  if c not in names})
    try:
        expr = parse_expr(e, local_dict=names, global_dict={"Integer": sympy.Integer, "Float": sympy.Float,
                                                            "Rational": sympy.Rational, "Symbol": sympy.Symbol},
                          transformations=standard_transformations + (implicit_multiplication_application,
                                                                      convert_xor))
    except Exception:  # noqa: BLE001 - not parsable as plain math
        _unparsed.append(e)
        return None
    return _exact(expr) if isinstance(expr, sympy.Basic) else None


def _exact(expr):
    import sympy

    return expr.xreplace({f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float)})


def _rounds_to(decimal_text: str, other_canonical: str) -> bool:
    """A decimal with enough digits against an exact value that is not a short decimal itself (the
    tolerance rule, docs §4): `2.2360680` is `\\sqrt5`; `0.1251` is not `1/8`."""
    import sympy

    parsed = rules.decimal_places(decimal_text)
    if parsed is None:
        return False
    expr = _parse(other_canonical)
    if expr is None or not isinstance(expr, sympy.Expr) or expr.free_symbols:
        return False
    value = _value(expr, {})
    if value is None or not value.is_real:
        return False
    return rules.decimal_matches(parsed[0], parsed[1], Fraction(str(value)))


_WARM_UP = ("1", "\\frac{a+1}{2b}-\\sqrt[3]{x^{2}}", "\\sin^{2}\\theta+\\cos(\\omega t)e^{-t/\\tau}",
            "\\frac{d^{2}y}{dt^{2}}+\\frac{y}{LC}=f(t)", "\\{1,2\\}\\cup[3,\\infty)", "x\\leq 2",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\lfloor\\log_{2}n\\rfloor+\\binom{n}{k}", "m_{p}c^{2}\\gamma")


def _worker_main() -> None:
    # A scheduler's SIGTERM (SLURM, Kubernetes, the DeepSpeed launcher) or a terminal's SIGINT reaches the
    # whole process group: the trainer finishes its step and checkpoints, and it still needs its graders to do
    # so. A worker ends when its parent closes stdin, or by SIGKILL (the time budget).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the reply stream
    # Import sympy and warm the LaTeX parser before saying ready: ANTLR builds its prediction tables on first
    # sight of each construct (a long equation's first parse took 2 s, its second 0.2 s); the budget is for
    # the pair.
    for sample in _WARM_UP:
        _parse(sample)
    second_opinion.math_verify_equal("1", "1")
    reply.write("ready\n")
    for line in sys.stdin:
        received = time.monotonic()
        task, a, b, timeout_s = json.loads(line)
        try:
            verdict, tier = grade_pair_tier(a, b, received + timeout_s - _SECOND_OPINION_MARGIN_S)
        except Exception:  # noqa: BLE001 - RecursionError, sympy internals: not shown equal
            verdict, tier = False, "error"
        reply.write(json.dumps([task, bool(verdict), tier]) + "\n")


if __name__ == "__main__":
    _worker_main()
