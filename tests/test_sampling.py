"""The sampler's noise: the compiled uniforms (csrc/sampling.cpp) against the PyTorch definition, bit for bit."""
import pytest
import torch

from seedgrpo.rollout import sampling

_C = pytest.importorskip("seedgrpo._C")


def _random_keys(rows: int, seed: int) -> torch.Tensor:
    """Row keys over the whole int64 range (negative ones too: the hash treats them as uint64)."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.randint(-2 ** 63, 2 ** 63 - 1, (rows,), generator=g, dtype=torch.int64)
    keys[0] = 0
    if rows > 2:
        keys[1], keys[2] = -1, 2 ** 63 - 1
    return keys


@pytest.mark.parametrize("rows, vocab", [(1, 1), (3, 7), (2, 4095), (5, 4096), (4, 4097), (33, 1000),
                                         (2, 49157)])
def test_compiled_uniforms_are_the_reference_bit_for_bit(rows, vocab):
    keys = _random_keys(rows, seed=rows * vocab)
    for step in (0, 1, 63, 2 ** 40):
        expected = sampling.reference_uniforms(keys, step, vocab)
        got = sampling.uniforms(keys, step, vocab)
        assert got.dtype == torch.float64 and got.shape == (rows, vocab)
        assert torch.equal(got, expected), (rows, vocab, step)
        assert (got > 0).all() and (got < 1).all()


@pytest.mark.parametrize("threads", [1, 2, 7])
def test_compiled_uniforms_do_not_depend_on_the_thread_count(threads):
    keys = _random_keys(64, seed=threads)
    out = torch.empty(64, 8191, dtype=torch.float64)
    _C.sampling_uniforms(sampling.row_hashes(keys, 5).numpy(), out.numpy(), threads)
    assert torch.equal(out, sampling.reference_uniforms(keys, 5, 8191))


def test_gumbel_noise_is_the_same_with_and_without_the_extension(monkeypatch):
    keys = _random_keys(6, seed=1)
    compiled = sampling.gumbel_noise(keys, 9, 3001)
    uniform = sampling.reference_uniforms(keys, 9, 3001)
    assert torch.equal(compiled, (-torch.log(-torch.log(uniform))).to(torch.float32))
    monkeypatch.setattr(sampling, "_compiled_uniforms", lambda: None)
    assert torch.equal(sampling.gumbel_noise(keys, 9, 3001), compiled)


def test_an_extension_built_before_the_sampler_falls_back_to_pytorch(monkeypatch):
    """A seedgrpo._C without sampling_uniforms (not rebuilt after an update) samples as before, in PyTorch."""
    import sys
    import types

    keys = _random_keys(3, seed=2)
    expected = sampling.gumbel_noise(keys, 4, 500)
    monkeypatch.setitem(sys.modules, "seedgrpo._C", types.ModuleType("seedgrpo._C"))
    monkeypatch.delattr("seedgrpo._C", raising=False)
    assert sampling._compiled_uniforms() is None
    assert torch.equal(sampling.gumbel_noise(keys, 4, 500), expected)


def test_compiled_uniforms_reject_buffers_of_the_wrong_shape_or_type():
    hashes = sampling.row_hashes(torch.arange(3), 0).numpy()
    with pytest.raises(ValueError, match="out must be a contiguous float64 buffer"):
        _C.sampling_uniforms(hashes, torch.empty(4, 5, dtype=torch.float64).numpy(), 1)
    with pytest.raises(ValueError, match="out must be a contiguous float64 buffer"):
        _C.sampling_uniforms(hashes, torch.empty(3, 5, dtype=torch.float32).numpy(), 1)
    with pytest.raises(ValueError, match="out must be a contiguous float64 buffer"):
        _C.sampling_uniforms(hashes, torch.empty(5, 3, dtype=torch.float64).t().numpy(), 1)
    with pytest.raises(ValueError, match="row_hashes must be a contiguous 1-D int64"):
        _C.sampling_uniforms(hashes.astype("int32"), torch.empty(3, 5, dtype=torch.float64).numpy(), 1)
