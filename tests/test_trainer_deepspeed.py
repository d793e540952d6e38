"""The trainer under DeepSpeed ZeRO-3 on the CPU accelerator (configs/ds_zero3_cpu.json).

- in-process, one rank: the fused-linear loss with the gathered lm_head gives the same gradients as the
  plain logits path without DeepSpeed; training matches the plain-torch engine; a run stopped by SIGTERM
  and resumed ends with exactly the parameters of an uninterrupted run.
- launched (slow): `python -m seedgrpo.train` (one process) and `deepspeed --num_gpus 2 --module
  seedgrpo.train` on the same global batch end with the same losses and parameters.

The first DeepSpeed start on a machine JIT-builds a communication op (~36 s); TORCH_EXTENSIONS_DIR points
at a cache so later runs reuse it.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DS_CPU = str(REPO / "configs" / "ds_zero3_cpu.json")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))


def digit_reward(completions, problems):
    """A dense reward the untrained toy model can earn (the math reward would be 0 for every sample, and
    zero advantages would make every comparison below trivially true)."""
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def tiny(output_dir, **overrides):
    from seedgrpo.training.config import load_config

    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 10,
        "prompts_per_step": 4, "num_generations": 4, "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "num_iterations": 2, "max_steps": 2, "learning_rate": 1e-3, "toy.layers": 2, "toy.hidden": 64,
        "toy.num_problems": 40, "progress": False, "tensorboard": False, "output_dir": str(output_dir),
        "deepspeed_config": DS_CPU,
    }
    values.update(overrides)
    return load_config(None, values)


def final_params(output_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "final" / "model.safetensors"))


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_fused_linear_gradients_match_plain_logits_path(tmp_path):
    """ZeRO-3 (every parameter partitioned, lm_head gathered around loss + backward) vs a plain module."""
    from deepspeed.utils import safe_get_full_grad

    from seedgrpo import seed_grpo_loss

    from seedgrpo.tasks import toy
    from seedgrpo.modeling.scoring import position_ids_from_mask
    from seedgrpo.training.trainer import Trainer, _trim_padding

    trainer = Trainer(tiny(tmp_path, num_iterations=1), reward_fn=digit_reward)
    assert trainer.policy.is_deepspeed
    problems, positions = trainer._next_problems()
    batch = trainer._rollout(problems, positions)
    advantages, _ = trainer._advantages(batch, trainer._score(batch, problems))
    assert advantages.abs().max() > 0
    piece = {"prompt_ids": batch.prompt_ids[:4], "prompt_mask": batch.prompt_mask[:4],
             "completion_ids": batch.completion_ids[:4], "completion_mask": batch.completion_mask[:4],
             "advantages": advantages[:4]}
    normalizer = 8 * trainer.config.max_completion_length  # dr_grpo over the 8 rows of an optimizer step
    loss, _ = trainer._micro_batch_loss(piece, normalizer)
    module = trainer.policy.model.module
    zero_grads = {name: safe_get_full_grad(p).clone() for name, p in module.named_parameters()}

    plain = toy.make_model(trainer.tokenizer, layers=2, hidden=64, seed=0)
    prompt_ids, prompt_mask, completion_ids, completion_mask = _trim_padding(piece)
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    logits = plain(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    logits = logits[:, prompt_ids.shape[1] - 1:-1]
    plain_loss, _ = seed_grpo_loss(logits, completion_ids=completion_ids, completion_mask=completion_mask,
                                   advantages=piece["advantages"], normalizer=normalizer, impl="torch")
    plain_loss.backward()
    assert torch.allclose(loss, plain_loss.detach(), rtol=1e-5, atol=1e-7)
    for name, p in plain.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        err = (zero_grads[name] - p.grad).abs().max().item()
        assert err <= 1e-5 * p.grad.abs().max().item() + 1e-8, f"{name}: max |diff| {err}"


def test_sharded_generation_matches_gathered_generation(tmp_path):
    """ZeRO-3 rollout two ways: weights gathered with the module hooks removed, or sharded + synced_gpus."""
    from seedgrpo.rollout.base import row_seeds
    from seedgrpo.training.trainer import Trainer

    trainer = Trainer(tiny(tmp_path), reward_fn=digit_reward)
    prompts, seeds = ["12+34=", "7*8="], row_seeds(0, 1, [0, 1], 3)
    outputs = {}
    for mode in (True, False):
        trainer.rollout.gather_for_generation = mode
        outputs[mode] = trainer.rollout.generate(prompts, num_generations=3, row_seeds=seeds)
    assert outputs[True].texts == outputs[False].texts
    torch.testing.assert_close(outputs[True].logprobs, outputs[False].logprobs, rtol=1e-5, atol=1e-6)
    trainer.train()  # hooks were restored: training still runs after both kinds of rollout


def test_zero3_training_matches_plain_torch(tmp_path):
    """With a KL term, so the reference model runs as a ZeRO-3 inference engine too."""
    from seedgrpo.training.trainer import Trainer

    zero_trainer = Trainer(tiny(tmp_path / "zero", beta=0.05), reward_fn=digit_reward)
    assert zero_trainer.reference.zero_optimization_partition_weights()
    zero = zero_trainer.train()
    plain_trainer = Trainer(tiny(tmp_path / "plain", beta=0.05, deepspeed_config=None),
                            reward_fn=digit_reward)
    plain = plain_trainer.train()
    a, b = final_params(tmp_path / "zero"), final_params(tmp_path / "plain")
    assert max_diff(a, b) < 1e-5
    assert zero["kl"] > 0
    for key in ("loss", "grad_norm", "kl"):
        assert abs(zero[key] - plain[key]) <= 1e-5 * abs(plain[key]) + 1e-8, (key, zero[key], plain[key])
    from seedgrpo.tasks import toy

    start = toy.make_model(toy.make_tokenizer(), layers=2, hidden=64, seed=0).state_dict()
    assert max((b[k] - start[k]).abs().max().item() for k in b) > 1e-4  # training moved the weights


def test_sigterm_checkpoint_and_resume_is_exact_under_zero3(tmp_path):
    from seedgrpo.training.trainer import Trainer

    Trainer(tiny(tmp_path / "straight", max_steps=2), reward_fn=digit_reward).train()

    def stop_after_step_1(trainer, step, metrics):
        if step == 1:
            signal.raise_signal(signal.SIGTERM)  # the trainer's handler: finish the step, checkpoint, stop

    interrupted = Trainer(tiny(tmp_path / "resumed", max_steps=2), reward_fn=digit_reward,
                          callbacks=[stop_after_step_1])
    interrupted.train()
    assert interrupted.step == 1
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text() == "step_000001"
    assert not (tmp_path / "resumed" / "final").exists()
    resumed = Trainer(tiny(tmp_path / "resumed", max_steps=2, resume="auto"), reward_fn=digit_reward)
    assert resumed.step == 1
    resumed.train()
    a, b = final_params(tmp_path / "straight"), final_params(tmp_path / "resumed")
    assert max_diff(a, b) == 0.0
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


# ------------------------------------------------------------------------------------------- launched
def _launch_env():
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # set by in-process tests of this session; the launcher sets its own
    return env


def _train_args(output_dir, max_steps=2, *extra):
    return ["--config", "configs/tiny-cpu.yaml", "--output_dir", str(output_dir),
            "--max_steps", str(max_steps),
            "--prompts_per_step", "4", "--num_generations", "4", "--per_device_train_batch_size", "4",
            "--num_iterations", "2", "--learning_rate", "1e-3", "--toy.layers", "2", "--toy.hidden", "64",
            "--max_completion_length", "10", "--progress", "false", "--tensorboard", "false",
            "--reward_fn", "tests.test_trainer_deepspeed:digit_reward", *extra]


def _metrics(output_dir):
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _launch(command, output_dir, timeout=300, max_steps=2, extra=()):
    result = subprocess.run(command + _train_args(output_dir, max_steps, *extra), cwd=REPO, env=_launch_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _metrics(output_dir)


def _deepspeed_two_ranks(port=None):
    deepspeed = str(Path(sys.executable).parent / "deepspeed")
    return [deepspeed, "--num_gpus", "2", "--master_port", str(port or _free_port()), "--module", "seedgrpo.train"]


def shm_buffers_left(port) -> list[Path]:
    """DeepSpeed's CPU all-reduce segments of the run on `port` still named in /dev/shm (seedgrpo.dist
    unlinks them once every rank has mapped them)."""
    return sorted(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_ranks_match_one_rank_on_the_same_global_batch(tmp_path):
    one = _launch([sys.executable, "-m", "seedgrpo.train"], tmp_path / "one")
    port = _free_port()
    two = _launch(_deepspeed_two_ranks(port), tmp_path / "two")
    assert not shm_buffers_left(port)
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        for key in ("loss", "grad_norm", "reward_mean", "completion_length", "semantic_entropy_mean"):
            assert abs(a[key] - b[key]) <= 1e-5 * abs(a[key]) + 1e-7, (key, a[key], b[key])
    params_one, params_two = final_params(tmp_path / "one"), final_params(tmp_path / "two")
    assert max_diff(params_one, params_two) < 1e-5
    assert one[-1]["grad_norm"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigterm_to_a_launched_job_checkpoints_every_rank_and_resumes(tmp_path):
    """What SLURM, Kubernetes or Ctrl-C do: SIGTERM to the launcher and both ranks (their process group).
    DeepSpeed's launcher then SIGTERMs the ranks one after another, waiting up to 30 s for each: the ranks
    agree to stop at the end of the step, checkpoint together and exit within that time."""
    import signal as signals
    import time

    output = tmp_path / "run"
    job = subprocess.Popen(_deepspeed_two_ranks() + _train_args(output, 500), cwd=REPO, env=_launch_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _metrics(output):
        assert job.poll() is None, job.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no step finished in 300 s"
        time.sleep(0.2)
    os.killpg(job.pid, signals.SIGTERM)
    log = job.communicate(timeout=120)[0].decode()
    latest = (output / "checkpoints" / "latest").read_text()
    step = int(latest.split("_")[-1])
    assert 1 <= step < 500, log[-3000:]
    saved = output / "checkpoints" / latest
    assert {"rng_rank0.pt", "rng_rank1.pt", "trainer_state.json"} <= {p.name for p in saved.iterdir()}
    assert [r["step"] for r in _metrics(output)] == list(range(1, step + 1))
    resumed = _launch(_deepspeed_two_ranks(), output, max_steps=step + 1, extra=("--resume", "auto"))
    assert [r["step"] for r in resumed] == list(range(1, step + 2))


def _free_port():
    from seedgrpo.dist import free_port

    return free_port()
