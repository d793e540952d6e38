"""Grading-only units and angles: two answers that carry different units, degrees against radians.

The clustering canonical form drops unit words (`3 \\text{ hours}` -> 3), which is right against a bare gold
but merges `3 hours` with `3 days`. A grader compares units when both sides carry one it knows: the same
unit (`h` / `hours`) passes, another unit of the same kind is converted (`2 hours` = `120 minutes`), and
anything else differs. An unknown unit word is ignored as before. Angles: a degree mark inside a trig
argument is the factor pi/180 (`\\sin 30^\\circ` = 1/2), and an angle in degrees against one written with
pi is compared in radians (`30^\\circ` = `\\frac{\\pi}{6}`); `30^\\circ` against `30` stays equal (the
canonical form drops the mark). docs/answers.md §4 is the spec.

    from seedgrpo.grading_units import units_differ, converted
    units_differ("3 \\text{ hours}", "3 \\text{ days}")    # True
    converted("2 hours", "120 minutes")                     # ('120', '120')

Pure Python (re, fractions): the grader's worker processes load this file without the seedgrpo package.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["read_unit", "units_differ", "converted", "strip_spaced_unit", "trig_degrees", "degrees_as_radians"]

_S, _L, _G = "time", "length", "mass"
# alias -> (kind, size in the kind's base unit). Years and months have no fixed length in days: each is its
# own kind, so `1 year` against `365 days` is not converted (it differs, as a grader marking units would say).
_UNITS: dict[str, tuple[str, Fraction]] = {}
for _names, _kind, _size in [
    ("s sec secs second seconds", _S, 1), ("min mins minute minutes", _S, 60), ("h hr hrs hour hours", _S, 3600),
    ("day days", _S, 86400), ("week weeks wk", _S, 604800), ("month months", "month", 1),
    ("year years yr yrs", "year", 1),
    ("mm millimeter millimeters millimetre millimetres", _L, Fraction(1, 1000)),
    ("cm centimeter centimeters centimetre centimetres", _L, Fraction(1, 100)),
    ("m meter meters metre metres", _L, 1), ("km kilometer kilometers kilometre kilometres", _L, 1000),
    ("in inch inches", _L, Fraction(254, 10000)), ("ft foot feet", _L, Fraction(3048, 10000)),
    ("yd yard yards", _L, Fraction(9144, 10000)), ("mi mile miles", _L, Fraction(1609344, 1000)),
    ("mg milligram milligrams", _G, Fraction(1, 1000)), ("g gram grams", _G, 1),
    ("kg kilogram kilograms", _G, 1000),
    ("ml mL milliliter milliliters millilitre millilitres", _L + "^3", Fraction(1, 10 ** 6)),
    ("l L liter liters litre litres", _L + "^3", Fraction(1, 1000)),  # in cubic meters
]:
    for _name in _names.split():
        _UNITS[_name] = (_kind, Fraction(_size))

_SPACING = r"(?:\\[,;:! ]|\\quad|\\qquad|~|\s)*"
_NUMBER_END = r"(?:\d|\}|\\pi)"
# A trailing unit: `\text{ hours}`, `\mathrm{km/h}`, `\text{cm}^2`, or a bare word after a space (`5 hours`).
_TAIL = re.compile(rf"(?P<value>.*?{_NUMBER_END}){_SPACING}"
                   rf"(?:\\(?:text|mathrm|mbox|textrm|rm)\s*\{{(?P<braced>[^{{}}]*)\}}(?P<power>\^\{{?\d\}}?)?"
                   rf"|(?<=\s)(?P<bare>[A-Za-z]{{2,}}(?:\s*/\s*[A-Za-z]+)?(?:\^\{{?\d\}}?)?))\s*\.?\s*\Z", re.S)
_FACTOR = re.compile(r"([A-Za-z]+)(?:\^\{?(\d)\}?)?\Z")


def read_unit(s: str) -> tuple[str, dict[str, int], Fraction] | None:
    """(value text, kind exponents, size) of an answer that ends with a unit built from known units
    (`60 \\text{ km/h}` -> ('60', {'length': 1, 'time': -1}, 1000/3600)), else None."""
    m = _TAIL.match(s.strip())
    if not m:
        return None
    text = m["braced"] if m["braced"] is not None else m["bare"]
    if m["bare"] is not None and m["bare"].split("/")[0].strip() == "in":  # `x \in`, "in" as a word: no inch
        return None
    kinds: dict[str, int] = {}
    size = Fraction(1)
    numerator, *denominators = text.split("/")
    for sign, part in [(1, numerator)] + [(-1, d) for d in denominators]:
        tokens = part.replace("\\cdot", " ").split()
        if not tokens:
            return None
        for token in tokens:
            f = _FACTOR.match(token)
            if not f or f[1] not in _UNITS:
                return None
            kind, unit_size = _UNITS[f[1]]
            power = int(f[2] or 1) * sign
            base, _, cube = kind.partition("^")
            kinds[base] = kinds.get(base, 0) + power * (int(cube) if cube else 1)
            size *= unit_size ** power
    if m["power"]:  # `\text{cm}^2`: the whole unit squared
        n = int(m["power"].strip("^{}"))
        kinds, size = {k: v * n for k, v in kinds.items()}, size ** n
    return m["value"].strip(), {k: v for k, v in kinds.items() if v}, size


def units_differ(pred: str, gold: str) -> bool:
    """Both sides carry a known unit and the units are not the same unit (`3 hours` / `3 days`)."""
    a, b = read_unit(pred), read_unit(gold)
    return a is not None and b is not None and a[1:] != b[1:]


def converted(pred: str, gold: str) -> tuple[str, str] | None:
    """The pair with the prediction's value converted into the gold's unit of the same kind, units dropped
    (`2 hours` / `120 minutes` -> `120` / `120`); None unless both carry different units of one kind."""
    a, b = read_unit(pred), read_unit(gold)
    if a is None or b is None or a[1] != b[1] or a[2] == b[2]:
        return None
    factor = a[2] / b[2]
    value = _plain_number(a[0])
    if value is not None:
        return _fraction_text(value * factor), b[0]
    return f"{_fraction_text(factor)}\\cdot({a[0]})", b[0]


_SPACED_UNIT = re.compile(rf"(.*?{_NUMBER_END})\s*(?:(?:\\[,;:! ]|\\quad|\\qquad|~)\s*)+"
                          r"\\(?:text|mathrm|mbox|textrm|rm)\s*\{\s*[A-Za-z][A-Za-z/ .]*\}(?:\^\{?\d\}?)?\s*\Z", re.S)


def strip_spaced_unit(s: str) -> str:
    """`6 \\, \\mathrm{N}` -> `6`: a unit group set off by a spacing macro (the canonical form keeps a
    one-letter group as a factor, `2\\mathrm{i}`; after `\\,` it is a unit). `\\mathrm{i}` and
    `\\mathrm{e}` stay: they are numbers."""
    m = _SPACED_UNIT.match(s.strip())
    if not m or re.search(r"\{\s*[ie]\s*\}", s[len(m[1]):]):
        return s
    return m[1]


_DEGREE_MARK = r"(?:\^\s*(?:\{\s*\\circ\s*\}|\\circ)|°|\\degree(?![A-Za-z]))"
_NUMBER = r"-?\d+(?:\.\d+)?"
_TRIG_DEGREES = re.compile(rf"(\\(?:sin|cos|tan|cot|sec|csc))\s*(?:\(\s*({_NUMBER})\s*{_DEGREE_MARK}\s*\)|"
                           rf"\{{\s*({_NUMBER})\s*{_DEGREE_MARK}\s*\}}|({_NUMBER})\s*{_DEGREE_MARK})")
_ANGLE = re.compile(rf"\s*({_NUMBER})\s*(?:{_DEGREE_MARK}|\s*(?:\\text\{{\s*)?degrees?(?:\s*\}})?)\s*\.?\s*\Z")


def trig_degrees(s: str) -> str:
    """`\\sin 30^\\circ` -> `\\sin(\\frac{\\pi}{6})`: degrees inside a trig argument, in radians."""
    return _TRIG_DEGREES.sub(lambda m: f"{m[1]}({_pi_multiple(Fraction(m[2] or m[3] or m[4]) / 180)})", s)


def degrees_as_radians(s: str, other: str, split_top) -> str:
    """Each element that is an angle in degrees (`30^\\circ`, `45 degrees`) in radians (`\\frac{\\pi}{6}`),
    when the other side writes its angles with pi and no degree mark; `split_top` is the canonicalizer's
    top-level splitter. A bare number against pi is not an angle: `30` / `\\frac{\\pi}{6}` stay different."""
    if "\\pi" not in other or re.search(_DEGREE_MARK + r"|degree", other):
        return s
    parts = split_top(s, ",")
    angles = [_ANGLE.match(x) for x in parts]
    if not all(angles):
        return s
    return ", ".join(_pi_multiple(Fraction(m[1]) / 180) for m in angles)


def _pi_multiple(k: Fraction) -> str:
    sign, k = ("-" if k < 0 else ""), abs(k)
    top = "\\pi" if k.numerator == 1 else f"{k.numerator}\\pi"
    return f"{sign}{top}" if k.denominator == 1 else f"{sign}\\frac{{{top}}}{{{k.denominator}}}"


def _plain_number(s: str) -> Fraction | None:
    t = s.replace(" ", "")
    if re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", t):
        return Fraction(t)
    m = re.fullmatch(r"([-+]?)\\frac\{(\d+)\}\{(\d+)\}", t)
    if m and int(m[3]):
        return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] == "-" else 1)
    return None


def _fraction_text(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
