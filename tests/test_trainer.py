"""The trainer loop in one process, plain-torch engine (fast; DeepSpeed: test_trainer_deepspeed.py).

A dense reward (the fraction of digits in a completion) gives the untrained toy model non-zero advantages,
so every comparison of parameters below compares real updates.
"""
import json
import signal

import pytest
import torch

from seedgrpo.training.config import load_config
from seedgrpo.training.trainer import Trainer


def digit_reward(completions, problems):
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def tiny(output_dir, **overrides):
    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 10,
        "prompts_per_step": 4, "num_generations": 4, "per_device_train_batch_size": 16, "max_steps": 1,
        "learning_rate": 1e-3,
        "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 40, "progress": False, "tensorboard": False,
        "output_dir": str(output_dir), "save_final_model": False,
    }
    values.update(overrides)
    return load_config(None, values)


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.model.state_dict().items()}


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_a_step_writes_the_run_directory(tmp_path):
    from transformers import AutoModelForCausalLM

    trainer = Trainer(tiny(tmp_path, max_steps=2, sample_log_steps=1, save_final_model=True),
                      reward_fn=digit_reward)
    before = params(trainer)
    trainer.train()
    assert max_diff(before, params(trainer)) > 1e-4
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    expected = {"loss", "reward_mean", "accuracy", "semantic_entropy_mean", "semantic_entropy_max",
                "advantage_scale_mean", "clip_ratio_low", "clip_ratio_high", "kl", "entropy",
                "completion_length", "tokens_per_s", "step_time", "zero_variance_group_frac",
                "no_answer_rate"}
    assert expected <= rows[0].keys()
    from seedgrpo.grading.equivalence import TIERS  # which tier of the grader decided the step's verdicts
    assert {f"grader/tier_{tier}" for tier in TIERS} <= rows[0].keys()
    assert 0 < rows[0]["reward_mean"] < 1 and 0 < rows[0]["completion_length"] <= 10
    assert 0 <= rows[0]["semantic_entropy_mean"] <= rows[0]["semantic_entropy_max"] <= 1
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {"problem", "answer", "completion", "reward", "cluster"} <= samples[0].keys()
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step_000002"
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    for name, value in exported.state_dict().items():
        assert torch.equal(value, trainer.policy.model.state_dict()[name]), name


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_update_does_not_depend_on_the_micro_batch_split(tmp_path, loss_type):
    """16 rows in one micro-batch vs four micro-batches of 4 (global normalizer): the same loss and the
    same accumulated gradient (Adam's update is blind to a constant factor, so the norm is compared)."""
    whole = Trainer(tiny(tmp_path / "a", loss_type=loss_type), reward_fn=digit_reward)
    split = Trainer(tiny(tmp_path / "b", loss_type=loss_type, per_device_train_batch_size=4),
                    reward_fn=digit_reward)
    assert (whole.gas, split.gas) == (1, 4)
    start = params(whole)
    a, b = whole.train(), split.train()
    assert a["grad_norm"] > 0
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)  # on-policy: ~0 by construction
    assert max_diff(start, params(whole)) > 1e-4
    assert max_diff(params(whole), params(split)) < 1e-5


def test_fused_linear_loss_matches_the_logits_path(tmp_path):
    settings = dict(num_iterations=2, per_device_train_batch_size=8)
    fused = Trainer(tiny(tmp_path / "a", **settings), reward_fn=digit_reward)
    plain = Trainer(tiny(tmp_path / "b", fused_linear=False, **settings), reward_fn=digit_reward)
    fused_metrics, plain_metrics = fused.train(), plain.train()
    assert max_diff(params(fused), params(plain)) < 1e-5
    assert fused_metrics["loss"] == pytest.approx(plain_metrics["loss"], rel=1e-5, abs=1e-8)
    assert fused_metrics["grad_norm"] == pytest.approx(plain_metrics["grad_norm"], rel=1e-5)


