"""seedgrpo.training.checkpoint: the manifest, atomic `latest`, incomplete/truncated checkpoints skipped for the
previous one, `save_total_limit` rotation, and a full disk (a real failing write under RLIMIT_FSIZE).

Fast and in one process: a stand-in policy for the file protocol, the plain-torch trainer where a resume
must be exact. Kills at each point of a save are in test_reliability_faults.py.
"""
import json
import resource
import signal

import pytest
import torch

from seedgrpo.training import checkpoint
from seedgrpo.training.checkpoint import (LATEST, MANIFEST, CheckpointSaveError, checkpoint_problem, find_checkpoint,
                                 save_checkpoint)
from seedgrpo.training.config import load_config
from seedgrpo.training.trainer import Trainer


class FilePolicy:
    """Writes one file per save, like TorchPolicy (policy.pt); `fail` raises as a full disk does."""

    def __init__(self, payload=b"x" * 1000):
        self.payload, self.fail = payload, None

    def save(self, root, tag):
        (root / tag).mkdir(parents=True, exist_ok=True)
        with open(root / tag / "policy.pt", "wb") as f:
            f.write(self.payload[:500])
            if self.fail:
                raise self.fail
            f.write(self.payload[500:])


def save(tmp_path, policy, step, **kwargs):
    return save_checkpoint(policy, tmp_path, step, {"sampler": {"position": step}}, **kwargs)


def steps_on_disk(tmp_path):
    return sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))


def test_a_save_writes_every_file_then_the_manifest_then_latest(tmp_path):
    directory = save(tmp_path, FilePolicy(), 3)
    manifest = json.loads((directory / MANIFEST).read_text())
    sizes = {name: (directory / name).stat().st_size for name in ("rng_rank0.pt", "trainer_state.json")}
    assert manifest["files"] == {"policy.pt": 1000, **sizes}
    assert json.loads((directory / "trainer_state.json").read_text())["sampler"] == {"position": 3}
    assert (tmp_path / "checkpoints" / LATEST).read_text() == "step_000003"
    assert checkpoint_problem(directory) is None
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary file left behind
    assert find_checkpoint("auto", tmp_path) == directory


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "corrupt: policy.pt has 10 bytes, 1000 were written"),
    ("delete_file", "incomplete: policy.pt is missing"),
    ("no_manifest", "incomplete: no complete.json"),
    ("bad_manifest", "corrupt: complete.json is not valid"),
])
def test_a_damaged_checkpoint_is_reported_and_auto_takes_the_previous_one(tmp_path, capsys, damage, problem):
    policy = FilePolicy()
    first, second = save(tmp_path, policy, 1), save(tmp_path, policy, 2)
    target = second / "policy.pt"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:10])
    elif damage == "delete_file":
        target.unlink()
    elif damage == "no_manifest":
        (second / MANIFEST).unlink()
    else:
        (second / MANIFEST).write_text('{"files": ')
    assert checkpoint_problem(second).startswith(problem)
    assert find_checkpoint("auto", tmp_path) == first
    assert f"skipping checkpoint {second}: {problem}" in capsys.readouterr().out
    with pytest.raises(ValueError, match=f"is not a complete checkpoint \\({problem}"):
        find_checkpoint(str(second), tmp_path)


def test_latest_bounds_the_choice_and_a_garbled_latest_falls_back_to_the_newest(tmp_path, capsys):
    policy = FilePolicy()
    first, second = save(tmp_path, policy, 1), save(tmp_path, policy, 2)
    root = tmp_path / "checkpoints"
    # A kill between step 2's manifest and the rename of `latest`: step 1 is still the run's checkpoint.
    (root / LATEST).write_text("step_000001")
    (root / ".latest.tmp-999").write_text("step_000002")
    assert find_checkpoint("auto", tmp_path) == first
    (root / LATEST).write_text("\x00garbage")
    assert find_checkpoint("auto", tmp_path) == second
    assert "does not name a checkpoint" in capsys.readouterr().out
    save(tmp_path, policy, 3)
    assert not (root / ".latest.tmp-999").exists()
    (root / LATEST).unlink()
    assert find_checkpoint("auto", tmp_path).name == "step_000003"
    assert find_checkpoint("auto", tmp_path / "elsewhere") is None  # nothing saved yet: start afresh


