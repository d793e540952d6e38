"""Multi-node through DeepSpeed's own launcher, on one machine: two `deepspeed --no_ssh --num_nodes 2
--node_rank 0|1` invocations (a hostfile of two "nodes", 2 CPU ranks each, ZeRO-3, gloo).

- 4 ranks on 2 nodes give the parameters of 1 rank on the same global batch (fp32 tolerance 1e-5: the
  reduction order differs);
- rank 3 (node 1) SIGKILLed in step 3's update: both launchers end within a bounded time (node 0's ranks
  see the closed connection; `ddp_timeout` bounds it otherwise), `--resume auto` takes step 2, and the
  resumed 4-rank run ends with exactly (bitwise) the parameters of the uninterrupted 4-rank run.

Four launches in all (~12 s of start-up each on an idle 2-core CPU); real multi-node commands are in
docs/reliability.md.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seedgrpo.training.checkpoint import LATEST, checkpoint_problem
from seedgrpo.training.faults import ENV

REPO = Path(__file__).resolve().parents[1]
DEEPSPEED = str(Path(sys.executable).parent / "deepspeed")
KILL_BOUND_S = 60
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run_args(output_dir, *extra):
    return ["--config", "configs/tiny-cpu.yaml", "--output_dir", str(output_dir), "--max_steps", "3",
            "--save_steps", "1", "--prompts_per_step", "4", "--num_generations", "4",
            "--per_device_train_batch_size", "4", "--num_iterations", "2", "--learning_rate", "1e-3",
            "--toy.layers", "2", "--toy.hidden", "64", "--max_completion_length", "10", "--progress", "false",
            "--tensorboard", "false", "--ddp_timeout", "60",
            "--reward_fn", "tests.test_reliability_faults:digit_reward", *extra]


def env(fault=None):
    out = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", ENV):
        out.pop(key, None)
    if fault:
        out[ENV] = fault
    return out


def two_nodes(tmp_path, output_dir, *extra, fault=None, timeout=600):
    """Both node launchers, as a scheduler starts them on two machines: (return codes, logs, end time)."""
    from seedgrpo.dist import free_port

    hostfile = tmp_path / "hostfile"
    hostfile.write_text("nodeA slots=2\nnodeB slots=2\n")  # names are not resolved with --no_ssh
    port = str(free_port())
    jobs = []
    for node_rank in (0, 1):
        command = [DEEPSPEED, "--no_ssh", "--hostfile", str(hostfile), "--num_nodes", "2",
                   "--node_rank", str(node_rank), "--num_gpus", "2", "--master_addr", "127.0.0.1",
                   "--master_port", port, "--module", "seedgrpo.train", *run_args(output_dir, *extra)]
        log = open(tmp_path / f"node{node_rank}-{output_dir.name}.log", "w+")
        jobs.append((subprocess.Popen(command, cwd=REPO, env=env(fault), stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True), log))
    deadline, ends = time.monotonic() + timeout, []
    try:
        for job, _ in jobs:
            job.wait(timeout=max(1, deadline - time.monotonic()))
            ends.append(time.time())
    finally:  # a launcher still running past the deadline: end it and its ranks, then fail
        for job, _ in jobs:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
    logs = []
    for _, log in jobs:
        log.seek(0)
        logs.append(log.read())
        log.close()
    return [job.returncode for job, _ in jobs], logs, max(ends)


def final_params(output_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "final" / "model.safetensors"))


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def four_ranks(tmp_path_factory):
    """The uninterrupted 4-rank run."""
    tmp = tmp_path_factory.mktemp("four")
    output = tmp / "straight"
    codes, logs, _ = two_nodes(tmp, output)
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    return output


def test_four_ranks_on_two_nodes_match_one_rank_on_the_same_global_batch(tmp_path, four_ranks):
    one = subprocess.run([sys.executable, "-m", "seedgrpo.train", *run_args(tmp_path / "one")], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=400)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    diff = max_diff(final_params(tmp_path / "one"), final_params(four_ranks))
    assert diff < 1e-5, diff
    from seedgrpo.tasks import toy

    start = toy.make_model(toy.make_tokenizer(), layers=2, hidden=64, seed=0).state_dict()
    final = final_params(four_ranks)  # save_pretrained drops the tied lm_head.weight
    assert max((final[k] - start[k]).abs().max().item() for k in final) > 1e-4  # training moved the weights


def test_a_rank_killed_on_one_node_ends_both_and_the_resumed_run_is_exact(tmp_path, four_ranks):
    output = tmp_path / "run"
    codes, logs, ended = two_nodes(tmp_path, output, fault="update@3:3")
    assert codes[0] != 0 and codes[1] != 0, codes
    fired = [line for line in logs[1].splitlines() if line.startswith(f"{ENV} update step 3 rank 3 at ")]
    assert fired, logs[1][-3000:]
    killed_at = float(fired[0].rsplit(" ", 1)[1])
    assert ended - killed_at < KILL_BOUND_S, (ended - killed_at, logs[0][-2000:])
    root = output / "checkpoints"
    assert (root / LATEST).read_text() == "step_000002" and checkpoint_problem(root / "step_000002") is None
    assert not (output / "final").exists()

    codes, logs, _ = two_nodes(tmp_path, output, "--resume", "auto")
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert "resumed from" in logs[0] and "step_000002 at step 2" in logs[0]
    assert max_diff(final_params(output), final_params(four_ranks)) == 0.0  # bitwise