def test_sigterm_saves_a_checkpoint_and_resume_is_exact(tmp_path):
    config = dict(max_steps=3, num_iterations=2, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                  lr_scheduler_type="linear", warmup_steps=1)
    straight = Trainer(tiny(tmp_path / "straight", **config), reward_fn=digit_reward)
    straight.train()

    def stop_after_step_1(trainer, step, metrics):
        if step == 1:
            signal.raise_signal(signal.SIGTERM)

    first = Trainer(tiny(tmp_path / "run", **config), reward_fn=digit_reward, callbacks=[stop_after_step_1])
    first.train()
    assert first.step == 1
    torch.manual_seed(1234)  # disturb the global RNG: the checkpoint must restore it
    resumed = Trainer(tiny(tmp_path / "run", resume="auto", **config), reward_fn=digit_reward)
    assert resumed.step == 1 and resumed.sampler.position == 4
    resumed.train()
    assert max_diff(params(straight), params(resumed)) == 0.0
    def losses(run):
        rows = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in rows]

    assert losses("run") == losses("straight")


def test_resume_from_an_explicit_checkpoint_directory(tmp_path):
    Trainer(tiny(tmp_path, max_steps=2, save_steps=1), reward_fn=digit_reward).train()
    trainer = Trainer(tiny(tmp_path, max_steps=2, resume=str(tmp_path / "checkpoints" / "step_000001")),
                      reward_fn=digit_reward)
    assert trainer.step == 1
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        Trainer(tiny(tmp_path, resume=str(tmp_path)), reward_fn=digit_reward)


def test_reference_model_and_kl(tmp_path):
    """beta > 0: a frozen reference; KL is 0 on the first pass (policy = reference), > 0 after an update."""
    trainer = Trainer(tiny(tmp_path, beta=0.1, num_iterations=2, per_device_train_batch_size=8),
                      reward_fn=digit_reward)
    assert trainer.reference is not None
    assert not any(p.requires_grad for p in trainer.reference.parameters())
    metrics = trainer.train()
    assert metrics["kl"] > 0
    first_pass = Trainer(tiny(tmp_path / "b", beta=0.1), reward_fn=digit_reward).train()
    assert first_pass["kl"] == pytest.approx(0.0, abs=1e-7)


def test_masked_truncated_completions_do_not_train(tmp_path):
    """With 2 new tokens no completion reaches EOS: every row is masked and the weights stay put."""
    trainer = Trainer(tiny(tmp_path, max_completion_length=2, mask_truncated_completions=True),
                      reward_fn=digit_reward)
    before = params(trainer)
    metrics = trainer.train()
    assert metrics["truncated_rate"] == 1.0
    assert max_diff(before, params(trainer)) == 0.0
    # the loss mask is not the lengths: the truncated rows generated 2 tokens each
    assert metrics["completion_length"] == 2.0 and metrics["tokens_per_s"] > 0


def test_masking_truncated_completions_leaves_the_length_metrics_alone(tmp_path):
    """The same samples with and without the mask (same seeds) have the same lengths and token rate basis."""
    plain, masked = (Trainer(tiny(tmp_path / str(mask), max_completion_length=5, mask_truncated_completions=mask),
                             reward_fn=digit_reward).train() for mask in (False, True))
    assert masked["truncated_rate"] == plain["truncated_rate"] > 0  # some rows are masked out of the loss
    assert masked["completion_length"] == plain["completion_length"] > 0


def test_batch_scaled_advantages_use_the_std_of_all_rewards(tmp_path):
    from seedgrpo import compute_advantages

    trainer = Trainer(tiny(tmp_path, scale_rewards="batch"), reward_fn=digit_reward)
    problems, positions = trainer._next_problems()
    batch = trainer._rollout(problems, positions)
    scores = trainer._score(batch, problems)
    advantages, stats = trainer._advantages(batch, scores)
    expected = compute_advantages(scores["rewards"], 4, scores["cluster_ids"], scores["seq_logprobs"],
                                  scale_rewards="batch", mask=scores["row_mask"])
    torch.testing.assert_close(advantages, expected.float(), rtol=1e-5, atol=1e-6)
    assert stats["advantage_scale"] is not None and (stats["advantage_scale"] <= 1).all()


