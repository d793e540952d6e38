"""The evaluation harness (seedgrpo/evaluate.py): loaders, grading, avg@n / pass@k, the CLI, a tiny model."""
import itertools
import json
import random
from pathlib import Path

import pytest

from seedgrpo import evaluate

from seedgrpo.tasks import toy
from seedgrpo.tasks.data import Problem

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"benchmark files not found at {DATA_DIR}")


# ----------------------------------------------------------------------------------------- pass@k, summary
def _pass_at_k_by_enumeration(n, c, k):
    draws = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in draw) for draw in draws) / len(draws)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_is_the_probability_that_k_of_n_samples_hold_a_correct_one(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert evaluate.pass_at_k(n, c, k) == pytest.approx(_pass_at_k_by_enumeration(n, c, k), abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k"):
        evaluate.pass_at_k(n, c, k)


def test_summarize_reports_avg_and_pass_at_k_in_percent():
    graded = [{"scores": [1.0, 0.0, 0.0, 0.0], "num_correct": 1}, {"scores": [0.0] * 4, "num_correct": 0}]
    summary = evaluate.summarize(graded)
    assert summary["num_problems"] == 2 and summary["n"] == 4
    assert summary["avg@4"] == pytest.approx(12.5)
    assert summary["pass@1"] == pytest.approx(12.5)  # pass@1 is avg@n, in expectation and exactly
    assert summary["pass@2"] == pytest.approx(25.0)  # 1 - C(3,2)/C(4,2) = 1/2 on the first, 0 on the second
    assert summary["pass@4"] == pytest.approx(50.0)
    assert set(evaluate.summarize([{"scores": [1.0], "num_correct": 1}])) == {"num_problems", "n", "avg@1"}
    with pytest.raises(ValueError, match="same n"):
        evaluate.summarize([{"scores": [1.0], "num_correct": 1}, {"scores": [1.0, 0.0], "num_correct": 1}])


# ------------------------------------------------------------------------------------------------ grading
def test_grade_completions_scores_each_sample_and_extracts_answers():
    problems = [Problem("2+2=", "4", "a", {}), Problem("half?", "\\frac{1}{2}", "b", {}),
                Problem("which?", ["7"], "c", {})]
    completions = [["so \\boxed{4}", "\\boxed{5}"], ["it is \\boxed{0.5}", "no answer"],
                   ["\\boxed{7}", "\\boxed{8}"]]
    graded = evaluate.grade_completions(problems, completions)
    assert [g["scores"] for g in graded] == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    assert [g["num_correct"] for g in graded] == [1, 1, 1]
    assert graded[0]["answers"] == ["4", "5"] and graded[1]["answers"][1] is None
    assert graded[1]["gold"] == "\\frac{1}{2}" and graded[2]["id"] == "c"
    with pytest.raises(ValueError, match="completions"):
        evaluate.grade_completions(problems, completions[:2])


def _reference_completion(problem: Problem) -> str:
    """A short solution ending in the boxed reference answer, as a model would write it."""
    gold = problem.answer if isinstance(problem.answer, str) else ", ".join(problem.answer)
    return f"Let's think step by step.\nTherefore the final answer is $\\boxed{{{gold}}}$."


@needs_data
@pytest.mark.parametrize("name", list(evaluate.BENCHMARKS))
def test_grading_accepts_reference_answers_and_rejects_mismatched_ones(name):
    problems = evaluate.load_benchmark(name, DATA_DIR)
    references = [_reference_completion(p) for p in problems]
    right = evaluate.grade_completions(problems, references)
    accuracy = sum(g["num_correct"] for g in right) / len(problems)
    misses = [(g["gold"], g["answers"][0]) for g in right if not g["num_correct"]]
    assert accuracy >= 0.99, f"{name}: {accuracy:.3f} of references graded correct; misses: {misses[:10]}"

    # Each problem gets the reference of another problem whose gold is written differently.
    rng = random.Random(0)
    mismatched = []
    for p in problems:
        other = rng.choice(problems)
        while other.answer == p.answer:
            other = rng.choice(problems)
        mismatched.append(_reference_completion(other))
    wrong = evaluate.grade_completions(problems, mismatched)
    false_accepts = [(g["gold"], g["answers"][0]) for g in wrong if g["num_correct"]]
    assert len(false_accepts) <= 0.01 * len(problems), f"{name}: accepted {false_accepts[:10]}"


@needs_data
def test_minerva_reference_solutions_grade_correct_as_written():
    """Minerva's gold is the last \\boxed{} of its solution: the raw solution text must grade correct."""
    import json as _json

    path = DATA_DIR / evaluate.BENCHMARKS["minerva_math"]
    solutions = [_json.loads(line)["solution"] for line in path.open()]
    problems = evaluate.load_benchmark("minerva_math", DATA_DIR)
    graded = evaluate.grade_completions(problems, solutions)
    assert sum(g["num_correct"] for g in graded) >= 0.99 * len(problems)


@needs_data
def test_loaders_handle_each_benchmark_layout():
    amc = evaluate.load_benchmark("amc23", DATA_DIR, limit=3)
    assert amc[0].answer == "27"  # stored as the float 27.0
    olympiad = evaluate.load_benchmark("olympiadbench", DATA_DIR, limit=2)
    first = json.loads((DATA_DIR / evaluate.BENCHMARKS["olympiadbench"]).open().readline())
    assert olympiad[0].problem == first["question"].strip()
    assert olympiad[0].answer in (first["final_answer"], first["final_answer"][0])
    minerva = evaluate.load_benchmark("minerva_math", DATA_DIR, limit=1)
    assert minerva[0].answer and "\\boxed" not in minerva[0].answer
    assert len(evaluate.load_benchmark("math500", DATA_DIR, limit=7)) == 7
    with pytest.raises(ValueError, match="benchmark"):
        evaluate.load_benchmark("gsm8k", DATA_DIR)
    with pytest.raises(ValueError, match="data_dir"):
        evaluate.load_benchmark("aime24", DATA_DIR / "nowhere")


# --------------------------------------------------------------------------------- generation and the CLI
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tokenizer = toy.make_tokenizer(path)
    toy.make_model(tokenizer, layers=1, hidden=32).save_pretrained(path)
    return path


def test_generate_completions_greedy_is_deterministic_and_sampling_returns_n(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["1+2=", "34*5=", "7-7="]
    greedy = evaluate.generate_completions(model, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    assert [len(g) for g in greedy] == [1, 1, 1]
    assert greedy == evaluate.generate_completions(model, tokenizer, prompts, max_new_tokens=6, batch_size=3)
    sampled = evaluate.generate_completions(model, tokenizer, prompts, n=4, temperature=1.0, max_new_tokens=6)
    assert [len(s) for s in sampled] == [4, 4, 4]
    assert len({text for group in sampled for text in group}) > 1
    with pytest.raises(ValueError, match="temperature"):
        evaluate.generate_completions(model, tokenizer, prompts, n=2, temperature=0.0)


@needs_data
def test_eval_cli_on_a_tiny_model_writes_tables_and_graded_completions(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    report = evaluate.main(["--model", str(tiny_model_dir), "--benchmarks", "aime24,amc23,olympiadbench",
                            "--data-dir", str(DATA_DIR), "--limit", "2", "--max-new-tokens", "4",
                            "--template", "none", "--n", "2", "--temperature", "1.0",
                            "--output-dir", str(out)])
    assert set(report["benchmarks"]) == {"aime24", "amc23", "olympiadbench"}
    assert report["benchmarks"]["amc23"]["num_problems"] == 2
    assert set(report["average"]) == {"avg@2", "pass@1", "pass@2"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["benchmarks"] == report["benchmarks"]
    table = (out / "results.md").read_text()
    assert "| amc23 | 2 |" in table and "**average**" in table
    records = [json.loads(line) for line in (out / "olympiadbench.jsonl").open()]
    assert len(records) == 2 and all(len(r["completions"]) == 2 and len(r["scores"]) == 2 for r in records)
    assert all(s in (0.0, 1.0) for r in records for s in r["scores"])


def test_eval_cli_rejects_unknown_benchmarks(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="benchmarks"):
        evaluate.main(["--model", str(tiny_model_dir), "--benchmarks", "gsm8k", "--data-dir", str(tmp_path)])


@needs_data
def test_vllm_engine_glue_with_a_stand_in_module(tiny_model_dir, tmp_path, monkeypatch):
    """vllm is CUDA-only: check what evaluate passes to it and reads back, with a stand-in `vllm` module."""
    import sys
    import types

    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            calls["params"] = kwargs

    class LLM:
        def __init__(self, model, seed):
            calls["model"] = model

        def generate(self, prompts, params):
            calls["prompts"] = prompts
            n = calls["params"]["n"]
            outputs = [types.SimpleNamespace(text=f"\\boxed{{{i}}}") for i in range(n)]
            return [types.SimpleNamespace(outputs=outputs) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    report = evaluate.evaluate(tiny_model_dir, ["amc23"], DATA_DIR, engine="vllm", n=3, temperature=0.6,
                               max_new_tokens=7, limit=4, template="none", output_dir=tmp_path)
    assert calls["model"] == str(tiny_model_dir) and len(calls["prompts"]) == 4
    assert calls["params"] == dict(n=3, temperature=0.6, top_p=1.0, max_tokens=7, seed=0)
    records = [json.loads(line) for line in (tmp_path / "amc23.jsonl").open()]
    assert [r["answers"] for r in records] == [["0", "1", "2"]] * 4
    assert report["benchmarks"]["amc23"]["n"] == 3
