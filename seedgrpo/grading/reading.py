"""Reading the final answer of a model output (or a gold) as a grader reads it: grading only.

The clustering hash (seedgrpo.grading.canonical) reads only boxes, answer tags and answer phrases; a grader also reads
an answer given in prose, several boxes that together form the answer, a choice letter with its option text,
number words, and repairs what a twice-escaped or truncated string broke. docs/answers.md §4 is the spec.

    from seedgrpo.grading.reading import final_answer
    final_answer("Thus the total is $36$ apples.")        # '36'
    final_answer("\\boxed{2}, \\boxed{-3}")              # '2, -3'

The answer read here goes to seedgrpo.grading.rules (forms and value rules) on both sides of a pair.
"""
from __future__ import annotations

import re
from fractions import Fraction

from . import reference
from .rules import APPROXIMATE_WORDS, LABEL as _LABEL, MATH_FUNCTIONS as _MATH_FUNCTIONS
from .units import read_unit

__all__ = ["final_answer", "choice_pair", "number_from_words", "clean", "MAX_TEXT"]

MAX_TEXT = 20_000  # longer outputs: only the tail is read (the final answer sits at the end)

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_CONNECTOR = re.compile(  # what may sit between boxes that together form one answer
    r"(?:\s|\$|\\[,;:! ]|\\quad|\\qquad|[,;.]|\band\b|\bor\b|\\text\{\s*(?:and|or)\s*\}|"
    r"\\(?:text|mathrm)\{\s*,?\s*\}|(?:[A-Za-z](?:_\{?\w+\}?)?|\\[A-Za-z]+)\s*=|"
    # a part label: (a) \boxed{6} (b) \boxed{8}
    r"(?:\\textbf\{|\*\*)?\s*(?:[Ff]or\s+)?(?:[Pp]art\s*)?\(?(?:[a-h]|[ivx]{1,4})\)\s*\}?(?:\*\*)?\s*:?)*")
_DOUBLED = re.compile(r"(?<!\\)\\\\(?=(?:frac|dfrac|tfrac|sqrt|pi|cdot|times|left|right|text|boxed|infty|le|ge|leq|geq|"
                      r"neq|in|cup|cap|sin|cos|tan|log|ln|exp|theta|alpha|beta|circ|mathrm|mathbf|begin|end|"
                      r"pm|mp|div|approx|\{|\}|\$|%)(?![a-z]))")
_MISSING_BACKSLASH = re.compile(r"(?<![\\A-Za-z])(d?frac|sqrt)(?=\s*[{\[])")
_PERCENT_WORDS = re.compile(r"\s*(?:\\text\{\s*)?(?:percent|per\s*cent|pct)\.?(?:\s*\})?(?![A-Za-z])", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z(])(?!\s*=)")  # `AB = 4`: a name, not a word
_TEXT_GROUP = re.compile(r"\\(?:text|mbox|mathrm|textbf|operatorname|begin|end)\s*\{[^{}]*\}")
_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:answers?\s*(?:is|are|:)|therefore|thus|hence|so|is|are|was|were|equals?|"
                  r"gives?|get|gets|obtain|becomes?|yields?|costs?|spends?|spent|pays?|paid|earns?|earned|"
                  r"makes?|made|takes?|took|needs?|needed|saves?|saved|has|have|had|weighs?|totals?|"
                  r"=|\\approx|≈|(?<!\d):(?!\d))(?![A-Za-z])")  # `3:45` and `3:4` are values, not cues
_ANSWER_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:final\s+)?(?:answer|result)s?\s*(?:is|are|:|=)(?![A-Za-z])")
_CLAUSE_END = re.compile(r"(?i)(?:,\s*|\s+)(?:since|because|which|where|given|when|while|so that|but|although|"
                         r"if|whereas|and\s+(?:it|this|that|these|those|they|its|their))(?![A-Za-z])")
