"""A small exact-grammar evaluator of canonical answers, so that clearly different pairs need no sympy.

The grader's worker process parses with latex2sympy and sympy (tens of milliseconds a pair, more on a loaded
machine); most pairs a reward function sees are plainly different numbers (`3\\sqrt{13}` vs `4`). This module
reads a strict subset of canonical LaTeX (numbers, `+ - \\cdot \\times /`, implicit products, `\\frac`,
`\\sqrt`, `\\sqrt[n]`, `^`, `\\pi`, `i`, groups and parentheses) into a complex float and answers one
question: are these two answers certainly different? It only ever says "different" (never "equal"), and
only where the worker would say so too: a different element count, tuple against non-tuple, a number
against an expression with variables, or values further apart than any rounded decimal could be.

    from seedgrpo.grading.quick_values import certainly_different
    certainly_different("3\\sqrt{13}", "4")      # True
    certainly_different("\\sqrt{2}", "1.414")    # False (close: the worker decides)
"""
from __future__ import annotations

import cmath
import math
import re

__all__ = ["quick_value", "certainly_different", "RELATIVE_GAP"]

# Values further apart than this (relative) are different answers: a decimal that stands for an exact value
# has at least 4 significant digits (rules.MIN_SIGNIFICANT_DIGITS), so it is within 5e-4 of it.
RELATIVE_GAP = 1e-3
_MAX_EXPONENT = 4096.0  # larger powers are left to sympy (smaller ones that overflow are too)
_MAX_LENGTH = 300  # longer answers go to the worker as they are


_DERIVATIVE = re.compile(r"\\frac\{d(?:[A-Za-z^\\]|\s*\\)")  # \frac{d\omega}{dt}, \frac{d^{2}y}{dx^{2}}


class _Unreadable(Exception):
    pass


_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
          "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
          "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega", "hbar", "ell"}
# `\dot{x}`, `\hat{p}`: one variable each (the worker reads them as one symbol too).
_DECORATIONS = {"dot", "ddot", "hat", "bar", "vec", "tilde", "overline"}
# Letter pairs that are names in plain-text math (`pi`, `ln 2`), not products: left to the worker.
_PLAIN_PAIRS = {"pi", "ln", "lg"}


_FUNCTIONS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "cot": lambda z: 1 / cmath.tan(z),
              "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z), "exp": cmath.exp,
              "ln": cmath.log, "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh,
              "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
              "log": cmath.log10}  # the worker's parser reads a bare \\log as base 10


def _gamma(z: complex) -> complex:
    """Γ(z) of a real z (the factorial and binomial of variables, as sympy evaluates them)."""
    if z.imag or (z.real <= 0 and z.real == int(z.real)):
        raise ValueError
    return complex(math.gamma(z.real))


def _signed_zero_free(z: complex) -> complex:
    """z with a +0.0 imaginary part in place of -0.0: -(25+0j) is (-25-0j), whose square root and logarithm
    lie on the other side of the branch cut (cmath.sqrt(-25-0j) is -5j, not the principal 5j)."""
    return complex(z.real, z.imag + 0.0)


def _variable_value(name: str, point: int) -> complex:
    """A fixed pseudo-random value in [1.3, 3.7) for each variable name and evaluation point."""
    h = 2166136261 + 7919 * point
    for ch in name:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return complex(1.3 + 2.4 * (h / 2 ** 32))


