"""When math-verify is asked about a pair our rules called different, and when its "equal" is overruled.

Our rules answer equal, different-certain or different-unsure. *Certain* means both sides were read whole and
compared in a form we model fully: two numbers, decimals against exact values (to the digits shown), times,
ratios, numerals in a base, units, words. *Unsure* means something in the pair is a form we read by
rules that can miss (labels and equations, several parts, absolute values, `\\left( … \\right)`, `\\lt`,
inequality chains, text inside `\\text{}`, a side our parser could not read); only then does math-verify
(parse + verify) get the pair, in a worker process under the pair's budget (seedgrpo.grading.worker).

Where math-verify is known to be wrong, our certainty vetoes its "equal" (`veto_reason`): units or words
that differ (it drops them), an equation against a value (it reads `x^2+y^2=25` as 25, an equation as 0),
several parts against a different number of parts or a set against an ordered tuple ("find all" answers
matched on partial overlap), markdown bold, numerals in a base, an imaginary unit or ± on one side only, a
decimal against an exact value (our rounding rule, to the digits shown, decides), and an expression cut off
after an operator on one side only (a completion stopped at the token limit mid-sum: it read
`284 + 284 + ... + 284 +` as 284, found on SmolLM2's MATH-500 outputs).

    from seedgrpo.grading.second_opinion import unsure, veto_reason
    unsure("AB=4, CD=5", "4, 5")          # True: labels and several parts
    veto_reason("250 \\text{ mL}", "250 \\text{ L}")   # 'units'

Pure Python (re); math-verify is imported only inside `math_verify_equal`, in the worker.
"""
from __future__ import annotations

import re

from . import reference, rules, units

__all__ = ["unsure", "unsure_form", "veto_reason", "math_verify_equal", "VETO_REASONS"]

VETO_REASONS = ("bold", "colon", "units", "base", "decimal", "words", "equation", "parts", "imaginary",
                "plus-minus", "incomplete")

# What makes our "different" a reading we may have got wrong (the forms the rules read by pattern).
_UNSURE_FORM = re.compile(
    r"\\left|\\right|\\[lg]t(?![A-Za-z])|\||\\mid|\\[vV]ert|<|>|\\[lg]eq?(?![A-Za-z])|\\[lg]eqslant|≤|≥"
    r"|\\(?:text|mathrm|textbf|mathbf|operatorname|mbox)\s*\{|\\(?:quad|qquad)|;"
    r"|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])")
_BOLD = re.compile(r"\*\*")
_IMAGINARY = re.compile(r"\\mathrm\{i\}|(?<![A-Za-z\\])i(?![A-Za-z])")
_PLUS_MINUS = re.compile(r"\\pm|\\mp|±")
_SET = re.compile(r"\A\s*\\\{.*\\\}\s*\Z", re.S)
_TUPLE = re.compile(r"\A\s*\(.*\)\s*\Z", re.S)
_PLAIN_DECIMAL = re.compile(r"\A\s*[-+]?\d*\.\d+\s*\Z")
# An expression that stops after a binary operator (or starts with one that needs a left operand).
_DANGLING = re.compile(r"(?:[-+*/^=]|\\(?:cdot|times|div))\s*\Z|\A\s*(?:[*/^=]|\\(?:cdot|times|div)(?![A-Za-z]))")


def unsure_form(pred: str, gold: str) -> bool:
    """Whether the pair holds a form our rules read by pattern (equations and labels beyond `name = value`,
    several parts that are not all numbers, absolute values, `\\left`, inequalities, text): our "different"
    on it may be a misreading. A choice letter against a number is certain."""
    if not pred.strip() or not gold.strip() or _too_costly(pred) or _too_costly(gold):
        return False
    if _CHOICE.match(pred) or _CHOICE.match(gold):
        return False
    several = _parts(pred) > 1 or _parts(gold) > 1
    return bool(_UNSURE_FORM.search(pred) or _UNSURE_FORM.search(gold) or _unsure_equation(pred)
                or _unsure_equation(gold) or (several and not (_all_numbers(pred) and _all_numbers(gold))))


_CHOICE = re.compile(r"\s*(?:\\text(?:bf)?\s*\{\s*)?\(?\s*[A-E]\s*\)?\s*\}?\s*\Z")
_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*\Z")


def _unsure_equation(s: str) -> bool:
    """An `=` beyond one or several `name = value` labels (which the rules drop): an equation, a chain."""
    return "=" in s and not _labelled_value(s)


def _all_numbers(s: str) -> bool:
    return all(_NUMBER.match(p) for p in _top_parts(s))


# Forms math-verify's sympy evaluates for seconds or forever (a tower of powers, a huge factorial, a long
# digit run, deep nesting): our "different" stands, and the pair costs no second process start after a kill.
_COSTLY = re.compile(r"\^\s*\{[^{}]*\^|\d{30}|[\d)]\s*!|\\binom\s*\{[^}]*[\d^]{3}")
MAX_SECOND_OPINION_CHARS = 300