def test_embedding_uncertainty_uses_policy_embeddings(tmp_path):
    trainer = Trainer(tiny(tmp_path, uncertainty="gcpo_cd", alpha=1.0), reward_fn=digit_reward)
    assert trainer.embedding_source == "policy"
    problems, positions = trainer._next_problems()
    batch = trainer._rollout(problems, positions)
    scores = trainer._score(batch, problems)
    assert scores["embeddings"].shape == (16, 64)
    _, stats = trainer._advantages(batch, scores)
    assert ((stats["uncertainty"] > 0) & (stats["uncertainty"] <= 1)).all()
    assert torch.allclose(stats["advantage_scale"], 1 / (1 + stats["uncertainty"]))


def test_callbacks_add_metrics_and_reward_fn_imports_by_name(tmp_path):
    seen = []

    def callback(trainer, step, metrics):
        seen.append((step, metrics["reward_mean"]))
        return {"eval/accuracy": 0.5}

    config = tiny(tmp_path, reward_fn="tests.test_trainer:digit_reward")
    Trainer(config, callbacks=[callback]).train()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert row["eval/accuracy"] == 0.5 and seen == [(1, row["reward_mean"])] and row["reward_mean"] > 0
    with pytest.raises(ValueError, match="cannot be imported"):
        Trainer(tiny(tmp_path, reward_fn="tests.test_trainer:no_such_function"))


def test_bad_batch_layout_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="per_device_train_batch_size=5"):
        Trainer(tiny(tmp_path, per_device_train_batch_size=5))
    with pytest.raises(ValueError, match="uncertainty='nope' is not registered"):
        Trainer(tiny(tmp_path, uncertainty="nope"))


@pytest.mark.parametrize("fused_linear", [True, False])
def test_shared_prompt_prefill_trains_like_the_full_forward(tmp_path, monkeypatch, fused_linear):
    """Each prompt's prefix run once for its G rows (generation and update) vs the full forward for every row:
    the same samples, loss and parameters, up to float32 rounding; with old log-probs (num_iterations=2)."""
    from seedgrpo.modeling import training_forward
    from seedgrpo.modeling import scoring

    prefix_passes = []
    for module, name, kind in ((scoring, "prefix_cache", "generation"),
                               (training_forward, "shared_prefix_training_cache", "update")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _kind=kind, **k:
                            prefix_passes.append(_kind) or _real(*a, **k))
    settings = dict(num_iterations=2, per_device_train_batch_size=8, fused_linear=fused_linear,
                    max_prompt_length=24)
    shared = Trainer(tiny(tmp_path / "a", **settings), reward_fn=digit_reward)
    full = Trainer(tiny(tmp_path / "b", share_prompt_prefill=False, **settings), reward_fn=digit_reward)
    start = params(shared)
    shared_metrics = shared.train()
    assert {"generation", "update"} <= set(prefix_passes)  # the update and generation both shared
    prefix_passes.clear()
    full_metrics = full.train()
    assert not prefix_passes
    assert shared_metrics["completion_length"] == full_metrics["completion_length"]
    assert shared_metrics["reward_mean"] == pytest.approx(full_metrics["reward_mean"], abs=1e-12)
    assert shared_metrics["grad_norm"] == pytest.approx(full_metrics["grad_norm"], rel=1e-5)
    assert max_diff(start, params(shared)) > 1e-4
    assert max_diff(params(shared), params(full)) < 1e-5


