"""Grading-only rules: from two final answers to the forms and values the grader compares.

The clustering hash (seedgrpo.answers) never merges two different answers and stays strict; grading is
kinder where a human grader would be: a label on one side only, an equation chain, a list joined by "and",
an inequality against its interval, percent, a decimal approximation, times of day, units (grading_units.py:
units and angles; grading_shapes.py: matrices). The final answers
come from seedgrpo.answer_reading (prose, boxes, choices). docs/answers.md §4 is the spec; every rule below
is one paragraph there.

    from seedgrpo.grading_rules import pair_forms
    pair_forms("x = 2+2 = 4", "4")                        # [('x = 2+2 = 4', '4'), ('4', '4')]

Pure Python (re, fractions): the grader's worker processes load this file without the seedgrpo package.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["pair_forms", "value_pairs", "form_verdict", "time_of_day", "ratio",
           "percent_value", "decimal_places", "decimal_matches", "MIN_SIGNIFICANT_DIGITS", "LABEL", "MATH_FUNCTIONS"]

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
         r"|(?:m\s*)?\\(?:angle|measuredangle)\s*[A-Z]{1,3}"
         r"|[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+|\\text\{[A-Za-z ]+\})")
LABEL = re.compile(rf"\s*(?:{_NAME}|\(\s*{_NAME}(?:\s*,\s*{_NAME})+\s*\))\s*=\s*")
_LIST_JOIN = re.compile(r"\s*(?:;|\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)\s*(?:\\text\{\s*(?:and|or)\s*\})?|"
                        r"(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*")
_INEQUALITY = re.compile(r"\\(?:leq?|geq?|leqslant|geqslant)(?![A-Za-z])|<=?|>=?|≤|≥")


# ------------------------------------------------------------------------------------------ pair forms
def pair_forms(pred: str, gold: str) -> list[tuple[str, str]]:
    """(pred, gold) and the rewritten pairs a grader also accepts: a label on one side only dropped
    (`(a,b)=(1,4)` / `(1,4)`, `3=y` / `y=3`, `P=2, Q=5` / `2, 5`), named values against a tuple as the tuple,
    an equation chain read by its final value when the gold has no `=` (`\\approx` reads like `=`), two
    equations as `lhs-(rhs)=0`, lists joined by "and" / "or" / ";", an inequality written as the interval it
    describes when the other side is an interval, units and angles (grading_units), matrices written other
    ways (grading_shapes). Percent and decimals are compared by value later."""
    forms = [(pred, gold)]
    p, g = (_swap_reversed_label(_approximate(_as_list(x))) for x in (pred, gold))
    equations = []
    if "=" not in g:
        p = _chain_end(_unlabelled(_named_tuple(p, g)))
    elif "=" not in p:
        g = _chain_end(_unlabelled(_named_tuple(g, p)))
    else:
        p, g = _sorted_labels(_unpacked(p)), _sorted_labels(_unpacked(g))
        equations = _equation_forms(p, g)
    units, split = _units(), _reference()._split_top
    if units.units_differ(p, g):  # `3 hours` / `3 days`: only the value converted to the gold's unit may match
        converted = units.converted(p, g)
        return forms + ([converted] if converted else [])
    p, g = units.strip_spaced_unit(p), units.strip_spaced_unit(g)
    p, g = units.trig_degrees(p), units.trig_degrees(g)
    p = units.degrees_as_radians(p, g, split)
    g = units.degrees_as_radians(g, p, split)
    p, g = _plus_minus(p, g), _plus_minus(g, p)
    p, g = _set_as_list(p, g), _set_as_list(g, p)
    if _looks_like_interval(g):
        p = _inequality_interval(p) or p
    if _looks_like_interval(p):
        g = _inequality_interval(g) or g
    shapes = _shapes()
    p, g = shapes.matrix_form(p, g, split), shapes.matrix_form(g, p, split)
    if (p, g) != (pred, gold):
        forms.append((p, g))
    return forms + [f for f in equations if f not in forms]


_APPROX_WORD = re.compile(r"\A\s*(?:approximately|approx\.?|about|around|roughly|nearly)\s+", re.I)


def _approximate(s: str) -> str:
    """`x \\approx 1.4142`, `≈ 3.1416`, "approximately 2.2361": an approximation is read like `=` (the decimal
    tolerance then decides whether the value stands for the exact one)."""
    if "\\approx" not in s and "≈" not in s and not _APPROX_WORD.match(s):
        return s
    t = re.sub(r"\\approx(?![A-Za-z])|≈", "=", _APPROX_WORD.sub("", s, count=1))
    return re.sub(r"\A\s*=\s*", "", t)


def _equation(s: str) -> tuple[str, str] | None:
    """(lhs, rhs) of one equation with a single `=` and no list or inequality around it."""
    if _INEQUALITY.search(s) or "\\neq" in s or len(_reference()._split_top(s, ",")) > 1:
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
    parts = _reference()._split_top(s, ",")
    names = [m.group(0).replace(" ", "") if (m := LABEL.match(x)) else None for x in parts]
    if len(parts) < 2 or None in names or len(set(names)) != len(names) \
            or len(_reference()._split_top(o[1:-1], ",")) != len(parts):
        return s
    return "(" + ", ".join(LABEL.sub("", x, count=1).strip() for x in parts) + ")"


_TUPLE_LABEL = re.compile(rf"\s*\(\s*({_NAME}(?:\s*,\s*{_NAME})+)\s*\)\s*=\s*\((.*)\)\s*\Z")


def _unpacked(s: str) -> str:
    """`(a, b) = (1, 4)` -> `a=1, b=4` (then sorted by name against the other side's named values)."""
    m = _TUPLE_LABEL.match(s)
    if not m:
        return s
    names = [x.strip() for x in m[1].split(",")]
    values = _reference()._split_top(m[2], ",")
    if len(values) != len(names) or len(set(names)) != len(names):
        return s
    return ", ".join(f"{n}={v.strip()}" for n, v in zip(names, values))


def _plus_minus(s: str, other: str) -> str:
    """`1 \\pm \\sqrt2` -> `1+\\sqrt2, 1-\\sqrt2` when the other side does not use \\pm; in a tuple,
    `(\\pm 1, 0)` -> `(+1, 0), (-1, 0)` (two points; not in a set or interval, where it is one object)."""
    if s.count("\\pm") != 1 or "\\pm" in other:
        return s
    t = s.strip()
    if "," in s and not (t.startswith("(") and t.endswith(")") and len(_reference()._split_top(t, ",")) == 1):
        return s
    return s.replace("\\pm", "+") + ", " + s.replace("\\pm", "-")


def _set_as_list(s: str, other: str) -> str:
    """A set `\\{1,2\\}` against a bare list `1, 2` (no brackets around it): both are collections."""
    t = s.strip()
    if t.startswith("\\{") and t.endswith("\\}") and t.count("\\{") == 1 and t != "\\{\\}":
        o = other.strip()
        if o and o[0] not in "([\\" and not _INEQUALITY.search(o):
            return t[2:-2]
        split = _reference()._split_top  # `\\{(1,2),(3,4)\\}` / `(3,4),(1,2)`: a set of tuples, a list of them
        if o.startswith("(") and len(split(o, ",")) == len(split(t[2:-2], ",")) > 1:
            return t[2:-2]
    return s


def _sorted_labels(s: str) -> str:
    """`y=2, x=1` -> `x=1,y=2`: named values compared by name when every element has its own name."""
    parts = _reference()._split_top(s, ",")
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


def _unlabelled(s: str) -> str:
    """Drop `name=` from every top-level element (`(a,b)=(1,4)` -> `(1,4)`, `P=2, Q=5` -> `2, 5`)."""
    parts = _reference()._split_top(s, ",")
    stripped = [LABEL.sub("", x, count=1) if LABEL.match(x) else x for x in parts]
    return ",".join(stripped)


def _chain_end(s: str) -> str:
    """The final value of `x = 2+2 = 4`, `\\frac{6}{2} = 3`, `m+n = 10+3 = 13` (top level, one element, no
    inequality): the last part, when the parts after the first hold no letters and the first is a name,
    holds no letters, or opens a chain of three parts or more. `x^2+y^2 = 25` is an equation: kept."""
    if "=" not in s or len(_reference()._split_top(s, ",")) > 1 or _INEQUALITY.search(s):
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


def _has_letters(s: str) -> bool:
    return bool(re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", s)))


def _looks_like_interval(s: str) -> bool:
    s = s.strip()
    return bool(re.match(r"[(\[]", s) and re.search(r"[)\]]\s*\Z", s) and "," in s) or "\\cup" in s


_OPS = {"<": "<", "\\lt": "<", ">": ">", "\\gt": ">", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=",
        "<=": "<=", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=", ">=": ">=", "≤": "<=", "≥": ">="}
_OP = r"(\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt|<=|>=|<|>|≤|≥)"


def _inequality_interval(s: str) -> str | None:
    """`-1 < x \\le 4` -> `(-1,4]`; `x > 2` -> `(2,\\infty)`; `x \\le 3` -> `(-\\infty,3]`; unions joined
    by "or" / `\\cup` (written as a list by _as_list) become `\\cup`."""
    pieces = [x.strip() for x in re.split(r",|\\cup", s) if x.strip()]
    out = []
    for piece in pieces:
        interval = _one_inequality(piece)
        if interval is None:
            return None
        out.append(interval)
    return "\\cup".join(out) if out else None


_BAR = re.compile(r"\\(?:left|right|big|Big)?\s*(?:\\[lr]?vert|\\mid|\|)")
_ABS = re.compile(rf"\s*\|\s*([A-Za-z])\s*(?:([-+])\s*(\d+(?:\.\d+)?))?\s*\|\s*{_OP}\s*(\d+(?:\.\d+)?)\s*")
_NEQ = re.compile(r"\s*[A-Za-z]\s*(?:\\neq?(?![A-Za-z])|≠|!=)\s*(.+?)\s*")


def _abs_interval(s: str) -> str | None:
    """`|x| < 2` -> `(-2,2)`, `|x-1| \\le 3` -> `[-2,4]`, `|x| > 2` -> `(-\\infty,-2)\\cup(2,\\infty)`."""
    m = _ABS.fullmatch(_BAR.sub("|", s))
    if not m:
        return None
    centre = Fraction(m[3] or 0) * (-1 if m[2] == "+" else 1)
    radius, op = Fraction(m[5]), _OPS[m[4]]
    if radius <= 0:
        return None
    lo, hi = (_number_text(centre - radius), _number_text(centre + radius))
    if op[0] == "<":
        return f"[{lo},{hi}]" if op == "<=" else f"({lo},{hi})"
    return f"(-\\infty,{lo}]\\cup[{hi},\\infty)" if op == ">=" else f"(-\\infty,{lo})\\cup({hi},\\infty)"


def _number_text(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _one_inequality(s: str) -> str | None:
    var = r"([A-Za-z])"
    if "|" in s or "vert" in s or "\\mid" in s:
        return _abs_interval(s)
    m = _NEQ.fullmatch(s)
    if m:  # `x \\neq 2`: the line without one point
        bound = m[1]
        return None if _has_letters(bound) else f"(-\\infty,{bound})\\cup({bound},\\infty)"
    m = re.fullmatch(rf"\s*(.+?)\s*{_OP}\s*{var}\s*{_OP}\s*(.+?)\s*", s)
    if m:
        lo, op1, _, op2, hi = m.groups()
        a, b = _OPS[op1], _OPS[op2]
        if a[0] == "<" and b[0] == "<":
            return f"{'[' if a == '<=' else '('}{lo},{hi}{']' if b == '<=' else ')'}"
        if a[0] == ">" and b[0] == ">":
            return f"{'[' if b == '>=' else '('}{hi},{lo}{']' if a == '>=' else ')'}"
        return None
    m = re.fullmatch(rf"\s*{var}\s*{_OP}\s*(.+?)\s*", s)
    if m:
        _, op, bound = m.groups()
        op = _OPS[op]
    else:
        m = re.fullmatch(rf"\s*(.+?)\s*{_OP}\s*{var}\s*", s)
        if not m:
            return None
        bound, op, _ = m.groups()
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[_OPS[op]]
    if re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", bound)):
        return None
    if op[0] == ">":
        return f"{'[' if op == '>=' else '('}{bound},\\infty)"
    return f"(-\\infty,{bound}{']' if op == '<=' else ')'}"


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
    seedgrpo.quick_values.certainly_different, so that plainly different pairs need no worker)."""
    if _units().units_differ(pred, gold):  # `3 hours` / `3 days` (pair_forms adds the converted values)
        return False
    tp, tg = time_of_day(pred), time_of_day(gold)
    if tp is not None or tg is not None:
        return tp is not None and tp == tg
    rp, rg = ratio(pred), ratio(gold)
    if rp is not None or rg is not None:
        return rp is not None and rp == rg
    if _BASE_SUBSCRIPT.search(pred + " " + gold):  # 52_8 is a base-8 numeral: only its own forms match
        return _canonical_pair_equal(pred, gold, canonicalize)
    undecided = False
    for a, b in value_pairs(pred, gold):
        ca, cb = canonicalize(a), canonicalize(b)
        if ca == cb and ca:
            return True
        if _WORDS.match(ca) and _WORDS.match(cb):  # Yes / yes, Monday / monday: words, not symbols
            return ca.casefold() == cb.casefold()
        if _has_word(ca) or _has_word(cb):  # `Evelyn` is a name, not E*v*e*l*y*n: only itself matches
            if ca.casefold() == cb.casefold():
                return True
            continue
        if _RATIONAL.match(ca) and _RATIONAL.match(cb):
            if _rounds_to(a, Fraction(cb)) or _rounds_to(b, Fraction(ca)):
                return True
        elif ":" not in ca + cb and not (different and different(ca, cb)):
            undecided = True  # (a colon that is neither a time nor a ratio is never guessed by a parser)
    return None if undecided else False


_WORDS = re.compile(r"(?:[A-Za-z]{3,}|[Nn][Oo])\Z")  # two-letter products (ab, AB) are not words
_CONTROL_WORD = re.compile(r"\\[A-Za-z]+")


def _has_word(canonical: str) -> bool:
    """Three letters in a row outside control words and plain-text function names (sqrt, log, ...)."""
    plain = _CONTROL_WORD.sub(" ", re.sub(r"\\(?:begin|end)\{[A-Za-z*]+\}", " ", canonical))
    return any(w.lower() not in MATH_FUNCTIONS for w in re.findall(r"[A-Za-z]{3,}", plain))


_BASE_SUBSCRIPT = re.compile(r"\d_\{?\d+\}?")


def _canonical_pair_equal(a: str, b: str, canonicalize) -> bool:
    ca = canonicalize(a)
    return bool(ca) and ca == canonicalize(b)


def _rounds_to(decimal_text: str, exact: Fraction) -> bool:
    parsed = decimal_places(decimal_text)
    return parsed is not None and decimal_matches(parsed[0], parsed[1], exact)


_reference_module = _units_module = _shapes_module = None


def _reference():
    """seedgrpo.answers_reference (the grader's worker sets it from a file path; no package import)."""
    global _reference_module
    if _reference_module is None:
        from seedgrpo import answers_reference as module
        _reference_module = module
    return _reference_module


def _units():
    """seedgrpo.grading_units (units and angles; set by the grader's worker from its file)."""
    global _units_module
    if _units_module is None:
        from seedgrpo import grading_units as module
        _units_module = module
    return _units_module


def _shapes():
    """seedgrpo.grading_shapes (matrices written other ways; set by the grader's worker from its file)."""
    global _shapes_module
    if _shapes_module is None:
        from seedgrpo import grading_shapes as module
        _shapes_module = module
    return _shapes_module