def _too_costly(s: str) -> bool:
    return len(s) > MAX_SECOND_OPINION_CHARS or s.count("{") > 40 or bool(_COSTLY.search(s))


def unsure(pred: str, gold: str) -> bool:
    """Whether math-verify could overturn our "different": an unsure form that no veto settles. The value
    rules in the trainer's process use it to send such pairs to the worker pool instead of deciding them."""
    return unsure_form(pred, gold) and veto_reason(pred, gold) is None


def veto_reason(pred: str, gold: str) -> str | None:
    """Why math-verify's "equal" on this pair is known to be wrong, or None."""
    if _BOLD.search(pred + gold):
        return "bold"
    if ":" in pred + gold:
        return "colon"  # times and ratios: rules.form_verdict reads them; math-verify divides or drops them
    if units.units_differ(pred, gold) or _unit_mismatch(pred, gold):
        return "units"
    if rules._BASE_SUBSCRIPT.search(pred + " " + gold):
        return "base"
    if _PLAIN_DECIMAL.match(pred) or _PLAIN_DECIMAL.match(gold):
        return "decimal"  # rules.decimal_matches decided: to the digits shown
    if _has_word(pred) or _has_word(gold):
        return "words"
    if ("=" in pred) != ("=" in gold) and not _labelled_value(pred if "=" in pred else gold):
        return "equation"
    if _parts(pred) != _parts(gold) or _container(pred) != _container(gold):
        return "parts"
    if bool(_IMAGINARY.search(pred)) != bool(_IMAGINARY.search(gold)):
        return "imaginary"
    if bool(_PLUS_MINUS.search(pred)) != bool(_PLUS_MINUS.search(gold)):
        return "plus-minus"
    if bool(_DANGLING.search(pred)) != bool(_DANGLING.search(gold)):
        return "incomplete"
    return None


_TRAILING_LETTERS = re.compile(r"\d\s*[A-Za-z]+\s*\Z")


def _unit_mismatch(pred: str, gold: str) -> bool:
    """A unit on one side only (`5cm` / `5 \\text{ mm}`: a glued unit is not read as one), or two units of
    different dimension or scale."""
    up, ug = units.read_unit(pred), units.read_unit(gold)
    if up is None and ug is None:
        return False
    if up is None or ug is None:
        return bool(_TRAILING_LETTERS.search(pred if up is None else gold))
    return up[1:] != ug[1:]


def _has_word(s: str) -> bool:
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", " ", s))
    return any(rules.reads_as_word(w) and not units.read_unit(s) for w in words)


def _labelled_value(s: str) -> bool:
    """`x = 5`, `(a, b) = (1, 4)`, `AB = 4, CD = 5`: names given values (math-verify compares the values)."""
    parts = reference._split_top(s.strip().strip("$"), ",")
    return all(rules.LABEL.match(p) and p.count("=") == 1 for p in parts)


_SIZED = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")


def _top_parts(s: str) -> list[str]:
    """The top-level comma parts of s: of a bare list, or inside one set, tuple or interval (sizing
    commands dropped); empty parts kept."""
    body = _SIZED.sub("", s).strip()
    for open_, close in (("\\{", "\\}"), ("(", ")"), ("[", "]")):
        if body.startswith(open_) and body.endswith(close):
            body = body[len(open_):len(body) - len(close)]
            break
    return reference._split_top(body, ",")


def _parts(s: str) -> int:
    """The number of answers in s: top-level parts of a bare list, or elements of one set or tuple."""
    return len([p for p in _top_parts(s) if p.strip()])


def _container(s: str) -> str:
    if _parts(s) < 2:
        return "one"
    s = _SIZED.sub("", s)
    return "set" if _SET.match(s) else "tuple" if _TUPLE.match(s) else "list"


# ---------------------------------------------------------------------------------------- math-verify
_PLAIN_MATH = re.compile(r"[0-9A-Za-z+\-*/^().\s]+\Z")


def math_verify_equal(pred: str, gold: str) -> bool:
    """math-verify's parse + verify on two final answers, each side with the extraction settings that fit
    it (LaTeX for LaTeX, plain expressions for `sqrt(2)/2`); its own signal timeouts off (the worker pool's
    budget holds: this runs in a worker that is killed past the pair's deadline)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    def read(side: str):
        side = side.replace("**", "")  # markdown bold: math-verify would read `**` as a power
        if "\\" not in side and "$" not in side and _PLAIN_MATH.match(side):
            return parse(side, extraction_config=[ExprExtractionConfig(), LatexExtractionConfig()],
                         parsing_timeout=None)
        if "$" in side or "\\boxed" in side:  # delimited already: its own delimiters, then plain expressions
            return parse(side, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                         parsing_timeout=None)
        return parse(f"${side}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)

    parsed_gold, parsed_pred = read(gold), read(pred)
    return bool(parsed_gold and parsed_pred and verify(parsed_gold, parsed_pred, timeout_seconds=None))