# A conclusion after a comma or semicolon outweighs what came before it in the sentence:
# "There are 12 in total, but 3 repeat, so 9 remain." is read from "so 9 remain".
_CONCLUSION_WORDS = r"so|therefore|thus|hence"
_CONCLUSION = re.compile(rf"(?i)[,;]\s*(?:and\s+)?(?:{_CONCLUSION_WORDS}|which means|giving)(?![A-Za-z])")
# "So 9 + 26 = 35.": one conclusion word before the math is no prose to read a cue in, only the math's lead-in.
_LEADING_CONCLUSION = re.compile(rf"(?i)\A\s*(?:{_CONCLUSION_WORDS}|then|finally)\s*[,:]?\s+(?=\S)")
# What may sit between two items of one list answer: "2 and -3", "$x=1$ or $x=2$", "1, 2, and 3".
_LIST_GAP = re.compile(r"(?i)\s*(?:,\s*(?:and|or)?|;|and|or|\\quad|\\qquad|\\text\{\s*,?\s*(?:and|or)?\s*\})\s*")
# "The winner is Alice.", "The correct option is D.", "The statement is false.": one word after a cue.
_LONE_WORD = r"(?:\\text\{\s*)?\(?([A-Za-z]+(?:[ -][A-Za-z]+)?)\)?\s*\}?"  # `Alice`, `\text{even}`, `(C)`
_WORD_AFTER_CUE = re.compile(rf"(?i)(?:answer\s*(?:is|:)|\bis|\bare|\bwas|\bwere)\s+{_LONE_WORD}\s*[.!]?\s*\Z")
_PHRASE_WORD = re.compile(rf"\s*\**\s*{_LONE_WORD}\s*\**\s*[.!]?\s*")  # a word or letter as the whole answer phrase
_LEADING_VERDICT = re.compile(r"(?i)\s*\**\s*(yes|no|true|false)\s*\**\s*(?:[,.;:!]|\s-|\Z)")
_UNIT_AFTER = re.compile(r"\s+([A-Za-z]{1,12}(?:\s*/\s*[A-Za-z]{1,6})?)(?![A-Za-z])")
_NOT_UNITS = {"in", "at", "a", "an", "is", "of", "to", "by", "on", "or", "and", "for", "the", "as", "so", "if"}
_GSM8K_MARK = re.compile(r"(?m)^\s*####\s*(\S.*?)\s*$")
_AM_PM = re.compile(r"(?i)(?:a|p)\.?m\.?\Z")
_SENTENCE = re.compile(r"(?<=[^\d\s])[.!?](?=\s|$)|(?<=\d)\.(?=\s+[A-Z]|\s*$)|\n\s*\n")
_NUMBER_START = re.compile(r"[-+]?(?:\d|\\(?:frac|dfrac|sqrt|pi)|\.\d|\\\$|\()")


# ----------------------------------------------------------------------------------------- extraction
# A text whose last math ends in "=": the value it was about to state is missing.
_CUT_OFF = re.compile(r"=\s*\$*\s*\Z")


def final_answer(text: str) -> str:
    """The answer a grader should read in `text`: its boxes, answer tag or answer phrase, the cued value of
    a prose sentence, else the whole text (cleaned)."""
    from_boxes = _boxes(text)
    if from_boxes is not None:
        if _BOX.search(from_boxes):  # \boxed{\boxed{12}}
            return final_answer(from_boxes)
        return _whole_answer(clean(from_boxes))
    text = clean(text[-MAX_TEXT:])
    marked = _GSM8K_MARK.findall(text)
    if marked:  # GSM8K's `#### 28` line closes the solution
        return _whole_answer(_answer_run(marked[-1]) or marked[-1].strip())
    phrase = _answer_phrase(text)
    if phrase is not None:
        return _whole_answer(phrase)
    tagged = reference.extract_answer(text)  # an <answer> tag, or an answer phrase ours did not read
    if tagged is not None:
        clause = _CLAUSE_END.search(tagged)
        text = tagged[:clause.start()] if clause and _math_items(tagged[:clause.start()]) else tagged
    if _CUT_OFF.search(text):  # "...: 9 + 26 =": stopped (at the token limit) before the value was written
        return ""
    if _is_prose(text):
        cued = _cued_value(text)
        if cued is not None:
            return _whole_answer(clean(cued))
    else:
        text = _LEADING_CONCLUSION.sub("", text, count=1)
    return _whole_answer(text.strip())


def _answer_phrase(text: str) -> str | None:
    """What follows the last "answer is" / "answer:" up to the end of its sentence, read as a list answer:
    `Answer: $x=1$ or $x=2$` -> `x=1, x=2`; `the answer is approximately 2.2361` -> `2.2361`; a word or a
    choice letter when no math follows (`The correct answer is (C).`). None when there is no such phrase
    (or it holds neither)."""
    spans = _math_spans(text)
    cues = [m for m in _ANSWER_CUE.finditer(text) if not _inside(spans, m.start())]
    if not cues:
        return None
    rest = text[cues[-1].end():].lstrip(" \t*")
    line = rest.lstrip().split("\n", 1)[0]  # an empty rest of line: the answer is on the next one
    sentences = _sentences(line)
    sentence = sentences[0] if sentences else ""
    clause = _CLAUSE_END.search(sentence)
    if clause and _math_items(sentence[:clause.start()]):
        sentence = sentence[:clause.start()]
    run = _answer_run(sentence)
    if run is not None:
        return run
    word = _PHRASE_WORD.fullmatch(sentence)
    return word[1] if word else None


