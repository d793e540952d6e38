"""Grading-only rules: from two final answers to the forms and values the grader compares.

The clustering hash (seedgrpo.grading.canonical) never merges two different answers and stays strict; grading is
kinder where a human grader would be: a label on one side only, an equation chain, a list joined by "and",
an inequality against its interval, percent, a decimal approximation, times of day, units (units.py:
units and angles; shapes.py: matrices; sets.py: intervals). The final answers
come from seedgrpo.grading.reading (prose, boxes, choices). docs/answers.md §4 is the spec; every rule below
is one paragraph there.

    from seedgrpo.grading.rules import pair_forms
    pair_forms("x = 2+2 = 4", "4")                        # [('x = 2+2 = 4', '4'), ('4', '4')]

Pure Python (re, fractions; no torch): the grader's worker processes import it.
"""
from __future__ import annotations

import re
from fractions import Fraction

from . import reference, sets, shapes, units

__all__ = ["pair_forms", "value_pairs", "form_verdict", "time_of_day", "ratio", "percent_value",
           "decimal_places", "decimal_matches", "significant_figures_match", "reads_as_word",
           "MIN_SIGNIFICANT_DIGITS", "LABEL", "APPROXIMATE_WORDS", "MATH_FUNCTIONS"]

# A decimal stands for an exact value when it is that value rounded or truncated to its own digits and has
# at least this many significant digits: 3.1416 is pi, 3.14 is not (it is also 157/50, a different answer).
MIN_SIGNIFICANT_DIGITS = 4

_PERCENT = re.compile(r"\\?%")
MATH_FUNCTIONS = {"sqrt", "log", "ln", "sin", "cos", "tan", "cot", "sec", "csc", "exp", "pi", "arcsin",
                   "arccos", "arctan", "and", "or", "frac", "infty", "mod", "gcd", "lcm"}
_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::[0-5]\d)?\s*(?:\\text\{\s*|\\mathrm\{\s*)?([ap])?\.?\s*(?:m\.?)?\s*\}?\Z",
                   re.I)
_RATIO = re.compile(r"(-?\d+(?:\.\d+)?)\s*:\s*(-?\d+(?:\.\d+)?)\Z")
_DECIMAL = re.compile(r"[-+]?\d*\.\d+\Z")
# A name a value is given to: `x`, `a_5`, `\\theta`, `\\text{Area}`, a function at a letter or a constant (`f(x)`,
# `f(2)`, `f^{-1}(x)`, `g'(0)`), an angle (`\\angle ABC`, `m\\angle A`).
_NAME = (r"(?:[A-Za-z](?:\^\{-1\}|'{1,2})?\(\s*(?:[A-Za-z]|-?\d+(?:\.\d+)?)\s*\)"
         r"|(?:m\s*)?\\(?:angle|measuredangle)\s*[A-Z]{1,3}|\|\s*[A-Z]{1,3}\s*\||\\overline\{[A-Z]{1,3}\}"
         r"|[A-Z]{2,3}(?![A-Za-z])|[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+|\\text\{[A-Za-z ]+\})")
LABEL = re.compile(rf"\s*(?:{_NAME}(?:\s*:\s*{_NAME})*|\(\s*{_NAME}(?:\s*,\s*{_NAME})+\s*\))\s*=\s*")
_LIST_JOIN = re.compile(r"\s*(?:;|\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)\s*(?:\\text\{\s*(?:and|or)\s*\})?|"
                        r"(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*")
_INEQUALITY = re.compile(r"\\(?:leq?|geq?|leqslant|geqslant)(?![A-Za-z])|<=?|>=?|≤|≥")


