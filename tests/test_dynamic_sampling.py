"""Dynamic sampling (seedgrpo/training/dynamic_sampling.py): more rollouts until the batch holds enough groups with
unequal rewards, at most `max_dynamic_sampling_rounds`, then exactly `prompts_per_step` groups. Two ranks
under ZeRO-3: tests/zero3_row_skipping_worker.py (launched by tests/test_row_skipping.py)."""
import zlib

import pytest
import torch

from seedgrpo.training.config import load_config
from seedgrpo.training.dynamic_sampling import (concat_rollouts, group_rows, groups_with_signal, select_groups,
                                       take_rows)
from seedgrpo.rollout.base import RolloutBatch
from seedgrpo.training.trainer import Trainer

G = 4


def digits(text):
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


def is_trivial(problem):
    return zlib.crc32(problem.problem.encode()) % 4 != 0  # about 3 prompts in 4: all rewards equal


def mostly_trivial_reward(completions, problems):
    return [1.0 if is_trivial(p) else digits(t) for t, p in zip(completions, problems)]


def tiny(output_dir, **overrides):
    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 8,
        "prompts_per_step": 4, "num_generations": G, "per_device_train_batch_size": 8, "max_steps": 2,
        "learning_rate": 1e-3, "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 64, "progress": False,
        "tensorboard": False, "output_dir": str(output_dir), "save_final_model": False, "sample_log_steps": 0,
        "dynamic_sampling": True, "max_dynamic_sampling_rounds": 8,
    }
    values.update(overrides)
    return load_config(None, values)


def test_signal_groups_are_selected_first_and_the_rest_filled_in_order():
    rewards = torch.tensor([1., 1., 0., 1., 0., 0., 0., 0., 2., 2., 2., 2., 0., 1., 1., 1.])
    assert groups_with_signal(rewards, 4).tolist() == [True, False, False, True]
    assert select_groups(groups_with_signal(rewards, 4), 3).tolist() == [0, 3, 1]
    assert group_rows(torch.tensor([2, 0]), 3).tolist() == [6, 7, 8, 0, 1, 2]
    with pytest.raises(ValueError, match="2 groups drawn, 3 wanted"):
        select_groups(torch.tensor([True, False]), 3)


def test_rollouts_of_different_widths_join_with_their_padding_on_the_right_side():
    def batch(prompt_len, completion_len, rows=2, start=0):
        ids = torch.arange(start, start + rows * prompt_len).view(rows, prompt_len)
        comp = torch.arange(start, start + rows * completion_len).view(rows, completion_len) + 100
        return RolloutBatch(prompt_ids=ids, prompt_mask=torch.ones_like(ids), completion_ids=comp,
                            completion_mask=torch.ones_like(comp), logprobs=-comp.float(),
                            texts=[f"{start}-{i}" for i in range(rows)],
                            is_truncated=torch.zeros(rows, dtype=bool))

    a, b = batch(3, 2), batch(1, 4, start=50)
    joined = concat_rollouts([a, b], pad_id=-1)
    assert joined.prompt_ids.shape == (4, 3) and joined.completion_ids.shape == (4, 4)
    assert joined.prompt_ids[2].tolist() == [-1, -1, 50] and joined.prompt_mask[2].tolist() == [0, 0, 1]
    assert joined.completion_ids[0].tolist() == [100, 101, -1, -1]
    assert joined.completion_mask[0].tolist() == [1, 1, 0, 0] and joined.logprobs[0, 2:].tolist() == [0, 0]
    assert joined.hidden is None and joined.texts == ["0-0", "0-1", "50-0", "50-1"]
    picked = take_rows(joined, torch.tensor([3, 0]))
    assert picked.texts == ["50-1", "0-0"]
    assert picked.completion_ids[0].tolist() == b.completion_ids[1].tolist()


def test_dynamic_sampling_fills_the_batch_with_groups_that_carry_a_signal(tmp_path):
    drawn = []
    trainer = Trainer(tiny(tmp_path), reward_fn=mostly_trivial_reward,
                      callbacks=[lambda t, step, m: drawn.append(m)])
    next_problems = trainer._next_problems
    trainer._next_problems = lambda: drawn.append("draw") or next_problems()
    metrics = trainer.train()
    rounds = [m["dynamic_sampling_rounds"] for m in drawn if isinstance(m, dict)]
    assert drawn.count("draw") == sum(rounds) and all(1 < r <= 8 for r in rounds)
    assert metrics["zero_variance_group_frac"] == 0.0 and metrics["skipped_row_frac"] == 0.0


def test_at_the_cap_the_batch_is_filled_with_groups_without_signal(tmp_path):
    constant = lambda completions, problems: [1.0] * len(completions)  # noqa: E731
    metrics = Trainer(tiny(tmp_path, max_dynamic_sampling_rounds=3), reward_fn=constant).train()
    assert metrics["dynamic_sampling_rounds"] == 3
    assert metrics["zero_variance_group_frac"] == 1.0 and metrics["skipped_row_frac"] == 1.0


def test_one_round_is_plain_sampling(tmp_path):
    """max_dynamic_sampling_rounds = 1 trains exactly like dynamic_sampling off."""
    on = Trainer(tiny(tmp_path / "on", max_dynamic_sampling_rounds=1), reward_fn=mostly_trivial_reward)
    off = Trainer(tiny(tmp_path / "off", dynamic_sampling=False), reward_fn=mostly_trivial_reward)
    a, b = on.train(), off.train()
    assert a["dynamic_sampling_rounds"] == 1 and "dynamic_sampling_rounds" not in b
    assert a["zero_variance_group_frac"] == b["zero_variance_group_frac"] > 0
    for name, value in on.policy.model.state_dict().items():
        assert torch.equal(value, off.policy.model.state_dict()[name]), name


def test_a_resumed_run_with_dynamic_sampling_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = Trainer(tiny(tmp_path / "straight", max_steps=2), reward_fn=mostly_trivial_reward)
    straight.train()
    Trainer(tiny(tmp_path / "resumed", max_steps=1), reward_fn=mostly_trivial_reward).train()
    resumed = Trainer(tiny(tmp_path / "resumed", max_steps=2, resume="auto"), reward_fn=mostly_trivial_reward)
    assert resumed.step == 1
    resumed.train()
    for name, value in straight.policy.model.state_dict().items():
        assert torch.equal(value, resumed.policy.model.state_dict()[name]), name
