"""`seedgrpo eval` without --data-dir: the five benchmarks by their public dataset ids (issue 22).

The ids, configs, splits and fields are `evaluate.HUB_BENCHMARKS`; each test writes a local folder named
like the id (which `datasets.load_dataset` resolves before the Hub) laid out as the Hub dataset is, so the
hub code path runs offline.
"""
import json

import pytest

from seedgrpo import evaluate

pytest.importorskip("datasets")

# One record per benchmark in its Hub layout (field names as in HUB_BENCHMARKS; AMC's answers are floats,
# OlympiadBench's are lists).
HUB_RECORDS = {
    "aime24": {"id": 60, "problem": "Find 2+2.", "solution": "...", "answer": "4", "url": "u",
               "year": "2024"},
    "amc23": {"id": 0, "question": "Find 3*9.", "answer": 27.0, "url": "u"},
    "math500": {"problem": "Find $x$ if $x+1=3$.", "solution": "...", "answer": "2", "subject": "Algebra",
                "level": 1, "unique_id": "test/algebra/1.json"},
    "minerva_math": {"question": "Find 10/4.", "answer": "2.5"},
    "olympiadbench": {"id": 1606, "question": "Find 1+1.", "final_answer": ["$2$"], "context": None},
}


def write_hub_mirror(root):
    for name, (dataset_id, config_name, split, _, _) in evaluate.HUB_BENCHMARKS.items():
        folder = root / dataset_id
        where = f"{config_name}/{split}.jsonl" if config_name else f"{split}.jsonl"
        (folder / where).parent.mkdir(parents=True, exist_ok=True)
        (folder / where).write_text(json.dumps(HUB_RECORDS[name]) + "\n")
        if config_name:
            (folder / "README.md").write_text(f"---\nconfigs:\n- config_name: {config_name}\n  data_files:\n"
                                              f"  - split: {split}\n    path: {where}\n---\n")


def test_every_benchmark_loads_from_its_dataset_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_hub_mirror(tmp_path)
    golds = {name: evaluate.load_benchmark(name)[0].answer for name in evaluate.BENCHMARKS}
    assert golds == {"aime24": "4", "amc23": "27", "math500": "2", "minerva_math": "2.5",
                     "olympiadbench": "2"}
    problem = evaluate.load_benchmark("amc23")[0]
    assert problem.problem == "Find 3*9." and problem.meta["source"] == "amc23"
    graded = evaluate.grade_completions([evaluate.load_benchmark(n)[0] for n in evaluate.BENCHMARKS],
                                        ["\\boxed{4}", "\\boxed{27}", "\\boxed{2}", "\\boxed{2.5}",
                                         "\\boxed{2}"])
    assert [g["num_correct"] for g in graded] == [1, 1, 1, 1, 1]


def test_eval_runs_on_hub_ids_with_a_chat_template_model(tmp_path, monkeypatch):
    from seedgrpo.tasks import toy

    monkeypatch.chdir(tmp_path)
    write_hub_mirror(tmp_path)
    tokenizer = toy.make_tokenizer(tmp_path / "model")
    toy.make_model(tokenizer, layers=1, hidden=32).save_pretrained(tmp_path / "model")
    report = evaluate.main(["--model", str(tmp_path / "model"), "--benchmarks", "math500,amc23", "--template",
                            "none", "--max-new-tokens", "3", "--output-dir", str(tmp_path / "out")])
    assert report["data"] == "hub" and set(report["benchmarks"]) == {"math500", "amc23"}
    assert report["benchmarks"]["amc23"]["num_problems"] == 1
    assert (tmp_path / "out" / "results.md").is_file()
    with pytest.raises(ValueError, match="--system-prompt needs --template chat"):
        evaluate.main(["--model", str(tmp_path / "model"), "--system-prompt", "x"])
    with pytest.raises(ValueError, match="prompt_template='chat' needs a tokenizer with a chat template"):
        evaluate.main(["--model", str(tmp_path / "model"), "--benchmarks", "math500", "--template", "chat",
                       "--max-new-tokens", "2", "--output-dir", str(tmp_path / "out2")])


def test_a_data_dir_without_the_files_names_both_ways_out(tmp_path):
    with pytest.raises(ValueError, match="leave --data-dir out to read them from the Hugging Face Hub"):
        evaluate.load_benchmark("math500", tmp_path)
