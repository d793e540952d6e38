"""Bad input, everywhere a user types it (issue 18.4), checked before any work starts.

- every config key, listed from the dataclasses (so keys added later are walked too), with a value of the
  wrong type and a value out of its range: the ValueError names the key and what is allowed;
- malformed data files (a bad JSON line, a missing column, an empty file, a 1 MB gold answer): one clear
  error naming the file and line, or a counted skip; never a hang.
"""
import dataclasses
import json
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from seedgrpo.training import config as config_module
from seedgrpo.training.config import (CHECKS, CHOICES, FREE_TEXT, RANGES, REGISTRY_CHECKED, all_keys, allowed_values,
                             load_config)
from seedgrpo.tasks.data import MAX_ANSWER_CHARS, load_problems, training_problems

REPO = Path(__file__).resolve().parents[1]


def key_type(key):
    return config_module._key_type(key)


def members(tp):
    return [a for a in typing.get_args(tp) if a is not type(None)] or [tp]


def wrong_type_value(key):
    """A value of a type the key does not take (as YAML could hold it)."""
    kinds = members(key_type(key))
    if str in kinds:
        return [1, 2]        # a list where a string (or a number, or auto) is expected
    if bool in kinds:
        return "maybe"
    return "not-a-number"    # int / float keys


def out_of_range_value(key):
    """A value of the right type that the key's rule rejects, or None when every value of its type is fine."""
    if key in CHOICES:
        return "no-such-choice"
    if key in RANGES:
        low, low_incl, high, high_incl = RANGES[key]
        integer = int in members(key_type(key))
        if low is not None:
            return low - 1 if low_incl and integer else (low - 0.5 if low_incl else low)
        return high + 1 if high_incl else high
    if key in CHECKS:
        accepts = CHECKS[key][0]
        return next(v for v in ("/no/such/file.jsonl", "a:b:c", "@") if not accepts(v))
    return None


ALL_KEYS = all_keys()


def test_every_key_has_a_rule_or_is_declared_free():
    """A key added to the dataclasses without a range, choices or a check fails here until it gets one
    (or is declared free text / a registry name in seedgrpo/training/config.py)."""
    unruled = [k for k in ALL_KEYS if k not in CHOICES and k not in RANGES and k not in CHECKS
               and k not in FREE_TEXT and k not in REGISTRY_CHECKED and key_type(k) is not bool]
    assert not unruled, f"give these keys a rule (knob(...)) in seedgrpo/training/config.py: {unruled}"
    stale = [k for k in (*CHOICES, *RANGES, *CHECKS, *FREE_TEXT, *REGISTRY_CHECKED) if k not in ALL_KEYS]
    assert not stale, f"rules for keys that do not exist: {stale}"
    assert len(ALL_KEYS) >= 77 and "data.path" in ALL_KEYS and "save_total_limit" in ALL_KEYS


@pytest.mark.parametrize("key", ALL_KEYS)
def test_a_wrong_type_names_the_key_and_what_is_allowed(key):
    value = wrong_type_value(key)
    with pytest.raises(ValueError) as error:
        load_config(None, {key: value})
    message = str(error.value)
    assert message.startswith(f"{key}={value!r}"), message
    assert allowed_values(key) in message, message
    assert "\n" not in message


@pytest.mark.parametrize("key", ALL_KEYS)
def test_an_out_of_range_value_names_the_key_and_what_is_allowed(key):
    value = out_of_range_value(key)
    if value is None:  # bools, free text, registry names: checked below / by the Trainer
        assert key_type(key) is bool or key in FREE_TEXT or key in REGISTRY_CHECKED
        return
    with pytest.raises(ValueError) as error:
        load_config(None, {key: value})
    message = str(error.value)
    # a list-valued key (report_to) names the list it read the value into
    assert message.startswith((f"{key}={value!r}", f"{key}={[value]!r}")), message
    assert allowed_values(key) in message, message
    if key in CHOICES:
        assert all(repr(choice) in message for choice in CHOICES[key])