def test_gradient_checkpointing_trains_like_the_plain_forward(tmp_path, monkeypatch):
    """Checkpointing recomputes each layer in backward, the shared prefix's cache included: the same update
    as the plain forward, and the prefix is still shared."""
    from seedgrpo.modeling import training_forward

    prefix_passes = []
    real = training_forward.shared_prefix_training_cache
    monkeypatch.setattr(training_forward, "shared_prefix_training_cache",
                        lambda *a: prefix_passes.append(1) or real(*a))
    settings = dict(num_iterations=2, per_device_train_batch_size=8)
    checkpointed = Trainer(tiny(tmp_path / "a", gradient_checkpointing=True, **settings), reward_fn=digit_reward)
    assert checkpointed.policy.model.is_activation_checkpointing
    plain = Trainer(tiny(tmp_path / "b", **settings), reward_fn=digit_reward)
    start = params(plain)
    checkpointed_metrics = checkpointed.train()
    assert prefix_passes
    plain_metrics = plain.train()
    assert max_diff(start, params(plain)) > 1e-4
    assert max_diff(params(checkpointed), params(plain)) < 1e-5
    assert checkpointed_metrics["grad_norm"] == pytest.approx(plain_metrics["grad_norm"], rel=1e-5)


@pytest.mark.parametrize("loss_type,fused_linear", [("grpo", True), ("dapo", False), ("dr_grpo", True)])
def test_length_buckets_train_like_one_forward(tmp_path, monkeypatch, loss_type, fused_linear):
    """A micro-batch run as length buckets (each padded to its own longest completion, one backward over the
    summed losses) gives the update and the metrics of one forward over all rows."""
    import seedgrpo.training.trainer as trainer_module

    calls = []
    real = trainer_module._length_buckets

    def four_buckets(piece, **kwargs):
        calls.append(real(piece, **kwargs))
        order = torch.argsort(piece["completion_mask"].sum(1), descending=True)
        return list(order.chunk(4))

    settings = dict(num_iterations=2, per_device_train_batch_size=16, loss_type=loss_type,
                    fused_linear=fused_linear, max_completion_length=24, epsilon=0.02)
    monkeypatch.setattr(trainer_module, "_length_buckets", lambda piece, **kwargs: [None])
    one = Trainer(tiny(tmp_path / "a", **settings), reward_fn=digit_reward)
    start = params(one)
    one_metrics = one.train()
    monkeypatch.setattr(trainer_module, "_length_buckets", four_buckets)
    bucketed = Trainer(tiny(tmp_path / "b", **settings), reward_fn=digit_reward)
    bucketed_metrics = bucketed.train()
    assert calls and one_metrics["completion_length"] == bucketed_metrics["completion_length"]
    assert max_diff(start, params(one)) > 1e-4
    assert max_diff(params(one), params(bucketed)) < 1e-5
    for key in ("loss", "grad_norm", "clip_ratio_low", "clip_ratio_high", "entropy"):
        assert bucketed_metrics[key] == pytest.approx(one_metrics[key], rel=1e-5, abs=1e-7), key
    assert one_metrics["clip_ratio_low"] + one_metrics["clip_ratio_high"] > 0  # clip metrics exercised


def test_length_buckets_split_only_when_padding_outweighs_the_extra_calls():
    from seedgrpo.training.trainer import _length_buckets

    def piece(lengths, prompts=4):
        rows = len(lengths)
        mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
        prompt_ids = (torch.arange(rows) % prompts)[:, None].repeat(1, 8)  # lengths unrelated to prompts
        return dict(completion_mask=mask, prompt_mask=torch.ones(rows, 8, dtype=torch.long),
                    prompt_ids=prompt_ids)

    assert _length_buckets(piece([16] * 30 + [15] * 2), shared_prefix=True) == [None]
    spread = [4 + 3 * i for i in range(32)]  # 4 .. 97 tokens
    buckets = _length_buckets(piece(spread), shared_prefix=True)
    assert len(buckets) > 1 and sorted(torch.cat(buckets).tolist()) == list(range(32))
    longest = [max(spread[i] for i in bucket.tolist()) for bucket in buckets]
    assert longest == sorted(longest, reverse=True) and longest[-1] < max(spread)
    # long shared prompts: splitting would run each prompt's prefix again in every bucket; keep one bucket
    long_prompt = piece(spread)
    long_prompt["prompt_mask"] = torch.ones(32, 2000, dtype=torch.long)
    assert _length_buckets(long_prompt, shared_prefix=True) == [None]
