"""Reading the final answer of a model output (or a gold) as a grader reads it: grading only.

The clustering hash (seedgrpo.answers) reads only boxes, answer tags and answer phrases; a grader also reads
an answer given in prose, several boxes that together form the answer, a choice letter with its option text,
number words, and repairs what a twice-escaped or truncated string broke. docs/answers.md §4 is the spec.

    from seedgrpo.answer_reading import final_answer
    final_answer("Thus the total is $36$ apples.")        # '36'
    final_answer("\\boxed{2}, \\boxed{-3}")              # '2, -3'

The answer read here goes to seedgrpo.grading_rules (forms and value rules) on both sides of a pair.
"""
from __future__ import annotations

import re
from fractions import Fraction

from seedgrpo import answers_reference
from seedgrpo.grading_rules import LABEL as _LABEL, MATH_FUNCTIONS as _MATH_FUNCTIONS

__all__ = ["final_answer", "clean", "MAX_TEXT"]

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
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z(])")
_TEXT_GROUP = re.compile(r"\\(?:text|mbox|mathrm|textbf|operatorname|begin|end)\s*\{[^{}]*\}")
_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:answers?\s*(?:is|are|:)|therefore|thus|hence|so|is|are|was|were|equals?|"
                  r"gives?|get|gets|obtain|becomes?|yields?|=|:)(?![A-Za-z])")
_ANSWER_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:final\s+)?(?:answer|result)s?\s*(?:is|are|:|=)(?![A-Za-z])")
_CLAUSE_END = re.compile(r"(?i)(?:,\s*|\s+)(?:since|because|which|where|given|when|while|so that|but|although|"
                         r"if|whereas|hence)(?![A-Za-z])")
_SENTENCE = re.compile(r"(?<=[^\d\s])[.!?](?=\s|$)|(?<=\d)\.(?=\s+[A-Z]|\s*$)|\n\s*\n")
_NUMBER_START = re.compile(r"[-+]?(?:\d|\\(?:frac|dfrac|sqrt|pi)|\.\d|\\\$|\()")


# ----------------------------------------------------------------------------------------- extraction
def final_answer(text: str) -> str:
    """The answer a grader should read in `text`: its boxes, answer tag or answer phrase, the cued value of
    a prose sentence, else the whole text (cleaned)."""
    from_boxes = _boxes(text)
    if from_boxes is not None:
        return clean(from_boxes)
    text = clean(text[-MAX_TEXT:])
    tagged = answers_reference.extract_answer(text)
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

