"""Checkpoints: save and restore everything a run needs to continue bit-for-bit, and the final HF export.

    output_dir/checkpoints/
        latest                        name of the newest complete checkpoint (written last)
        step_000020/
            (DeepSpeed's model and optimizer shards, or policy.pt for the plain-torch engine)
            trainer_state.json        step, data-sampler position, world size
            rng_rank{r}.pt            python, numpy, torch (CPU and CUDA) RNG states of rank r
            adapter/                  LoRA runs: the adapter in peft's format (checkpoint.save_adapter)
    output_dir/final/                 save_pretrained() of the consolidated weights + the tokenizer
                                      (LoRA runs: the adapter + the tokenizer)

`resume: auto` takes `latest` when there is one (and starts afresh otherwise); `resume: <dir>` takes that
checkpoint directory. Rollouts are seeded by (seed, step, prompt), so restoring the step, the sampler
position, the optimizer and the RNG states replays the uninterrupted run exactly.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from . import dist

LATEST = "latest"


def checkpoint_root(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(policy, output_dir, step: int, trainer_state: dict) -> Path:
    """Collective: every rank calls it. Returns the checkpoint directory."""
    root = checkpoint_root(output_dir)
    tag = tag_for(step)
    root.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    policy.save(root, tag)
    directory = root / tag
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(capture_rng(), directory / f"rng_rank{dist.rank()}.pt")
    if dist.is_main():
        state = dict(trainer_state, step=step, world_size=dist.world_size())
        (directory / "trainer_state.json").write_text(json.dumps(state, indent=2))
    save_adapter(policy, directory / "adapter")  # LoRA only; before `latest` names the checkpoint complete
    dist.barrier()
    if dist.is_main():  # only now is the checkpoint complete on every rank
        (root / LATEST).write_text(tag)
    dist.barrier()
    return directory


def find_checkpoint(resume: str | None, output_dir) -> Path | None:
    """The checkpoint directory to resume from, or None to start afresh."""
    if resume is None:
        return None
    if resume == "auto":
        latest = checkpoint_root(output_dir) / LATEST
        if not latest.is_file():
            return None
        directory = checkpoint_root(output_dir) / latest.read_text().strip()
    else:
        directory = Path(resume)
    if not (directory / "trainer_state.json").is_file():
        raise ValueError(f"resume={resume!r}: {directory} is not a complete checkpoint "
                         "(no trainer_state.json)")
    return directory


def load_checkpoint(policy, directory: Path) -> dict:
    """Restore the policy/optimizer/scheduler and this rank's RNG; returns the trainer state."""
    directory = Path(directory)
    policy.load(directory.parent, directory.name)
    state = json.loads((directory / "trainer_state.json").read_text())
    rng_file = directory / f"rng_rank{dist.rank()}.pt"
    if rng_file.is_file():
        restore_rng(torch.load(rng_file, weights_only=False))
    else:
        dist.print0(f"warning: {rng_file.name} missing (saved with {state.get('world_size')} ranks, "
                    f"now {dist.world_size()}): RNG states not restored; rollouts are seeded per step and "
                    "stay exact")
    return state


def export_hf(policy, tokenizer, directory) -> Path | None:
    """save_pretrained() of the consolidated weights (collective) and the tokenizer, on rank 0."""
    from .rollout.scoring import unwrap

    if getattr(policy, "peft_model", None) is not None:
        return export_adapter(policy, tokenizer, directory)
    state_dict = policy.consolidated_state_dict()
    directory = Path(directory)
    if dist.is_main():
        directory.mkdir(parents=True, exist_ok=True)
        state_dict = {k: v.detach().cpu() for k, v in state_dict.items()}
        unwrap(policy.model).save_pretrained(str(directory), state_dict=state_dict)
        tokenizer.save_pretrained(str(directory))
    dist.barrier()
    return directory


# ------------------------------------------------------------------------------------------ LoRA adapters
def save_adapter(policy, directory) -> Path | None:
    """The LoRA adapter alone, in peft's format (adapter_config.json + adapter_model.safetensors), when the
    policy has one (`peft.r > 0`). Collective: the adapter's parameters are gathered under ZeRO-3; rank 0
    writes. The optimizer and the rest of the resume state stay in the policy's own checkpoint files."""
    peft_model = getattr(policy, "peft_model", None)
    if peft_model is None:
        return None
    from .rollout.scoring import gathered

    directory = Path(directory)
    with gathered([p for p in peft_model.parameters() if p.requires_grad]):
        if dist.is_main():
            directory.mkdir(parents=True, exist_ok=True)
            peft_model.save_pretrained(str(directory))
    dist.barrier()
    return directory


def export_adapter(policy, tokenizer, directory) -> Path:
    """`final/` of a LoRA run: the adapter and the tokenizer (load with peft's `PeftModel.from_pretrained(base,
    directory)`, or `merge_and_unload()` it for a plain model). Collective."""
    directory = Path(directory)
    save_adapter(policy, directory)
    if dist.is_main():
        tokenizer.save_pretrained(str(directory))
    dist.barrier()
    return directory
