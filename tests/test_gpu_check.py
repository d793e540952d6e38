"""scripts/gpu-check.sh on a machine without a GPU: the plan with every stage's timeout, every stage skipped
with its reason, exit 0; and its training stage's script (benchmarks/gpu_train_check.py) end to end at toy size
on the CPU, so that the one call on a lent GPU does not fail on a typo."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["setup", "kernel-tests", "tests", "bench-logits", "bench-linear", "rows-in-flight", "train-zero3",
          "train-server",
          "train-vllm"]


def _gpu_check(tmp_path, *args, python=sys.executable):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=python)
    return subprocess.run(["bash", "scripts/gpu-check.sh", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,reason", [(["--dry-run"], "dry run"), ([], "no CUDA device")])
def test_without_a_gpu_every_stage_is_planned_and_skipped(tmp_path, args, reason):
    import torch

    if not args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the real check would run")
    result = _gpu_check(tmp_path, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = dict(re.findall(r"^  (\S+) +timeout +(\d+)s$", result.stdout, flags=re.M))
    assert list(plan) == STAGES
    assert sum(int(s) for s in plan.values()) <= 470  # the whole call fits 8 minutes with the env probe
    summary = (tmp_path / "out" / "summary.txt").read_text().splitlines()
    assert summary == [f"{stage:<15} skipped ({reason})" for stage in STAGES]


def test_named_stages_and_unknown_ones(tmp_path):
    result = _gpu_check(tmp_path, "--dry-run", "tests", "train-zero3")
    assert result.returncode == 0
    assert re.findall(r"^  (\S+) +timeout", result.stdout, flags=re.M) == ["setup", "tests", "train-zero3"]
    bad = _gpu_check(tmp_path, "--dry-run", "bench")
    assert bad.returncode == 2 and "unknown stage 'bench'" in bad.stderr


def test_training_check_runs_end_to_end_at_toy_size(tmp_path):
    """The train-zero3 stage's script, plain torch bf16 on the CPU at a toy shape: builds the model directory
    and the padded tokenizer, trains, writes one metrics row per step."""
    command = [sys.executable, "benchmarks/gpu_train_check.py", "--shape", "tiny", "--no-deepspeed", "--steps", "2",
               "--prompts", "2", "--generations", "2", "--new-tokens", "4", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "train_hf_torch.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 < r["completion_length"] <= 4 and r["step_time"] > 0 and r["grad_norm"] >= 0 for r in rows), rows