# ------------------------------------------------------------------------------------------ pair forms
def pair_forms(pred: str, gold: str) -> list[tuple[str, str]]:
    """(pred, gold) and the rewritten pairs a grader also accepts: a label on one side only dropped
    (`(a,b)=(1,4)` / `(1,4)`, `3=y` / `y=3`, `P=2, Q=5` / `2, 5`), named values against a tuple as the tuple,
    an equation chain read by its final value when the gold has no `=` (`\\approx` reads like `=`), two
    equations as `lhs-(rhs)=0`, lists joined by "and" / "or" / ";", an inequality written as the interval it
    describes when the other side is an interval, units and angles (units.py), matrices written other
    ways (shapes.py). Percent and decimals are compared by value later."""
    pred, gold = units.keep_glued_letters(pred, gold), units.keep_glued_letters(gold, pred)  # `2mg` / `2`
    forms = [(pred, gold)]
    comma_read = (_decimal_comma(pred, gold), _decimal_comma(gold, pred))
    if comma_read != forms[0]:
        forms.append(comma_read)
    # `x \\ge 2 \\text{ and } x \\le 6` is one interval before "and" makes a list
    p, g = (_swap_reversed_label(_approximate(_as_list(sets.set_form(sets.conjunction(x))))) for x in (pred, gold))
    equations = []
    if "=" not in g:
        p = _named_chain_end(p) or _chain_end(_unlabelled(_named_tuple(p, g)))
    elif "=" not in p:
        g = _named_chain_end(g) or _chain_end(_unlabelled(_named_tuple(g, p)))
    else:
        p, g = _sorted_labels(_unpacked(p)), _sorted_labels(_unpacked(g))
        equations = _equation_forms(p, g)
    split = reference._split_top
    if units.units_differ(p, g):  # `3 hours` / `3 days`: only the value converted to the gold's unit may match
        converted = units.converted(p, g)
        return forms + ([converted] if converted else [])
    p, g = units.unit_values(p, g)
    p, g = units.strip_spaced_unit(p), units.strip_spaced_unit(g)
    p, g = units.trig_degrees(p), units.trig_degrees(g)
    p = units.degrees_as_radians(p, g, split)
    g = units.degrees_as_radians(g, p, split)
    p, g = _plus_minus(p, g), _plus_minus(g, p)
    p, g = _set_as_list(p, g), _set_as_list(g, p)
    if sets.looks_like_interval(g):
        p = sets.inequality_interval(p) or p
    if sets.looks_like_interval(p):
        g = sets.inequality_interval(g) or g
    elif (ip := sets.inequality_interval(p)) and (ig := sets.inequality_interval(g)) \
            and _letters(p) == _letters(g):  # `x > 2` / `y > 2` are different claims
        p, g = ip, ig  # `2 \\le x \\le 6` / `6 \\ge x \\ge 2`: both inequalities, compared as intervals
    p, g = shapes.matrix_form(p, g, split), shapes.matrix_form(g, p, split)
    if (p, g) != (pred, gold):
        forms.append((p, g))
    return forms + [f for f in equations if f not in forms]


# `1,22`: a decimal comma when the digits after it cannot be a thousands group (not three of them)
_DECIMAL_COMMA = re.compile(r"\s*([-+]?\d+),(\d{1,2}|\d{4,})\s*\Z")
_NON_INTEGER = re.compile(r"\s*[-+]?(?:\d*\.\d+|\d+/\d+|\\[dt]?frac\s*\{?\d+\}?\s*\{?\d+\}?)\s*\Z")


def _decimal_comma(s: str, other: str) -> str:
    """`1,22` as 1.22 when the other side is one number that is not an integer (`1.22`, `\\frac12`): a list
    `1, 22` never equals one number, and against an integer (`122`) the comma may be a misplaced separator."""
    m = _DECIMAL_COMMA.match(s)
    return f"{m[1]}.{m[2]}" if m and _NON_INTEGER.match(other) else s


APPROXIMATE_WORDS = r"approximately|approx\.?|about|around|roughly|nearly"  # also read by answer_reading
_APPROX_WORD = re.compile(rf"\A\s*(?:{APPROXIMATE_WORDS})\s+", re.I)


