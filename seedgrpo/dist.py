"""Process-group helpers: launcher defaults, rank queries, rank-0 printing, small all-reduces.

Works the same under `deepspeed` / `torchrun` (which set RANK, WORLD_SIZE, ...) and under a plain
`python -m seedgrpo.train` (one process: `set_launcher_defaults` fills the variables DeepSpeed expects,
without which its communication set-up falls back to mpi4py and fails).
"""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as torch_dist


def set_launcher_defaults() -> None:
    """Single-process defaults for the variables a launcher would set (existing values win)."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())
    # DeepSpeed JIT-builds a communication op on first use (~36 s on CPU): keep the build in a cache.
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    return torch_dist.get_rank() if is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """print on rank 0 only (flushed: launchers buffer child output)."""
    if is_main():
        print(*args, **kwargs, flush=True)


def barrier() -> None:
    if is_initialized():
        torch_dist.barrier()


def unlink_deepspeed_shm_buffers() -> None:
    """Let go of the names of DeepSpeed's CPU all-reduce buffers, so that no run leaves them behind.

    When every rank runs on one machine on the CPU (DeepSpeed's launcher sets LOCAL_SIZE), DeepSpeed's `shm`
    communication op gives each rank a 66 MB POSIX shared-memory segment,
    /dev/shm/deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>, maps every rank's, and never
    unlinks them: each run left 66 MB of RAM-backed tmpfs per rank until the machine rebooted (15 GB on the
    development machine after a day of tests, enough for the next big job to be killed for memory). Once all
    ranks have mapped all segments (DeepSpeed's init does before it returns; the barrier waits for every
    rank's), the names are needed no more: each rank unlinks its own, and the memory goes when the last
    process mapping it exits, however it exits (a SIGKILL included). Call on every rank after
    `deepspeed.init_distributed`."""
    if os.environ.get("LOCAL_SIZE") != str(world_size()) or torch.cuda.is_available():
        return  # DeepSpeed made no such buffers
    barrier()
    name = (f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR', '')}_"
            f"{os.environ.get('MASTER_PORT', '')}_{rank()}")
    try:
        os.unlink(os.path.join("/dev/shm", name))
    except FileNotFoundError:  # the op was not built, or another platform's shm location
        pass


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, returned as a new float64 CPU tensor (metrics and normalizers; no autograd)."""
    out = values.detach().to(torch.float64).clone()
    if is_initialized() and world_size() > 1:
        device = _comm_device()
        reduced = out.to(device)
        torch_dist.all_reduce(reduced, op=torch_dist.ReduceOp.SUM)
        out = reduced.cpu()
    return out


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    out = values.detach().to(torch.float64).clone()
    if is_initialized() and world_size() > 1:
        reduced = out.to(_comm_device())
        torch_dist.all_reduce(reduced, op=torch_dist.ReduceOp.MAX)
        out = reduced.cpu()
    return out


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo (CPU) only CPU tensors.
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on some rank (e.g. one rank caught SIGTERM)."""
    return bool(all_reduce_max(torch.tensor([float(flag)])).item() > 0)
