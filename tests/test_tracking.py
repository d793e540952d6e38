"""`report_to` trackers (seedgrpo/training/metrics_log.py): TensorBoard, wandb (offline), trackio (local).

tensorboard, wandb and trackio are optional packages; the tests that run the real ones skip only when the
package is not installed (all three install without another torch: see requirements.txt's test section).
"""
import importlib.machinery
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from seedgrpo.training import metrics_log
from seedgrpo.training.config import load_config, to_dict
from seedgrpo.training.metrics_log import RunLogger, resolve_report_to

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path, **values):
    return load_config(None, {"output_dir": str(tmp_path), **values})


def _fake_module(name, calls):
    """A stand-in for wandb / trackio that records every call."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    class Run:
        id = "run123"

        def log(self, values, step=None):
            calls.append(("log", dict(values), step))

        def finish(self):
            calls.append(("finish",))

    def init(**kwargs):
        calls.append(("init", kwargs))
        return Run()

    module.init = init
    module.log = lambda values, step=None: calls.append(("log", dict(values), step))
    module.finish = lambda: calls.append(("finish",))
    return module


@pytest.mark.parametrize("name", ["wandb", "trackio"])
def test_a_tracker_gets_the_config_once_and_every_row(tmp_path, monkeypatch, name):
    calls = []
    monkeypatch.setitem(sys.modules, name, _fake_module(name, calls))
    config = _config(tmp_path, report_to=name, run_name="my-run", project="proj")
    log = RunLogger(tmp_path, config)
    log.metrics(1, {"loss": 0.5, "reward_mean": 0.25, "rewards/math/mean": 0.25, "kl": float("nan")})
    log.metrics(2, {"loss": 0.4, "reward_mean": 0.5, "rewards/math/mean": 0.5, "kl": 0.0})
    log.close()
    (init,), logs = [c for c in calls if c[0] == "init"], [c for c in calls if c[0] == "log"]
    assert init[1]["project"] == "proj" and init[1]["name"] == "my-run"
    assert init[1]["config"] == to_dict(config)
    assert logs == [("log", {"loss": 0.5, "reward_mean": 0.25, "rewards/math/mean": 0.25}, 1),  # NaN left out
                    ("log", {"loss": 0.4, "reward_mean": 0.5, "rewards/math/mean": 0.5, "kl": 0.0}, 2)]
    assert calls[-1] == ("finish",)
    if name == "wandb":  # a resumed run continues the same wandb run
        calls.clear()
        RunLogger(tmp_path, config, resume_step=2).close()
        assert calls[0][1]["id"] == "run123" and calls[0][1]["resume"] == "allow"


def test_a_missing_package_is_a_one_line_error(tmp_path, monkeypatch):
    real = metrics_log._installed
    monkeypatch.setattr(metrics_log, "_installed", lambda name: name != "wandb" and real(name))
    with pytest.raises(ValueError, match=r"report_to=\['wandb'\]: 'wandb' needs the wandb package, which is "
                                         r"not installed; pip install wandb, or drop it from report_to"):
        resolve_report_to(_config(tmp_path, report_to="wandb"))
    assert "wandb" not in resolve_report_to(_config(tmp_path, report_to="all"))


def test_report_to_choices_and_the_older_tensorboard_key(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_log, "_installed", lambda name: True)
    assert resolve_report_to(_config(tmp_path)) == ["tensorboard"]                     # auto
    assert resolve_report_to(_config(tmp_path, tensorboard=False)) == []               # the older key
    assert resolve_report_to(_config(tmp_path, report_to="none")) == []
    assert resolve_report_to(_config(tmp_path, report_to="all")) == ["tensorboard", "wandb", "trackio"]
    assert resolve_report_to(_config(tmp_path, report_to=["wandb", "trackio"])) == ["wandb", "trackio"]
    with pytest.raises(ValueError, match="'auto', 'none' and 'all' stand alone"):
        _config(tmp_path, report_to=["none", "wandb"])
    with pytest.raises(ValueError, match=r"report_to=\['mlflow'\] is not allowed \('mlflow'\)"):
        _config(tmp_path, report_to="mlflow")


def test_the_real_trackers_log_a_training_run(tmp_path):
    """`seedgrpo train --report_to tensorboard,wandb,trackio` for two steps, wandb offline, trackio in a
    temporary directory: each holds the rows of metrics.jsonl (reward functions given as dotted paths)."""
    for package in ("tensorboard", "wandb", "trackio"):
        pytest.importorskip(package)
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", TRACKIO_DIR=str(tmp_path / "trackio"),
               PYTHONPATH=str(REPO))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "seedgrpo.cli", "train", "--prompt_template", "none",
               "--max_prompt_length", "16", "--max_completion_length", "8", "--prompts_per_step", "2",
               "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_steps", "2",
               "--toy.layers", "1", "--toy.hidden", "32", "--toy.num_problems", "20", "--progress", "false",
               "--save_final_model", "false", "--output_dir", str(out), "--run_name", "tracked",
               "--project", "seedgrpo-test", "--report_to", "tensorboard,wandb,trackio",
               "--reward_funcs", "math,tests.test_reward_funcs.length_reward", "--reward_weights", "1,0.5"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:  # reward functions by dotted path from the command line, weighted
        expected = r["rewards/math/mean"] + 0.5 * r["rewards/length_reward/mean"]
        assert r["rewards/length_reward/mean"] > 0 and r["reward_mean"] == pytest.approx(expected, abs=1e-6)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/reward_mean")]
    assert logged == [(r["step"], pytest.approx(r["reward_mean"])) for r in rows]
    assert "config/text_summary" in events.Tags()["tensors"]

    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert b"reward_mean" in data and b"rewards/math/mean" in data and b"semantic_entropy_mean" in data
    assert b"num_generations" in data  # the run config

    check = ("from trackio.sqlite_storage import SQLiteStorage as S; import json; "
             "print(json.dumps(S.get_logs('seedgrpo-test', 'tracked')))")
    logs = json.loads(subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True,
                                     timeout=60, check=True).stdout)
    assert [(log["step"], log["reward_mean"]) for log in logs] == [(r["step"], pytest.approx(r["reward_mean"]))
                                                             for r in rows]