def _approximate(s: str) -> str:
    """`x \\approx 1.4142`, `≈ 3.1416`, "approximately 2.2361": an approximation is read like `=` (the decimal
    tolerance then decides whether the value stands for the exact one)."""
    if "\\approx" not in s and "≈" not in s and not _APPROX_WORD.match(s):
        return s
    t = re.sub(r"\\approx(?![A-Za-z])|≈", "=", _APPROX_WORD.sub("", s, count=1))
    return re.sub(r"\A\s*=\s*", "", t)


def _equation(s: str) -> tuple[str, str] | None:
    """(lhs, rhs) of one equation with a single `=` and no list or inequality around it."""
    if _INEQUALITY.search(s) or "\\neq" in s or len(reference._split_top(s, ",")) > 1:
        return None
    sides = re.split(r"(?<![<>!\\])=", s)
    return (sides[0].strip(), sides[1].strip()) if len(sides) == 2 and all(x.strip() for x in sides) else None


def _equation_forms(p: str, g: str) -> list[tuple[str, str]]:
    """Two equations: both labels dropped when both sides are labelled values, none at a constant
    (`y = \\frac{x-3}{2}` / `f^{-1}(x) = \\frac{x-3}{2}`), and both written `lhs-(rhs)=0` unless both are
    named numbers (`x=2`), so that they are compared as equations up to a constant factor (`2x-y+1=0` =
    `y=2x+1`): the canonical form drops a leading `y=` as a label, which would turn one side into a value."""
    ep, eg = _equation(p), _equation(g)
    if ep is None or eg is None:
        return []
    forms = []
    named = [re.fullmatch(_NAME, lhs) is not None for lhs, _ in (ep, eg)]
    if all(named) and not re.search(r"\(\s*-?\d", ep[0] + eg[0]):  # `f(2)=7` / `f(3)=7`: different claims
        forms.append((ep[1], eg[1]))
    if not (all(named) and not _has_letters(ep[1]) and not _has_letters(eg[1])):
        forms.append(tuple(f"{lhs}-({rhs})=0" for lhs, rhs in (ep, eg)))
    return forms


def _named_tuple(s: str, other: str) -> str:
    """`x=4, y=-1` -> `(4,-1)` against a tuple of as many entries: named values in the order written."""
    o = other.strip()
    if not (o.startswith("(") and o.endswith(")")) or "=" in o:
        return s
    parts = reference._split_top(s, ",")
    names = [m.group(0).replace(" ", "") if (m := LABEL.match(x)) else None for x in parts]
    if len(parts) < 2 or None in names or len(set(names)) != len(names) \
            or len(reference._split_top(o[1:-1], ",")) != len(parts):
        return s
    return "(" + ", ".join(LABEL.sub("", x, count=1).strip() for x in parts) + ")"


_TUPLE_LABEL = re.compile(rf"\s*\(\s*({_NAME}(?:\s*,\s*{_NAME})+)\s*\)\s*=\s*\((.*)\)\s*\Z")


def _unpacked(s: str) -> str:
    """`(a, b) = (1, 4)` -> `a=1, b=4` (then sorted by name against the other side's named values)."""
    m = _TUPLE_LABEL.match(s)
    if not m:
        return s
    names = [x.strip() for x in m[1].split(",")]
    values = reference._split_top(m[2], ",")
    if len(values) != len(names) or len(set(names)) != len(names):
        return s
    return ", ".join(f"{n}={v.strip()}" for n, v in zip(names, values))


def _plus_minus(s: str, other: str) -> str:
    """`1 \\pm \\sqrt2` -> `1+\\sqrt2, 1-\\sqrt2` when the other side does not use \\pm; in a tuple,
    `(\\pm 1, 0)` -> `(+1, 0), (-1, 0)` (two points; not in a set or interval, where it is one object)."""
    if s.count("\\pm") != 1 or "\\pm" in other:
        return s
    t = s.strip()
    if "," in s and not (t.startswith("(") and t.endswith(")") and len(reference._split_top(t, ",")) == 1):
        return s
    return s.replace("\\pm", "+") + ", " + s.replace("\\pm", "-")


