"""The grader under load (issue 18 item 5): one step's worth of 8,192 completions with hostile answers mixed
in is graded within the per-pair budget, no worker is left stuck, and the benign rows get a calm run's
rewards."""
import math
import time

import pytest

from seedgrpo.grading import equivalence, pool
from seedgrpo.grading.rewards import math_reward

BUDGET_S = 0.2
G = 8
PROMPTS = 1024  # 8,192 completions
HOSTILE = ["10^{10^{10^{10}}}", "9^{9^{9^{9}}}", "\\sqrt{" * 300 + "2" + "}" * 300]


def step(hostile_rows: dict[int, str]) -> tuple[list[str], list[str]]:
    completions, golds = [], []
    for p in range(PROMPTS):
        gold = ["\\frac{\\sqrt{3}}{3}", str(p), "\\frac{%d}{7}" % (p + 1)][p % 3]
        for g in range(G):
            row = p * G + g
            if row in hostile_rows:
                answer = hostile_rows[row]
            elif g % 4 == 0:
                answer = ["\\frac{1}{\\sqrt{3}}", str(p), "%d/7" % (p + 1)][p % 3]  # right, written otherwise
            elif g % 4 == 1:
                answer = str(p + g)  # wrong
            else:
                answer = gold if g % 2 else "x+%d" % g
            completions.append(f"Reasoning...\nso the answer is \\boxed{{{answer}}}.")
            golds.append(gold)
    return completions, golds


@pytest.mark.slow
def test_hostile_answers_cost_their_budget_and_no_more():
    pool.shutdown()
    equivalence._CACHE.clear()
    start = time.monotonic()
    equivalence.check_answer_pairs([("x+1", "1+x")])  # start the pool: a trainer keeps it warm
    startup_s = time.monotonic() - start
    workers = pool._POOL.size

    calm_completions, golds = step({})
    equivalence._CACHE.clear()
    start = time.monotonic()
    calm = math_reward(calm_completions, golds, timeout_s=BUDGET_S)
    calm_s = time.monotonic() - start

    hostile_rows = {row: HOSTILE[k % len(HOSTILE)] for k, row in enumerate(range(5, G * PROMPTS, 1361))}
    completions, _ = step(hostile_rows)
    equivalence._CACHE.clear()
    start = time.monotonic()
    loaded = math_reward(completions, golds, timeout_s=BUDGET_S)
    loaded_s = time.monotonic() - start

    distinct_hostile = len({(hostile_rows[row], golds[row]) for row in hostile_rows})  # cached per pair
    # Each distinct hostile pair costs its budget on one worker. The killed worker's place goes to a warm
    # spare; the spare that replaces the spare starts a fresh interpreter (sympy, math-verify) in the
    # background, so a round of kills beyond the spare can wait one start: the bound counts it, plus 2 s.
    rounds = math.ceil(distinct_hostile / workers)
    bound = calm_s + (BUDGET_S + startup_s) * rounds + 2.0
    assert loaded_s <= bound, (loaded_s, bound, calm_s, startup_s)
    assert all(loaded[row] == 0.0 for row in hostile_rows)
    benign = [row for row in range(len(golds)) if row not in hostile_rows]
    assert [loaded[r] for r in benign] == [calm[r] for r in benign]
    assert sum(calm) > 0.3 * len(calm)  # the step holds right answers (written in several ways)
    # no worker is left stuck: every worker is idle, alive, and answers at once
    assert all(w.task is None and w.proc.poll() is None for w in pool._POOL._workers)
    assert len(pool._POOL._spares) <= 1
    start = time.monotonic()
    assert equivalence.check_answer_pairs([("\\sin x", "\\sin x + 0")], timeout_s=60.0) == [True]
    assert time.monotonic() - start < 30.0
    pool.shutdown()