class _Parser:
    def __init__(self, s: str, point: int):
        self.s, self.i, self.point, self.variables = s, 0, point, set()

    def skip_spaces(self) -> None:  # canonical spaces only follow control words (`\\cos x`)
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def peek(self, text: str) -> bool:
        self.skip_spaces()
        return self.s.startswith(text, self.i)

    def take(self, text: str) -> bool:
        if self.peek(text) and not (text[-1].isalpha() and self.i + len(text) < len(self.s)
                                    and self.s[self.i + len(text)].isalpha()):
            self.i += len(text)
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise _Unreadable

    def expr(self) -> complex:
        value = self.term()
        while self.i < len(self.s):
            if self.take("+"):
                value += self.term()
            elif self.take("-"):
                value -= self.term()
            else:
                break
        return value

    def term(self) -> complex:
        value = self.unary()
        while self.i < len(self.s):
            if self.take("\\cdot") or self.take("\\times") or self.take("*"):
                value *= self.unary()
            elif self.take("/"):
                divisor = self.unary()
                if divisor == 0:
                    raise _Unreadable
                value /= divisor
            elif self.starts_atom():
                value *= self.power()
            else:
                break
        return value

    def unary(self) -> complex:
        if self.take("-"):
            return _signed_zero_free(-self.unary())
        if self.take("+"):
            return self.unary()
        return self.power()

    def power(self) -> complex:
        base = self.atom()
        while self.take("!"):  # n!, (d-k)!: Γ(n + 1), as sympy evaluates factorial
            base = _gamma(base + 1)
        if self.take("^"):
            base = _signed_zero_free(base)
            exponent = self.group() if self.peek("{") else self.atom()
            if abs(exponent) > _MAX_EXPONENT or (base == 0 and exponent.real <= 0):
                raise _Unreadable
            try:
                return base ** exponent if base.imag or exponent.imag or base.real >= 0 or \
                    exponent.real == int(exponent.real) else cmath.exp(exponent * cmath.log(base))
            except (OverflowError, ZeroDivisionError, ValueError):
                raise _Unreadable from None
        return base

    def starts_atom(self) -> bool:
        self.skip_spaces()
        if self.i >= len(self.s):
            return False
        c = self.s[self.i]
        if self.peek("\\"):
            j = self.i + 1
            while j < len(self.s) and self.s[j].isalpha():
                j += 1
            return self.s[self.i + 1:j] in _GREEK or self.s[self.i + 1:j] in _FUNCTIONS or \
                self.s[self.i + 1:j] in _DECORATIONS or \
                self.s[self.i + 1:j] in ("frac", "sqrt", "pi", "binom", "lfloor", "lceil")
        return c.isdigit() or c in "({[." or c.isalpha()

    def group(self) -> complex:
        self.expect("{")
        value = self.expr()
        self.expect("}")
        return value

    def atom(self) -> complex:
        self.skip_spaces()
        s, i = self.s, self.i
        if i >= len(s):
            raise _Unreadable
        c = s[i]
        if c.isdigit() or (c == "." and i + 1 < len(s) and s[i + 1].isdigit()):
            j = i
            while j < len(s) and (s[j].isdigit() or s[j] == "."):
                j += 1
            self.i = j
            try:
                return complex(float(s[i:j]))
            except ValueError:
                raise _Unreadable from None
        if c == "{":
            return self.group()
        if c in "([":  # `[e^{x}-1]` inside an expression groups (a whole `[a, b]` never reaches here)
            self.i += 1
            value = self.expr()
            self.expect(")" if c == "(" else "]")
            return value
        if self.take("\\binom"):
            top, bottom = self.group(), self.group()
            return _gamma(top + 1) / (_gamma(bottom + 1) * _gamma(top - bottom + 1))
        for left, right, rounding in (("\\lfloor", "\\rfloor", math.floor), ("\\lceil", "\\rceil", math.ceil)):
            if self.take(left):
                known = set(self.variables)
                value = self.expr()
                self.expect(right)
                # A step function of variables may agree with the other side at the worker's points and not
                # at ours: only floors of numbers are evaluated.
                if self.variables != known or value.imag:
                    raise _Unreadable
                return complex(rounding(value.real))
        if self.take("\\frac"):
            numerator = self.group()
            denominator = self.group()
            if denominator == 0:
                raise _Unreadable
            return numerator / denominator
        if self.take("\\sqrt"):
            if self.take("["):
                index = self.expr()
                self.expect("]")
                radicand = self.group()
                if index == 0 or radicand.imag or index.imag:
                    raise _Unreadable
                if radicand.real < 0:
                    if index.real % 2 != 1:
                        raise _Unreadable
                    return complex(-((-radicand.real) ** (1 / index.real)))
                return complex(radicand.real ** (1 / index.real))
            return cmath.sqrt(_signed_zero_free(self.group()))  # the principal root: sqrt(-25) is 5i
        if self.take("\\pi"):
            return complex(math.pi)
        if c.isalpha():
            j = i
            while j < len(s) and s[j].isalpha():
                j += 1
            # `bs`, `RC`, `it`: a product of two factors (as the worker reads them). Longer runs are words or
            # plain-text names (`sqrt(2)`, `abc`), and `pi` / `ln` are names: left to the worker.
            if j - i > 2 or s[i:j] in _PLAIN_PAIRS or (j - i == 2 and "*" in s):
                raise _Unreadable
            if c == "I":  # the worker's parser reads `I` as sympy's imaginary unit (and `I^{2}` as `I`)
                raise _Unreadable
            self.i += 1
            if c == "i":  # the imaginary unit, as the worker reads it
                return 1j
            if c == "e":  # Euler's number, as latex2sympy reads it
                return complex(math.e)
            return self.variable(c)
        if c == "\\":
            j = i + 1
            while j < len(s) and s[j].isalpha():
                j += 1
            name = s[i + 1:j]
            if name in _GREEK:
                self.i = j
                return self.variable(s[i:j])
            if name in _FUNCTIONS and not (name == "log" and s.startswith("_", j)):  # \\log_{2}: left to sympy
                self.i = j
                return self.function(name)
            if name in _DECORATIONS:
                self.i = j
                self.group()  # the decorated symbol, validated; its value is that of the whole name
                return self.variable(s[i:self.i])
        raise _Unreadable

    def function(self, name: str) -> complex:
        """`\\sin(x)`, `\\cos{2t}`, `\\ln 2`: a parenthesized or braced argument, or one atom that no
        product continues (`\\sin x y` and `\\sin^{2}x` are left to the worker)."""
        if self.peek("("):
            self.i += 1
            argument = self.expr()
            self.expect(")")
        elif self.peek("{"):
            argument = self.group()
        else:
            argument = self.atom()
            if self.starts_atom() or self.peek("^"):
                raise _Unreadable
        try:
            return _FUNCTIONS[name](argument)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise _Unreadable from None

    def variable(self, name: str) -> complex:
        if self.take("_"):  # x_{1}, \omega_{n}: one variable
            start = self.i
            if self.peek("{"):
                depth = 0
                while self.i < len(self.s):
                    depth += self.s[self.i] == "{"
                    depth -= self.s[self.i] == "}"
                    self.i += 1
                    if depth == 0:
                        break
            elif self.i < len(self.s) and self.s[self.i].isalnum():
                self.i += 1
            name += "_" + self.s[start:self.i]
        self.variables.add(name)
        return _variable_value(name, self.point)