def _set_as_list(s: str, other: str) -> str:
    """A set `\\{1,2\\}` against a bare list `1, 2` (no brackets around it): both are collections."""
    t = s.strip()
    if t.startswith("\\{") and t.endswith("\\}") and t.count("\\{") == 1 and t != "\\{\\}":
        o = other.strip()
        if o and o[0] not in "([\\" and not _INEQUALITY.search(o):
            return t[2:-2]
        split = reference._split_top  # `\\{(1,2),(3,4)\\}` / `(3,4),(1,2)`: a set of tuples, a list of them
        if o.startswith("(") and len(split(o, ",")) == len(split(t[2:-2], ",")) > 1:
            return t[2:-2]
    return s


def _sorted_labels(s: str) -> str:
    """`y=2, x=1` -> `x=1,y=2`: named values compared by name when every element has its own name."""
    parts = reference._split_top(s, ",")
    names = [m.group(0).replace(" ", "") if (m := LABEL.match(x)) else None for x in parts]
    if len(parts) < 2 or None in names or len(set(names)) != len(names):
        return s
    return ",".join(x.strip() for _, x in sorted(zip(names, parts)))


def _as_list(s: str) -> str:
    parts = [x for x in _LIST_JOIN.split(s) if x.strip()]
    return ", ".join(x.strip() for x in parts) if len(parts) > 1 else s


def _swap_reversed_label(s: str) -> str:
    """`3=y` -> `y=3`: a lone name on the right of the only `=`."""
    if s.count("=") != 1 or any(op in s for op in ("<", ">", "\\le", "\\ge")):
        return s
    lhs, rhs = s.split("=")
    name = rhs.strip()
    if re.fullmatch(_NAME, name) and name not in lhs and not re.fullmatch(rf"\s*{_NAME}\s*", lhs):
        return f"{name}={lhs.strip()}"
    return s


# A quantity's name in science answers: `pH`, `pK_a`, `\\Delta H`, `T_{1/2}` (a short letter name; with one `=`).
_QUANTITY = re.compile(r"\A\s*(?:\\Delta\s*)?[A-Za-z]{1,3}(?:_\{?[A-Za-z0-9/]+\}?)?\s*=\s*(?=[^=]*\Z)")


def _unlabelled(s: str) -> str:
    """Drop `name=` from every top-level element (`(a,b)=(1,4)` -> `(1,4)`, `P=2, Q=5` -> `2, 5`, `pH = 2.87`
    -> `2.87`)."""
    parts = reference._split_top(s, ",")
    stripped = [LABEL.sub("", x, count=1) if LABEL.match(x) else _QUANTITY.sub("", x, count=1) for x in parts]
    return ",".join(stripped)


def _named_chain_end(s: str) -> str | None:
    """The value ending a named chain of three members or more, `A = \\pi r^2 = 9\\pi` -> `9\\pi` (a name,
    its formula, its value: letters in the middle are the formula's), or None."""
    if "=" not in s or len(reference._split_top(s, ",")) > 1 or _INEQUALITY.search(s):
        return None
    parts = [x.strip() for x in re.split(r"(?<![<>!\\])=|\\approx", s)]
    if len(parts) < 3 or not re.fullmatch(_NAME, parts[0]) or not parts[-1]:
        return None
    return None if _has_letters(_TRAILING_TEXT.sub("", parts[-1])) else parts[-1]