def test_save_total_limit_deletes_the_oldest_only_after_a_newer_one_is_complete(tmp_path):
    policy = FilePolicy()
    for step in range(1, 5):
        save(tmp_path, policy, step, save_total_limit=2)
    assert steps_on_disk(tmp_path) == ["step_000003", "step_000004"]
    # A save cut by a full disk: nothing is rotated away, `latest` keeps naming step 4.
    policy.fail = OSError(28, "No space left on device")
    with pytest.raises(CheckpointSaveError, match="`latest` still names step_000004, which is complete"):
        save(tmp_path, policy, 5, save_total_limit=2)
    assert steps_on_disk(tmp_path) == ["step_000003", "step_000004", "step_000005"]
    assert checkpoint_problem(tmp_path / "checkpoints" / "step_000005").startswith("incomplete")
    assert find_checkpoint("auto", tmp_path).name == "step_000004"
    # The next complete save removes the cut one and the oldest complete one.
    policy.fail = None
    save(tmp_path, policy, 6, save_total_limit=2)
    assert steps_on_disk(tmp_path) == ["step_000004", "step_000006"]
    with pytest.raises(ValueError, match="save_total_limit=0 must be >= 1"):
        checkpoint.rotate_checkpoints(tmp_path / "checkpoints", 0, newest=6)


def test_a_checkpoint_saved_again_is_invalidated_before_it_is_rewritten(tmp_path):
    """Resumed from step 1 with a complete step 2 on disk (an abandoned timeline), a save of step 2 cut
    half-way must not leave the old manifest vouching for half-new files of the same sizes."""
    policy = FilePolicy()
    save(tmp_path, policy, 1), save(tmp_path, policy, 2)
    (tmp_path / "checkpoints" / LATEST).write_text("step_000001")
    policy.fail = OSError(5, "Input/output error")
    with pytest.raises(CheckpointSaveError):
        save(tmp_path, policy, 2)
    assert checkpoint_problem(tmp_path / "checkpoints" / "step_000002") is not None
    assert find_checkpoint("auto", tmp_path).name == "step_000001"


# ------------------------------------------------------------------------------- with the real trainer
def digit_reward(completions, problems):
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def tiny(output_dir, **overrides):
    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 10,
        "prompts_per_step": 4, "num_generations": 4, "per_device_train_batch_size": 8, "max_steps": 3,
        "save_steps": 1, "learning_rate": 1e-3, "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 40,
        "progress": False, "tensorboard": False, "output_dir": str(output_dir), "save_final_model": False,
    }
    values.update(overrides)
    return load_config(None, values)


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.model.state_dict().items()}


def assert_same_params(a, b):
    """Bitwise: same ops in the same order on the same CPU (fp32)."""
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name}: max |diff| {(a[name] - b[name]).abs().max().item()}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run (3 steps, a checkpoint each, rotated down to one): its final parameters."""
    output = tmp_path_factory.mktemp("straight")
    trainer = Trainer(tiny(output, save_total_limit=1), reward_fn=digit_reward)
    trainer.train()
    assert steps_on_disk(output) == ["step_000003"]  # rotation on the real trainer
    return params(trainer)


def test_full_disk_keeps_the_previous_checkpoint_and_resume_is_exact(tmp_path, straight):
    """A real failing write: RLIMIT_FSIZE below the size of policy.pt from step 2 on (SIGXFSZ ignored, so
    write() fails with EFBIG as it fails with ENOSPC on a full disk)."""

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def fill_disk(trainer, step, metrics):
        if step == 2:
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))

    run = tmp_path / "run"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with pytest.raises(CheckpointSaveError) as error:
            Trainer(tiny(run, save_total_limit=1), reward_fn=digit_reward, callbacks=[fill_disk]).train()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    message = str(error.value)
    assert "saving checkpoint" in message and "step_000002 failed" in message
    assert "`latest` still names step_000001, which is complete" in message and "--resume auto" in message
    assert "GiB are free there: if the disk is full" in message
    assert (run / "checkpoints" / LATEST).read_text() == "step_000001"
    assert checkpoint_problem(run / "checkpoints" / "step_000001") is None
    assert checkpoint_problem(run / "checkpoints" / "step_000002").startswith("incomplete")
    resumed = Trainer(tiny(run, save_total_limit=1, resume="auto"), reward_fn=digit_reward)
    assert resumed.step == 1
    resumed.train()
    assert_same_params(straight, params(resumed))
    assert steps_on_disk(run) == ["step_000003"]


def test_resume_auto_skips_a_truncated_checkpoint_and_stays_exact(tmp_path, straight):
    run = tmp_path / "run"
    Trainer(tiny(run), reward_fn=digit_reward).train()
    policy_file = run / "checkpoints" / "step_000003" / "policy.pt"
    policy_file.write_bytes(policy_file.read_bytes()[:1000])  # cut mid-write by a crashed copy, a bad disk
    resumed = Trainer(tiny(run, resume="auto"), reward_fn=digit_reward)
    assert resumed.step == 2
    resumed.train()
    assert_same_params(straight, params(resumed))
    assert checkpoint_problem(run / "checkpoints" / "step_000003") is None  # saved again, whole
