"""Checkpoints: save and restore everything a run needs to continue bit-for-bit, and the final HF export.

    output_dir/checkpoints/
        latest                        name of the newest complete checkpoint (temporary file + fsync + rename)
        step_000020/
            (DeepSpeed's model and optimizer shards, or policy.pt for the plain-torch engine)
            rng_rank{r}.pt            python, numpy, torch (CPU and CUDA) RNG states of rank r
            trainer_state.json        step, data-sampler position, world size
            adapter/                  LoRA runs: the adapter in peft's format (checkpoint.save_adapter)
            complete.json             written last: every file of the checkpoint with its size in bytes
    output_dir/final/                 save_pretrained() of the consolidated weights + the tokenizer
                                      (LoRA runs: the adapter + the tokenizer)

A checkpoint is complete once its `complete.json` exists and every file it lists has its recorded size;
it becomes the run's checkpoint when `latest` names it. The order of a save (each step on every rank
before the next begins) makes a kill at any moment leave either the previous checkpoint or the new one:

    shards + RNG (every rank) -> trainer_state.json -> fsync all -> complete.json -> latest -> rotation

`resume: auto` takes the newest complete checkpoint not newer than `latest` (a missing, incomplete or
truncated one is reported and skipped for the previous one; no checkpoint at all starts afresh);
`resume: <dir>` takes that directory and refuses an incomplete one. `save_total_limit` deletes the oldest
complete checkpoints only after a newer one is complete and named by `latest`. Rollouts are seeded by
(seed, step, prompt), so restoring the step, the sampler position, the optimizer and the RNG states
replays the uninterrupted run exactly. See docs/reliability.md.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import dist
from .faults import fault_point

LATEST = "latest"
MANIFEST = "complete.json"
TRAINER_STATE = "trainer_state.json"
FORMAT = 2  # trainer_state.json of a checkpoint that has a manifest; older ones (no "format") have none
_TAG = re.compile(r"step_(\d+)$")


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (full disk, file-size limit, I/O error); nothing earlier is lost."""


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


# ------------------------------------------------------------------------------------------------ saving
def save_checkpoint(policy, output_dir, step: int, trainer_state: dict, *,
                    save_total_limit: int | None = None) -> Path:
    """Collective: every rank calls it. Returns the checkpoint directory.

    Raises CheckpointSaveError when a file cannot be written; `latest` then still names the previous
    complete checkpoint and the partial directory has no manifest, so `resume: auto` skips it."""
    root = checkpoint_root(output_dir)
    directory = root / tag_for(step)
    if dist.is_main():
        root.mkdir(parents=True, exist_ok=True)
        _discard(directory)  # a cut save's leftover (or an abandoned timeline's) is never rewritten in place
        for leftover in root.glob(f".{LATEST}.tmp-*"):
            leftover.unlink(missing_ok=True)
    dist.barrier()
    try:
        policy.save(root, directory.name)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(capture_rng(), directory / f"rng_rank{dist.rank()}.pt")
        save_adapter(policy, directory / "adapter")  # LoRA only; listed in the manifest like the shards
        fault_point("checkpoint_shards", step)
        dist.barrier()
        if dist.is_main():
            state = dict(trainer_state, step=step, world_size=dist.world_size(), format=FORMAT)
            write_atomic(directory / TRAINER_STATE, json.dumps(state, indent=2))
            _write_manifest(directory)  # only now is every rank's part on disk
            write_atomic(root / LATEST, directory.name,
                         before_rename=lambda: fault_point("checkpoint_latest", step))
            if save_total_limit is not None:
                rotate_checkpoints(root, save_total_limit, newest=step)
    except OSError as error:
        raise CheckpointSaveError(_save_failure(root, directory, error)) from error
    except RuntimeError as error:  # torch.save reports a failed write as RuntimeError ("file write failed")
        if isinstance(error, CheckpointSaveError):
            raise
        raise CheckpointSaveError(_save_failure(root, directory, error)) from error
    dist.barrier()
    return directory


def _save_failure(root: Path, directory: Path, error: BaseException) -> str:
    latest = root / LATEST
    previous = latest.read_text().strip() if latest.is_file() else None
    kept = f"`latest` still names {previous}, which is complete" if previous else "there is no earlier one"
    try:
        free = f"{shutil.disk_usage(root).free / 2 ** 30:.1f} GiB are free there"
    except OSError:
        free = "the free space there is unknown"
    # torch.save reports a short write as "enforce fail ... unexpected pos": say what to check.
    return (f"saving checkpoint {directory} failed ({type(error).__name__}: {error}); {kept}, and the "
            f"partial directory has no {MANIFEST} so resume skips it. {free}: if the disk is full (or a file-size "
            "limit was hit), free space and restart with --resume auto")