def quick_value(canonical: str, point: int = 0) -> tuple[complex, bool] | None:
    """(value, has variables) of a canonical answer as a complex float, its variables set to fixed values of
    evaluation point `point`; None when it is outside the grammar."""
    if not canonical or len(canonical) > _MAX_LENGTH or _DERIVATIVE.search(canonical):
        return None
    if re.search(r"\d \d", canonical):  # `1 2` is not 12: left to the worker
        return None
    parser = _Parser(canonical, point)
    try:
        value = parser.expr()
    except (_Unreadable, OverflowError, ZeroDivisionError, ValueError, RecursionError):
        return None
    parser.skip_spaces()
    if parser.i != len(canonical) or not (math.isfinite(value.real) and math.isfinite(value.imag)):
        return None
    return value, bool(parser.variables)


def _far(a: complex, b: complex) -> bool:
    return abs(a - b) > RELATIVE_GAP * max(abs(a), abs(b)) and abs(a - b) > 1e-12


def _values_far(a: str, b: str) -> bool:
    """Different at the first evaluation point, and at the second one too when variables are involved."""
    for point in (0, 1):
        va, vb = quick_value(a, point), quick_value(b, point)
        if va is None or vb is None or not _far(va[0], vb[0]):
            return False
        if not (va[1] or vb[1]):
            return True
    return True


