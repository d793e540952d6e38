"""`data.path` as a Hugging Face dataset id, read through `datasets` (issue 22).

No hub at test time: `datasets.load_dataset("org/name")` resolves a local folder of that name before it asks
the Hub, so each test writes the dataset under its temporary working directory and reads it by its id,
through the same code path a user's hub id takes (split, config name, field detection, explicit fields).
"""
import json

import pytest

from seedgrpo.tasks.data import is_dataset_id, load_problems
from seedgrpo.training.config import load_config

pytest.importorskip("datasets")


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_dataset_ids_and_files_are_told_apart():
    assert is_dataset_id("org/name") and is_dataset_id("HuggingFaceH4/MATH-500") and is_dataset_id("gsm8k")
    for path in ("toy", "train.jsonl", "data/train.parquet", "a/b/c", "/abs/dir", "./rel"):
        assert not is_dataset_id(path), path


def test_a_dataset_id_loads_its_split_with_detected_or_named_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "org" / "sums" / "train.jsonl",
                [{"question": f"{i}+1?", "answer": float(i + 1), "meta": {"gold": str(i + 1)}}
                 for i in range(5)])
    write_jsonl(tmp_path / "org" / "sums" / "test.jsonl",
                [{"question": "9+9?", "answer": 18.0, "meta": {"gold": "18"}}])
    train = load_problems("org/sums", split="train")
    assert [(p.problem, p.answer) for p in train] == [(f"{i}+1?", str(i + 1)) for i in range(5)]  # 1.0 -> "1"
    assert train[0].columns["meta"] == {"gold": "1"}  # every column reaches TRL-style reward functions
    test = load_problems("org/sums", split="test", answer_field="meta.gold", limit=1)
    assert [(p.problem, p.answer) for p in test] == [("9+9?", "18")]
    assert len(load_problems("org/sums", split="train", limit=2)) == 2
    with pytest.raises(ValueError, match="split 'validation' could not be loaded.*data.split"):
        load_problems("org/sums", split="validation")
    with pytest.raises(ValueError, match="answer_field='gold' not found"):
        load_problems("org/sums", split="test", answer_field="gold")


def test_a_config_name_picks_the_subset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "org" / "multi"
    write_jsonl(root / "easy" / "train.jsonl", [{"problem": "1+1", "answer": "2"}])
    write_jsonl(root / "hard" / "train.jsonl", [{"problem": "7*8", "answer": "56"}])
    (root / "README.md").write_text(
        "---\nconfigs:\n" + "".join(f"- config_name: {name}\n  data_files:\n  - split: train\n"
                                    f"    path: {name}/train.jsonl\n" for name in ("easy", "hard")) + "---\n")
    assert load_problems("org/multi", name="hard")[0].answer == "56"
    assert load_problems("org/multi", name="easy")[0].answer == "2"


def test_the_trainer_config_takes_a_dataset_id_and_reads_it(tmp_path, monkeypatch):
    from seedgrpo.training.trainer import _load_training_problems

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "org" / "sums" / "test.jsonl",
                [{"problem": "2+2", "answer": "4"}, {"problem": "3+3"}])
    config = load_config(None, {"data.path": "org/sums", "data.split": "test"})
    assert (config.data.path, config.data.split, config.data.name) == ("org/sums", "test", None)
    with pytest.raises(ValueError, match="no answer field"):
        _load_training_problems(config)  # the second record has none: one error naming the record
    write_jsonl(tmp_path / "org" / "sums" / "test.jsonl",
                [{"problem": "2+2", "answer": "4"}, {"problem": "3+3", "answer": ""}])
    problems = _load_training_problems(load_config(None, {"data.path": "org/sums", "data.split": "test"}))
    assert [p.problem for p in problems] == ["2+2"]  # the one without a reference answer is skipped
    with pytest.raises(ValueError, match="data.path='no/such/file.jsonl' is not a file"):
        load_config(None, {"data.path": "no/such/file.jsonl"})
