"""Selective log-probs (old-policy / reference passes, no gradient) against the float64 reference.

``selective_logprob`` from logits or from hidden + weight, Triton (compiled on a GPU, else the CPU
interpreter) and torch backends,
vs ``seedgrpo.loss.token_logprobs_and_entropy`` on float64: float32 within 1e-5 relative, bf16 within twice
the error of the reference run on the bf16 input.
"""
import itertools

import pytest
import torch

from seedgrpo.kernels.selective_logprob import selective_logprob
from seedgrpo.loss import token_logprobs_and_entropy
from kernel_device import on_device
from test_kernels_grpo_loss import assert_close


def _logits(B, T, V, dtype, strided, seed=0):
    g = torch.Generator().manual_seed(seed)
    full = on_device((torch.randn(B, T + 1, V, generator=g) * 3).to(dtype))
    ids = on_device(torch.randint(0, V, (B, T), generator=g))
    return (full[:, :-1] if strided else full[:, :-1].contiguous()), ids


def _check(logp, entropy, source, ids, temperature, dtype):
    want_logp, want_entropy = token_logprobs_and_entropy(source.double(), ids, temperature)
    lowp = None if dtype == torch.float32 else token_logprobs_and_entropy(source, ids, temperature)
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    assert_close("logp", logp, want_logp, dtype=dtype, torch_lowp=None if lowp is None else lowp[0])
    assert_close("entropy", entropy, want_entropy, dtype=dtype, torch_lowp=None if lowp is None else lowp[1])


@pytest.mark.parametrize("dtype,temperature,V,strided", list(itertools.product(
    [torch.float32, torch.bfloat16], [1.0, 0.7], [131, 1001], [False, True])))
def test_from_logits_torch_backend(dtype, temperature, V, strided):
    logits, ids = _logits(4, 9, V, dtype, strided, seed=V)
    logp, entropy = selective_logprob(logits, ids, temperature=temperature, with_entropy=True, backend="torch",
                                      chunk_size=5)
    _check(logp, entropy, logits, ids, temperature, dtype)


@pytest.mark.parametrize("dtype,temperature,V,strided", [
    (torch.float32, 1.0, 1001, True), (torch.bfloat16, 0.7, 1001, False),
    (torch.float16, 1.0, 131, False), (torch.float32, 0.7, 131, True),
])
def test_from_logits_triton_backend(dtype, temperature, V, strided):
    logits, ids = _logits(4, 9, V, dtype, strided, seed=V + 1)
    logp, entropy = selective_logprob(logits, ids, temperature=temperature, with_entropy=True, backend="triton")
    _check(logp, entropy, logits, ids, temperature, dtype)


@pytest.mark.parametrize("backend,dtype,bias,chunk_size", [
    ("torch", torch.float32, True, 4), ("torch", torch.bfloat16, False, None),
    ("triton", torch.float32, False, 7), ("triton", torch.bfloat16, True, 100),
])
def test_from_hidden_and_weight(backend, dtype, bias, chunk_size):
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 7, 24, generator=g).to(dtype)
    weight = (torch.randn(1001, 24, generator=g) * 0.5).to(dtype)
    b = (torch.randn(1001, generator=g) * 0.2).to(dtype) if bias else None
    ids = torch.randint(0, 1001, (3, 7), generator=g)
    hidden, weight, b, ids = on_device((hidden, weight, b, ids))
    logp, entropy = selective_logprob(None, ids, hidden=hidden, weight=weight, bias=b, temperature=0.7,
                                      with_entropy=True, backend=backend, chunk_size=chunk_size)
    # The reference sees the logits a `dtype` linear layer produces: the rounding of the matmul is not ours.
    _check(logp, entropy, torch.nn.functional.linear(hidden, weight, b), ids, 0.7, dtype)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_no_gradient_and_logp_only(backend):
    logits, ids = _logits(2, 5, 131, torch.float32, False)
    logits.requires_grad_()
    logp = selective_logprob(logits, ids, backend=backend)
    assert isinstance(logp, torch.Tensor) and logp.shape == (2, 5) and not logp.requires_grad
    want, _ = token_logprobs_and_entropy(logits.detach().double(), ids)
    assert_close("logp", logp, want, dtype=torch.float32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(backend="cuda"), "backend"),
    (dict(temperature=0.0), "temperature"),
    (dict(hidden=torch.zeros(2, 5, 8), weight=torch.zeros(131, 8)), "not both"),
    (dict(logits=None), "not both or neither"),
    (dict(logits=torch.zeros(2, 4, 131)), "logits"),
    (dict(logits=None, hidden=torch.zeros(2, 5, 8), weight=torch.zeros(131, 9)), "weight"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    logits, ids = _logits(2, 5, 131, torch.float32, False)
    kw = dict(logits=logits, backend="torch")
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        selective_logprob(kw.pop("logits"), ids, **kw)