def _inside(spans: list[tuple[int, int, str]], i: int) -> bool:
    """Whether position i falls inside one of the math spans (from _math_spans)."""
    return any(s <= i < e for s, e, _ in spans)


def _boxes(text: str) -> str | None:
    """Contents of the last box joined with the boxes before it that only connectors separate
    (`\\boxed{2}, \\boxed{-3}` is the answer `2, -3`); None without a box."""
    spans = []
    for match in _BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = reference._group_end(text, i)  # after the box's closing brace
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


_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?:\s*\.|(?=\s*(?:[()\[\]|/]|\\[{}|]|\\[lr]?vert|\\[lr]angle)))")
_LT_GT = re.compile(r"\\([lg])t(?![A-Za-z])")
_BOLD_ENDS = re.compile(r"\A(?:\*\*\s*)+|(?:\s*\*\*)+\Z")  # markdown bold around the answer: `**42**`


def clean(answer: str) -> str:
    """Repairs that never change a well-formed answer: doubled backslashes before a macro (`\\\\frac` from a
    twice-escaped string), a missing backslash (`frac{3}{4}`), unbalanced braces, percent words."""
    s = _DOUBLED.sub("", answer)
    s = _MISSING_BACKSLASH.sub(r"\\\1", s)
    s = s.translate(_UNICODE_MATH)
    s = _VARIANT_LETTER.sub(lambda m: "\\" + m[1], s)  # \varepsilon is \epsilon to a reader
    s = _SUPERSCRIPTS.sub(lambda m: "^{" + m[0].translate(_SUPERSCRIPT_DIGITS) + "}", s)
    s = _UNICODE_ROOT.sub(r"\\sqrt{\1}", s)
    s = _PLAIN_TIMES.sub(r"\1 \\times 10^", s)
    s = _BARE_EXPONENT.sub(r"{\1}", s)
    s = _COMMA_AND.sub(", ", s)
    s = _ORDINAL.sub("", s)
    s = _FIGURE_NAME.sub(r"\1", s)
    s = _PERCENT_WORDS.sub(r"\\%", s)
    s = _EMPTY_SET.sub(r"\\{\\}", s)
    s = _REPEATING.sub(_repeating_fraction, s)
    s = _LEFT_RIGHT.sub("", s)  # `\\left( 5 \\right)` is `( 5 )`; `\\right.` closes nothing
    s = _LT_GT.sub(lambda m: "<" if m[1] == "l" else ">", s)
    depth = 0
    out = []
    k = 0
    opened: list[str] = []  # the open `{` and `(` in order: `\\sqrt{2)` closes its brace with a parenthesis
    while k < len(s):
        c = s[k]
        if c == "\\" and k + 1 < len(s):
            out.append(s[k:k + 2])
            k += 2
            continue
        if c == "{":
            depth += 1
            opened.append(c)
        elif c == "}":
            if depth == 0:  # a stray closing brace
                k += 1
                continue
            depth -= 1
            while opened and opened.pop() != "{":
                pass
        elif c in "([":
            opened.append(c)
        elif c in ")]":
            if opened and opened[-1] in "([":  # `(0,1]` and `[0,1)` close either kind
                opened.pop()
            elif c == ")" and opened and "(" not in opened and "[" not in opened:
                c = "}"  # a brace closed by a parenthesis
                depth -= 1
                opened.pop()
        out.append(c)
        k += 1
    s = "".join(out) + "}" * min(depth, 8)
    s = s.strip()
    while s.endswith(")") and s.count(")") + s.count("]") > s.count("(") + s.count("["):
        s = s[:-1].rstrip()  # a stray closing parenthesis; [a,b) and (a,b] stay balanced
    return s


