"""Run by tests/test_reliability_faults.py in a fresh interpreter: the uninterrupted run, then `--resume auto`
of the killed one, compared bitwise. A fresh process for both halves, like the killed run's, so that nothing an
earlier test did to this interpreter's state (threads, allocator, caches) can make the two float paths differ.

    python tests/fault_resume_worker.py STRAIGHT_DIR RUN_DIR RESUME_FROM
"""
import sys
from pathlib import Path

import torch

from seedgrpo.training.config import load_config
from seedgrpo.training.trainer import Trainer
from tests.test_reliability_faults import REPO, digit_reward, params, run_args


def main(straight_dir: str, run_dir: str, resume_from: str) -> int:
    preset = REPO / "configs" / "tiny-cpu.yaml"
    straight = Trainer(load_config(preset, run_args(Path(straight_dir), "--deepspeed_config", "null")[2:]),
                       reward_fn=digit_reward)
    straight.train()
    expected = params(straight)
    args = run_args(Path(run_dir), "--deepspeed_config", "null")[2:] + ["--resume", "auto"]
    resumed = Trainer(load_config(preset, args), reward_fn=digit_reward)
    if resumed.step != int(resume_from.split("_")[1]):
        print(f"resumed at step {resumed.step}, expected {resume_from}")
        return 1
    resumed.train()
    got = params(resumed)
    differ = [name for name, value in expected.items() if not torch.equal(value, got[name])]  # bitwise
    if differ:
        print(f"parameters differ from the uninterrupted run: {differ}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
