"""fp16 gradients of the fused paths under a loss scale (DeepSpeed's fp16 starts at 65536): the logit gradient
is kept in float32 until grad_output is applied, so nothing underflows to 0 before the scale and nothing
overflows at it (65536 itself is above fp16's largest value, 65504).

Against float64 with the same scale, by flash-attention's rule: the error is at most twice that of the
PyTorch path in fp16 (which upcasts the logits, so it keeps its gradient in float32 until the end too). The
normalizer is a training-sized one (16,384 tokens), which puts most unscaled gradient entries below fp16's
smallest normal number: the regime where an fp16 gradient buffer loses them. Both kernel paths are covered:
the one-pass kernel (importance_sampling_level="token") and the two sweeps of kernels/two_sweep.py
("sequence", GSPO), from logits and through the fused linear layer (whose two-sweep path has its own chunk
loop).
"""
import pytest
import torch

import seedgrpo
from seedgrpo.kernels.fused_linear_grpo import fused_linear_grpo_loss
from seedgrpo.kernels.dispatch import grpo_loss_from_logits
from seedgrpo.kernels.reference import PolicyOptions
from seedgrpo.loss import token_weights
from test_kernels_fused_linear import make_linear_batch
from test_kernels_grpo_loss import CLIPS, assert_close, make_batch

LOSS_SCALE = 65536.0
CFG = dict(loss_type="dr_grpo", normalizer=16384.0, beta=0.04, temperature=0.7, **CLIPS["epsilon_high"])
# "token": the one-pass kernel; "sequence" (GSPO's sequence ratio): the two sweeps.
LEVELS = ["token", "sequence"]


def _policy_kwargs(batch):
    return dict(completion_ids=batch["ids"], completion_mask=batch["mask"], advantages=batch["advantages"],
                old_logprobs=batch["old"], ref_logprobs=batch["ref"])


def _kernel_kwargs(batch, level="token"):
    """The kernels' keywords for CFG: per-token weights of dr_grpo's normaliser, the PolicyOptions fields."""
    options = {k: v for k, v in CFG.items() if k not in ("loss_type", "normalizer")}
    assert PolicyOptions(**options, importance_sampling_level=level).one_pass == (level == "token")
    return dict(_policy_kwargs(batch), weights=token_weights(batch["mask"], CFG["loss_type"], CFG["normalizer"]),
                importance_sampling_level=level, **options)


def _reference_loss(logits, batch, level):
    """seed_grpo_loss(impl="torch") with CFG (its public names: epsilon, loss_type, normalizer)."""
    loss, _ = seedgrpo.seed_grpo_loss(logits, **_policy_kwargs(batch), epsilon=CFG["epsilon_low"],
                                      importance_sampling_level=level,
                                      **{k: v for k, v in CFG.items() if k != "epsilon_low"}, impl="torch")
    return loss


def _reference_logits_grad(batch, dtype, level="token"):
    x = batch["logits"].detach().to(dtype).requires_grad_()
    (_reference_loss(x, batch, level) * LOSS_SCALE).backward()
    return x.grad


@pytest.mark.parametrize("level,inplace", [("token", False), ("token", True), ("sequence", False),
                                           ("sequence", True)])
def test_from_logits_fp16_gradient_under_loss_scale(level, inplace):
    batch = make_batch(B=4, T=6, V=1001, temperature=0.7, dtype=torch.float16, seed=16)
    logits = batch["logits"].clone().requires_grad_()
    x = logits * 1  # a non-leaf, as a model's logits are: inplace=True may overwrite it
    if not inplace:
        x = logits
    kw = _kernel_kwargs(batch, level)
    loss, _ = grpo_loss_from_logits(x, kw.pop("completion_ids"), kw.pop("completion_mask"), inplace=inplace, **kw)
    (loss * LOSS_SCALE).backward()
    grad = logits.grad
    assert grad.dtype == torch.float16 and torch.isfinite(grad).all()
    want = _reference_logits_grad(batch, torch.float64, level)
    nonzero = want[want != 0]
    assert (nonzero.abs() < torch.finfo(torch.float16).tiny * LOSS_SCALE).float().mean() > 0.5, \
        "most gradient entries must be ones an unscaled fp16 buffer would flush or round coarsely"
    assert_close("grad_logits", grad, want, dtype=torch.float16,
                 torch_lowp=_reference_logits_grad(batch, torch.float16, level))


@pytest.mark.parametrize("backend,level", [("triton", "token"), ("torch", "token"), ("triton", "sequence"),
                                           ("torch", "sequence")])
def test_fused_linear_fp16_gradients_under_loss_scale(backend, level):
    batch = make_linear_batch(B=4, T=6, V=1001, H=24, temperature=0.7, dtype=torch.float16, seed=17)
    leaves = [batch[k].clone().requires_grad_() for k in ("hidden", "weight", "bias")]
    kw = _kernel_kwargs(batch, level)
    loss, _ = fused_linear_grpo_loss(leaves[0], leaves[1], kw.pop("completion_ids"), kw.pop("completion_mask"),
                                     bias=leaves[2], backend=backend, chunk_size=5, **kw)
    (loss * LOSS_SCALE).backward()

    def reference(dtype):
        ref = [batch[k].detach().to(dtype).requires_grad_() for k in ("hidden", "weight", "bias")]
        (_reference_loss(torch.nn.functional.linear(*ref), batch, level) * LOSS_SCALE).backward()
        return [t.grad for t in ref]

    want, lowp = reference(torch.float64), reference(torch.float16)
    for name, leaf, w, lp in zip(("grad_hidden", "grad_weight", "grad_bias"), leaves, want, lowp):
        assert leaf.grad.dtype == torch.float16 and torch.isfinite(leaf.grad).all(), name
        assert_close(name, leaf.grad, w, dtype=torch.float16, torch_lowp=lp)