def _whole_answer(answer: str) -> str:
    """Readings of an answer as a whole: `(7)` -> `7`, `2 1/2` -> `2\\frac{1}{2}`, `seven` -> `7`,
    `approximately 2.24` -> `2.24`, `\\mathbb{R}` / "all real numbers" -> `(-\\infty,\\infty)`,
    "infinity" -> `\\infty`."""
    s = _BOLD_ENDS.sub("", answer.strip())
    s = _FILLER.sub("", s.strip()).strip()
    s = _INFINITY_WORD.sub(r"\\infty", s)
    if _REALS.fullmatch(s):
        return "(-\\infty,\\infty)"
    s = _MEMBER_OF.sub("", s)  # `x \\in \\{2,5\\}`, `x \\in (1,3]`: the set itself
    s = _BASE_GROUP.sub(r"\1_", s)  # `(1011)_2` is `1011_2`
    m = _ONE_PARENTHESIZED.fullmatch(s)
    if m and not re.fullmatch(r"[A-Za-z]", m[1].strip()):
        s = m[1].strip()
    m = _SCALED.fullmatch(s)
    if m:  # `1.5 million`
        value = Fraction(m[1].replace(",", "")) * _SCALES[m[2].lower()]
        return str(value.numerator) if value.denominator == 1 else s
    m = _SI_LETTER_AFTER.fullmatch(s)
    if m:  # `300000 m`, `12 N`: a unit symbol after a space (`2m` stays a product)
        s = f"{m[1]} \\text{{ {m[2]}}}"
    m = _NUMBER_WORDS_AFTER.fullmatch(s)
    if m and not any(w.lower() in _MATH_FUNCTIONS for w in m[2].split()):
        s = f"{m[1]} \\text{{ {m[2]}}}"  # `12 students`: a unit word, as `\\text{}` (units are compared there)
    m = _PLAIN_MIXED.fullmatch(s)
    if m and int(m[2]) < int(m[3]):
        return f"{m[1]}\\frac{{{m[2]}}}{{{m[3]}}}"
    number = number_from_words(s)
    return str(number) if number is not None else s


_FILLER = re.compile(rf"(?i)\A(?:{APPROXIMATE_WORDS}|exactly|\\approx|~)\s*(?=[-+\d.\\$])")
_INFINITY_WORD = re.compile(r"(?i)(?<![A-Za-z\\])(?:\\text\{\s*)?infinity(?:\s*\})?(?![A-Za-z])")
_REALS = re.compile(r"(?i)(?:[a-z]\s*\\in\s*)?(?:\\mathbb\s*\{?\s*R\s*\}?|\\R|"
                    r"(?:\\text\{\s*)?(?:all\s+|the\s+set\s+of\s+)?"
                    r"real\s+numbers?(?:\s*\})?|(?:\\text\{\s*)?all\s+reals(?:\s*\})?)")
_MEMBER_OF = re.compile(r"\A[A-Za-z]\s*\\in\s*(?=\\\{|\\left|[(\[])")
_BASE_GROUP = re.compile(r"\A\(\s*([0-9A-Fa-f]+)\s*\)_")
_ONE_PARENTHESIZED = re.compile(r"\(\s*([^(),\[\]]+)\s*\)")  # `(7)`, `(-5)`: one value, no tuple
_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_SCALED = re.compile(rf"(?:\\\$|\$)?\s*({_NUMBER})\s*(thousand|million|billion)", re.I)
_NUMBER_WORDS_AFTER = re.compile(rf"({_NUMBER}|[-+]?\\frac\{{\d+\}}\{{\d+\}})"
                                 rf"\s+([A-Za-z]{{2,}}(?:\s+[A-Za-z]{{2,}}){{0,2}})\.?")
_SI_LETTER_AFTER = re.compile(rf"({_NUMBER}(?:\s*\\times\s*10\^\{{?-?\d+\}}?)?)\s+([msgNJWVAKLCT])\.?")
_PLAIN_MIXED = re.compile(r"(-?\d+)\s+(\d+)\s*/\s*(\d+)")  # `2 1/2` is two and a half

_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}


def number_from_words(answer: str) -> int | None:
    """The integer an answer spells out in English words (`seven`, `twenty-one`, `\\text{one hundred five}`,
    `negative three`), or None when it is anything else."""
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", answer).strip().rstrip(".").strip().lower()
    words = re.split(r"[\s-]+|\s+and\s+", s)
    sign = 1
    if words and words[0] in ("negative", "minus"):
        sign, words = -1, words[1:]
    if not words or not all(w in _UNITS or w in _TENS or w in _SCALES or w == "and" for w in words):
        return None
    total = current = 0
    last = None  # the kind of the previous word: "seven three" and "twenty twelve" are not numbers
    for w in words:
        if w == "and":
            continue
        if w in _UNITS:
            if last == "unit" or (last == "ten" and _UNITS[w] >= 10):
                return None
            current, last = current + _UNITS[w], "unit"
        elif w in _TENS:
            if last in ("unit", "ten"):
                return None
            current, last = current + _TENS[w], "ten"
        elif w == "hundred":
            if not 1 <= current <= 9 or last != "unit":
                return None
            current, last = current * 100, "hundred"
        else:
            if current == 0:
                return None
            total, current, last = total + current * _SCALES[w], 0, "scale"
    return sign * (total + current)


