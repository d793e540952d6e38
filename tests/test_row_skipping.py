"""Rows with advantage exactly 0 left out of the update (seedgrpo/training/row_skipping.py): the plan of micro-batch
calls, when skipping is allowed, and that it trains exactly like running every row, for every loss type
the config accepts: plain torch in-process, ZeRO-3 with one rank in-process, ZeRO-3 with two ranks
launched once (tests/zero3_row_skipping_worker.py).

The rewards make some groups' rewards all equal (advantage 0 for their rows) and others dense (the
fraction of digits, which the untrained toy model earns unevenly), so both kinds of rows are present.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seedgrpo.training.config import CHOICES, load_config
from seedgrpo.training.row_skipping import plan_micro_batches, rows_to_run, skipping_is_exact

REPO = Path(__file__).resolve().parents[1]
G = 4


def digits(text):
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


def first_three_groups_constant(completions, problems):
    """Groups 0-2 of the step get reward 1 (advantage 0), group 3 the dense reward: with 8 rows per optimizer
    step the first optimizer step has no row to run, the second half of its rows."""
    return [1.0 if i // G < 3 else digits(text) for i, text in enumerate(completions)]


def tiny(output_dir, **overrides):
    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 10,
        "prompts_per_step": 4, "num_generations": G, "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2, "num_iterations": 2, "max_steps": 2, "learning_rate": 1e-3,
        "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 40, "progress": False, "tensorboard": False,
        "output_dir": str(output_dir), "save_final_model": False,
    }
    values.update(overrides)
    return load_config(None, values)


def params(trainer):
    model = getattr(trainer.policy.model, "module", trainer.policy.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


# ------------------------------------------------------------------------------------------------ plan
def test_the_plan_packs_the_rows_that_run_and_pads_empty_optimizer_steps():
    keep = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0], dtype=torch.bool)
    plan = plan_micro_batches(keep, rows_per_optimizer_step=8, micro=4, lockstep=False)
    assert [[p.tolist() for p in calls] for calls in plan] == [[[]], [[8, 10, 11, 13], [14]]]
    every = plan_micro_batches(torch.ones(16, dtype=torch.bool), 8, 4, lockstep=False)
    assert [[p.tolist() for p in calls] for calls in every] == [[list(range(s, s + 4)) for s in (0, 4)],
                                                                  [list(range(s, s + 4)) for s in (8, 12)]]
    # one process: lockstep changes nothing (the all-reduce of the call counts is the identity)
    assert [len(c) for c in plan_micro_batches(keep, 8, 4, lockstep=True)] == [1, 2]


def test_rows_to_run_are_those_with_a_nonzero_advantage_and_a_token():
    advantages = torch.tensor([0.0, -0.0, 0.5, -1e-30, 0.3])
    mask = torch.tensor([[1, 1], [1, 0], [1, 0], [1, 1], [0, 0]])
    assert rows_to_run(advantages, mask).tolist() == [False, False, True, True, False]


def test_skipping_is_allowed_only_without_terms_that_read_every_row():
    assert skipping_is_exact(load_config(None, {})) is None
    assert "beta" in skipping_is_exact(load_config(None, {"beta": 0.04}))
    # keys other loss options add (read with defaults, so this works with and without them)
    assert "entropy_coef" in skipping_is_exact(SimpleNamespace(beta=0.0, entropy_coef=0.01))
    assert "top_entropy_quantile" in skipping_is_exact(SimpleNamespace(beta=0.0, top_entropy_quantile=0.2))
    assert skipping_is_exact(SimpleNamespace(beta=0.0, entropy_coef=0.0, top_entropy_quantile=1.0)) is None


def test_a_kl_term_turns_skipping_off(tmp_path):
    from seedgrpo.training.trainer import Trainer

    trainer = Trainer(tiny(tmp_path, beta=0.05, max_steps=1), reward_fn=first_three_groups_constant)
    assert not trainer.skip_rows and trainer.train()["skipped_row_frac"] == 0.0


# ------------------------------------------------------------------------------------ exact updates
def _train_counting_calls(config, reward_fn):
    from seedgrpo.training.trainer import Trainer

    trainer = Trainer(config, reward_fn=reward_fn)
    calls, real = [], trainer._micro_batch_loss

    def counted(piece, *normalizers):
        calls.append(piece["completion_ids"].shape[0])
        return real(piece, *normalizers)

    trainer._micro_batch_loss = counted
    start = params(trainer)
    return trainer, trainer.train(), start, calls


@pytest.mark.parametrize("loss_type", CHOICES["loss_type"])
def test_skipping_zero_advantage_rows_trains_exactly_like_running_them(tmp_path, loss_type):
    """Two steps x 2 iterations x 2 optimizer steps (old log-probs scored for the rows that run only): the
    same parameters, gradient norm, loss and clip ratios; the first optimizer step of each iteration has no
    row to run and steps on zero gradients (AdamW's moments still move the weights, as without skipping)."""
    settings = dict(loss_type=loss_type, epsilon=0.02)
    off, off_metrics, start, off_calls = _train_counting_calls(
        tiny(tmp_path / "off", skip_zero_advantage=False, **settings), first_three_groups_constant)
    on, on_metrics, _, on_calls = _train_counting_calls(
        tiny(tmp_path / "on", **settings), first_three_groups_constant)
    assert on.skip_rows and not off.skip_rows
    assert off_calls == [4] * 16                       # 2 steps x 2 iterations x 2 optimizer steps x 2 calls
    assert len(on_calls) == 8 and sum(on_calls) < 2 * 2 * 8  # one (padding or real) call per optimizer step
    assert off_metrics["skipped_row_frac"] == 0.0
    assert 0.5 <= on_metrics["skipped_row_frac"] < 1.0
    assert max_diff(start, params(off)) > 1e-4
    assert max_diff(params(on), params(off)) < 1e-5
    for key in ("grad_norm", "loss", "clip_ratio_low", "clip_ratio_high", "kl"):
        assert on_metrics[key] == pytest.approx(off_metrics[key], rel=1e-5, abs=1e-7), key
    if loss_type not in ("sapo", "vespo"):  # soft / gamma-weighted losses have no clipping to count
        assert on_metrics["clip_ratio_low"] + on_metrics["clip_ratio_high"] > 0  # clip metrics exercised


def test_a_step_where_no_row_runs_changes_nothing_that_running_them_would(tmp_path):
    """Every group's rewards equal, from the first step on: one zero-weight call per optimizer step."""
    constant = lambda completions, problems: [1.0] * len(completions)  # noqa: E731
    off, _, start, _ = _train_counting_calls(tiny(tmp_path / "off", skip_zero_advantage=False), constant)
    on, on_metrics, _, on_calls = _train_counting_calls(tiny(tmp_path / "on"), constant)
    assert on_calls == [1] * 8 and on_metrics["skipped_row_frac"] == 1.0
    assert max_diff(params(on), params(off)) == 0.0 == max_diff(start, params(on))


def test_zero3_one_rank_skipping_matches_plain_torch_without_skipping(tmp_path):
    from seedgrpo.training.trainer import Trainer

    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
    zero = Trainer(tiny(tmp_path / "zero", deepspeed_config=str(REPO / "configs" / "ds_zero3_cpu.json")),
                   reward_fn=first_three_groups_constant)
    assert zero.policy.is_deepspeed and zero.skip_rows
    zero_metrics = zero.train()
    plain = Trainer(tiny(tmp_path / "plain", skip_zero_advantage=False),
                    reward_fn=first_three_groups_constant)
    plain_metrics = plain.train()
    zero_params = {k: v.float() for k, v in zero.policy.consolidated_state_dict().items()}
    assert zero_metrics["skipped_row_frac"] > 0.5
    assert max_diff(zero_params, params(plain)) < 1e-5
    assert zero_metrics["grad_norm"] == pytest.approx(plain_metrics["grad_norm"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_zero3_two_ranks_skipping_matches_running_every_row_for_every_loss_type(tmp_path):
    """One launch: the worker trains each loss type twice (skipping and not) with uneven work per rank."""
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR",
                                                   os.path.expanduser("~/.cache/torch_extensions")))
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    from seedgrpo.dist import free_port

    out = tmp_path / "results.json"
    deepspeed = str(Path(sys.executable).parent / "deepspeed")
    command = [deepspeed, "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
               str(REPO / "tests" / "zero3_row_skipping_worker.py"), str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    dynamic = results.pop("dynamic_sampling")  # (tests/test_dynamic_sampling.py covers one process)
    assert dynamic["dynamic_sampling_rounds"] == 2 and dynamic["zero_variance_group_frac"] == 0.0, dynamic
    assert dynamic["skipped_row_frac"] == 0.0 and dynamic["grad_norm"] > 0, dynamic
    assert set(results) == set(CHOICES["loss_type"])
    for loss_type, r in results.items():
        assert r["skipped_row_frac_off"] == 0.0 and 0.2 <= r["skipped_row_frac_on"] < 0.6, (loss_type, r)
        assert r["max_param_diff"] < 1e-5, (loss_type, r)
        for key in ("loss", "grad_norm", "clip_ratio_low"):
            assert r[f"{key}_on"] == pytest.approx(r[f"{key}_off"], rel=1e-5, abs=1e-7), (loss_type, key, r)
        assert r["grad_norm_off"] > 0
