"""The persistent-grid launch of the loss kernel (``persistent.launch_persistent(..., rows_in_flight=k)``)
gives exactly what the one-program-per-row launch (``one_pass.launch_one_pass``) gives: every per-token output
and the gradient, for grids smaller than, not dividing, and larger than the row count, on the [B, T, V] layout
(a strided slice) and on the fused-linear path's packed [rows, V] chunks. The body is the same function, so
under the interpreter (one fixed block) equality is exact; compiled on a GPU the two launches may use
different blocks, so there it holds to rounding (kernel_device.same).
"""
import pytest
import torch

from seedgrpo.kernels._inputs import TokenInputs
from seedgrpo.kernels.one_pass import launch_one_pass
from seedgrpo.kernels.persistent import PersistentGrid, launch_persistent
from seedgrpo.kernels.reference import PolicyOptions
from seedgrpo.loss import default_normalizer, token_weights
from kernel_device import DEVICE, on_device, same
from test_kernels_grpo_loss import make_batch

OUTPUTS = ("loss", "kl", "entropy", "clip_low", "clip_high")


def launch(logits, tokens, config, *, rows_in_flight, **kwargs):
    """The one-program-per-row launch for ``rows_in_flight=None``, else the persistent grid."""
    if rows_in_flight is None:
        return launch_one_pass(logits, tokens, config, **kwargs)
    return launch_persistent(logits, tokens, config, rows_in_flight=rows_in_flight, **kwargs)


def _inputs(batch, *, group_factor=False, beta=0.04):
    """dapo weights, delta and a KL term; ``group_factor``: a per-group f(alpha*U) (groups of 3 rows) that the
    kernel multiplies into the advantages."""
    config = PolicyOptions(epsilon_low=0.2, epsilon_high=0.28, delta=1.5, beta=beta, temperature=0.7)
    B = batch["ids"].shape[0]
    kw = dict(group_size=3, group_factor=on_device(0.5 + torch.arange(B // 3, dtype=torch.float32))) \
        if group_factor else {}
    weights = token_weights(batch["mask"], "dapo", default_normalizer(batch["mask"], "dapo", 10))
    tokens = TokenInputs(batch["ids"], batch["mask"], weights=weights, advantages=batch["advantages"],
                         old_logprobs=batch["old"], ref_logprobs=batch["ref"], opts=config,
                         device=DEVICE, **kw)
    return tokens, config


@pytest.mark.parametrize("rows_in_flight,dtype,inplace", [
    (1, torch.float32, False), (4, torch.bfloat16, True), (7, torch.float32, True),  # 30 rows: 4, 7 do not divide
    (PersistentGrid(1000, block_v=2048, num_warps=4), torch.float32, False),  # more programs than rows; the
])                                                                          # block is the GPU's business
def test_persistent_equals_one_program_per_row_on_logits(rows_in_flight, dtype, inplace):
    batch = make_batch(B=5, T=6, V=700, temperature=0.7, dtype=dtype, seed=7, strided=True)  # 2 blocks of 512
    tokens, config = _inputs(batch)
    results = []
    for rif in (None, rows_in_flight):
        full = batch["full"].clone()
        logits = full[:, :-1]
        grad = logits if inplace else torch.empty_like(logits)
        out = launch(logits, tokens, config, grad=grad, rows_in_flight=rif)
        results.append((out, grad.clone(), full[:, -1].clone()))
    (want, want_grad, want_last), (got, got_grad, got_last) = results
    for k in OUTPUTS:
        assert same(got[k], want[k]), k
    assert same(got_grad, want_grad)
    assert torch.equal(got_last, want_last), "the row outside the slice was touched"
    assert want_grad.abs().sum() > 0 and want["loss"].abs().sum() > 0  # the comparison is not of zeros


def test_persistent_equals_one_program_per_row_on_packed_chunks():
    """The fused-linear layout: [rows, V] chunks of the unmasked tokens (token_index), the advantages times
    their group's factor in the kernel, outputs shared by the chunks."""
    batch = make_batch(B=6, T=5, V=131, seed=11, beta=0.0)
    tokens, config = _inputs(batch, group_factor=True, beta=0.0)
    active = tokens.weights.view(-1).nonzero().view(-1)
    logits_all = on_device(torch.randn(active.numel(), 131, generator=torch.Generator().manual_seed(2)) * 3)
    results = []
    for rif in (None, 3):
        outputs = {k: torch.zeros(tokens.B * tokens.T, device=DEVICE) for k in OUTPUTS}
        grads = []
        for start in range(0, active.numel(), 7):
            chunk = logits_all[start:start + 7].clone()
            launch(chunk, tokens, config, grad=chunk, token_offset=start, token_index=active,
                   outputs=outputs, rows_in_flight=rif)
            grads.append(chunk)
        results.append((outputs, torch.cat(grads)))
    (want, want_grad), (got, got_grad) = results
    for k in OUTPUTS:
        assert same(got[k], want[k]), k
    assert same(got_grad, want_grad) and want_grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "132", PersistentGrid(0)])
def test_bad_rows_in_flight_names_the_argument(bad):
    batch = make_batch(B=2, T=3, V=131, seed=1)
    tokens, config = _inputs(batch)
    with pytest.raises(ValueError, match="rows_in_flight must be a positive int"):
        launch_persistent(batch["logits"], tokens, config, grad=None, rows_in_flight=bad)