_EMPTY_SET = re.compile(r"\\(?:emptyset|varnothing)(?![A-Za-z])|\\\{\s*\\\}")
# Dashes and minus signs typed or pasted from Unicode; ×, ·, π, ∞, ≠, ≈ as the LaTeX they stand for.
_UNICODE_MATH = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-",
                               "\ufe63": "-", "\uff0d": "-", "×": "\\times ", "·": "\\cdot ", "π": "\\pi ",
                               "∞": "\\infty ", "≠": "\\neq ", "≈": "\\approx "})
_VARIANT_LETTER = re.compile(r"\\var(epsilon|theta|phi|rho|sigma|pi)(?![A-Za-z])")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPTS = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")  # x² -> x^{2}
_UNICODE_ROOT = re.compile(r"√\s*(\d+|[A-Za-z]|\([^()]*\))")  # √2 -> \sqrt{2}
_PLAIN_TIMES = re.compile(r"(\d)\s*[xX*]\s*10\s*\^")  # 1.5 x 10^6: scientific notation typed as text
# `2^10` is 2^{10} to its writer (and to math-verify), though TeX would set 2^1 0; `2^100 + 1` stays a sum.
_BARE_EXPONENT = re.compile(r"(?<=\^)(\d{2,})")
_ORDINAL = re.compile(r"(?<=\d)(?:\^\s*\{?\s*)?(?:\\(?:text|mathrm)\s*\{\s*)?(?:st|nd|rd|th)"
                      r"(?:\s*\})?(?:\s*\})?(?![A-Za-z])")
# \overline{AB} is AB
_FIGURE_NAME = re.compile(r"\\overline\s*\{\s*([A-Z]{2,4})\s*\}|\\triangle\s*(?=[A-Z]{3}(?![A-Za-z]))")
_COMMA_AND = re.compile(r",\s*(?:and|or)\s+(?=[-+\d\\$(])")  # "1, 2, and 3" is the list 1, 2, 3
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
    """The answer of a prose text, read from its last sentence: a leading verdict (`No, it is not
    possible.`); else, in the last part after a conclusion (", so …", "; therefore …") that holds math,
    with subordinate clauses (", since …", " because …") cut, the math run after an "answer is" cue, else
    after the last cue (therefore, thus, so, is, =, costs, …) that math follows, else the last math item. A
    run is one item or several joined by "and" / "or" / commas (`The roots are 2 and -3.` -> `2, -3`).
    A last sentence without math may still end in one word after "is" (`The winner is Alice.`); else the
    last sentence with math is read."""
    sentences = _sentences(text)
    if not sentences:
        return None
    verdict = _LEADING_VERDICT.match(sentences[-1])
    if verdict and not _math_items(sentences[-1]):  # "No, it is not possible." (not "no, 7 x 4 = 28")
        return verdict[1]
    with_math = [s for s in sentences if _math_items(s)]
    if sentences[-1] not in with_math:
        word = _WORD_AFTER_CUE.search(sentences[-1])
        if word:
            return word[1]
    if not with_math:
        return None
    sentence = with_math[-1]
    spans = _math_spans(sentence)
    parts = [m.end() for m in _CONCLUSION.finditer(sentence) if not _inside(spans, m.start())]
    for cut in reversed(parts):
        if _math_items(sentence[cut:]):
            sentence = sentence[cut:]
            break
    clause = _CLAUSE_END.search(sentence)
    head = sentence[:clause.start()] if clause and _math_items(sentence[:clause.start()]) else sentence
    spans = _math_spans(head)
    outside = lambda m: not _inside(spans, m.start())  # noqa: E731
    strong = [m for m in _ANSWER_CUE.finditer(head) if outside(m)]
    if strong:
        run = _answer_run(head[strong[-1].end():])
        if run is not None:
            return run
    for cue in reversed([m for m in _CUE.finditer(head) if outside(m)]):
        run = _answer_run(head[cue.end():])
        if run is not None:
            return run
    return _math_items(head)[-1]


