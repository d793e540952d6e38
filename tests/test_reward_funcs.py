"""Reward functions called as TRL 1.16 calls them (seedgrpo/training/reward_funcs.py), against TRL's own code."""
import asyncio
import json
import math
import re
import threading
import types

import pytest
import torch

from seedgrpo.training import reward_funcs
from seedgrpo.advantages import base_advantages
from seedgrpo.training.config import load_config
from seedgrpo.tasks.data import Problem, load_problems
from seedgrpo.training.reward_funcs import RewardFunctions, combine
from seedgrpo.training.trainer import Trainer
from tests.test_trainer import tiny


# --- reward functions in TRL's documented style: completions (and whatever else) plus **kwargs -----------
def digit_format_reward(completions, **kwargs):
    """1 when a completion holds a digit, else 0."""
    return [1.0 if re.search(r"\d", completion) else 0.0 for completion in completions]


def answer_column_reward(completions, answer, **kwargs):
    """A dataset column by name; None (does not apply) for odd rows."""
    return [None if i % 2 else float(str(a) in c) for i, (c, a) in enumerate(zip(completions, answer))]


async def async_length_reward(completions, **kwargs):
    await asyncio.sleep(0)
    return [len(c) / 10 for c in completions]


def length_reward(completions, **kwargs):  # for the dotted-path form (YAML)
    return [len(c) / 10 for c in completions]


def _recorder(seen: dict, output):
    def recording_reward(prompts, completions, completion_ids, **kwargs):
        seen.update(kwargs, prompts=prompts, completions=completions, completion_ids=completion_ids)
        return output(completions)
    return recording_reward


def _trl_rewards(functions, inputs, prompts, completions, completion_ids):
    """TRL 1.16's own GRPOTrainer._calculate_rewards, on a stand-in for the trainer it reads."""
    from transformers import TrainerState
    from trl import GRPOTrainer

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fake = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        args=types.SimpleNamespace(report_to=[]), state=TrainerState(), reward_funcs=functions,
        reward_processing_classes=[None] * len(functions),
        reward_func_names=[reward_funcs.callable_name(f) for f in functions],
        _log_completion_extra=lambda *a: None, _log_metric=lambda *a: None, environments=None, async_loop=loop)
    try:
        return GRPOTrainer._calculate_rewards(fake, inputs, prompts, completions, completion_ids)
    finally:
        loop.call_soon_threadsafe(loop.stop)


def test_functions_get_the_keyword_arguments_trl_passes_and_the_same_rewards():
    records = [{"prompt": "1+1=", "answer": "2", "solution": "so \\boxed{2}", "level": 3},
               {"prompt": "2*3=", "answer": "6", "solution": "so \\boxed{6}", "level": 5}]
    G = 3
    problems = [Problem(problem=r["prompt"], answer=r["answer"], id=str(i), columns=r)
                for i, r in enumerate(records)]
    rows = [p for p in problems for _ in range(G)]
    inputs = [r for r in records for _ in range(G)]
    prompts = [p.problem for p in rows]
    completions = ["2", "3", "x", "6", "66", ""]
    completion_ids = [[5], [6], [7, 1], [8], [8, 8], [1]]
    trl_seen, ours_seen = {}, {}
    odd_none = lambda cs: [None if i % 2 else float(len(c)) for i, c in enumerate(cs)]  # noqa: E731
    expected = _trl_rewards([_recorder(trl_seen, odd_none), answer_column_reward, async_length_reward],
                            inputs, prompts, completions, completion_ids)
    functions = RewardFunctions([_recorder(ours_seen, odd_none), answer_column_reward, async_length_reward])
    total, per_function = functions(prompts=prompts, completions=completions, completion_ids=completion_ids,
                                    problems=rows, group_size=G, trainer_state=None)
    assert set(trl_seen) <= set(ours_seen), set(trl_seen) - set(ours_seen)
    for key in set(trl_seen) - {"trainer_state", "log_extra", "log_metric"}:
        assert ours_seen[key] == trl_seen[key], key
    assert torch.equal(torch.isnan(per_function), torch.isnan(expected))
    assert torch.allclose(per_function.nan_to_num(), expected.nan_to_num())
    assert torch.allclose(total, expected.nansum(1))  # TRL's weighted nansum with weights 1
    assert functions.names == ["recording_reward", "answer_column_reward", "async_length_reward"]


def test_weights_none_entries_and_rows_no_function_scored():
    G = 4
    per_function = torch.tensor([[1.0, 2.0], [math.nan, 4.0], [0.0, math.nan], [math.nan, math.nan],
                                 [math.nan, math.nan]] + [[math.nan, math.nan]] * 3, dtype=torch.float64)
    weights = torch.tensor([1.0, -0.5], dtype=torch.float64)
    rewards = combine(per_function, weights, G)
    assert rewards[:3].tolist() == [0.0, -2.0, 0.0]
    # TRL: an unscored row leaves the group's baseline (nanmean of the scored rows) and gets advantage 0.
    scored = rewards[:3].double()
    advantages = base_advantages(rewards, G)
    assert torch.allclose(advantages[:3].double(), scored - scored.mean(), atol=1e-7)
    assert advantages[3].abs() < 1e-7
    assert torch.equal(rewards[4:], torch.zeros(4))  # a group no function scored: all 0, no signal