def certainly_different(a: str, b: str, split_top) -> bool:
    """True when the worker would certainly grade the canonical forms a and b different (see module doc).
    `split_top` is the canonicalizer's top-level splitter (reference._split_top)."""
    xs, ys = split_top(a, ","), split_top(b, ",")
    if len(xs) != len(ys):
        return True
    if len(xs) == 1:
        if _shape(a) != _shape(b):
            return True
        if _shape(a) == "matrix":
            return _matrices_differ(a, b, split_top)
        if _shape(a) == "group":
            return _groups_differ(a, b, split_top)
        if _shape(a) != "plain":
            return False
        if _is_equation(a) and _is_equation(b):
            return _equations_differ(a, b)
        if _is_relation(a) != _is_relation(b):  # an equation or inequality is never a value
            return True
        if _has_plus_minus(a) != _has_plus_minus(b):  # `1\pm\sqrt2` is a set of two values to the worker
            return True
        if ("\\cup" in a) != ("\\cup" in b):  # a union of sets against something else
            return True
        return _values_far(a, b)
    if sorted(map(_shape, xs)) != sorted(map(_shape, ys)):  # e.g. numbers against pairs
        return True
    unused = list(ys)  # a bare list is compared in any order
    for x in xs:
        if _shape(x) != "plain" or quick_value(x) is None:
            return False
        match = next((k for k, y in enumerate(unused) if not _values_far(x, y)), None)
        if match is None:
            return all(quick_value(y) is not None for y in unused)
        del unused[match]
    return False


def _brackets(e: str) -> tuple[str, str]:
    return ("\\{", "\\}") if e.startswith("\\{") else (e[0], e[-1])


def _groups_differ(a: str, b: str, split_top) -> bool:
    """Two bracket groups (tuples, intervals, sets): the worker compares their bracket kinds, then their
    element counts, then their elements (in order, except in a set)."""
    (oa, ca), (ob, cb) = _brackets(a), _brackets(b)
    if (oa, ca) != (ob, cb):
        return True
    xs, ys = split_top(a[len(oa):len(a) - len(ca)], ","), split_top(b[len(ob):len(b) - len(cb)], ",")
    if len(xs) != len(ys):
        return True
    if oa == "\\{":
        return False
    return any(certainly_different(x, y, split_top) for x, y in zip(xs, ys))


def _is_equation(e: str) -> bool:
    return e.count("=") == 1 and not any(op in e for op in ("<", ">", "\\leq", "\\geq", "\\neq", "\\in"))


def _equations_differ(a: str, b: str) -> bool:
    """Two equations that are not constant multiples of each other (the worker's test: `lhs - rhs` of one
    is a non-zero constant times the other's): the ratio of the two differences changes between points."""
    ratios = []
    for point in (0, 1, 2):
        da, db = (_difference(e, point) for e in (a, b))
        if da is None or db is None or abs(da) < 1e-9 or abs(db) < 1e-9:
            return False
        ratios.append(da / db)
    return any(_far(r, ratios[0]) for r in ratios[1:])


def _difference(equation: str, point: int) -> complex | None:
    lhs, rhs = (quick_value(side, point) for side in equation.split("="))
    return None if lhs is None or rhs is None else lhs[0] - rhs[0]


_PMATRIX = ("\\begin{pmatrix}", "\\end{pmatrix}")


def _matrices_differ(a: str, b: str, split_top) -> bool:
    """Two canonical pmatrix forms of different shapes, or with an entry pair certainly different (the
    worker compares matrices entry by entry)."""
    begin, end = _PMATRIX
    if not all(e.startswith(begin) and e.endswith(end) for e in (a, b)):
        return False
    ra, rb = ([split_top(row, "&") for row in split_top(e[len(begin):len(e) - len(end)], "\\\\")] for e in (a, b))
    if [len(r) for r in ra] != [len(r) for r in rb]:
        return True
    return any(certainly_different(x, y, split_top) for row_a, row_b in zip(ra, rb) for x, y in zip(row_a, row_b))


def _has_plus_minus(e: str) -> bool:
    return "\\pm" in e or "\\mp" in e


def _is_relation(e: str) -> bool:
    return any(op in e for op in ("=", "<", ">", "\\leq", "\\geq", "\\neq", "\\in"))


def _shape(e: str) -> str:
    """What the worker compares by structure first: a bracket group, a matrix, or a plain element."""
    if e.startswith("\\begin{"):
        return "matrix"
    if e[:1] in "([" or e.startswith("\\{"):
        close = {"(": ")", "[": "]"}
        if e.endswith(")") or e.endswith("]") or e.endswith("\\}"):
            depth = 0
            for k, c in enumerate(e):
                if k == 0 and c == "\\":  # `\{`: the set's brace opens at index 1
                    continue
                depth += c in "([{"
                depth -= c in ")]}"
                if depth == 0 and k < len(e) - 1:
                    return "plain"  # `(a+5)(b+2)`: a product, not one group
            return "group" if e[0] in close or e.startswith("\\{") else "plain"
    return "plain"
