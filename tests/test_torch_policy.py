"""The plain-torch engine (TorchPolicy) with a bf16 model: float32 master weights, so small updates are kept.

AdamW on bf16 weights rounds away every update below half an ulp (at lr 1e-6 almost all of them); with float32
masters each step moves every trained tensor and the bf16 model is the masters rounded to bf16.
"""
import pytest
import torch

from seedgrpo.tasks import toy
from seedgrpo.training.config import load_config
from seedgrpo.training.engine import TorchPolicy, build_policy
from seedgrpo.training.trainer import Trainer


def digit_reward(completions, problems):
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def tiny(output_dir, **overrides):
    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 4, "prompts_per_step": 2,
        "num_generations": 4, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 3,
        "toy.layers": 1, "toy.hidden": 32, "toy.num_problems": 20, "progress": False, "tensorboard": False,
        "output_dir": str(output_dir), "save_final_model": False,
    }
    values.update(overrides)
    return load_config(None, values)


def test_bf16_training_at_lr_1e6_moves_every_trained_tensor(tmp_path):
    # every row runs (no zero-advantage skipping), so the policy sees all 3 x 2 micro-batches
    trainer = Trainer(tiny(tmp_path, dtype="bfloat16", learning_rate=1e-6, skip_zero_advantage=False),
                      reward_fn=digit_reward)
    policy = trainer.policy
    names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert all(p.dtype == torch.bfloat16 for p in policy.params) and policy.masters is not None
    masters_before = [m.clone() for m in policy.masters]
    trainer.train()
    assert policy.micro_steps == 3 * 2
    for name, before, after, param in zip(names, masters_before, policy.masters, policy.params):
        assert after.dtype == torch.float32
        moved = (after - before).abs().max().item()
        # Adam's step per entry is lr * m / sqrt(v), at most (1 - beta1) / sqrt(1 - beta2) ~ 3.2 lr
        assert 0 < moved <= 3 * 3.2e-6, (name, moved)
        assert param.dtype == torch.bfloat16 and torch.equal(param, after.to(torch.bfloat16)), name


def test_gradients_accumulate_in_float32_and_resume_restores_the_masters(tmp_path):
    config = tiny(tmp_path, dtype="bfloat16", learning_rate=1e-6, max_grad_norm=0.0)
    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=1, hidden=32, seed=0).to(torch.bfloat16)
    policy = TorchPolicy(model, config, gas=2, total_optimizer_steps=4)
    ids = torch.randint(3, len(tokenizer), (2, 6), generator=torch.Generator().manual_seed(0))
    bf16_grads = []
    for scale in (1.0, 1e-3):  # a small second micro-batch: bf16 accumulation would lose most of it
        loss = policy.model(input_ids=ids).logits.float().logsumexp(-1).mean() * scale
        loss.backward()
        bf16_grads.append([p.grad.clone() for p in policy.params])
        for p in policy.params:
            p.grad = None
        loss = policy.model(input_ids=ids).logits.float().logsumexp(-1).mean() * scale
        policy.backward(loss)
        assert all(p.grad is None for p in policy.params)  # freed: the masters hold the sum
        assert policy.step() == (scale != 1.0)  # the optimizer steps after the second micro-batch
    # the accumulated float32 gradient was the float32 sum of the two bf16 gradients: check through Adam's
    # first moment, (1 - beta1) * g after one step
    state = policy.optimizer.state
    for master, g1, g2 in zip(policy.masters, *bf16_grads):
        want = (1 - config.adam_beta1) * (g1.float() + g2.float())
        torch.testing.assert_close(state[master]["exp_avg"], want, rtol=1e-6, atol=1e-12)

    policy.save(tmp_path / "ckpt", "step1")
    fresh = TorchPolicy(toy.make_model(tokenizer, layers=1, hidden=32, seed=1).to(torch.bfloat16), config, 2, 4)
    fresh.load(tmp_path / "ckpt", "step1")
    for a, b in zip(policy.masters, fresh.masters):
        assert torch.equal(a, b)  # the float32 masters, not the bf16 weights rounded from them


def test_float32_models_train_their_own_parameters(tmp_path):
    tokenizer = toy.make_tokenizer()
    policy = TorchPolicy(toy.make_model(tokenizer, layers=1, hidden=32, seed=0), tiny(tmp_path), 1, 1)
    assert policy.masters is None and policy.optimizer.param_groups[0]["params"][0] is policy.params[0]


def test_fp16_without_deepspeed_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="dtype='float16' without deepspeed_config.*loss scaler"):
        build_policy(tiny(tmp_path, dtype="float16"), toy.make_tokenizer(), world_size=1,
                     total_optimizer_steps=1)


def test_the_fused_adamw_steps_like_the_reference_adamw(tmp_path):
    """The policy's AdamW is the fused one (one pass per tensor, no temporaries); three steps with clipping
    and weight decay land where PyTorch's per-tensor AdamW lands, to float32 rounding."""
    config = tiny(tmp_path, learning_rate=1e-3, weight_decay=0.1, max_grad_norm=0.5)
    tokenizer = toy.make_tokenizer()
    policy = TorchPolicy(toy.make_model(tokenizer, layers=1, hidden=32, seed=0), config, 1, 3)
    assert policy.optimizer.defaults["fused"] is True
    reference = toy.make_model(tokenizer, layers=1, hidden=32, seed=0)
    params = [p for p in reference.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(config.adam_beta1, config.adam_beta2),
                                  eps=config.adam_epsilon, weight_decay=0.1, foreach=False)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        ids = torch.randint(3, len(tokenizer), (3, 7), generator=generator)
        policy.backward(policy.model(input_ids=ids).logits.float().logsumexp(-1).mean())
        assert policy.step()
        reference(input_ids=ids).logits.float().logsumexp(-1).mean().backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for ours, theirs in zip(policy.params, params):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
