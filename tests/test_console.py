"""What `seedgrpo train` prints: one run bar (or a line per step), a summary, and errors without tracebacks."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seedgrpo import cli
from seedgrpo.training.config import load_config
from seedgrpo.training.console import RunConsole
from seedgrpo.training.trainer import Trainer
from tests.test_trainer import digit_reward, tiny

REPO = Path(__file__).resolve().parents[1]


def _metrics(step):
    return dict(loss=0.01 * step, reward_mean=0.1 * step, accuracy=0.25 * step, semantic_entropy_mean=0.5,
                advantage_scale_mean=0.9, tokens_per_s=1000.0 * step, completion_length=7.0, step_time=0.5)


def test_the_bar_shows_live_metrics_and_the_summary_follows(tmp_path):
    out = io.StringIO()
    console = RunConsole(load_config(None, {"max_steps": 3, "output_dir": str(tmp_path)}), file=out)
    for step in (1, 2, 3):
        console.step(step, _metrics(step))
    console.finish(3)
    text = out.getvalue()
    assert "train: 100%" in text and "3/3" in text
    assert "reward 0.300  acc 75.0%  SE 0.500  scale 0.900  tok/s 3000" in text  # the last postfix
    assert "step 1/3" not in text  # no per-step lines beside the bar
    summary = text.split("\n", text.count("\n") - 3)[-1]
    assert summary.startswith("done: step 3: 3 steps in 0m0")
    assert "2000 tokens/s" in summary and "reward 0.100 -> 0.300" in summary and "acc 25.0% -> 75.0%" in summary
    assert str(tmp_path) in summary


def test_without_a_bar_a_line_every_logging_step(tmp_path):
    out = io.StringIO()
    config = load_config(None, {"max_steps": 5, "progress": False, "logging_steps": 2, "output_dir": str(tmp_path)})
    console = RunConsole(config, start_step=1, file=out)  # resumed after step 1
    for step in (2, 3, 4, 5):
        console.step(step, _metrics(step))
    console.finish(5)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["2/5", "4/5", "5/5"]
    assert lines[0].startswith("step 2/5  loss 0.0200  reward 0.200  acc 50.0%  SE 0.500  scale 0.900")
    assert any(line.startswith("done: step 5: 4 steps") for line in lines)


@pytest.mark.parametrize("progress", [True, "detailed"])
def test_training_prints_one_bar_and_per_step_bars_only_when_detailed(tmp_path, capsys, progress):
    Trainer(tiny(tmp_path, max_steps=2, progress=progress), reward_fn=digit_reward).train()
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "train: 100%" in text and "2/2" in text and "tok/s" in text
    per_step = ("step 1 rollout" in text, "step 2 update" in text)
    assert per_step == ((True, True) if progress == "detailed" else (False, False))
    assert "done: step 2: 2 steps" in captured.out


def test_sigterm_stop_closes_the_bar_with_a_summary(tmp_path, capsys):
    import signal

    def stop(trainer, step, metrics):
        signal.raise_signal(signal.SIGTERM)

    Trainer(tiny(tmp_path, max_steps=3), reward_fn=digit_reward, callbacks=[stop]).train()
    assert "stopped at step 1/3: 1 steps" in capsys.readouterr().out


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["--data.path", "{bad}"], r"{bad} line 2 is not a valid JSON line \(Expecting property name enclosed in "
                               r"double quotes at line 1 column 2\): fix or delete that line"),
    (["--model", "./no/such/dir"], r"model='./no/such/dir' is neither a local directory nor a Hugging Face "
                                   r"model id \('org/name'\)"),
    (["--model", "no-such-org/no-such-model"], r"model='no-such-org/no-such-model' is not a local directory, "
                                               r"and as a model id it could not be loaded"),
    (["--model", "{dir}"], r"model='{dir}' is a directory without config.json"),
    (["--report_to", "mlflow"], r"report_to=\['mlflow'\] is not allowed"),
])
def test_cli_errors_print_the_message_and_the_usage(tmp_path, capsys, monkeypatch, args, message):
    import huggingface_hub.constants

    # a model id is looked up in the cache only: no network retries (the constant is read at import)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    bad = _write(tmp_path / "bad.jsonl", '{"problem": "1+1", "answer": "2"}\n{x: 1}\n')
    (tmp_path / "empty").mkdir()
    subst = {"{bad}": bad, "{dir}": str(tmp_path / "empty")}
    args = [next((a.replace(k, v) for k, v in subst.items() if k in a), a) for a in args]
    message = next((message.replace(k, v) for k, v in subst.items() if k in message), message)
    code = cli.main(["train", "--output_dir", str(tmp_path / "run"), "--progress", "false", *args])
    err = capsys.readouterr().err
    assert code == 2
    import re

    first, usage = err.splitlines()[:2]
    assert first.startswith("seedgrpo train: error: ") and re.search(message, first), first
    assert usage.startswith("usage: python -m seedgrpo.train --config")
    assert "Traceback" not in err


def test_debug_shows_the_traceback_and_the_real_command_exits_2(tmp_path):
    with pytest.raises(ValueError, match="is neither a local directory"):
        cli.main(["train", "--model", "./nowhere", "--debug"])
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "seedgrpo.cli", "eval", "--model", str(tmp_path),
                             "--data-dir", str(tmp_path), "--benchmarks", "math500"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "usage: seedgrpo eval" in result.stderr
    assert result.stderr.startswith("seedgrpo eval: error: ")


def test_off_a_terminal_bars_write_whole_lines_not_carriage_returns(monkeypatch):
    from seedgrpo.training import console

    out = io.StringIO()  # not a terminal, like a log file
    monkeypatch.setattr(console, "LINE_INTERVAL_S", 0.0)  # every update shown
    bar = console.progress_bar(total=4, desc="warm start", file=out)
    for step in range(4):
        bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "" not in text.splitlines()
    lines = text.splitlines()
    percents = [" ".join(line.split("|")[0].split()) for line in lines]
    assert percents == [f"warm start: {p}%" for p in (0, 25, 50, 75, 100)]
    assert lines[-1].endswith("loss=0.250]") and "4/4" in lines[-1]

    monkeypatch.undo()
    out = io.StringIO()  # the default interval: the first and the last state only, for a quick loop
    bar = console.progress_bar(range(1000), desc="generate", leave=False, file=out)
    assert sum(1 for _ in bar) == 1000
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "0/1000" in lines[0] and "1000/1000" in lines[1]


def test_on_a_terminal_the_bar_is_plain_tqdm():
    from tqdm.auto import tqdm

    from seedgrpo.training import console

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    bar = console.progress_bar(total=2, desc="x", file=out)
    bar.update(2)
    bar.close()
    assert type(bar) is tqdm and "\r" in out.getvalue()