def write_atomic(path: Path, text: str, *, before_rename=None) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, rename it over `path`, fsync the directory:
    a reader (or a crash at any moment) sees the old content or the new, never a part."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if before_rename is not None:
        before_rename()
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(directory: Path) -> None:
    """fsync every file of the checkpoint (so the manifest never outlives the data it vouches for on a
    power loss), then record their sizes."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        files[str(path.relative_to(directory))] = path.stat().st_size
    for sub in sorted({p.parent for p in directory.rglob("*")} | {directory}):
        _fsync_directory(sub)
    write_atomic(directory / MANIFEST, json.dumps({"format": FORMAT, "files": files}, indent=1))


def _discard(directory: Path) -> None:
    """Delete a checkpoint directory so that a cut deletion is never mistaken for a checkpoint: the
    manifest goes first."""
    if directory.exists():
        (directory / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)


def rotate_checkpoints(root: Path, save_total_limit: int, *, newest: int) -> list[Path]:
    """Keep the `save_total_limit` newest complete checkpoints up to step `newest` (just completed and named
    by `latest`); delete the older complete ones and any incomplete one older than `newest`. Returns the
    deleted directories. Checkpoints after `newest` (left by an abandoned timeline) are replaced when the
    run reaches their step."""
    if save_total_limit < 1:
        raise ValueError(f"save_total_limit={save_total_limit} must be >= 1 (or null to keep all)")
    older = [(step, d) for step, d in _checkpoint_dirs(root) if step <= newest]
    complete = [d for _, d in older if checkpoint_problem(d) is None]
    doomed = complete[save_total_limit:] + [d for step, d in older if step < newest and d not in complete]
    for directory in doomed:
        _discard(directory)
    return doomed


# ----------------------------------------------------------------------------------------------- finding
def _checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every step_* directory under root, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _TAG.match(p.name))]
    return sorted(found, reverse=True)


def checkpoint_problem(directory: Path) -> str | None:
    """None when `directory` is a complete checkpoint; else why not (one line)."""
    directory = Path(directory)
    state_file = directory / TRAINER_STATE
    manifest_file = directory / MANIFEST
    if not manifest_file.is_file():
        if not state_file.is_file():
            return f"incomplete: no {MANIFEST} and no {TRAINER_STATE} (a cut save, or not a checkpoint)"
        try:
            legacy = "format" not in json.loads(state_file.read_text())
        except (OSError, ValueError):
            return f"corrupt: {TRAINER_STATE} is not valid JSON"
        return None if legacy else f"incomplete: no {MANIFEST} (the save was cut before it completed)"
    try:
        files = json.loads(manifest_file.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"corrupt: {MANIFEST} is not valid"
    for name, size in files.items():
        path = directory / name
        if not path.is_file():
            return f"incomplete: {name} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"corrupt: {name} has {actual} bytes, {size} were written (truncated or overwritten)"
    return None


def find_checkpoint(resume: str | None, output_dir) -> Path | None:
    """The checkpoint directory to resume from, or None to start afresh (every rank must agree)."""
    if resume is None:
        return None
    if resume == "auto":
        directory = _newest_complete(checkpoint_root(output_dir))
    else:
        directory = Path(resume)
        problem = checkpoint_problem(directory)
        if problem is not None:
            raise ValueError(f"resume={resume!r}: {directory} is not a complete checkpoint ({problem}); "
                             "give another directory, or --resume auto to take the newest complete one")
    step = float(_TAG.match(directory.name).group(1)) if directory is not None and \
        _TAG.match(directory.name) else -1.0
    seen = dist.all_reduce_max(torch.tensor([step, -step]))
    if seen[0].item() != -seen[1].item():
        raise RuntimeError(f"ranks chose different checkpoints to resume from (this rank: {directory}); "
                           "output_dir must be on a filesystem every node sees")
    return directory


def _newest_complete(root: Path) -> Path | None:
    latest_file = root / LATEST
    bound = None
    if latest_file.is_file():
        match = _TAG.match(latest_file.read_text().strip())
        if match:
            bound = int(match.group(1))
        else:
            dist.print0(f"warning: {latest_file} does not name a checkpoint; taking the newest complete one")
    for step, directory in _checkpoint_dirs(root):
        if bound is not None and step > bound:
            continue  # not yet (or no longer) the run's checkpoint: `latest` is renamed in last
        problem = checkpoint_problem(directory)
        if problem is None:
            return directory
        dist.print0(f"skipping checkpoint {directory}: {problem}; trying the previous one")
    return None


# ----------------------------------------------------------------------------------------------- loading
def load_checkpoint(policy, directory: Path) -> dict:
    """Restore the policy/optimizer/scheduler and this rank's RNG; returns the trainer state."""
    directory = Path(directory)
    try:
        policy.load(directory.parent, directory.name)
        state = json.loads((directory / TRAINER_STATE).read_text())
    except (OSError, RuntimeError, ValueError, EOFError) as error:  # a file damaged with its size intact
        raise ValueError(f"checkpoint {directory} cannot be loaded ({type(error).__name__}: {error}); "
                         "delete it (or resume from an earlier one with --resume DIR)") from error
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
    from ..modeling.model_access import unwrap

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
    from ..modeling.model_access import gathered

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
