"""seedgrpo.rewards.math_reward: gold types, multi-part answers, the fast path, and quality on real data."""
import json
import os
from pathlib import Path

import pytest

from seedgrpo.grading import answers, equivalence, pool
from seedgrpo.grading.rewards import math_reward

# ../shared/data beside the checkout; SEEDGRPO_DATA points elsewhere (a git worktree one level deeper)
DATA = Path(os.environ.get("SEEDGRPO_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def test_gold_types_and_fast_path():
    pool.shutdown()
    equivalence._CACHE.clear()
    completions = ["... so \\boxed{27}", "the answer is 0.5", "\\boxed{B}", "no answer", "\\boxed{7}",
                   "\\boxed{8}"]
    golds = [27.0, "$\\frac{1}{2}$", "\\text{(B)}", "5", ["6", "7"], ["6", "7"]]
    assert math_reward(completions, golds) == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert not pool.pool_started()  # every decision above was exact


def test_an_equal_hash_does_not_hide_another_unit():
    """The canonical form drops unit words, so the fast path would take `3 hours` for `3 days`; against a gold
    with a unit the grader compares the units (same unit or converted: right; another unit: wrong)."""
    completions = ["\\boxed{3 hours}", "\\boxed{250\\text{ mL}}", "\\boxed{3 hours}", "\\boxed{2 hours}",
                   "\\boxed{250\\text{ mL}}", "\\boxed{3}", "\\boxed{3 days}"]
    golds = ["3 days", "250\\text{ L}", "3 hours", "120 minutes", "250\\text{ mL}", "3 days", "3"]
    assert math_reward(completions, golds) == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_a_completion_cut_off_before_its_value_has_no_answer():
    """Real SmolLM2 outputs stopped at the token limit restate the question and end before the value
    ("...: 9 + 26 =", "284 + 284 + ... +"): both graders used to credit them with the question's own value.
    An answer phrase or box before the cut still counts."""
    completions = ["Now, we can add these two numbers together: 9 + 26 =",
                   "The sum of the proper divisors of 284 is 284 + 284 + 284 + 284 +",
                   "The answer is 35. Check: 9 + 26 =", "\\boxed{35} since 9 + 26 =", "So we get 9 + 26 = 35."]
    golds = ["35", "284", "35", "35", "35"]
    assert math_reward(completions, golds) == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_one_conclusion_word_before_the_math_is_its_lead_in():
    """"So 9 + 26 = 35." is the equation's value, as "9 + 26 = 35" is (it used to be read as an expression
    with a word in it, and graded wrong); the word alone, or a wrong value after it, is still no answer."""
    completions = ["So 9 + 26 = 35.", "Thus, x = 5", "Therefore: 12", "Finally 7", "So 9 + 26 = 36.", "So"]
    golds = ["35", "5", "12", "7", "35", "35"]
    assert math_reward(completions, golds) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.slow
def test_multi_part_answers_must_all_match_in_any_order():
    gold = "$69$,$84$"
    completions = ["\\boxed{84, 69}", "\\boxed{69,84}", "\\boxed{69}", "\\boxed{69, 84, 1}",
                   "\\boxed{(69, 84)}"]
    assert math_reward(completions, [gold] * 5) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert math_reward(["\\boxed{\\frac{1}{\\sqrt3}}"], ["\\frac{\\sqrt{3}}{3}"]) == [1.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        math_reward(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="wrap it in a list"):
        math_reward("\\boxed{1}", ["1"])
    with pytest.raises(ValueError, match="at least one answer"):
        math_reward(["\\boxed{1}"], [[]])


def benchmark_golds(name: str) -> list:
    records = [json.loads(line) for line in open(DATA / name / "test.jsonl", encoding="utf-8")]
    if name == "olympiadbench":
        return [r["final_answer"] for r in records]
    if name == "minerva_math":  # no answer field: the reference is the last \boxed{} of the solution
        return [answers.extract_answer(r["solution"]) for r in records]
    return [r["answer"] for r in records]


def gold_text(gold) -> str:
    return gold[0] if isinstance(gold, list) else repr(gold) if isinstance(gold, float) else gold


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize("name", ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"])
def test_reference_answers_grade_right_against_their_gold_and_wrong_against_others(name):
    # A sample of each benchmark (benchmarks/bench_answers.py --quality runs all of it).
    golds = benchmark_golds(name)
    sample = list(range(0, len(golds), max(1, len(golds) // 25)))
    completions = [f"Reasoning...\nso the answer is \\boxed{{{gold_text(golds[i])}}}." for i in sample]

    def written(gold) -> str:
        return gold_text(gold).replace("$", "").replace(" ", "")

    def differs(j, i):  # another problem whose gold is written differently
        return written(golds[j]) != written(golds[i])

    others = []
    for i in sample:
        j = (i + 1) % len(golds)
        while not differs(j, i):
            j = (j + 1) % len(golds)
        others.append(golds[j])
    own = math_reward(completions, [golds[i] for i in sample])
    other = math_reward(completions, others)
    assert sum(own) / len(sample) >= 0.99, [gold_text(golds[i]) for i, r in zip(sample, own) if r < 1]
    assert sum(other) / len(sample) <= 0.01, [gold_text(g) for g, r in zip(others, other) if r > 0]
