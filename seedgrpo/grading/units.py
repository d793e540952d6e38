"""Grading-only units and angles: two answers that carry different units, degrees against radians.

The clustering canonical form drops unit words (`3 \\text{ hours}` -> 3), which is right against a bare gold
but merges `3 hours` with `3 days`. A grader compares units when both sides carry one it knows: the same
unit (`h` / `hours`) passes, another unit of the same kind is converted (`2 hours` = `120 minutes`), and
anything else differs. An unknown unit word is ignored as before. Angles: a degree mark inside a trig
argument is the factor pi/180 (`\\sin 30^\\circ` = 1/2), and an angle in degrees against one written with
pi is compared in radians (`30^\\circ` = `\\frac{\\pi}{6}`); `30^\\circ` against `30` stays equal (the
canonical form drops the mark). docs/answers.md §4 is the spec.

    from seedgrpo.grading.units import units_differ, converted
    units_differ("3 \\text{ hours}", "3 \\text{ days}")    # True
    converted("2 hours", "120 minutes")                     # ('120', '120')

Pure Python (re, fractions; no torch): the grader's worker processes import it.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["read_unit", "units_differ", "converted", "unit_values", "keep_glued_letters", "strip_spaced_unit",
           "trig_degrees", "degrees_as_radians"]

# A unit's kind is its dimension in SI base units (kg, m, s, A, K, mol), so `km/h` and `m/s` are one kind and
# `J` is `N m`; its size is in the base units. Years and months have no fixed length in days: each is its own
# kind, so `1 year` against `365 days` is not converted (it differs, as a grader marking units would say).


def _dims(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split():
        base, _, power = part.partition("^")
        out[base] = out.get(base, 0) + int(power or 1)
    return out


# symbol -> (dimension, size in base units); the SI symbols here also take the prefixes below.
_SI = {
    "m": ("m", 1), "g": ("kg", Fraction(1, 1000)), "s": ("s", 1), "A": ("A", 1), "K": ("K", 1),
    "mol": ("mol", 1), "L": ("m^3", Fraction(1, 1000)), "l": ("m^3", Fraction(1, 1000)),
    "J": ("kg m^2 s^-2", 1), "eV": ("kg m^2 s^-2", Fraction(1602176634, 10 ** 28)), "N": ("kg m s^-2", 1),
    "W": ("kg m^2 s^-3", 1), "Pa": ("kg m^-1 s^-2", 1), "Hz": ("s^-1", 1), "C": ("A s", 1),
    "V": ("kg m^2 s^-3 A^-1", 1), "F": ("kg^-1 m^-2 s^4 A^2", 1), "T": ("kg s^-2 A^-1", 1),
    "Ω": ("kg m^2 s^-3 A^-2", 1), "Wh": ("kg m^2 s^-2", 3600), "M": ("mol m^-3", 1000),
}
_PREFIXES = {"k": 1000, "M": 10 ** 6, "G": 10 ** 9, "m": Fraction(1, 1000), "µ": Fraction(1, 10 ** 6),
             "u": Fraction(1, 10 ** 6), "n": Fraction(1, 10 ** 9), "c": Fraction(1, 100), "p": Fraction(1, 10 ** 12)}
_UNITS: dict[str, tuple[dict[str, int], Fraction]] = {}
for _symbol, (_dim, _size) in _SI.items():
    _UNITS[_symbol] = (_dims(_dim), Fraction(_size))
    for _prefix, _factor in _PREFIXES.items():
        _UNITS.setdefault(_prefix + _symbol, (_dims(_dim), _factor * Fraction(_size)))
del _UNITS["Ms"]  # `Ms` is no unit people write; `mM`, `cm`, `mm` stay
# Names and non-SI units (after the generated ones: `min` is minutes, `mi` miles, `ft` feet).
for _names, _dim, _size in [
    ("sec secs second seconds", "s", 1), ("min mins minute minutes", "s", 60),
    ("h hr hrs hour hours", "s", 3600), ("day days", "s", 86400), ("week weeks wk", "s", 604800),
    ("month months", "month", 1), ("year years yr yrs", "year", 1),
    ("millimeter millimeters millimetre millimetres", "m", Fraction(1, 1000)),
    ("centimeter centimeters centimetre centimetres", "m", Fraction(1, 100)),
    ("meter meters metre metres", "m", 1), ("kilometer kilometers kilometre kilometres", "m", 1000),
    ("nanometer nanometers nanometre nanometres", "m", Fraction(1, 10 ** 9)),
    ("in inch inches", "m", Fraction(254, 10000)), ("ft foot feet", "m", Fraction(3048, 10000)),
    ("yd yard yards", "m", Fraction(9144, 10000)), ("mi mile miles", "m", Fraction(1609344, 1000)),
    ("milligram milligrams", "kg", Fraction(1, 10 ** 6)), ("gram grams", "kg", Fraction(1, 1000)),
    ("kilogram kilograms", "kg", 1),
    ("ml milliliter milliliters millilitre millilitres", "m^3", Fraction(1, 10 ** 6)),
    ("liter liters litre litres", "m^3", Fraction(1, 1000)),
    ("joule joules", "kg m^2 s^-2", 1), ("newton newtons", "kg m s^-2", 1), ("watt watts", "kg m^2 s^-3", 1),
    ("volt volts", "kg m^2 s^-3 A^-1", 1), ("amp amps ampere amperes", "A", 1), ("hertz", "s^-1", 1),
    ("pascal pascals", "kg m^-1 s^-2", 1), ("kelvin", "K", 1), ("coulomb coulombs", "A s", 1),
    ("ohm ohms", "kg m^2 s^-3 A^-2", 1), ("cal calorie calories", "kg m^2 s^-2", Fraction(4184, 1000)),
    ("kcal", "kg m^2 s^-2", 4184), ("atm", "kg m^-1 s^-2", 101325), ("bar", "kg m^-1 s^-2", 10 ** 5),
    ("mph", "m s^-1", Fraction(1609344, 3600 * 1000)),
]:
    for _name in _names.split():
        _UNITS[_name] = (_dims(_dim), Fraction(_size))

_SPACING = r"(?:\\[,;:! ]|\\quad|\\qquad|~|\s)*"
_NUMBER_END = r"(?:\d|\}|\\pi)"
_GROUP = r"\\(?:text|mathrm|mbox|textrm|rm)\s*\{(?:[^{}]|\{[^{}]*\})*\}"  # one level of braces: `s^{-1}`
_POWER = r"\^\s*(?:\{\s*-?\d\s*\}|-?\d)"
# A trailing unit: `\text{ hours}`, `\mathrm{m\,s^{-1}}`, `\text{ N m}^2/\text{kg}^2`, `\mu F`, or a bare word
# after a space (`5 hours`, `5 m/s`): groups, bare words, `/`, `\cdot` and powers, up to the end.
_UNIT_PIECE = rf"(?:{_GROUP}|\\mu\s*[A-Za-z]*|[A-Za-zµΩ]+|{_POWER}|/|\\cdot|\\,|\\;|\\ |~|\s)"
_TAIL = re.compile(rf"(?P<value>.*?{_NUMBER_END}){_SPACING}(?P<unit>(?:{_GROUP}|\\mu|(?<=\s)[A-Za-zµΩ])"
                   rf"{_UNIT_PIECE}*?)\s*\.?\s*\Z", re.S)
_FACTOR = re.compile(r"([A-Za-zµΩ]+)(?:\^\{?(-?\d)\}?)?\Z")


def _unit_text(unit: str) -> str:
    """`\\mathrm{m\\,s^{-1}}` -> `m s^-1`: markup unwrapped, spacing and `\\cdot` as spaces, powers glued on."""
    t = re.sub(r"\\(?:text|mathrm|mbox|textrm|rm)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", r" \1 ", unit)
    t = re.sub(r"\\mu(?![A-Za-z])\s*|\\textmu\s*", "µ", t).replace("\\Omega", "Ω")
    t = re.sub(r"\\[,;: ]|\\cdot|~", " ", t)
    t = re.sub(r"\s*\^\s*\{?\s*(-?\d)\s*\}?", r"^\1", t)  # `s^{-1}`, `m}^2` (the brace is gone) -> `s^-1`
    t = re.sub(r"\s*/\s*", "/", t)
    return re.sub(r"(?<=[A-Za-zµΩ])\s+(?=\^)", "", t).strip()


def read_unit(s: str) -> tuple[str, dict[str, int], Fraction] | None:
    """(value text, dimension, size) of an answer that ends with a unit built from known units
    (`60 \\text{ km/h}` -> ('60', {'m': 1, 's': -1}, 1000/3600)), else None. A bare single letter after a space
    counts (`5 m/s`, `12 N`); a bare word `in` does not (`x \\in`, "in" as a word)."""
    m = _TAIL.match(s.strip())
    if not m:
        return None
    text = _unit_text(m["unit"])
    bare = not m["unit"].lstrip().startswith("\\")
    if not text or (bare and (text.split("/")[0].strip() == "in" or " " in text)):
        return None  # a bare unit is one word (`m/s`, `hours`): `2 m g` is a product of variables
    if bare and len(text) == 1 and not re.search(r"\d\s+[A-Za-zµΩ]\s*\.?\s*\Z", s):
        return None  # `x + y`: a lone letter is a unit only right after a number
    kinds: dict[str, int] = {}
    size = Fraction(1)
    numerator, *denominators = text.split("/")
    for sign, part in [(1, numerator)] + [(-1, d) for d in denominators]:
        tokens = part.split()
        if not tokens:
            return None
        for token in tokens:
            f = _FACTOR.match(token)
            if not f or f[1] not in _UNITS:
                return None
            dims, unit_size = _UNITS[f[1]]
            power = int(f[2] or 1) * sign
            for base, n in dims.items():
                kinds[base] = kinds.get(base, 0) + n * power
            size *= unit_size ** power
    value, kinds = m["value"].strip(), {k: v for k, v in kinds.items() if v}
    last = _last_number(value)
    inner = read_unit(value[:len(value) - len(last)]) if last and last != value else None
    if inner and inner[1] == kinds and (a := _plain_number(inner[0])) is not None:
        value = _fraction_text((a * inner[2] + Fraction(last) * size) / size)  # `3 h 20 min` -> 200 (min)
    return value, kinds, size


def _last_number(s: str) -> str:
    m = re.search(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*\Z", s)
    return m[0] if m else ""


def units_differ(pred: str, gold: str) -> bool:
    """Both sides carry a known unit and the units are not the same unit (`3 hours` / `3 days`)."""
    a, b = read_unit(pred), read_unit(gold)
    return a is not None and b is not None and a[1:] != b[1:]


def unit_values(pred: str, gold: str) -> tuple[str, str]:
    """The values of a pair whose units are the same (`5\\,\\mathrm{m\\,s^{-1}}` / `5 \\text{ m/s}` -> `5` / `5`),
    or of the side that carries a known unit when the other has none (`6.67\\times10^{-11}\\ \\mathrm{N\\,m^2/kg^2}`
    against a bare number): the canonical form drops simple units itself, not units with `\\,` and powers."""
    a, b = read_unit(pred), read_unit(gold)
    if a is not None and b is not None:
        return (a[0], b[0]) if a[1:] == b[1:] else (pred, gold)
    if a is not None and not _MARKED_UNIT.search(gold):
        return a[0], gold
    if b is not None and not _MARKED_UNIT.search(pred):
        return pred, b[0]
    return pred, gold


# A unit in markup (`\text{ cm}`, `\mathrm{kg}`) or a word after a space (`5 hours`): a unit, not variables.
_MARKED_UNIT = re.compile(r"\\(?:text|mathrm|mbox|textrm|rm)\s*\{\s*[A-Za-zµ\\]|\d\s+[A-Za-z]{2,}\s*\.?\s*\Z")
# Letters glued to a number at the end (`2mg`, `\frac{\sqrt3}{2}mg`, `5km/h`): the canonical form drops them
# as a unit, but they may be variables (m g).
_GLUED = re.compile(r"(?<=[\d}])([A-Za-z]{2,})((?:\^\{?-?\d\}?)?(?:/[A-Za-z]+(?:\^\{?-?\d\}?)?)?\s*\.?\s*)\Z")


def keep_glued_letters(s: str, other: str) -> str:
    """`2mg` -> `2m g` (the canonical form keeps `m g` as the product mg) unless the other side carries a unit:
    then a known unit is marked up to be compared (`5cm` / `5 \\text{ mm}` -> `5 \\text{cm}`). So `2mg` / `2`
    differ, `2mg` = `2 m g` = `2gm`, and `5cm` = `5 \\text{ cm}` = `50 \\text{ mm}`."""
    m = _GLUED.search(s)
    if not m:
        return s
    if read_unit(other) is not None or _MARKED_UNIT.search(other):  # a unit: marked up, so it is compared
        marked = f"{s[:m.start()]} \\text{{{m[1]}{m[2].strip().rstrip('.')}}}"
        return marked if read_unit(marked) is not None else s
    return s[:m.start()] + " ".join(m[1]) + m[2]


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
    m = re.fullmatch(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]|(?:\\times|\\cdot|x)10\^)\{?([-+]?\d{1,3})\}?", t)
    if m:  # `4.5\times10^{-7}`, `3e8`: exact, so that a converted pair is settled without sympy
        return Fraction(m[1]) * Fraction(10) ** int(m[2])
    m = re.fullmatch(r"([-+]?)\\frac\{(\d+)\}\{(\d+)\}", t)
    if m and int(m[3]):
        return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] == "-" else 1)
    return None


def _fraction_text(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
