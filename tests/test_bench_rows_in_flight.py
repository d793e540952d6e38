"""benchmarks/bench_rows_in_flight.py runs end to end before any GPU sees it: without CUDA it says so and
measures nothing (exit 0); ``--smoke`` drives the default and persistent launches through the CPU interpreter
and appends CSV rows marked as no timing, with no bandwidth figures."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rows_in_flight.py"


def _run(*args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU message is for machines without CUDA")
def test_without_a_gpu_it_measures_nothing_and_says_why(tmp_path):
    proc = _run("--csv", str(tmp_path / "rows.csv"))
    assert proc.returncode == 0 and "needs a CUDA GPU" in proc.stdout and "nothing measured" in proc.stdout
    assert not (tmp_path / "rows.csv").exists()


def test_smoke_run_writes_rows_for_both_launches(tmp_path):
    out = tmp_path / "rows.csv"
    proc = _run("--smoke", "--rows-in-flight", "1,4", "--csv", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [(r["provider"], r["rows_in_flight"]) for r in rows] == [("default", ""), ("persistent", "1"),
                                                                   ("persistent", "4")]
    for r in rows:
        assert r["note"] == "interpreter smoke, not a timing" and r["gbps_2x"] == "" and float(r["p50_ms"]) > 0
