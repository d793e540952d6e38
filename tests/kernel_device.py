"""Where the tests put the tensors a Triton kernel reads: ``DEVICE``.

Triton decides once per process, when the first kernel module is imported, whether its kernels are compiled
for the GPU or run by the CPU interpreter; tests/conftest.py turns the interpreter on only when no GPU is
present. So on a GPU machine the kernels need CUDA tensors and on any other the interpreter needs CPU tensors:
DEVICE is that device, and the kernel tests draw their data on the CPU (a seeded torch.Generator: the same
values on every machine), move it there with ``on_device``, and compare results on the CPU in float64
(test_kernels_grpo_loss.assert_close).
"""
import torch

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")


def on_device(value, device=DEVICE):
    """``value`` with every tensor in it (also inside dicts, lists and tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: on_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_device(v, device) for v in value)
    return value


def same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Two launches of one kernel body at different grids or blocks: bit-identical under the interpreter
    (one fixed block, so one order of every sum); compiled on a GPU the block and warp count set the order of
    the in-row reductions, so there only to float32 rounding (relative 2e-6 of the row's scale), or one unit
    in the last place of a low-precision gradient."""
    if not ON_GPU:
        return torch.equal(got, want)
    got, want = got.detach().cpu(), want.detach().cpu()
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    rtol = 2e-6 if got.dtype == torch.float32 else torch.finfo(got.dtype).eps
    scale = max(want.double().abs().max().item(), 1e-30) if want.numel() else 1.0
    return bool(((got.double() - want.double()).abs() <= rtol * scale + 1e-30).all())
