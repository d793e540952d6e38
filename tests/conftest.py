"""Shared test set-up.

Triton kernels launch on the CPU only through the interpreter, and TRITON_INTERPRET must be set before
any module that defines a @triton.jit kernel is imported; so it is set here, first, when no GPU is present.
"""
import os
import sys

import torch

# DeepSpeed JIT-builds a communication op on its first start; build it once per virtual environment, where no
# other environment's build (or a stale lock left by a killed one) can get in the way.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
