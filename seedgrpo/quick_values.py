"""A small exact-grammar evaluator of canonical answers, so that clearly different pairs need no sympy.

The grader's worker process parses with latex2sympy and sympy (tens of milliseconds a pair, more on a loaded
machine); most pairs a reward function sees are plainly different numbers (`3\\sqrt{13}` vs `4`). This module
reads a strict subset of canonical LaTeX (numbers, `+ - \\cdot \\times /`, implicit products, `\\frac`,
`\\sqrt`, `\\sqrt[n]`, `^`, `\\pi`, `i`, groups and parentheses) into a complex float and answers one
question: are these two answers certainly different? It only ever says "different" (never "equal"), and
only where the worker would say so too: a different element count, tuple against non-tuple, a number
against an expression with variables, or values further apart than any rounded decimal could be.

    from seedgrpo.quick_values import certainly_different
    certainly_different("3\\sqrt{13}", "4")      # True
    certainly_different("\\sqrt{2}", "1.414")    # False (close: the worker decides)
"""
from __future__ import annotations

import cmath
import math
import re

__all__ = ["quick_value", "certainly_different", "RELATIVE_GAP"]

# Values further apart than this (relative) are different answers: a decimal that stands for an exact value
# has at least 4 significant digits (grading_rules.MIN_SIGNIFICANT_DIGITS), so it is within 5e-4 of it.
RELATIVE_GAP = 1e-3
_MAX_EXPONENT = 1000.0  # larger powers overflow floats: left to sympy
_MAX_LENGTH = 300  # longer answers go to the worker as they are


class _Unreadable(Exception):
    pass


_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
          "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
          "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega"}


_FUNCTIONS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "cot": lambda z: 1 / cmath.tan(z),
              "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z), "exp": cmath.exp,
              "ln": cmath.log, "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh}


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
            return -self.unary()
        if self.take("+"):
            return self.unary()
        return self.power()

    def power(self) -> complex:
        base = self.atom()
        if self.take("^"):
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
                self.s[self.i + 1:j] in ("frac", "sqrt", "pi")
        return c.isdigit() or c in "({." or c.isalpha()

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
        if c == "(":
            self.i += 1
            value = self.expr()
            self.expect(")")
            return value
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
            return cmath.sqrt(self.group())
        if self.take("\\pi"):
            return complex(math.pi)
        if c in "ie" and i + 1 < len(s) and s[i + 1].isalpha():
            raise _Unreadable
        if c == "i":  # the imaginary unit, as the worker reads it
            self.i += 1
            return 1j
        if c == "e":  # Euler's number, as latex2sympy reads it
            self.i += 1
            return complex(math.e)
        if c.isalpha():
            if i + 1 < len(s) and s[i + 1].isalpha():
                raise _Unreadable  # `sqrt(2)`, `pi`, `ab`: plain-text names or products, left to the worker
            self.i += 1
            return self.variable(c)
        if c == "\\":
            j = i + 1
            while j < len(s) and s[j].isalpha():
                j += 1
            name = s[i + 1:j]
            if name in _GREEK:
                self.i = j
                return self.variable(s[i:j])
            if name in _FUNCTIONS:
                self.i = j
                return self.function(name)
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
    if not canonical or len(canonical) > _MAX_LENGTH or "\\frac{d" in canonical:  # d/dt: a derivative
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
    `split_top` is the canonicalizer's top-level splitter (answers_reference._split_top)."""
    xs, ys = split_top(a, ","), split_top(b, ",")
    if len(xs) != len(ys):
        return True
    if len(xs) == 1:
        if _shape(a) != _shape(b):
            return True
        if _shape(a) != "plain":
            return False
        if _is_relation(a) != _is_relation(b):  # an equation or inequality is never a value
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
                depth += c in "([{"
                depth -= c in ")]}"
                if depth == 0 and k < len(e) - 1:
                    return "plain"  # `(a+5)(b+2)`: a product, not one group
            return "group" if e[0] in close or e.startswith("\\{") else "plain"
    return "plain"