def _chain_end(s: str) -> str:
    """The final value of `x = 2+2 = 4`, `\\frac{6}{2} = 3`, `m+n = 10+3 = 13` (top level, one element, no
    inequality): the last part, when the parts after the first hold no letters and the first is a name,
    holds no letters, or opens a chain of three parts or more. `x^2+y^2 = 25` is an equation: kept."""
    if "=" not in s or len(reference._split_top(s, ",")) > 1 or _INEQUALITY.search(s):
        return s
    parts = [x.strip() for x in re.split(r"(?<![<>!\\])=|\\approx", s)]
    while len(parts) > 2 and re.fullmatch(_NAME, parts[0]) and re.fullmatch(_NAME, parts[1]):
        parts.pop(0)  # `a = b = c = 4`: names linked to one value
    if not parts[-1] or any(_has_letters(_TRAILING_TEXT.sub("", x)) for x in parts[1:]):
        return s
    first = parts[0]
    if _has_letters(first) and len(parts) < 3 and not re.fullmatch(_NAME, first) and not (
            _LINEAR_NAMES.fullmatch(first) and not _has_letters(parts[-1])):
        return s
    return parts[-1]


# A unit after the value (`10 \\text{ J}`): the canonical form drops it, it is not a variable of the chain.
_TRAILING_TEXT = re.compile(r"\s*\\(?:text|mathrm|mbox|textrm)\s*\{[^{}]*\}(?:\^\{?\d\}?)?\s*\Z")
# `m+n = 7`, `a+b+c = 12`, `2a-b = 3`: the asked-for combination of named values, set to its value
_LINEAR_NAMES = re.compile(r"\s*[-+]?\s*\d*[A-Za-z](?:\s*[-+]\s*\d*[A-Za-z])*\s*")


