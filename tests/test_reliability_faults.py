"""SIGKILL at each fault point (seedgrpo/training/faults.py), then `--resume auto`: nothing lost, the run ends exactly
where an uninterrupted run ends.

- one process (plain torch, `python -m seedgrpo.train`): killed (a) in the rollout, (b) in the update, (c)
  between the shards and the trainer state of a checkpoint, (d) while `latest` is written; resumed here
  and compared bitwise with an uninterrupted run (same ops, same thread count, fp32 on the CPU).
- two ranks (`deepspeed --num_gpus 2`, ZeRO-3): a rank killed in the rollout, mid-checkpoint or while
  `latest` is written, the other one waiting for it in a collective: the launcher ends the job within a
  bounded time and `latest` still names the last complete checkpoint.
  The 4-rank kill in the update and its exact resume are in test_multinode.py.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seedgrpo.training.checkpoint import LATEST, checkpoint_problem, find_checkpoint
from seedgrpo.training.faults import ENV, fault_point, parse

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
KILL_BOUND_S = 60  # the other ranks must be gone this long after the kill (ddp_timeout below is 60 s too)


def digit_reward(completions, problems):
    """Dense, so the untrained toy model's advantages (and every parameter comparison) are non-trivial."""
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def run_args(output_dir, *extra):
    return ["--config", "configs/tiny-cpu.yaml", "--output_dir", str(output_dir), "--max_steps", "3",
            "--save_steps", "1", "--prompts_per_step", "4", "--num_generations", "4",
            "--per_device_train_batch_size", "4", "--num_iterations", "2", "--learning_rate", "1e-3",
            "--toy.layers", "2", "--toy.hidden", "64", "--max_completion_length", "10", "--progress", "false",
            "--tensorboard", "false", "--save_final_model", "false", "--ddp_timeout", "60",
            "--reward_fn", "tests.test_reliability_faults:digit_reward", *extra]


def launch_env(fault=None):
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS=str(torch.get_num_threads()))  # the resumed half runs here: same kernels
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", ENV):
        env.pop(key, None)
    if fault:
        env[ENV] = fault
    return env


def fault_time(log: str) -> float:
    match = re.search(rf"{ENV} \S+ step \d+ rank \d+ at ([\d.]+)", log)
    assert match, f"the fault point never fired:\n{log[-3000:]}"
    return float(match.group(1))


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.model.state_dict().items()}


def test_fault_spec_is_parsed_and_a_bad_one_is_an_error(monkeypatch):
    assert parse("update@3:1") == ("update", 3, 1)
    assert parse("checkpoint_latest") == ("checkpoint_latest", None, None)
    for bad in ("updat", "update@x", "rollout:r"):
        with pytest.raises(ValueError, match=f"{ENV}={bad!r} is not valid"):
            parse(bad)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(ENV, "update@3:1")
    fault_point("update", 2)   # another step, and (RANK unset = 0) another rank: nothing happens
    fault_point("update", 3)
    fault_point("rollout", 3)


# (fault, the checkpoint `--resume auto` must take, what is left of the cut one)
CASES = [
    ("rollout@3", "step_000002", None),
    ("update@2", "step_000001", None),
    ("checkpoint_shards@2", "step_000001", "incomplete: no complete.json and no trainer_state.json"),
    ("checkpoint_latest@2", "step_000001", None),  # step 2 is complete, but `latest` was never renamed to it
]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault, resume_from, cut", CASES, ids=[c[0].split("@")[0] for c in CASES])
def test_sigkill_at_a_fault_point_then_resume_auto_is_exact(tmp_path, fault, resume_from, cut):
    output = tmp_path / "run"
    args = run_args(output, "--deepspeed_config", "null")
    killed = subprocess.run([sys.executable, "-m", "seedgrpo.train", *args], cwd=REPO, env=launch_env(fault),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    fault_time(killed.stderr)
    root = output / "checkpoints"
    assert (root / LATEST).read_text() == resume_from
    assert not (root / "step_000003").exists()
    if cut is not None:
        assert checkpoint_problem(root / "step_000002").startswith(cut)
    if fault.startswith("checkpoint_latest"):
        assert checkpoint_problem(root / "step_000002") is None and list(root.glob(".latest.tmp-*"))
    assert find_checkpoint("auto", output).name == resume_from

    # the uninterrupted run and the resumed one, in a fresh interpreter as the killed run was
    # (tests/fault_resume_worker.py compares every parameter bitwise, with torch.equal)
    compared = subprocess.run([sys.executable, "tests/fault_resume_worker.py", str(tmp_path / "straight"),
                               str(output), resume_from], cwd=REPO, env=launch_env(), capture_output=True,
                              text=True, timeout=300)
    assert compared.returncode == 0, compared.stdout[-2000:] + compared.stderr[-3000:]
    assert (root / LATEST).read_text() == "step_000003" and checkpoint_problem(root / "step_000002") is None


# (fault, what is left of step 2's checkpoint): a rank that dies leaves the other one in a collective of
# the rollout, in the save's barrier after the shards, or (rank 0 writes `latest`) in the save's last barrier.
TWO_RANK_CASES = [
    ("rollout@2:1", None),
    ("checkpoint_shards@2:1", "incomplete"),
    ("checkpoint_latest@2:0", "complete"),
]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault, left", TWO_RANK_CASES, ids=[c[0].split("@")[0] for c in TWO_RANK_CASES])
def test_a_rank_killed_ends_the_job_and_latest_stays_on_the_last_complete_checkpoint(tmp_path, fault, left):
    from seedgrpo.dist import free_port

    output = tmp_path / "run"
    deepspeed = str(Path(sys.executable).parent / "deepspeed")
    port = free_port()
    command = [deepspeed, "--num_gpus", "2", "--master_port", str(port), "--module", "seedgrpo.train",
               *run_args(output)]
    job = subprocess.run(command, cwd=REPO, env=launch_env(fault), capture_output=True, text=True,
                         timeout=400)
    ended = time.time()
    log = job.stdout + job.stderr
    assert job.returncode != 0, log[-3000:]
    assert ended - fault_time(log) < KILL_BOUND_S, log[-3000:]
    root = output / "checkpoints"
    assert (root / LATEST).read_text() == "step_000001"
    assert checkpoint_problem(root / "step_000001") is None
    if left is None:
        assert not (root / "step_000002").exists()
    elif left == "incomplete":
        assert checkpoint_problem(root / "step_000002").startswith("incomplete")
    else:
        assert checkpoint_problem(root / "step_000002") is None  # complete, not yet named by `latest`
    assert find_checkpoint("auto", output).name == "step_000001"
    # a rank killed (SIGKILL) leaves no DeepSpeed shared-memory segment named in /dev/shm (RAM until reboot)
    from tests.test_trainer_deepspeed import shm_buffers_left

    assert not shm_buffers_left(port)
