"""generation_mode: server (seedgrpo/rollout/server.py + client.py): the trainer and its generation server are
two processes; sync and async k = 0 equal colocated training bitwise, async k = 1, 2 train with the staleness
they announce, and every failure is one clear error within a stated bound.

Every run uses one torch thread in the trainer and in the server: CPU matmuls may sum in another order with
another thread count, and the bitwise comparisons need the same float path in both layouts.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from seedgrpo.rollout.client import GenerationServerError
from seedgrpo.training.trainer import Trainer
from tests.test_trainer import digit_reward, params, tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def server_run(output_dir, **overrides):
    values = dict(generation_mode="server", server_threads=1, max_steps=3)
    values.update(overrides)
    return tiny(output_dir, **values)


def train(config):
    trainer = Trainer(config, reward_fn=digit_reward)
    metrics = trainer.train()
    return trainer, metrics


def metric_rows(output_dir):
    import json

    return [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]


def assert_bitwise(a, b):
    differ = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differ, differ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_sync_and_async_k0_equal_colocated_training_bitwise(tmp_path):
    colocated, _ = train(tiny(tmp_path / "colocate", max_steps=3))
    start = params(Trainer(tiny(tmp_path / "start", max_steps=3), reward_fn=digit_reward))
    server, _ = train(server_run(tmp_path / "server"))
    async0, _ = train(server_run(tmp_path / "async0", async_generation=True, max_staleness=0))
    expected = params(colocated)
    assert max((expected[k] - start[k]).abs().max().item() for k in start) > 1e-4  # it trained
    assert_bitwise(expected, params(server))
    assert_bitwise(expected, params(async0))
    for run in ("server", "async0"):
        rows, reference = metric_rows(tmp_path / run), metric_rows(tmp_path / "colocate")
        assert [r["loss"] for r in rows] == [r["loss"] for r in reference]
        assert [r["staleness"] for r in rows] == [0, 0, 0] and rows[-1]["dropped_batches"] == 0
        assert all(r["generation_wait_s"] > 0 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2])
def test_async_k_trains_with_k_steps_of_staleness(tmp_path, k):
    trainer, _ = train(server_run(tmp_path / "run", async_generation=True, max_staleness=k, max_steps=4))
    rows = metric_rows(tmp_path / "run")
    # Requests go out k steps ahead: step s is sampled by the policy of step s - k (the first ones by the start)
    assert [r["staleness"] for r in rows] == [min(s - 1, k) for s in range(1, 5)]
    assert rows[-1]["dropped_batches"] == 0
    assert all(r["reward_mean"] > 0 for r in rows)
    sync, _ = train(tiny(tmp_path / "sync", max_steps=4))
    got, synced = params(trainer), params(sync)
    # Steps 1 .. 1 (k=1) are sampled as the synchronous run samples them; later ones are off-policy: differ
    assert max((got[n] - synced[n]).abs().max().item() for n in got) > 0


def test_weight_checksum_is_compared_after_every_push(tmp_path):
    trainer, _ = train(server_run(tmp_path / "run", server_debug_checksum=True, max_steps=2))
    assert trainer.rollout.version == 2  # pushes 0 (connect), 1, 2: each answered with a matching checksum


def test_a_server_whose_weights_drifted_is_caught(tmp_path):
    from seedgrpo.rollout.server import GenerationServer

    config = server_run(tmp_path / "run", server_host="127.0.0.1", server_port=free_port())
    server = GenerationServer(config, host="127.0.0.1", port=config.server_port, threads=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trainer = Trainer(config, reward_fn=digit_reward)
    trainer.rollout.verify_weights()  # equal after the connect push
    name = next(iter(server.params))
    server.params[name].data.view(-1)[0] += 1e-3
    with pytest.raises(GenerationServerError, match="weights of the server at .* differ from the trainer"):
        trainer.rollout.verify_weights()
    trainer.rollout.close()


def test_server_killed_mid_generation_ends_the_run_with_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDGRPO_FAULT", "serve_generate@2")  # the auto-started server inherits it
    trainer = Trainer(server_run(tmp_path / "run", server_timeout=30), reward_fn=digit_reward)
    child = trainer.rollout._links[0].child
    started = time.monotonic()
    with pytest.raises(GenerationServerError, match="server process exited|connection closed") as error:
        trainer.train()
    assert time.monotonic() - started < 10  # step 1, then a dead socket is noticed at once
    assert "\n" not in str(error.value) and "version 1" in str(error.value)
    assert child.poll() is not None and not trainer.rollout._links  # closed on the way out


def test_the_cli_reports_a_dead_server_in_one_line(tmp_path):
    env = dict(os.environ, SEEDGRPO_FAULT="serve_generate@1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "seedgrpo.cli", "train", "--config", "tiny-cpu", "--deepspeed_config", "null",
         "--generation_mode", "server", "--max_steps", "2", "--output_dir", str(tmp_path / "run"),
         "--progress", "false", "--toy.layers", "1", "--toy.hidden", "32", "--server_timeout", "30"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("seedgrpo train: error:")]
    assert len(errors) == 1 and "generation server failed" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_connect_errors_are_one_clear_line(tmp_path):
    port = free_port()
    with pytest.raises(GenerationServerError, match=f"no generation server at 127.0.0.1:{port}"):
        Trainer(server_run(tmp_path / "a", server_host="127.0.0.1", server_port=port, server_timeout=1),
                reward_fn=digit_reward)
    with pytest.raises(GenerationServerError, match="not a reachable host"):
        Trainer(server_run(tmp_path / "b", server_host="no-such-host.invalid", server_timeout=1),
                reward_fn=digit_reward)


@pytest.mark.slow
def test_a_separate_server_serves_one_run_at_a_time(tmp_path, monkeypatch):
    from multiprocessing.connection import Client

    from seedgrpo.rollout.server import PROTOCOL, READY, recv, send

    port = free_port()
    env = dict(os.environ, SEEDGRPO_SERVER_AUTHKEY="test-key", OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "seedgrpo.cli", "serve", "--config", "tiny-cpu", "--port", str(port),
         "--num_threads", "1", "--toy.layers", "2", "--toy.hidden", "64", "--deepspeed_config", "null"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith(READY)
        monkeypatch.setenv("SEEDGRPO_SERVER_AUTHKEY", "test-key")
        first = Trainer(server_run(tmp_path / "a", server_host="127.0.0.1", server_port=port),
                        reward_fn=digit_reward)
        with pytest.raises(GenerationServerError, match="in use by another run"):
            Trainer(server_run(tmp_path / "b", server_host="127.0.0.1", server_port=port),
                    reward_fn=digit_reward)
        conn = Client(("127.0.0.1", port), authkey=b"test-key")
        send(conn, dict(kind="hello", protocol=PROTOCOL + 1, run_id="x"))
        assert "protocol version mismatch" in recv(conn)["message"]
        monkeypatch.setenv("SEEDGRPO_SERVER_AUTHKEY", "wrong")
        with pytest.raises(GenerationServerError, match="refused our authkey"):
            Trainer(server_run(tmp_path / "c", server_host="127.0.0.1", server_port=port),
                    reward_fn=digit_reward)
        monkeypatch.setenv("SEEDGRPO_SERVER_AUTHKEY", "test-key")
        first.train()  # the first run trains through it, and lets it go at the end
        second, _ = train(server_run(tmp_path / "b", server_host="127.0.0.1", server_port=port))
        assert_bitwise(params(first), params(second))  # the same config: the same run, on the same server
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1])
def test_trainer_killed_then_resume_auto(tmp_path, k):
    """The trainer dies in step 3's update; its auto-started server exits by itself; `--resume auto` from the
    step-2 checkpoint regenerates the requests in flight from their seeds. k = 0: bitwise the uninterrupted run.
    k = 1: the same prompts and seeds, sampled by the checkpoint's policy (one version newer than the
    uninterrupted run's), so the resumed run is deterministic but not bitwise the uninterrupted one."""
    overrides = ["--generation_mode", "server", "--server_threads", "1", "--max_steps", "4", "--save_steps",
                 "1", "--async_generation", "true", "--max_staleness", str(k)]
    common = ["--deepspeed_config", "null", "--progress", "false", "--prompt_template", "none",
              "--max_prompt_length", "16", "--max_completion_length", "10", "--prompts_per_step", "4",
              "--num_generations", "4", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
              "--toy.layers", "2", "--toy.hidden", "64", "--toy.num_problems", "40", "--tensorboard", "false",
              "--save_final_model", "false", "--reward_fn", "tests.test_trainer:digit_reward"]
    run_dir = tmp_path / "killed"
    env = dict(os.environ, SEEDGRPO_FAULT="update@3", OMP_NUM_THREADS="1")
    killed = subprocess.run([sys.executable, "-m", "seedgrpo.train", "--config", "tiny-cpu", *common, *overrides,
                             "--output_dir", str(run_dir)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (run_dir / "checkpoints" / "latest").read_text() == "step_000002"
    deadline = time.monotonic() + 10  # the orphaned server notices its trainer is gone within ~1 s
    while time.monotonic() < deadline and _serve_processes(run_dir):
        time.sleep(0.2)
    assert not _serve_processes(run_dir)

    from seedgrpo.training.config import load_config

    def config(output_dir, *extra):
        args = [*common, *overrides, "--output_dir", str(output_dir), *extra]
        return load_config(REPO / "configs" / "tiny-cpu.yaml", args)

    if k == 0:
        # Both halves in a fresh interpreter, like the killed run's: state an earlier test left in this one
        # (threads, allocator, caches) must not make the float paths differ (tests/fault_resume_worker.py).
        script = ("import json, sys, torch\n"
                  "from seedgrpo.training.config import load_config\n"
                  "from seedgrpo.training.trainer import Trainer\n"
                  "torch.set_num_threads(1)\n"
                  "preset, resumed_args, straight_args = sys.argv[1], *map(json.loads, sys.argv[2:4])\n"
                  "resumed = Trainer(load_config(preset, resumed_args))\n"
                  "assert resumed.step == 2, resumed.step\n"
                  "resumed.train()\n"
                  "straight = Trainer(load_config(preset, straight_args))\n"
                  "straight.train()\n"
                  "a, b = straight.policy.model.state_dict(), resumed.policy.model.state_dict()\n"
                  "print(json.dumps([n for n in a if not torch.equal(a[n], b[n])]))\n")
        args = [[*common, *overrides, "--output_dir", str(out), *extra]
                for out, extra in ((run_dir, ["--resume", "auto"]), (tmp_path / "straight", []))]
        done = subprocess.run([sys.executable, "-c", script, str(REPO / "configs" / "tiny-cpu.yaml"),
                               *(json.dumps(a) for a in args)], cwd=REPO, capture_output=True, text=True,
                              timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == []  # bitwise the uninterrupted run
    else:
        resumed = Trainer(config(run_dir, "--resume", "auto"))
        assert resumed.step == 2
        resumed.train()
        straight = Trainer(config(tmp_path / "straight"))
        straight.train()
        again = Trainer(config(tmp_path / "again"))
        again.train()
        assert_bitwise(params(straight), params(again))  # async k = 1 is deterministic
        assert [r["staleness"] for r in metric_rows(run_dir)][-2:] == [0, 1]  # regenerated, then k again


def _serve_processes(run_dir) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "seedgrpo.cli serve" in line and "--parent_pid" in line
            and str(run_dir) not in line and _config_output_dir(line) == str(run_dir)]


def _config_output_dir(line: str) -> str | None:
    parts = line.split()
    try:
        path = parts[parts.index("--config") + 1]
        import yaml

        return yaml.safe_load(Path(path).read_text()).get("output_dir")
    except (ValueError, IndexError, OSError):
        return None


@pytest.mark.slow
def test_zero3_server_mode_equals_colocated_and_lora_pushes_merged_weights(tmp_path):
    """Under DeepSpeed ZeRO-3 (CPU, one rank) the push gathers one bucket at a time (a small bucket: several
    pushes per model), and training equals colocated ZeRO-3 training bitwise. With LoRA the server holds the
    merged weights W + BA: the debug checksum compares them with the trainer's merge after every push."""
    zero3 = dict(deepspeed_config=str(REPO / "configs" / "ds_zero3_cpu.json"), max_steps=2)
    colocated, _ = train(tiny(tmp_path / "colocate", **zero3))
    server, _ = train(server_run(tmp_path / "server", server_bucket_mb=0.05, server_debug_checksum=True,
                                 **zero3))
    assert server.policy.is_deepspeed
    assert_bitwise(colocated.policy.consolidated_state_dict(), server.policy.consolidated_state_dict())
    lora, _ = train(server_run(tmp_path / "lora", server_debug_checksum=True, max_steps=2,
                               **{"peft.r": 4, "peft.target_modules": ["q_proj", "v_proj"]}))
    assert lora.rollout.version == 2


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_training_ranks_share_one_server(tmp_path):
    """`deepspeed --num_gpus 2` on CPU (ZeRO-3) in server mode: rank 0 holds the connection and relays rank 1's
    prompts and rows; both ranks take part in every bucket's gather. The synchronous run samples the same
    completions as the colocated two-rank run (rewards and lengths equal), async k = 1 runs one version behind."""
    from tests.test_trainer_deepspeed import _deepspeed_two_ranks, _launch

    colocated = _launch(_deepspeed_two_ranks(), tmp_path / "colocate")
    server = _launch(_deepspeed_two_ranks(), tmp_path / "server",
                     extra=("--generation_mode", "server", "--server_threads", "1"))
    for a, b in zip(colocated, server):
        assert (a["reward_mean"], a["completion_length"]) == (b["reward_mean"], b["completion_length"])
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(a["loss"]) + 1e-7
    async1 = _launch(_deepspeed_two_ranks(), tmp_path / "async1", max_steps=3,
                     extra=("--generation_mode", "server", "--server_threads", "1", "--async_generation",
                            "true", "--max_staleness", "1"))
    assert [r["staleness"] for r in async1] == [0, 1, 1]


def test_two_auto_started_servers_split_each_request(tmp_path):
    """num_servers: 2: each request's prompts are split between two servers (whole groups), the replies joined
    in order; the rows are seeded, so the run samples what the one-server run samples."""
    one, _ = train(server_run(tmp_path / "one", max_steps=2))
    two, _ = train(server_run(tmp_path / "two", max_steps=2, num_servers=2, server_debug_checksum=True))
    rows_one, rows_two = metric_rows(tmp_path / "one"), metric_rows(tmp_path / "two")
    assert [(r["reward_mean"], r["completion_length"]) for r in rows_one] == \
        [(r["reward_mean"], r["completion_length"]) for r in rows_two]
    assert_bitwise(params(one), params(two))


def test_server_host_lists_and_their_errors(tmp_path):
    from seedgrpo.training.config import server_addresses

    assert server_addresses("gen1", 8765) == [("gen1", 8765)]
    assert server_addresses("gen1:9000, gen2", 8765) == [("gen1", 9000), ("gen2", 8765)]
    with pytest.raises(ValueError, match="'gen1:x' is not host or host:port"):
        server_run(tmp_path, server_host="gen1:x")
    with pytest.raises(ValueError, match="list every server in server_host"):
        server_run(tmp_path, server_host="gen1", num_servers=2)