def test_bad_outputs_and_weights_name_the_function():
    problems = [Problem(problem="q", answer="1", id="0")] * 2
    call = dict(prompts=["q", "q"], completions=["a", "b"], completion_ids=[[1], [2]], problems=problems,
                group_size=2)
    with pytest.raises(ValueError, match="'short' returned 1 rewards for 2 completions"):
        def short(completions, **kwargs):
            return [1.0]
        RewardFunctions([short])(**call)
    with pytest.raises(ValueError, match="'wordy' returned 'yes'"):
        def wordy(completions, **kwargs):
            return ["yes", 1.0]
        RewardFunctions([wordy])(**call)
    with pytest.raises(ValueError, match="reward_weights has 1 entries but there are 2 reward functions"):
        RewardFunctions([short, wordy], [1.0])
    with pytest.raises(ValueError, match="'no_such_module.fn' cannot be imported"):
        RewardFunctions(["no_such_module.fn"])
    with pytest.raises(ValueError, match="reward_weights=.*one weight per entry of reward_funcs"):
        load_config(None, {"reward_funcs": ["math", "tests.x:y"], "reward_weights": [1.0]})
    with pytest.raises(ValueError, match="reward_fn.*and reward_funcs.*are both set"):
        load_config(None, {"reward_funcs": ["math"], "reward_fn": "tests.x:y"})


def test_dotted_paths_both_forms_and_math_default():
    a, b = RewardFunctions(["tests.test_reward_funcs:length_reward", "tests.test_reward_funcs.length_reward",
                            "math"]).functions[:2]
    assert a.fn is b.fn and a.name == "length_reward" and a.fn(["abcde"]) == [0.5]
    functions = reward_funcs.from_config(load_config(None, {}))
    assert functions.names == ["math"]
    problems = [Problem(problem="1+1", answer="2", id="0")] * 2
    total, _ = functions(prompts=["", ""], completions=["\\boxed{2}", "\\boxed{3}"], completion_ids=[[1], [1]],
                         problems=problems, group_size=2)
    assert total.tolist() == [1.0, 0.0]


def test_file_records_carry_every_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "1+1", "answer": 2, "solution": "\\boxed{2}",
                                "tags": ["easy"], "meta": {"k": 1}}) + "\n")
    (problem,) = load_problems(path)
    columns = reward_funcs.problem_columns(problem)
    assert columns == {"problem": "1+1", "answer": 2, "solution": "\\boxed{2}", "tags": ["easy"],
                       "meta": {"k": 1}}


def test_trainer_runs_trl_style_functions_unchanged(tmp_path):
    """TRL's own soft-overlong penalty (completion_ids) and a format reward, weighted, through the trainer:
    the logged means are those of the functions on the rollout, the reward is their weighted sum."""
    from trl.rewards import get_soft_overlong_punishment

    overlong = get_soft_overlong_punishment(max_completion_len=10, soft_punish_cache=6)
    seen = []

    def capture(trainer, step, metrics):
        seen.append(trainer)

    calls = []

    def columns_reward(prompts, completions, completion_ids, trainer_state, problem, answer, op, **kwargs):
        calls.append(dict(step=trainer_state.global_step, max_steps=trainer_state.max_steps,
                          ids=completion_ids, texts=completions, op=op, problem=problem))
        kwargs["log_metric"]("custom/calls", 1.0)
        kwargs["log_extra"]("row", list(range(len(completions))))
        return [0.0] * len(completions)

    config = tiny(tmp_path, max_steps=2, reward_weights=[1.0, 0.5, 1.0], sample_log_steps=1)
    trainer = Trainer(config, reward_funcs=[digit_format_reward, overlong, columns_reward], callbacks=[capture])
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [c["step"] for c in calls] == [0, 1] and calls[0]["max_steps"] == 2
    for row, call in zip(rows, calls):
        texts, ids = call["texts"], call["ids"]
        assert [trainer.tokenizer.decode(i, skip_special_tokens=True) for i in ids] == texts
        fmt = digit_format_reward(texts)
        pen = overlong(ids)
        assert row["rewards/digit_format_reward/mean"] == pytest.approx(sum(fmt) / len(fmt))
        assert row["rewards/soft_overlong_punishment_reward/mean"] == pytest.approx(sum(pen) / len(pen))
        assert row["reward_mean"] == pytest.approx((sum(fmt) + 0.5 * sum(pen)) / len(fmt), abs=1e-6)
        assert row["custom/calls"] == 1.0
        assert set(call["op"]) <= {"+", "-", "*"} and len(call["problem"]) == len(texts)
    assert any(p < 0 for p in overlong(calls[0]["ids"]))  # the penalty did bite: a real check
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["row"] for s in samples if s["step"] == 2] == list(range(len(samples) // 2))


def test_older_reward_fn_still_works(tmp_path):
    def digits(completions, problems):
        assert isinstance(problems[0], Problem)
        return [1.0] * len(completions)

    metrics = Trainer(tiny(tmp_path), reward_fn=digits).train()
    assert metrics["reward_mean"] == 1.0 and metrics["rewards/digits/mean"] == 1.0
    with pytest.raises(ValueError, match="pass one"):
        Trainer(tiny(tmp_path / "b"), reward_fn=digits, reward_funcs=[digits])
