"""The grader on every failure family of issue 15 (tests/grading_cases.py: reading; tests/grading_cases_forms.py:
forms and values): true-equal pairs graded equal, must-not-be-equal pairs graded different, through the public
is_equivalent path (the pool included)."""
import pytest

from grading_cases import FAMILIES
from grading_cases_forms import FAMILIES as FORM_FAMILIES
from seedgrpo.grading import equivalence, pool, reading, rules

CASE_FILES = {"grading_cases": FAMILIES, "grading_cases_forms": FORM_FAMILIES}


@pytest.mark.slow
@pytest.mark.parametrize("source, family", [(s, f) for s, fams in CASE_FILES.items() for f in sorted(fams)])
def test_family(source, family):
    cases = CASE_FILES[source][family]
    # A generous budget: this test is about verdicts; the budget has its own tests (test_grader_load.py).
    verdicts = equivalence.check_answer_pairs([(p, g) for p, g, _ in cases], timeout_s=20.0)
    wrong = [(p, g, want) for (p, g, want), got in zip(cases, verdicts) if got != want]
    assert not wrong, wrong


@pytest.mark.parametrize("text, answer", [
    ("Thus the total is $36$ apples.", "36"),
    ("So n = 7, which is prime.", "7"),
    ("It costs $12 and $30, so the answer is $42$.", "42"),
    ("He pays $5 for a pen and $3 for paper, so he spends $8 in total.", "8"),
    ("The probability is $\\frac{1}{6}$, since there are 6 outcomes.", "\\frac{1}{6}"),
    ("\\boxed{2}, \\boxed{-3}", "2, -3"),
    ("x = \\boxed{3} or x = \\boxed{5}", "3, 5"),
    ("First guess \\boxed{7}. After checking, the answer is \\boxed{9}.", "9"),
    ("The answer is 5 because 2 + 3 = 5.", "5"),
    ("\\\\frac{1}{2}", "\\frac{1}{2}"),
    ("\\frac{1}{2", "\\frac{1}{2}"),
    ("40 per cent", "40\\%"),
    ("0.\\overline{3}", "\\frac{1}{3}"),
    ("x^2 + 1", "x^2 + 1"),  # not prose: unchanged
    ("n \\text{ even}", "n \\text{ even}"),
])
def test_final_answer(text, answer):
    assert reading.final_answer(text) == answer


@pytest.mark.parametrize("pred, gold, forms", [
    ("x = 2+2 = 4", "4", ("4", "4")),
    ("(a,b)=(1,4)", "(1,4)", ("(1,4)", "(1,4)")),
    ("3=y", "3", ("3", "3")),
    ("-1 < x \\le 4", "(-1, 4]", ("(-1,4]", "(-1, 4]")),
    ("x \\geq 2", "[2, \\infty)", ("[2,\\infty)", "[2, \\infty)")),
    ("1 \\pm \\sqrt2", "1+\\sqrt2, 1-\\sqrt2", ("1 + \\sqrt2, 1 - \\sqrt2", "1+\\sqrt2, 1-\\sqrt2")),
])
def test_pair_forms(pred, gold, forms):
    assert rules.pair_forms(pred, gold)[-1] == forms


def test_value_rules_settle_without_a_process():
    pool.shutdown()
    equivalence._CACHE.clear()
    settled = [("25\\%", "0.25", True), ("0.1428571", "\\frac17", True), ("0.333", "\\frac13", False),
               ("11:00", "2:00", False), ("2:30 p.m.", "14:30", True), ("1,000", "1.000", False),
               ("Yes", "yes", True), ("52_8", "53", False), ("0.1251", "\\frac18", False)]
    assert equivalence.check_answer_pairs([(p, g) for p, g, _ in settled]) == [want for _, _, want in settled]
    assert not pool.pool_started()


def test_decimal_rule():
    from fractions import Fraction

    assert rules.decimal_matches(Fraction("3.1416"), 4, Fraction(314159265, 100000000))  # rounded
    assert rules.decimal_matches(Fraction("3.1415"), 4, Fraction(314159265, 100000000))  # truncated
    assert not rules.decimal_matches(Fraction("3.1417"), 4, Fraction(314159265, 100000000))
    assert rules.decimal_matches(Fraction("-0.3333"), 4, Fraction(-1, 3))
    assert not rules.decimal_matches(Fraction("0.1251"), 4, Fraction(1, 8))  # 1/8 is a short decimal
    assert rules.decimal_places("3.14") is None  # too few significant digits to stand for pi


@pytest.mark.parametrize("words, number", [
    ("seven", 7), ("twenty-one", 21), ("one hundred and five", 105), ("two thousand three hundred", 2300),
    ("negative three", -3), ("\\text{twelve}", 12), ("zero", 0), ("seven three", None), ("twenty twelve", None),
    ("sevens", None), ("", None), ("one of them", None),
])
def test_number_words(words, number):
    assert reading.number_from_words(words) == number


@pytest.mark.parametrize("pred, gold, read", [
    ("(B) 12", "B", ("B", "B")), ("\\textbf{(B) } 12", "12", ("12", "12")), ("C", "(C) 7", ("C", "C")),
    ("(A) and (C)", "A", ("(A) and (C)", "A")), ("(1,2)", "(1,2)", ("(1,2)", "(1,2)")),
])
def test_choice_pair(pred, gold, read):
    assert reading.choice_pair(pred, gold) == read