def _letters(s: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", s)))


def _has_letters(s: str) -> bool:
    return bool(re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", s)))


# ------------------------------------------------------------------------------------ values: compared
def time_of_day(s: str) -> int | None:
    """Minutes after midnight of `H:MM` (optionally `a.m.` / `p.m.`, `\\text{ PM}`), or None."""
    m = _TIME.match(s.strip().replace("\\,", " ").replace("~", " "))
    if not m:
        return None
    hours, minutes, half = int(m[1]), int(m[2]), (m[3] or "").lower()
    if hours > 24 or (half and not 1 <= hours <= 12):
        return None
    if half == "p" and hours != 12:
        hours += 12
    elif half == "a" and hours == 12:
        hours = 0
    return (hours % 24) * 60 + minutes


def ratio(s: str) -> Fraction | None:
    """`3:4` -> 3/4 (two numbers joined by a colon), or None."""
    m = _RATIO.match(s.strip())
    if not m or Fraction(m[2]) == 0:
        return None
    return Fraction(m[1]) / Fraction(m[2])


def percent_value(s: str) -> str | None:
    """The answer without its `%` when it ends with one (after clean(), percent words are `\\%`)."""
    t = s.strip().rstrip(".").strip()
    if t.endswith("%"):
        body = _PERCENT.sub("", t).strip()
        return body or None
    return None


def decimal_places(s: str) -> tuple[Fraction, int] | None:
    """(exact value, decimal places) of a plain decimal literal with at least MIN_SIGNIFICANT_DIGITS
    significant digits (`3.1416` -> (3.1416, 4)), else None."""
    t = s.strip()
    if not _DECIMAL.match(t):
        return None
    digits = t.lstrip("+-").replace(".", "").lstrip("0")
    if len(digits) < MIN_SIGNIFICANT_DIGITS:
        return None
    return Fraction(t), len(t.split(".")[1])


def decimal_matches(decimal: Fraction, places: int, exact: Fraction) -> bool:
    """Whether `decimal` is `exact` rounded (half away from zero) or truncated to `places` decimal places,
    where `exact` is not itself a decimal of at most that many places (then the values are compared as they
    are: 0.1251 is not 1/8)."""
    scale = 10 ** places
    if (exact * scale).denominator == 1:
        return decimal == exact
    diff = (exact - decimal) * scale  # in units of the last place
    toward_zero = diff if decimal > 0 or (decimal == 0 and exact > 0) else -diff
    return abs(diff) <= Fraction(1, 2) or 0 <= toward_zero < 1


_RATIONAL = re.compile(r"-?\d+(?:/\d+)?\Z")


def exact_rational(canonical: str) -> Fraction | None:
    """The value of a canonical integer or fraction (`-3`, `7/2`), or None: `9/0` is no number (a policy may
    write it; it must grade as an unknown form, never raise)."""
    if not _RATIONAL.match(canonical):
        return None
    top, _, bottom = canonical.partition("/")
    return None if bottom and int(bottom) == 0 else Fraction(int(top), int(bottom or 1))
_SCIENTIFIC = re.compile(r"\s*([-+]?)(\d+)(?:\.(\d+))?\s*(?:[eE]\s*([-+]?\d+)|(?:\\times|\\cdot|x|×)\s*10\s*\^\s*"
                         r"(?:\{\s*([-+]?\d+)\s*\}|([-+]?\d)))?\s*\Z")
# A gold in scientific notation with this many significant digits is a measured value: a more precise
# prediction that rounds to it is the same measurement (`2.998 \\times 10^8` / `3.00 \\times 10^8`).
MIN_MEASURED_DIGITS = 3


def _measured(s: str) -> tuple[Fraction, int, int, bool] | None:
    """(value, exponent of the last written place, significant digits, scientific?) of a decimal or a number
    in scientific notation (`6.674e-11`, `3.00 \\times 10^{8}`), else None."""
    m = _SCIENTIFIC.match(s)
    if not m:
        return None
    whole, places = m[2], m[3] or ""
    exponent = m[4] or m[5] or m[6]
    power = int(exponent) if exponent else 0
    value = Fraction(whole + "." + (places or "0")) * Fraction(10) ** power * (-1 if m[1] == "-" else 1)
    digits = len((whole + places).lstrip("0"))
    return value, power - len(places), digits, exponent is not None


def significant_figures_match(pred: str, gold: str) -> bool:
    """A gold in scientific notation with at least MIN_MEASURED_DIGITS significant digits against a prediction
    written to a finer place that rounds (half away from zero) to it: `6.6743e-11` / `6.674 \\times 10^{-11}`.
    An exact-looking gold (`0.5`, `1.25`) is never rounded to."""
    g, p = _measured(gold), _measured(pred)
    if g is None or p is None or not g[3] or g[2] < MIN_MEASURED_DIGITS or p[1] >= g[1]:
        return False
    quantum = Fraction(10) ** g[1]
    scaled = abs(p[0]) / quantum
    rounded = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    return rounded * quantum * (-1 if p[0] < 0 else 1) == g[0]


def value_pairs(pred: str, gold: str) -> list[tuple[str, str]]:
    """The pairs to compare by value once percent is read: `25\\%` against a bare answer is 25 or 1/4;
    two percents compare their numbers."""
    pp, pg = percent_value(pred), percent_value(gold)
    if pp and pg:
        return [(pp, pg)]
    preds = [pp, f"\\frac{{{pp}}}{{100}}"] if pp else [pred]
    golds = [pg, f"\\frac{{{pg}}}{{100}}"] if pg else [gold]
    return [(a, b) for a in preds for b in golds]


def form_verdict(pred: str, gold: str, canonicalize, different=None) -> bool | None:
    """The verdict of the value rules on one form pair, or None when sympy has to decide: times of day
    (`2:30 p.m.` = `14:30`; a time equals only a time), ratios (`3:4` = `6:8`), equal canonical forms,
    exact rationals (different ones differ, unless one side is a decimal that rounds the other).
    `different(ca, cb)`, when given, says whether two canonical forms certainly differ (the caller passes
    seedgrpo.grading.quick_values.certainly_different, so that plainly different pairs need no worker)."""
    if units.units_differ(pred, gold):  # `3 hours` / `3 days` (pair_forms adds the converted values)
        return False
    tp, tg = time_of_day(pred), time_of_day(gold)
    if tp is not None or tg is not None:
        return tp is not None and tp == tg
    rp, rg = ratio(pred), ratio(gold)
    if rp is not None or rg is not None:
        return rp is not None and rp == rg
    if significant_figures_match(pred, gold):  # `2.998 \\times 10^8` / `3.00 \\times 10^8`
        return True
    if _BASE_SUBSCRIPT.search(pred + " " + gold):  # 52_8 is a base-8 numeral: only its own forms match
        return _same_numeral(pred, gold) or _canonical_pair_equal(pred, gold, canonicalize)
    undecided = False
    for a, b in value_pairs(pred, gold):
        ca, cb = canonicalize(a), canonicalize(b)
        if ca == cb and ca:
            return True
        if _is_word(ca) and _is_word(cb):  # Yes / yes, Monday / monday: words, not symbols
            return ca.casefold() == cb.casefold()
        if _has_word(ca) or _has_word(cb):  # `Evelyn` is a name, not E*v*e*l*y*n: only itself matches
            if ca.casefold() == cb.casefold():
                return True
            continue
        xa, xb = exact_rational(ca), exact_rational(cb)
        if xa is not None and xb is not None:
            if _rounds_to(a, xb) or _rounds_to(b, xa):
                return True
        elif ":" not in ca + cb and not (different and different(ca, cb)):
            undecided = True  # (a colon that is neither a time nor a ratio is never guessed by a parser)
    return None if undecided else False


_CONTROL_WORD = re.compile(r"\\[A-Za-z]+")
_LETTER_RUN = re.compile(r"[A-Za-z]{3,}")
_VOWEL = re.compile(r"[aeiouAEIOU]")


def reads_as_word(run: str) -> bool:
    """Whether a run of three letters or more is a word or a name (`Evelyn`, `even`, `Monday`, the triangle
    `XYZ`) rather than a product of variables (`mgh`, `GMm`, `kTx`): a word holds a vowel and no capital after
    its first letter; a name is all capitals."""
    return len(run) >= 3 and (run.isupper() or (bool(_VOWEL.search(run)) and run[1:].islower()))


def _is_word(canonical: str) -> bool:
    return canonical.lower() == "no" or (bool(_LETTER_RUN.fullmatch(canonical)) and reads_as_word(canonical))


def _has_word(canonical: str) -> bool:
    """A word (reads_as_word) outside control words and plain-text function names (sqrt, log, ...)."""
    plain = _CONTROL_WORD.sub(" ", re.sub(r"\\(?:begin|end)\{[A-Za-z*]+\}", " ", canonical))
    return any(w.lower() not in MATH_FUNCTIONS and reads_as_word(w) for w in _LETTER_RUN.findall(plain))


_BASE_SUBSCRIPT = re.compile(r"\d\)?_\{?\d+\}?")
_NUMERAL = re.compile(r"\s*\(?\s*([0-9A-Fa-f]+)\s*\)?(?:_\{?\s*(\d+)\s*\}?)?\s*\Z")


def _same_numeral(a: str, b: str) -> bool:
    """`1011_2` / `1011` / `(1011)_2`: the same digits, with the base written on one side or on both (and then
    the same base); the digits must be valid in that base. `1011_3` / `1011_2` differ."""
    ma, mb = _NUMERAL.match(a), _NUMERAL.match(b)
    if not (ma and mb) or ma[1].upper() != mb[1].upper() or (ma[2] and mb[2] and int(ma[2]) != int(mb[2])):
        return False
    base = int(ma[2] or mb[2] or 10)
    return 2 <= base <= 36 and all(int(c, 36) < base for c in ma[1])


def _canonical_pair_equal(a: str, b: str, canonicalize) -> bool:
    ca = canonicalize(a)
    return bool(ca) and ca == canonicalize(b)


def _rounds_to(decimal_text: str, exact: Fraction) -> bool:
    parsed = decimal_places(decimal_text)
    return parsed is not None and decimal_matches(parsed[0], parsed[1], exact)