def _answer_run(text: str) -> str | None:
    """The first math item of `text` and the items joined to it by list connectors, as one list answer."""
    items = _item_spans(text)
    if not items:
        return None
    run = [items[0]]
    for item in items[1:]:
        if not _LIST_GAP.fullmatch(text[run[-1][1]:item[0]]):
            break
        run.append(item)
    contents = [content for _, _, content in run]
    unit = _UNIT_AFTER.match(text, run[-1][1])
    if unit and len(run) == 1 and unit[1].lower() in _SCALES:
        contents[-1] += " " + unit[1]  # `2.5 million`
    elif unit and len(run) == 1 and unit[1].lower() not in _NOT_UNITS:
        as_unit = f"{contents[-1]} \\text{{ {unit[1]}}}"
        if read_unit(as_unit) is not None:
            contents[-1] = as_unit  # `3 mL`, `45 minutes`: a known unit keeps its value's meaning
    return ", ".join(contents)


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
    return [content for _, _, content in _item_spans(text)]


def _item_spans(text: str) -> list[tuple[int, int, str]]:
    """_math_items with their (start, end) in `text`."""
    items, last = [], 0
    for start, end, content in _math_spans(text):
        items.extend(_bare_runs(text, last, start))
        if content.strip() and not re.fullmatch(r"\s*[A-Za-z]\s*", content):
            items.append((start, end, content.strip()))
        last = end
    items.extend(_bare_runs(text, last, len(text)))
    return items


def _bare_runs(text: str, begin: int, end: int) -> list[tuple[int, int, str]]:
    """Runs of math-looking tokens in text[begin:end] (`12 * 3 = 36`, `3:45 p.m.`), with their positions;
    punctuation after a token ends its run."""
    runs, current = [], []  # current: [(start, end, word)]

    def close() -> None:
        if current:
            runs.append((current[0][0], current[-1][1], " ".join(w for _, _, w in current)))
            current.clear()

    for token in re.finditer(r"\S+", text[begin:end]):
        start = begin + token.start()
        raw = token[0]
        word = raw.rstrip(",.;:!?$").lstrip(",;:!?$")
        word = word.lstrip(".") if not re.match(r"\.\d", word) else word  # `.5` is a number
        offset = raw.find(word) if word else 0
        is_math = bool(word) and (
            bool(re.search(r"[\d\\=+*/^<>]", word)) and not re.search(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", word))
            or (len(word) == 1 and word.isalpha() and current) or word in ("-", "="))
        half_day = raw.rstrip(",;!?")
        if current and _AM_PM.match(half_day) and re.search(r"\d:\d\d\Z", current[-1][2]):
            is_math, word = True, half_day.rstrip(".")  # `3:45 p.m.` is one item
        if is_math:
            current.append((start + offset, start + offset + len(word), word))
            if raw != word and raw.rstrip(",.;:!?") != raw:  # punctuation ends the run
                close()
        else:
            close()
    close()
    out = []
    for start, _stop, run in runs:
        stripped = run.strip(" =")
        if _NUMBER_START.search(stripped) or re.search(r"\d", stripped):
            lead = run.find(stripped)
            out.append((start + lead, start + lead + len(stripped), stripped))
    return out


# ------------------------------------------------------------------------------------- choices (a pair)
_CHOICE = re.compile(r"\s*(?:\\text(?:bf)?\{\s*|\*\*)?\(\s*([A-E])\s*\)\s*(?:\}|\*\*)?\s*(.*?)\s*", re.S)
_CHOICE_INSIDE = re.compile(r"\([A-E]\)")
_LETTER = re.compile(r"\s*(?:\\text(?:bf)?\{\s*|\\mathrm\{\s*)?\(?\s*([A-E])\s*\)?\s*\}?\s*")


def choice_pair(pred: str, gold: str) -> tuple[str, str]:
    """A multiple-choice pair read on the terms of the other side: an option written with its text
    (`(B) 12`, `\\textbf{(B) }12`) is its letter against a lone letter, and its text against anything else;
    two options compare their letters. Other pairs are returned as they are."""
    cp, cg = (m if m and m[2] and not _CHOICE_INSIDE.search(m[2]) else None  # `(A) and (C)` is two choices
              for m in (_CHOICE.fullmatch(pred), _CHOICE.fullmatch(gold)))
    if not cp and not cg:
        return pred, gold
    lp, lg = _LETTER.fullmatch(pred), _LETTER.fullmatch(gold)
    if cp:
        pred = cp[1] if lg or cg else cp[2]
    if cg:
        gold = cg[1] if lp or cp else cg[2]
    return pred, gold
