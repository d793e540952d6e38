"""Keep freed host memory in the process for reuse within a phase of a step (glibc malloc), and hand it
back between phases and within backward.

    from seedgrpo.training.host_memory import (keep_freed_host_memory, return_freed_host_memory,
                                               return_freed_memory_in_backward)
    keep_freed_host_memory()    # once, at start-up; a no-op where the C library is not glibc
    return_freed_host_memory()  # after the rollout and after the update of each step
    return_freed_memory_in_backward(model)  # once: also in backward, every tenth layer

Why: glibc serves a large allocation with a fresh `mmap` and unmaps it when freed (above a threshold that
adapts between 128 KiB and 32 MiB), and trims the top of its heap whenever more than a threshold is free.
A training step on the CPU allocates and frees activation-sized tensors every step, so each step faults in
again (the kernel zero-fills every 4 KiB page) memory the previous step handed back. On the end-to-end
benchmark's update (a 3-layer d = 128 model, 128 rows x 17 tokens) getrusage counted 6,600-17,000 minor
page faults per update by default and none with these settings, and the whole step took 4-6% less time
(bench_e2e.py, `ours` vs `ours_default_malloc`; benchmarks/RESULTS-e2e.md). Fixing the mmap threshold at
its maximum (32 MiB) and raising the trim threshold to 1 GiB lets freed chunks be reused from the heap.

Between phases the free memory goes back (`malloc_trim`): generation and the update allocate tensors of
different sizes, and chunks freed by one phase that the next cannot reuse would otherwise stay resident and
add up. Measured on SmolLM2-135M at bench_e2e's shape (6 steps, 2026-12-05): without it the resident memory
after an update crept from 2.9 to 4.7 GB and the peak grew with it; with it every step ended at the 2.0 GB
that weights, AdamW state and the runtime hold, and the peak is that plus the larger phase's own need.

Within the update's backward the free memory goes back too, before the backward of every tenth decoder
layer (from the last) and of the embedding: backward frees a layer's activations and allocates tensors of
other sizes (gradients of activations and weights; the tied embedding's 113 MB one above the mmap
threshold) that do not fit the freed chunks, so the heap grew by the difference at every micro-batch (a
throwaway probe reading glibc's mallinfo2 after each backward, SmolLM2, two steps of four 8-row
micro-batches, 2026-12-06: 0.7-1.6 GB free in a heap of 1.3-3.2 GB) and the update's peak held it. A trim
is not free: what it hands back is faulted in again (zero-filled) when the next layers allocate, so
trimming before every layer cost ~0.4-0.7 s per 8-row micro-batch. The peak
saturates with a few trims: `ours_micro8`'s peak RSS (`bench_e2e.py --model smollm2`, the same samples in
every run, 2026-12-06) was 4,064 MB without trims in backward, 3,810 with trims before the last layer and
the embedding only, 3,613 before every layer, 3,632 every 5th, 3,590-3,629 every 10th, 3,633 every 15th;
`bench_memory.py lean_time` put every tenth at +0.21 s and every layer at +0.59 s on that micro-batch's
forward+backward (benchmarks/RESULTS-e2e.md, session 9).

The same settings are the environment variables MALLOC_MMAP_THRESHOLD_=33554432 and
MALLOC_TRIM_THRESHOLD_=1073741824, which any program (TRL included) can be started with; this function
applies them to the running process. CUDA tensors do not go through malloc (PyTorch's caching allocator
already reuses them): on a GPU run this changes the host side only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024    # glibc's upper bound on 64-bit (4 * 1024 * 1024 * sizeof(long))
TRIM_THRESHOLD = 1024 * 1024 * 1024  # mallopt takes a C int: more than 2 GiB would wrap around (and trim all)
TRIM_EVERY_LAYERS = 10  # decoder layers between two trims in backward (the module notes: the peak vs time)


@functools.lru_cache(maxsize=1)  # looked up once: the trainer trims twice a step, and the lookup costs ~1 ms
def _glibc():
    """The process's glibc, or None (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_host_memory() -> bool:
    """Apply the settings above; True when glibc accepted both."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def return_freed_host_memory() -> bool:
    """Give the free memory of glibc's heaps back to the OS (`malloc_trim(0)`); True when some was."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def return_freed_memory_in_backward(model, every: int = TRIM_EVERY_LAYERS) -> int:
    """Hand freed host memory back in backward, before the backward of every `every`-th decoder layer
    (counted from the last, whose backward runs first) and of the input embedding (see the module notes): a
    gradient hook on their outputs, set in each training forward (no hook without autograd). Decoder layers
    are the modules whose class the model names in `_no_split_modules` (as accelerate reads them). Nothing is
    registered without glibc or on a CUDA model (its tensors do not go through malloc). Returns how many
    modules got the hook."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if _glibc() is None or any(p.is_cuda for p in model.parameters()):
        return 0
    layer_classes = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    modules = layers[::-1][::every]
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None:
        modules.append(embeddings)
    for module in modules:
        module.register_forward_hook(_trim_before_backward)
    return len(modules)


def _trim_before_backward(module, args, output) -> None:
    hidden = output[0] if isinstance(output, (tuple, list)) else output
    if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
        hidden.register_hook(_trim_and_pass)


def _trim_and_pass(grad):
    return_freed_host_memory()
    return None  # the gradient goes on unchanged
