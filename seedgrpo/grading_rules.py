"""Grading-only rules: from a model output (or a gold) to the answer forms the grader compares.

The clustering hash (seedgrpo.answers) never merges two different answers and stays strict; grading is
kinder where a human grader would be: an answer in prose, several boxes that together form the answer, a
label on one side only, an equation chain, percent, a decimal approximation, plain-text math, a list joined
by "and". docs/answers.md §4 is the spec; every rule below is one paragraph there.

    from seedgrpo.grading_rules import final_answer, pair_forms
    final_answer("Thus the total is $36$ apples.")        # '36'
    pair_forms("x = 2+2 = 4", "4")                        # [('x = 2+2 = 4', '4'), ('4', '4')]

Pure Python (re, fractions): the grader's worker processes load this file without the seedgrpo package.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["final_answer", "clean", "pair_forms", "value_pairs", "form_verdict", "time_of_day", "ratio",
           "percent_value", "decimal_places", "decimal_matches", "MIN_SIGNIFICANT_DIGITS"]

# A decimal stands for an exact value when it is that value rounded or truncated to its own digits and has
# at least this many significant digits: 3.1416 is pi, 3.14 is not (it is also 157/50, a different answer).
MIN_SIGNIFICANT_DIGITS = 4
MAX_TEXT = 20_000  # longer outputs: only the tail is read (the final answer sits at the end)

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_CONNECTOR = re.compile(  # what may sit between boxes that together form one answer
    r"(?:\s|\$|\\[,;:! ]|\\quad|\\qquad|[,;.]|\band\b|\bor\b|\\text\{\s*(?:and|or)\s*\}|"
    r"\\(?:text|mathrm)\{\s*,?\s*\}|(?:[A-Za-z](?:_\{?\w+\}?)?|\\[A-Za-z]+)\s*=)*")
_DOUBLED = re.compile(r"\\\\(?=(?:frac|dfrac|tfrac|sqrt|pi|cdot|times|left|right|text|boxed|infty|le|ge|leq|geq|"
                      r"neq|in|cup|cap|sin|cos|tan|log|ln|exp|theta|alpha|beta|circ|mathrm|mathbf|begin|end|"
                      r"pm|mp|div|approx|\{|\}|\$|%)(?![a-z]))")
_MISSING_BACKSLASH = re.compile(r"(?<![\\A-Za-z])(d?frac|sqrt)(?=\s*[{\[])")
_PERCENT_WORDS = re.compile(r"\s*(?:\\text\{\s*)?(?:percent|per\s*cent|pct)\.?(?:\s*\})?(?![A-Za-z])", re.I)
_PERCENT = re.compile(r"\\?%")
_MATH_FUNCTIONS = {"sqrt", "log", "ln", "sin", "cos", "tan", "cot", "sec", "csc", "exp", "pi", "arcsin",
                   "arccos", "arctan", "and", "or", "frac", "infty", "mod", "gcd", "lcm"}
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z(])")
_TEXT_GROUP = re.compile(r"\\(?:text|mbox|mathrm|textbf|operatorname|begin|end)\s*\{[^{}]*\}")
_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:answers?\s*(?:is|are|:)|therefore|thus|hence|so|is|are|was|were|equals?|"
                  r"gives?|get|gets|obtain|becomes?|yields?|=|:)(?![A-Za-z])")
_ANSWER_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:final\s+)?(?:answer|result)s?\s*(?:is|are|:|=)(?![A-Za-z])")
_CLAUSE_END = re.compile(r"(?i)(?:,\s*|\s+)(?:since|because|which|where|given|when|while|so that|but|although|"
                         r"if|whereas|hence)(?![A-Za-z])")
_SENTENCE = re.compile(r"(?<=[^\d\s])[.!?](?=\s|$)|(?<=\d)\.(?=\s+[A-Z]|\s*$)|\n\s*\n")
_NUMBER_START = re.compile(r"[-+]?(?:\d|\\(?:frac|dfrac|sqrt|pi)|\.\d|\\\$|\()")
_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::[0-5]\d)?\s*(?:\\text\{\s*|\\mathrm\{\s*)?([ap])?\.?\s*(?:m\.?)?\s*\}?\Z",
                   re.I)
_RATIO = re.compile(r"(-?\d+(?:\.\d+)?)\s*:\s*(-?\d+(?:\.\d+)?)\Z")
_DECIMAL = re.compile(r"[-+]?\d*\.\d+\Z")
_NAME = r"(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+|\\text\{[A-Za-z ]+\}|[A-Za-z]\([A-Za-z]\))"
_LABEL = re.compile(rf"\s*(?:{_NAME}|\(\s*{_NAME}(?:\s*,\s*{_NAME})+\s*\))\s*=\s*")
_LIST_JOIN = re.compile(r"\s*(?:;|\\text\{\s*(?:and|or)\s*\}|\\(?:quad|qquad)\s*(?:\\text\{\s*(?:and|or)\s*\})?|"
                        r"(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*")
_INEQUALITY = re.compile(r"\\(?:leq?|geq?|leqslant|geqslant)(?![A-Za-z])|<=?|>=?|≤|≥")


# ----------------------------------------------------------------------------------------- extraction
def final_answer(text: str) -> str:
    """The answer a grader should read in `text`: its boxes, answer tag or answer phrase, the cued value of
    a prose sentence, else the whole text (cleaned)."""
    from_boxes = _boxes(text)
    if from_boxes is not None:
        return clean(from_boxes)
    text = clean(text[-MAX_TEXT:])
    tagged = _reference().extract_answer(text)
    if tagged is not None:
        clause = _CLAUSE_END.search(tagged)
        text = tagged[:clause.start()] if clause and _math_items(tagged[:clause.start()]) else tagged
    if _is_prose(text):
        cued = _cued_value(text)
        if cued is not None:
            return clean(cued)
    return text.strip()


def _boxes(text: str) -> str | None:
    """Contents of the last box joined with the boxes before it that only connectors separate
    (`\\boxed{2}, \\boxed{-3}` is the answer `2, -3`); None without a box."""
    spans = []
    for match in _BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _group_end(text, i)
            if end < 0:
                continue
            content = text[i + 1:end - 1]
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] != "$":
                end += 1
            content = text[i:end]
        if content.strip():
            spans.append((match.start(), end, content.strip()))
    if not spans:
        return None
    joined = [spans[-1]]
    for span in reversed(spans[:-1]):
        between = text[span[1]:joined[0][0]]
        if len(between) > 40 or not _CONNECTOR.fullmatch(between):
            break
        joined.insert(0, span)
    if len(joined) == 1:
        return joined[0][2]
    return ", ".join(_LABEL.sub("", c, count=1) if _LABEL.match(c) and not _all_labelled(joined) else c
                     for _, _, c in joined)


def _all_labelled(spans) -> bool:
    return all(_LABEL.match(c) for _, _, c in spans)


def _group_end(s: str, i: int) -> int:
    depth, k = 0, i
    while k < len(s):
        c = s[k]
        if c == "\\":
            k += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return k + 1
        k += 1
    return -1


def clean(answer: str) -> str:
    """Repairs that never change a well-formed answer: doubled backslashes before a macro (`\\\\frac` from a
    twice-escaped string), a missing backslash (`frac{3}{4}`), unbalanced braces, percent words."""
    s = _DOUBLED.sub("", answer)
    s = _MISSING_BACKSLASH.sub(r"\\\1", s)
    s = _PERCENT_WORDS.sub(r"\\%", s)
    s = _EMPTY_SET.sub(r"\\{\\}", s)
    s = _REPEATING.sub(_repeating_fraction, s)
    depth = 0
    out = []
    k = 0
    while k < len(s):
        c = s[k]
        if c == "\\" and k + 1 < len(s):
            out.append(s[k:k + 2])
            k += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:  # a stray closing brace
                k += 1
                continue
            depth -= 1
        out.append(c)
        k += 1
    s = "".join(out) + "}" * min(depth, 8)
    s = s.strip()
    while s.endswith(")") and s.count(")") + s.count("]") > s.count("(") + s.count("["):
        s = s[:-1].rstrip()  # a stray closing parenthesis; [a,b) and (a,b] stay balanced
    return s


_EMPTY_SET = re.compile(r"\\(?:emptyset|varnothing)(?![A-Za-z])|\\\{\s*\\\}")
_REPEATING = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\overline\s*\{(\d{1,20})\}")


def _repeating_fraction(m: re.Match) -> str:
    """`0.\\overline{3}` -> `\\frac{1}{3}`, `1.2\\overline{27}` -> its exact fraction."""
    whole, fixed, period = m[1] or "0", m[2], m[3]
    value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed)) + Fraction(
        int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


# ----------------------------------------------------------------------------------------------- prose
def _math_spans(text: str) -> list[tuple[int, int, str]]:
    """`$…$`, `$$…$$`, `\\(…\\)` spans as (start, end, content). A `$` before a digit whose would-be span
    holds prose words, or that never closes, is a currency sign, not a delimiter."""
    spans, i = [], 0
    while i < len(text):
        if text.startswith("\\(", i) or text.startswith("\\[", i):
            close = text.find("\\)" if text[i + 1] == "(" else "\\]", i + 2)
            if close < 0:
                break
            spans.append((i, close + 2, text[i + 2:close]))
            i = close + 2
            continue
        if text[i] == "$" and (i == 0 or text[i - 1] != "\\"):
            width = 2 if text.startswith("$$", i) else 1
            close = text.find("$" * width, i + width)
            while close > 0 and text[close - 1] == "\\":
                close = text.find("$" * width, close + 1)
            content = text[i + width:close] if close > 0 else ""
            currency = width == 1 and i + 1 < len(text) and text[i + 1].isdigit() and (
                close < 0 or len(_WORD.findall(_TEXT_GROUP.sub(" ", content))) >= 2)
            if close < 0 or currency:
                i += 1
                continue
            spans.append((i, close + width, content))
            i = close + width
            continue
        i += 1
    return spans


def _outside_math(text: str) -> str:
    out, last = [], 0
    for start, end, _ in _math_spans(text):
        out.append(text[last:start])
        out.append(" M ")
        last = end
    out.append(text[last:])
    return "".join(out)


def _is_prose(text: str) -> bool:
    """Two or more words (two letters or more, outside math spans, `\\text{}` and function names)."""
    plain = _TEXT_GROUP.sub(" ", _outside_math(text))
    words = [w for w in _WORD.findall(plain) if w.lower() not in _MATH_FUNCTIONS]
    return len(words) >= 2 or (len(words) == 1 and bool(_math_spans(text)))


def _cued_value(text: str) -> str | None:
    """The answer of a prose text: in its last sentence that holds math, the first math item after an
    "answer is" cue, else after the last cue (therefore, thus, so, is, =, …) that a math item follows,
    else the last math item; subordinate clauses (", since …", " because …") are cut first."""
    sentences = [s for s in _sentences(text) if _math_items(s)]
    if not sentences:
        return None
    sentence = sentences[-1]
    clause = _CLAUSE_END.search(sentence)
    head = sentence[:clause.start()] if clause and _math_items(sentence[:clause.start()]) else sentence
    spans = _math_spans(head)
    outside = lambda m: not any(s <= m.start() < e for s, e, _ in spans)  # noqa: E731
    strong = [m for m in _ANSWER_CUE.finditer(head) if outside(m)]
    if strong:
        items = _math_items(head[strong[-1].end():])
        if items:
            return items[0]
    for cue in reversed([m for m in _CUE.finditer(head) if outside(m)]):
        items = _math_items(head[cue.end():])
        if items:
            return items[0]
    return _math_items(head)[-1]


def _sentences(text: str) -> list[str]:
    spans = _math_spans(text)
    cuts, last = [], 0
    for match in _SENTENCE.finditer(text):
        if any(s < match.start() < e for s, e, _ in spans):
            continue
        cuts.append(text[last:match.start()])
        last = match.end()
    cuts.append(text[last:])
    return [c.strip() for c in cuts if c.strip()]


def _math_items(text: str) -> list[str]:
    """Math spans and bare expression runs, in order: `12 * 3 = 36`, `7`, `$\\frac{1}{6}$`."""
    items, last = [], 0
    for start, end, content in _math_spans(text):
        items.extend(_bare_runs(text[last:start]))
        if content.strip() and not re.fullmatch(r"\s*[A-Za-z]\s*", content):
            items.append(content.strip())
        last = end
    items.extend(_bare_runs(text[last:]))
    return items


def _bare_runs(text: str) -> list[str]:
    runs, current = [], []
    for token in re.split(r"\s+", text):
        word = token.strip(",.;:!?$")
        is_math = bool(word) and (bool(re.search(r"[\d\\=+*/^<>]", word)) and not re.search(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", word))
                                  or (len(word) == 1 and word.isalpha() and current) or word in ("-", "="))
        if is_math:
            current.append(word if token.endswith(word) else word)
            if token != word and token.rstrip(",.;:!?") != token:  # punctuation ends the run
                runs.append(" ".join(current))
                current = []
        else:
            if current:
                runs.append(" ".join(current))
            current = []
    if current:
        runs.append(" ".join(current))
    return [r for r in (r.strip(" =") for r in runs) if _NUMBER_START.search(r) or re.search(r"\d", r)]


# ------------------------------------------------------------------------------------------ pair forms
def pair_forms(pred: str, gold: str) -> list[tuple[str, str]]:
    """(pred, gold) and the rewritten pairs a grader also accepts: a label on one side only dropped
    (`(a,b)=(1,4)` / `(1,4)`, `3=y` / `y=3`, `P=2, Q=5` / `2, 5`), an equation chain read by its final value
    when the gold has no `=`, lists joined by "and" / "or" / ";", an inequality written as the interval it
    describes when the other side is an interval. Percent and decimals are compared by value later."""
    forms = [(pred, gold)]
    p, g = _swap_reversed_label(_as_list(pred)), _swap_reversed_label(_as_list(gold))
    if "=" not in g:
        p = _chain_end(_unlabelled(p))
    elif "=" not in p:
        g = _chain_end(_unlabelled(g))
    else:
        p, g = _sorted_labels(p), _sorted_labels(g)
    p, g = _plus_minus(p, g), _plus_minus(g, p)
    p, g = _set_as_list(p, g), _set_as_list(g, p)
    if _looks_like_interval(g):
        p = _inequality_interval(p) or p
    if _looks_like_interval(p):
        g = _inequality_interval(g) or g
    if (p, g) != (pred, gold):
        forms.append((p, g))
    return forms


def _plus_minus(s: str, other: str) -> str:
    """`1 \\pm \\sqrt2` -> `1+\\sqrt2, 1-\\sqrt2` when the other side does not use \\pm."""
    if s.count("\\pm") != 1 or "\\pm" in other or "," in s:
        return s
    return s.replace("\\pm", "+") + ", " + s.replace("\\pm", "-")


def _set_as_list(s: str, other: str) -> str:
    """A set `\\{1,2\\}` against a bare list `1, 2` (no brackets around it): both are collections."""
    t = s.strip()
    if t.startswith("\\{") and t.endswith("\\}") and t.count("\\{") == 1 and t != "\\{\\}":
        o = other.strip()
        if o and o[0] not in "([\\" and not _INEQUALITY.search(o):
            return t[2:-2]
    return s


def _sorted_labels(s: str) -> str:
    """`y=2, x=1` -> `x=1,y=2`: named values compared by name when every element has its own name."""
    parts = _reference()._split_top(s, ",")
    names = [m.group(0).replace(" ", "") if (m := _LABEL.match(x)) else None for x in parts]
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
    stripped = [_LABEL.sub("", x, count=1) if _LABEL.match(x) else x for x in parts]
    return ",".join(stripped)


def _chain_end(s: str) -> str:
    """The final value of `x = 2+2 = 4`, `\\frac{6}{2} = 3`, `m+n = 10+3 = 13` (top level, one element, no
    inequality): the last part, when the parts after the first hold no letters and the first is a name,
    holds no letters, or opens a chain of three parts or more. `x^2+y^2 = 25` is an equation: kept."""
    if "=" not in s or len(_reference()._split_top(s, ",")) > 1 or _INEQUALITY.search(s):
        return s
    parts = [x.strip() for x in re.split(r"(?<![<>!\\])=|\\approx", s)]
    if not parts[-1] or any(_has_letters(x) for x in parts[1:]):
        return s
    first = parts[0]
    if _has_letters(first) and len(parts) < 3 and not re.fullmatch(_NAME, first) and not (
            _LINEAR_NAMES.fullmatch(first) and not _has_letters(parts[-1])):
        return s
    return parts[-1]


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


def _one_inequality(s: str) -> str | None:
    var = r"([A-Za-z])"
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
    return any(w.lower() not in _MATH_FUNCTIONS for w in re.findall(r"[A-Za-z]{3,}", plain))


_BASE_SUBSCRIPT = re.compile(r"\d_\{?\d+\}?")


def _canonical_pair_equal(a: str, b: str, canonicalize) -> bool:
    ca = canonicalize(a)
    return bool(ca) and ca == canonicalize(b)


def _rounds_to(decimal_text: str, exact: Fraction) -> bool:
    parsed = decimal_places(decimal_text)
    return parsed is not None and decimal_matches(parsed[0], parsed[1], exact)


_reference_module = None


def _reference():
    """seedgrpo.answers_reference (the grader's worker sets it from a file path; no package import)."""
    global _reference_module
    if _reference_module is None:
        from seedgrpo import answers_reference as module
        _reference_module = module
    return _reference_module
