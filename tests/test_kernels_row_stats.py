"""The streaming softmax statistics of one logit row (``_utils.softmax_row_stats``: per-lane running max, sum
and weighted sum, combined once after the loop) against float64, on the rows that stress a per-lane scheme.

Run through ``selective_logprob(backend="triton")`` (the CPU interpreter; compiled on a GPU when one is
present), whose kernel is that helper plus the target's logit. The interpreter's vocabulary block is 512 lanes
(``_utils.INTERPRETER_BLOCK_V``), so the vocabularies below put the row's end at every kind of block boundary,
and the -inf patterns leave some lanes with nothing but -inf (their running max never leaves the finite
stand-in for -inf); on a GPU the autotuned block differs, and the rows are checked all the same.
"""
import pytest
import torch

from seedgrpo.kernels import _utils
from seedgrpo.kernels.selective_logprob import selective_logprob
from kernel_device import on_device
from test_kernels_grpo_loss import assert_close

LANES = _utils.INTERPRETER_BLOCK_V


def _reference(x: torch.Tensor, ids: torch.Tensor, temperature: float):
    """(logp, entropy) in float64 with 0 log 0 = 0, so that -inf logits are allowed (the loss module's
    reference computes softmax * x, NaN there)."""
    z = x.double() / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp_all = z - lse.unsqueeze(-1)
    p = logp_all.exp()
    entropy = -torch.where(p > 0, p * logp_all, torch.zeros_like(p)).sum(-1)
    return logp_all.gather(-1, ids.unsqueeze(-1)).squeeze(-1), entropy


def _rows(V, pattern, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, V, generator=g) * 4
    if pattern == "lanes_never_finite":  # lanes 3 and 100 of every block see only -inf
        cols = torch.arange(V)
        x[..., (cols % LANES == 3) | (cols % LANES == 100)] = float("-inf")
    elif pattern == "sparse_finite":  # most of the row is -inf (a top-k / vocabulary mask)
        keep = torch.rand(2, 5, V, generator=g) < 0.05
        keep[..., 0] = True
        x = torch.where(keep, x, torch.full_like(x, float("-inf")))
    elif pattern == "max_in_last_block":  # the row max arrives late: every lane's sums must be rescaled
        x[..., -1] = 40.0
    elif pattern == "large":  # lse - E[z] would cancel: entropy must stay accurate
        x = x + 3.0e4
    x = x.to(dtype)
    finite = torch.isfinite(x)
    ids = torch.multinomial(finite.view(-1, V).float(), 1, generator=g).view(2, 5)  # a target with a finite logit
    return on_device(x), on_device(ids)


@pytest.mark.parametrize("V,pattern,temperature,dtype", [
    (LANES - 3, "plain", 1.0, torch.float32),  # one partial block
    (LANES, "lanes_never_finite", 0.7, torch.float32),  # one full block
    (2 * LANES + 1, "lanes_never_finite", 1.0, torch.float32),  # a last block of one element
    (3 * LANES - 1, "sparse_finite", 1.0, torch.float32),
    (2 * LANES + 77, "max_in_last_block", 0.7, torch.float32),
    (1001, "large", 1.0, torch.float32),
    (1001, "sparse_finite", 0.7, torch.bfloat16),
])
def test_row_stats_match_float64(V, pattern, temperature, dtype):
    x, ids = _rows(V, pattern, seed=V, dtype=dtype)
    logp, entropy = selective_logprob(x, ids, temperature=temperature, with_entropy=True, backend="triton")
    want_logp, want_entropy = _reference(x, ids, temperature)
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    # float32 tolerance on the stats of the (exactly representable) input, whatever its storage dtype: the
    # kernel computes in float32 from the loaded values, so no low-precision rounding enters. logp = z - lse is
    # a float32 difference of numbers as large as the logits: its error scales with them.
    z_max = x[torch.isfinite(x)].double().abs().max().item() / temperature
    assert_close("logp", logp, want_logp, dtype=torch.float32, scale=max(1.0, z_max))
    assert_close("entropy", entropy, want_entropy, dtype=torch.float32,
                 scale=max(1.0, want_entropy.abs().max().item()))


def test_a_row_with_one_finite_logit_has_logp_zero_and_entropy_zero():
    x = torch.full((1, 3, 2 * LANES + 5), float("-inf"))
    ids = torch.tensor([[0, LANES + 7, 2 * LANES + 4]])
    x[0, torch.arange(3), ids[0]] = torch.tensor([5.0, -3.0, 1.0e4])
    logp, entropy = selective_logprob(on_device(x), on_device(ids), with_entropy=True, backend="triton")
    assert torch.equal(logp.cpu(), torch.zeros(1, 3)) and torch.equal(entropy.cpu(), torch.zeros(1, 3))
