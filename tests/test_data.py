"""seedgrpo.tasks.data: loading the shared benchmark/training files, explicit field mappings, prompts, sampling."""
import json
from pathlib import Path

import pytest

from seedgrpo.tasks.data import Problem, PromptSampler, format_prompt, last_boxed, load_problems

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")

# (file, records, first answer, answer type) from ../shared/data/README.md
SHARED = [
    ("aime24/test.jsonl", 30, "204"),
    ("amc23/test.jsonl", 40, "27"),          # stored as the float 27.0
    ("math500/test.jsonl", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("minerva_math/test.jsonl", 272, None),  # no answer field: the last \boxed{} of the solution
    ("olympiadbench/test.jsonl", 675, "2"),  # final_answer is a one-element list
    ("math_lvl3to5_train/train.parquet", 8521, "118"),
    ("math_train/train.parquet", 7500, "0"),
]


@needs_data
@pytest.mark.parametrize("name, count, first_answer", SHARED)
def test_shared_files_load_with_detected_fields(name, count, first_answer):
    problems = load_problems(DATA / name)
    assert len(problems) == count
    assert all(isinstance(p.problem, str) and p.problem for p in problems)
    assert all(isinstance(p.answer, str) for p in problems)
    assert len({p.id for p in problems}) == count
    if first_answer is not None:
        assert problems[0].answer == first_answer
    assert problems[0].meta["source"] == name.split("/")[0]


@needs_data
def test_minerva_answers_are_the_last_boxed_of_the_solution():
    problems = load_problems(DATA / "minerva_math/test.jsonl", limit=20)
    records = [json.loads(line) for line in (DATA / "minerva_math/test.jsonl").read_text().splitlines()[:20]]
    for problem, record in zip(problems, records):
        assert problem.answer == last_boxed(record["solution"]) and problem.answer


@needs_data
def test_training_parquet_prompt_loses_the_appended_instruction():
    problem = load_problems(DATA / "math_lvl3to5_train/train.parquet", limit=1)[0]
    assert problem.problem.endswith("Compute $p + q$.")
    assert "boxed" not in problem.problem
    assert problem.meta["level"] == "5"


@needs_data
def test_explicit_dotted_fields_and_limit():
    problems = load_problems(DATA / "math_train/train.parquet",
                             problem_field="reward_model.ground_truth.question",
                             answer_field="reward_model.ground_truth.target", limit=3)
    assert len(problems) == 3 and problems[0].answer == "0"
    with pytest.raises(ValueError, match="answer_field='reward_model.nope'"):
        load_problems(DATA / "math_train/train.parquet", answer_field="reward_model.nope", limit=1)
    with pytest.raises(ValueError, match="problem_field='prompt.9' not found in train.parquet record 0"):
        load_problems(DATA / "math_train/train.parquet", problem_field="prompt.9", limit=1)


def test_json_jsonl_and_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": "1+1?", "gold": 2.0, "uid": "a"},
            {"question": "Pick", "gold": ["x", "y"], "uid": "b"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.json").write_text(json.dumps({"data": rows}))
    pq.write_table(pa.Table.from_pylist([{"question": "1+1?", "gold": "2"}]), tmp_path / "p.parquet")
    for name in ("p.jsonl", "p.json"):
        problems = load_problems(tmp_path / name, answer_field="gold")
        assert problems[0] == Problem("1+1?", "2", "0", {"uid": "a", "source": "p"})
        assert problems[1].answer == ["x", "y"]
    assert load_problems(tmp_path / "p.parquet", answer_field="gold")[0].answer == "2"


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="suffix '.csv'"):
        load_problems(tmp_path / "x.csv")
    (tmp_path / "y.jsonl").write_text(json.dumps({"text": "q", "answer": "1"}) + "\n")
    with pytest.raises(ValueError, match="no problem field .* pass problem_field="):
        load_problems(tmp_path / "y.jsonl")
    assert load_problems(tmp_path / "y.jsonl", problem_field="text")[0].problem == "q"
    with pytest.raises(ValueError, match="limit=-1"):
        load_problems(tmp_path / "y.jsonl", limit=-1)


def test_last_boxed_is_brace_balanced():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_prompt_templates():
    problem = Problem("What is 2+2?", "4", "0")
    qwen = format_prompt(problem, "qwen_math")
    assert qwen.startswith("<|im_start|>system\nPlease reason step by step")
    assert qwen.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert format_prompt(problem, "r1").endswith("User: What is 2+2?\nAssistant: <think>")
    assert format_prompt("3*3=", "none") == "3*3="
    assert format_prompt(problem, "Q: {problem}\nA:") == "Q: What is 2+2?\nA:"
    with pytest.raises(ValueError, match="template='chatml'"):
        format_prompt(problem, "chatml")


def test_qwen_math_uses_the_tokenizer_chat_template():
    from seedgrpo.tasks import toy

    tokenizer = toy.make_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
                               "{% if add_generation_prompt %}[assistant]{% endif %}")
    text = format_prompt(Problem("1+1", "2", "0"), "qwen_math", tokenizer)
    assert text.startswith("[system]Please reason step by step") and text.endswith("[user]1+1[assistant]")


def test_prompt_sampler_is_seeded_per_epoch_and_resumable():
    a = PromptSampler(5, seed=3)
    first = a.next(3) + a.next(3)  # crosses into epoch 1
    assert sorted(first[:5]) == list(range(5)) and a.epoch == 1 and a.position == 1
    b = PromptSampler(5, seed=3)
    b.load_state_dict(a.state_dict())
    assert a.next(7) == b.next(7)
    assert PromptSampler(5, seed=4).next(5) != PromptSampler(5, seed=3).next(5)
    assert PromptSampler(4, shuffle=False).next(6) == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError, match="same data and seed"):
        PromptSampler(6, seed=3).load_state_dict(a.state_dict())
