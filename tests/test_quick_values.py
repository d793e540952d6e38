"""seedgrpo.grading.quick_values against the worker it stands in for: it may only say "different" where the worker's
comparison (worker.symbolic_equal, sympy) says so too, and its values are sympy's values."""
import cmath
import random

import pytest

from grading_cases import FAMILIES
from grading_cases_forms import FAMILIES as FORM_FAMILIES
from seedgrpo.grading import answers, quick_values, reading, rules, worker
from seedgrpo.grading.reference import _split_top

# (a, b): equal to the worker, written differently; each exercises one piece of the grammar.
EQUAL = [
    ("5!", "120"), ("\\binom{5}{2}", "10"), ("\\lfloor 2.5\\rfloor", "2"), ("\\lceil 2.1\\rceil", "3"),
    ("bs+1", "1+sb"), ("RC", "CR"), ("it", "ti"), ("\\dot{x}_{0}t", "t\\dot{x}_{0}"),
    ("\\frac{1}{\\lambda[e^{x}-1]}", "\\frac{1}{\\lambda(e^{x}-1)}"), ("\\log 100", "2"),
    ("\\arcsin{1}", "\\frac{\\pi}{2}"), ("2^{1009}", "2\\cdot 2^{1008}"), ("\\frac{d!}{d}", "(d-1)!"),
    ("\\binom{n}{2}", "\\frac{n(n-1)}{2}"), ("\\hbar\\omega", "\\omega\\hbar"), ("ce^{-2x}", "\\frac{c}{e^{2x}}"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&\\frac{8}{2}\\end{pmatrix}"),
    ("1\\pm\\sqrt{2}", "1\\pm\\sqrt{2}"), ("\\frac{2\\pi c^{2}}{\\lambda^{5}}", "2\\pi c^{2}\\lambda^{-5}"),
    ("\\sqrt{-25}", "5i"), ("3+4\\sqrt{-1}", "3+4i"), ("(-4)^{\\frac{1}{2}}", "2i"),
    ("2x-y+1-(0)=0", "y-(2x+1)=0"), ("x+y-(5)=0", "2y-(10-2x)=0"), ("(1,\\sqrt{4})", "(1,2)"),
]
# (a, b): different to the worker, and plainly so to quick_values.
DIFFERENT = [
    ("5!", "100"), ("\\binom{6}{2}", "10"), ("\\lfloor 3.5\\rfloor", "2"), ("bs+1", "b+s"), ("it", "t"),
    ("\\log 1000", "2"), ("2^{1009}", "2^{1008}"), ("\\frac{d!}{2}", "d!"),
    ("\\begin{pmatrix}-7\\\\16\\\\5\\end{pmatrix}", "\\begin{pmatrix}16/49\\\\48/49\\\\24/49\\end{pmatrix}"),
    ("\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("-4", "1\\pm\\sqrt{19}"), ("300", "\\frac{2\\pi c^{2}R^{2}}{\\lambda^{5}[e^{hc/(\\lambda kT)}-1]}"),
    ("\\frac{1}{\\sqrt{2}}c", "\\dot{x}_{0}\\sin(\\omega t)/\\omega"), ("\\arcsin{1}", "\\pi"),
    ("\\sqrt{-25}", "-5i"), ("x-(2y+1)=0", "y-(2x+1)=0"), ("x-(2)=0", "x-(3)=0"), ("4x+2y=12", "x+2y=6"),
    ("[-2,2]", "(-2,2)"), ("(1,2)", "(2,1)"), ("(1,2)", "(1,2,3)"), ("\\{1,2\\}", "\\{1,2,3\\}"),
]


def _canonical(e: str) -> str:
    return answers.canonicalize(e)


@pytest.mark.parametrize("a, b", EQUAL)
def test_equal_forms_are_never_called_different(a, b):
    ca, cb = _canonical(a), _canonical(b)
    assert worker.symbolic_equal(ca, cb), (ca, cb)  # the case is right: the worker says equal
    assert not quick_values.certainly_different(ca, cb, _split_top), (ca, cb)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_plainly_different_forms_are_settled(a, b):
    ca, cb = _canonical(a), _canonical(b)
    assert quick_values.certainly_different(ca, cb, _split_top), (ca, cb)
    assert not worker.symbolic_equal(ca, cb), (ca, cb)


@pytest.mark.parametrize("expr", ["5!", "\\binom{7}{3}", "\\lfloor\\frac{7}{2}\\rfloor", "\\log 7", "\\arctan{2}",
                                  "\\frac{1}{[e-1]}", "i+3", "2^{1009}", "\\sqrt[3]{-8}", "\\frac{(2.5)!}{3}",
                                  "\\sqrt{-25}", "(-4)^{\\frac{1}{2}}", "2-\\sqrt{-3}"])
def test_values_are_sympys(expr):
    canonical = _canonical(expr)
    value, has_variables = quick_values.quick_value(canonical)
    import sympy

    exact = complex(worker._parse(canonical).subs(sympy.Symbol("i"), sympy.I).evalf(30))
    assert not has_variables
    assert abs(value - exact) <= 1e-12 * max(1.0, abs(exact)), (canonical, value, exact)


@pytest.mark.slow
def test_never_different_where_the_worker_says_equal():
    """Every form pair of the family cases, and fresh random perturbations of the grammar's constructs."""
    pairs = []
    for cases in [*FAMILIES.values(), *FORM_FAMILIES.values()]:
        for pred, gold, _ in cases:
            p, g = reading.final_answer(pred), reading.final_answer(gold)
            for fp, fg in rules.pair_forms(p, g):
                pairs += [(_canonical(x), _canonical(y)) for x, y in rules.value_pairs(fp, fg)]
    rng = random.Random()
    atoms = ["x", "n", "\\omega", "\\dot{y}", "e", "i", "\\pi", "3", "\\frac{1}{2}", "k!", "\\binom{5}{k}"]
    for _ in range(60):
        a, b, c = rng.sample(atoms, 3)
        pairs += [(f"{a}({b}+{c})", f"{a}{b}+{a}{c}"), (f"({a}+{b})^{{2}}", f"{a}^{{2}}+2{a}{b}+{b}^{{2}}"),
                  (f"{a}{b}", f"{b}{a}"), (f"{a}+{b}", f"{b}+{a}+{rng.randint(1, 9)}")]
    checked = 0
    for ca, cb in pairs:
        if ca and cb and ca != cb and quick_values.certainly_different(ca, cb, _split_top):
            checked += 1
            assert not worker.symbolic_equal(ca, cb), (ca, cb)
    assert checked > 100


def test_variables_take_fixed_values():
    # The same pair always gets the same verdict: a variable's value depends on its name and the point only.
    first, _ = quick_values.quick_value("\\omega t")
    again, _ = quick_values.quick_value("\\omega t")
    other, _ = quick_values.quick_value("\\omega t", point=1)
    assert first == again and not cmath.isclose(first, other)
