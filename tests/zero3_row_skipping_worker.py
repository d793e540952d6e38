"""Launched by tests/test_row_skipping.py under `deepspeed --num_gpus 2` (CPU accelerator): for every loss
type the config accepts, train twice on the same rollouts, skipping zero-advantage rows and not; then once
with dynamic sampling; rank 0 writes the results to the JSON file given as the argument.

The ranks get unequal work on purpose: on rank 0 every group has a dense reward, on rank 1 the first group
of each optimizer step has all-equal rewards. Rank 0 then needs two micro-batch calls per optimizer step
and rank 1 one: lockstep must pad rank 1 with a zero-weight call (without it the run would hang).
Not collected by pytest (no test_ prefix).
"""
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def uneven_reward(completions, problems):
    import torch.distributed as torch_dist

    digits = [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]
    if torch_dist.get_rank() == 0:
        return digits
    group = 4  # num_generations below; rows 0-3 of each 8-row optimizer step get a constant reward
    return [0.5 if (i // group) % 2 == 0 else d for i, d in enumerate(digits)]


def config(output_dir, **overrides):
    from seedgrpo.training.config import load_config

    values = {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 10,
        "prompts_per_step": 8, "num_generations": 4, "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2, "num_iterations": 2, "max_steps": 1, "learning_rate": 1e-3,
        "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 40, "progress": False, "tensorboard": False,
        "output_dir": str(output_dir), "save_final_model": False,
        "deepspeed_config": str(REPO / "configs" / "ds_zero3_cpu.json"),
    }
    values.update(overrides)
    return load_config(None, values)


def main(out_path):
    from seedgrpo.training.config import CHOICES
    from seedgrpo.training.trainer import Trainer

    out = Path(out_path)
    results = {}
    for loss_type in CHOICES["loss_type"]:
        runs = {}
        for skip in (True, False):
            trainer = Trainer(config(out.parent / f"{loss_type}-{skip}", loss_type=loss_type,
                                     skip_zero_advantage=skip), reward_fn=uneven_reward)
            metrics = trainer.train()
            state = trainer.policy.consolidated_state_dict() or {}  # collective; full tensors on rank 0 only
            runs[skip] = (metrics, {k: v.detach().float().clone() for k, v in state.items()})
        if torch.distributed.get_rank() == 0:
            (on, on_params), (off, off_params) = runs[True], runs[False]
            results[loss_type] = dict(
                max_param_diff=max((on_params[k] - off_params[k]).abs().max().item() for k in on_params),
                **{f"{key}_{name}": m[key] for name, m in (("on", on), ("off", off))
                   for key in ("loss", "grad_norm", "skipped_row_frac", "clip_ratio_low")})
    # dynamic sampling: rank 1 finds 2 groups with a signal per rollout, rank 0 4: both must roll out twice
    metrics = Trainer(config(out.parent / "dynamic", dynamic_sampling=True, max_dynamic_sampling_rounds=3),
                      reward_fn=uneven_reward).train()
    keys = ("dynamic_sampling_rounds", "zero_variance_group_frac", "skipped_row_frac", "grad_norm")
    results["dynamic_sampling"] = {k: metrics[k] for k in keys}
    if torch.distributed.get_rank() == 0:
        out.write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[-1])