@pytest.mark.parametrize("key", REGISTRY_CHECKED)
def test_a_name_missing_from_its_registry_is_refused_when_the_trainer_starts(key):
    from seedgrpo.training.trainer import _check_registered_names

    config = load_config(None, {key: "no_such_estimator"})
    with pytest.raises(ValueError, match=f"{key}='no_such_estimator' is not registered; choose one of"):
        _check_registered_names(config)  # the first thing Trainer.__init__ does


def test_the_cli_stops_before_any_work(tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "seedgrpo.train", "--config", "configs/tiny-cpu.yaml",
               "--output_dir", str(output), "--save_total_limit", "0"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "save_total_limit=0 is out of range; allowed: [1, inf)" in result.stderr
    assert not output.exists()


def test_keys_in_sections_are_found_from_the_dataclasses():
    sections = {f.name for f in dataclasses.fields(config_module.TrainConfig)
                if dataclasses.is_dataclass(config_module._field_types(config_module.TrainConfig)[f.name])}
    assert sections == set(config_module._SECTIONS) and {"data", "toy", "vllm"} <= sections
    assert load_config(None, {"vllm": {"enforce_eager": True}}).vllm.enforce_eager is True


# ---------------------------------------------------------------------------------------------- data
def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_bad_json_line_names_the_file_and_the_line(tmp_path):
    good = json.dumps({"problem": "1+1", "answer": "2"})
    path = write_jsonl(tmp_path / "d.jsonl", [good, "", good, '{"problem": "2+2", "answer": '])
    with pytest.raises(ValueError, match=r"d.jsonl line 4 is not a valid JSON line \(Expecting value"):
        load_problems(path)
    path.write_bytes(good.encode() + b"\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"d.jsonl line 2 is not a valid JSON line \(not UTF-8"):
        load_problems(path)
    (tmp_path / "d.json").write_text('[{"problem": "1+1", "answer": "2"},')
    with pytest.raises(ValueError, match=r"d.json is not valid JSON \(Expecting value at line 1"):
        load_problems(tmp_path / "d.json")
    (tmp_path / "d.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="d.parquet cannot be read as parquet"):
        load_problems(tmp_path / "d.parquet")


def test_an_empty_file_and_a_missing_column_are_one_clear_error(tmp_path):
    for name, text in (("e.jsonl", ""), ("blank.jsonl", "\n\n  \n"), ("e.json", "[]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name} holds no records"):
            load_problems(tmp_path / name)
    path = write_jsonl(tmp_path / "c.jsonl", [json.dumps({"question_text": "1+1", "answer": "2"})])
    with pytest.raises(ValueError, match=r"no problem field in c.jsonl record 0 \(keys: \['answer', "
                                         r"'question_text'\]\); pass problem_field="):
        load_problems(path)
    with pytest.raises(ValueError, match="problem_field='q' not found in c.jsonl record 0"):
        load_problems(path, problem_field="q")
    path = write_jsonl(tmp_path / "a.jsonl", [json.dumps({"problem": "1+1", "result": "2"})])
    with pytest.raises(ValueError, match="no answer field in a.jsonl record 0"):
        load_problems(path)
    with pytest.raises(ValueError, match="record 0 is list, expected a JSON object"):
        load_problems(write_jsonl(tmp_path / "l.jsonl", ["[1, 2]"]))


def test_a_huge_or_empty_gold_answer_is_a_counted_skip_without_a_hang(tmp_path):
    huge = "1" * 1_000_000
    rows = [{"problem": "a", "answer": "2"}, {"problem": "b", "answer": huge},
            {"problem": "c", "answer": ""}, {"problem": "d", "answer": ["x", "y" * MAX_ANSWER_CHARS]}]
    path = write_jsonl(tmp_path / "g.jsonl", [json.dumps(r) for r in rows])
    started = time.perf_counter()
    usable, note = training_problems(load_problems(path))
    assert time.perf_counter() - started < 5
    assert [p.problem for p in usable] == ["a"]
    assert note == (f"skipping 3 of 4 problems: 1 without a reference answer, 2 whose reference answer is "
                    f"over {MAX_ANSWER_CHARS} characters")
    assert training_problems(usable) == (usable, None)
    config = load_config(None, {"data.path": str(path), "progress": False, "tensorboard": False})
    from seedgrpo.training.trainer import _load_training_problems

    assert [p.problem for p in _load_training_problems(config)] == ["a"]
