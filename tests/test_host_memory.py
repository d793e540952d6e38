"""keep_freed_host_memory: freed host memory is reused instead of being unmapped and faulted in again."""
import subprocess
import sys

import pytest

from seedgrpo.training.host_memory import _glibc

# Buffers of growing size (8 .. 30 MiB), each written then freed, as a step's activations are. With glibc's
# defaults each one is a fresh mmap (it exceeds the adaptive threshold set by the last one freed): every
# page is faulted in again. Kept, they come from the heap, which only grows by the difference.
SCRIPT = """
import ctypes, resource, sys
from seedgrpo.training.host_memory import keep_freed_host_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
if sys.argv[1] == "keep":
    assert keep_freed_host_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for mib in range(8, 31, 2):
    buffer = libc.malloc(mib << 20)
    libc.memset(buffer, 1, mib << 20)
    libc.free(buffer)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    def faults(mode):
        done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return int(done.stdout.strip().splitlines()[-1])

    pages = sum(range(8, 31, 2)) * 256  # every buffer's pages: 58,368
    kept, default = faults("keep"), faults("default")
    assert default > pages * 0.9, default
    assert kept < 31 * 256 * 1.2, kept  # about the largest buffer's pages, once


def test_the_trainer_applies_it_unless_told_not_to(monkeypatch, tmp_path):
    import seedgrpo.training.trainer as trainer_module
    from seedgrpo.training.config import load_config

    calls = []
    monkeypatch.setattr(trainer_module, "keep_freed_host_memory", lambda: calls.append(1))
    base = {"prompt_template": "none", "max_steps": 1, "toy.layers": 1, "toy.hidden": 32, "progress": False,
            "tensorboard": False, "output_dir": str(tmp_path), "save_final_model": False}
    trainer_module.Trainer(load_config(None, base))
    assert calls == [1]
    trainer_module.Trainer(load_config(None, {**base, "keep_freed_host_memory": False}))
    assert calls == [1]


# 200 chunks of 1 MiB from the heap (below the kept mmap threshold), written, then all freed but the last (it
# pins the top of the heap: only malloc_trim's release of whole free pages inside the heap can return them).
TRIM_SCRIPT = """
import ctypes, sys
from seedgrpo.training.host_memory import keep_freed_host_memory, return_freed_host_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss_mib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) >> 10
assert keep_freed_host_memory()
chunks = [libc.malloc(1 << 20) for _ in range(200)]
for chunk in chunks:
    libc.memset(chunk, 1, 1 << 20)
for chunk in chunks[:-1]:
    libc.free(chunk)
held = rss_mib()
returned = return_freed_host_memory()
print(held, rss_mib(), returned)
"""


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_freed_memory_goes_back_between_phases():
    done = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    held, after, returned = done.stdout.split()
    assert returned == "True"
    assert int(held) - int(after) > 150, (held, after)  # the 199 freed MiB, less glibc's bookkeeping


def test_the_trainer_returns_freed_memory_after_each_rollout_and_update(monkeypatch, tmp_path):
    import seedgrpo.training.trainer as trainer_module
    from seedgrpo.training.config import load_config

    events = []
    monkeypatch.setattr(trainer_module, "return_freed_host_memory", lambda: events.append("trim"))
    real_update = trainer_module.Trainer._update
    monkeypatch.setattr(trainer_module.Trainer, "_update",
                        lambda self, *a: events.append("update") or real_update(self, *a))
    config = load_config(None, {"prompt_template": "none", "max_steps": 2, "toy.layers": 1, "toy.hidden": 32,
                                "progress": False, "tensorboard": False, "output_dir": str(tmp_path),
                                "save_final_model": False, "prompts_per_step": 2, "num_generations": 2,
                                "per_device_train_batch_size": 4,
                                "max_completion_length": 4})
    trainer_module.Trainer(config).train()
    assert events == ["trim", "update", "trim"] * 2


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
@pytest.mark.parametrize("every, hooked_layers", [(1, [2, 1, 0]), (2, [2, 0]), (None, [2])])
def test_freed_memory_goes_back_in_backward(monkeypatch, every, hooked_layers):
    """The hooks trim before the backward of every `every`-th decoder layer, counted from the last (whose
    backward runs first; the default stride is longer than this model), and before the embedding's; the
    gradients are those without them; without autograd (rollout) nothing is hooked or trimmed."""
    import torch

    from seedgrpo.tasks import toy
    from seedgrpo.training import host_memory

    tokenizer = toy.make_tokenizer()
    plain, hooked = (toy.make_model(tokenizer, layers=3, hidden=32) for _ in range(2))
    trims = []
    monkeypatch.setattr(host_memory, "return_freed_host_memory", lambda: trims.append(1))
    kwargs = {} if every is None else {"every": every}
    assert host_memory.return_freed_memory_in_backward(hooked, **kwargs) == len(hooked_layers) + 1
    layers = hooked.model.layers
    assert [i for i in range(3) if layers[i]._forward_hooks] == sorted(hooked_layers)
    ids = torch.randint(0, len(tokenizer), (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hooked(input_ids=ids)
    assert trims == []
    for model in (plain, hooked):
        model(input_ids=ids).logits.square().mean().backward()
    assert len(trims) == len(hooked_layers) + 1
    for (name, a), b in zip(plain.named_parameters(), hooked.parameters()):
        assert torch.equal(a.grad, b.grad), name


def test_the_trim_stride_must_be_positive():
    from seedgrpo.tasks import toy
    from seedgrpo.training import host_memory

    with pytest.raises(ValueError, match="every must be >= 1"):
        host_memory.return_freed_memory_in_backward(toy.make_model(toy.make_tokenizer(), layers=1), every=0)


def test_nothing_is_hooked_without_glibc(monkeypatch):
    from seedgrpo.tasks import toy
    from seedgrpo.training import host_memory

    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    assert host_memory.return_freed_memory_in_backward(toy.make_model(toy.make_tokenizer(), layers=1)) == 0
