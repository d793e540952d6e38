"""The tiered verdict (issue 24 item 1): our rules say equal, different-certain or unsure; only unsure pairs
reach math-verify, whose "equal" our certainty vetoes where it is known wrong; every verdict is counted by
the tier that decided it (equivalence.tier_counts, logged by the trainer as grader/tier_<name>)."""
import pytest

from seedgrpo.grading import equivalence, pool, second_opinion, worker
from seedgrpo.grading.rewards import math_reward


@pytest.fixture
def fresh_counts():
    equivalence._CACHE.clear()
    equivalence.tier_counts()
    yield
    equivalence.tier_counts()


# (pred, gold, reason): math-verify says "equal" on each (checked below), and each is different.
VETOED = [
    ("250 \\text{ mL}", "250 \\text{ L}", "units"),   # it drops units
    ("5cm", "5 \\text{ mm}", "units"),                # a glued unit against a spaced one
    ("x^2+y^2=25", "25", "equation"),                 # it reads the equation as its right side
    ("1,2", "(1,2)", "parts"),                        # a list of answers against an ordered pair
    ("\\{1,2\\}", "(1,2)", "parts"),                  # a set against an ordered pair
    ("2\\mathrm{i}", "2", "imaginary"),
    ("1011_3", "1011_2", "base"),                     # numerals in different bases
    ("3.14159292", "\\pi", "decimal"),                # 355/113: right to 6 digits, not to the 8 shown
    ("284 + 284 + 284 +", "284", "incomplete"),      # a sum cut off at the token limit (SmolLM2, MATH-500)
]


@pytest.mark.parametrize("pred, gold, reason", VETOED)
def test_math_verify_is_wrong_and_vetoed(pred, gold, reason):
    assert second_opinion.math_verify_equal(pred, gold)  # the case is real: math-verify says equal
    assert second_opinion.veto_reason(pred, gold) == reason
    assert not second_opinion.unsure(pred, gold)  # the caller decides it without a worker
    verdict, tier = worker.grade_pair_tier(pred, gold)
    assert not verdict and tier in ("veto", "sympy"), (verdict, tier)


@pytest.mark.parametrize("pred, gold", [
    ("\\left( 5 \\right)", "5"),            # our forms do not read \left( … \right) in the worker
    ("\\left(\\frac{1}{2}\\right)", "\\frac{2}{4}"),
])
def test_unsure_pairs_go_to_math_verify(pred, gold):
    assert second_opinion.unsure_form(pred, gold)
    assert worker.grade_pair_tier(pred, gold) == (True, "math_verify")


def test_certain_pairs_never_ask_math_verify(monkeypatch):
    def refuse(pred, gold):
        raise AssertionError(f"math-verify was asked about a certain pair {pred!r} / {gold!r}")

    monkeypatch.setattr(second_opinion, "math_verify_equal", refuse)
    for pred, gold in [("\\frac{1}{3}", "0.3334"), ("2^{10}", "1025"), ("\\sqrt{2}", "\\sqrt{3}"),
                       ("-\\frac{g(m-M)}{M+m}", "\\frac{(M-m)g}{M+m}")]:
        verdict, tier = worker.grade_pair_tier(pred, gold)
        assert tier == "sympy", (pred, gold, tier)
    assert worker.grade_pair_tier("-\\frac{g(m-M)}{M+m}", "\\frac{(M-m)g}{M+m}") == (True, "sympy")


def test_unsure_and_veto_rules():
    assert second_opinion.unsure("\\left(1, 2\\right)", "(1, 3)")
    assert second_opinion.unsure("AB=4, CD=5", "4, 6")           # labels, several parts
    assert not second_opinion.unsure("3", "4")                   # two numbers: certain
    assert not second_opinion.unsure("", "4")
    assert second_opinion.veto_reason("\\frac{1}{2}", "0.5") == "decimal"
    assert second_opinion.veto_reason("3:4", "0.75") == "colon"
    assert second_opinion.veto_reason("x = 3", "3") is None  # a labelled value: math-verify compares values
    assert second_opinion.veto_reason("\\{1, 2\\}", "\\{1, 2, 3\\}") == "parts"  # "find all": partial overlap
    assert second_opinion.veto_reason("**42**", "42") == "bold"


@pytest.mark.slow
def test_tier_counts_name_every_verdict_and_reset(fresh_counts):
    completions = ["\\boxed{0.5}", "\\boxed{\\frac12}", "so the answer is 3", "\\boxed{x+1}",
                   "\\boxed{\\left( 7 \\right)}", "\\boxed{250 \\text{ mL}}"]
    golds = ["\\frac12", "\\frac12", "4", "1+x", "7", "250 \\text{ L}"]
    assert math_reward(completions, golds) == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    counts = equivalence.tier_counts()
    assert set(counts) == set(equivalence.TIERS)
    # Two completions hash like their gold (`250 mL` would too, the clustering hash drops units, but against
    # a gold with a unit the grader compares units); each of the others is one verdict of another tier; none
    # timed out.
    assert counts["hash"] == 2 and sum(counts.values()) == 6 and counts["timeout"] == 0, counts
    assert sum(equivalence.tier_counts().values()) == 0  # reset
    equivalence._CACHE.clear()
    assert equivalence.check_answer_pairs([("x^2+y^2=25 \\text{ if } x = 3", "25")] * 2) == [False, False]
    counts = equivalence.tier_counts(reset=False)
    assert sum(counts.values()) == 2 and counts == equivalence.tier_counts(), counts
    pool.shutdown()
