"""Fused-linear GRPO loss (hidden + lm_head weight, chunked, logits never whole) against the float64
reference.

The torch backend is cheap, so it runs the full cross product loss_type x clip x beta x temperature x dtype;
the Triton backend (compiled on a GPU, else the CPU interpreter) runs a covering subset. Loss, metrics and the
gradients of hidden, weight and bias are compared with ``seed_grpo_loss(impl="torch")`` on float64 logits
``h @ W.T + b``: float32 within 1e-5 relative, bf16 within twice the error of the PyTorch bf16 reference.
"""
import itertools

import pytest
import torch

import seedgrpo
from seedgrpo.kernels.fused_linear_grpo import fused_linear_grpo_loss
from seedgrpo.loss import default_normalizer, token_logprobs_and_entropy
from kernel_device import DEVICE, on_device
from test_kernels_grpo_loss import _BOUNDS, CLIPS, LOSS_TYPES, METRICS, assert_close, kernel_options, loss_magnitude


def make_linear_batch(B=6, T=7, V=131, H=24, *, temperature=1.0, dtype=torch.float32, seed=0, bias=True,
                      on_policy=False, beta=0.04, device=DEVICE):
    """hidden, weight (+ bias) in ``dtype``; ids; a mask with a partial and a fully masked row; advantages;
    old/ref log-probs whose ratios spread over both clip sides without touching a bound; drawn on the CPU,
    returned on ``device``."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g).to(dtype)
    weight = (torch.randn(V, H, generator=g) * 0.5).to(dtype)
    b = (torch.randn(V, generator=g) * 0.2).to(dtype) if bias else None
    ids = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).float()
    mask[min(2, B - 1)] = 0.0
    mask[0] = 1.0
    logits64 = hidden.double() @ weight.double().T + (0 if b is None else b.double())
    # Ratios are placed against the logits a `dtype` linear layer produces (bf16 rounds them).
    logp64, _ = token_logprobs_and_entropy(torch.nn.functional.linear(hidden, weight, b).double(), ids,
                                           temperature)
    ratio = torch.empty(B, T, dtype=torch.float64).uniform_(0.55, 1.6, generator=g)
    for bound in _BOUNDS:
        ratio = torch.where((ratio - bound).abs() < 0.02, ratio + 0.05, ratio)
    return on_device(dict(hidden=hidden, weight=weight, bias=b, ids=ids, mask=mask, logits=logits64,
                          advantages=torch.randn(B, generator=g),
                          old=None if on_policy else (logp64 - ratio.log()).float(),
                          ref=(logp64 + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)).float()
                          if beta else None), device)


def reference_linear(batch, dtype, *, loss_type, normalizer, epsilon_low, epsilon_high, delta, beta, temperature):
    """The reference through an ordinary linear layer in ``dtype``: (loss, metrics, grads of h, W, b)."""
    leaves = [batch[k].detach().to(dtype).requires_grad_() if batch[k] is not None else None
              for k in ("hidden", "weight", "bias")]
    h, w, b = leaves
    loss, metrics = seedgrpo.seed_grpo_loss(
        torch.nn.functional.linear(h, w, b), completion_ids=batch["ids"], completion_mask=batch["mask"],
        advantages=batch["advantages"], old_logprobs=batch["old"], ref_logprobs=batch["ref"], loss_type=loss_type,
        normalizer=normalizer, epsilon=epsilon_low, epsilon_high=epsilon_high, delta=delta, beta=beta,
        temperature=temperature, impl="torch")
    loss.backward()
    return loss.detach(), metrics, [None if t is None else t.grad for t in leaves]


def run_fused(batch, backend, cfg, **kw):
    leaves = [None if batch[k] is None else batch[k].clone().requires_grad_() for k in ("hidden", "weight", "bias")]
    loss, metrics = fused_linear_grpo_loss(leaves[0], leaves[1], batch["ids"], batch["mask"], bias=leaves[2],
                                           advantages=batch["advantages"], old_logprobs=batch["old"],
                                           ref_logprobs=batch["ref"], backend=backend,
                                           **kernel_options(cfg, batch["mask"]), **kw)
    loss.backward()
    return loss, metrics, [None if t is None else t.grad for t in leaves]


def check_linear(loss, metrics, grads, batch, dtype, cfg):
    ref64 = reference_linear(batch, torch.float64, **cfg)
    lowp = None if dtype == torch.float32 else reference_linear(batch, dtype, **cfg)
    assert_close("loss", loss, ref64[0], dtype=dtype, torch_lowp=None if lowp is None else lowp[0],
                 scale=loss_magnitude(batch["logits"], batch, **cfg))
    for k in METRICS:
        if k.startswith("clip"):  # counts; in bf16 the logits are rounded, so count against torch in bf16
            want = (ref64 if lowp is None else lowp)[1][k].item()
            assert metrics[k].item() == pytest.approx(want, abs=1e-6), k
        else:
            assert_close(k, metrics[k], ref64[1][k], dtype=dtype, torch_lowp=None if lowp is None else lowp[1][k])
    for i, name in enumerate(("grad_hidden", "grad_weight", "grad_bias")):
        if ref64[2][i] is None:
            assert grads[i] is None
            continue
        assert grads[i].dtype == dtype, name
        assert_close(name, grads[i], ref64[2][i], dtype=dtype, torch_lowp=None if lowp is None else lowp[2][i])


def _cfg(batch, loss_type, clip, beta, temperature):
    return dict(loss_type=loss_type, normalizer=default_normalizer(batch["mask"], loss_type, 12), beta=beta,
                temperature=temperature, **CLIPS[clip])


@pytest.mark.parametrize("loss_type,clip,beta,temperature,dtype", list(itertools.product(
    LOSS_TYPES, CLIPS, [0.0, 0.04], [1.0, 0.7], [torch.float32, torch.bfloat16])))
def test_torch_backend_matches_reference(loss_type, clip, beta, temperature, dtype):
    batch = make_linear_batch(T=9, V=1001, temperature=temperature, dtype=dtype, beta=beta,
                              seed=LOSS_TYPES.index(loss_type))
    cfg = _cfg(batch, loss_type, clip, beta, temperature)
    loss, metrics, grads = run_fused(batch, "torch", cfg, chunk_size=16)  # 4 chunks of the 50-odd live tokens
    check_linear(loss, metrics, grads, batch, dtype, cfg)


@pytest.mark.parametrize("loss_type,clip,beta,temperature,dtype,bias,on_policy,chunk_size", [
    ("grpo", "delta", 0.04, 0.7, torch.float32, True, False, 5),
    ("bnpo", "symmetric", 0.0, 1.0, torch.bfloat16, False, True, 64),
    ("dr_grpo", "epsilon_high", 0.04, 1.0, torch.bfloat16, True, False, 7),
    ("dapo", "delta", 0.0, 0.7, torch.float32, False, False, 1),
])
def test_triton_backend_matches_reference(loss_type, clip, beta, temperature, dtype, bias, on_policy, chunk_size):
    batch = make_linear_batch(T=7, V=1001, temperature=temperature, dtype=dtype, beta=beta, bias=bias,
                              on_policy=on_policy, seed=chunk_size)
    cfg = _cfg(batch, loss_type, clip, beta, temperature)
    loss, metrics, grads = run_fused(batch, "triton", cfg, chunk_size=chunk_size)
    check_linear(loss, metrics, grads, batch, dtype, cfg)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_group_factor_matches_given_advantages(backend):
    batch = make_linear_batch(T=5, V=131, beta=0.0, seed=3)
    factor = on_device(torch.tensor([0.7, 1.3]))
    cfg = _cfg(batch, "grpo", "epsilon_high", 0.0, 1.0)
    given = dict(batch, advantages=batch["advantages"] * factor.repeat_interleave(3))
    want = run_fused(given, backend, cfg, chunk_size=8)
    leaves = [batch[k].clone().requires_grad_() for k in ("hidden", "weight", "bias")]
    loss, metrics = fused_linear_grpo_loss(leaves[0], leaves[1], batch["ids"], batch["mask"], bias=leaves[2],
                                           advantages=batch["advantages"], group_size=3, group_factor=factor,
                                           old_logprobs=batch["old"], backend=backend, chunk_size=8,
                                           **kernel_options(cfg, batch["mask"]))
    loss.backward()
    assert want[0].item() != 0.0
    assert loss.item() == pytest.approx(want[0].item(), rel=1e-6)
    for name, got, expected in zip(("grad_hidden", "grad_weight", "grad_bias"), (t.grad for t in leaves), want[2]):
        assert_close(name, got, expected, dtype=torch.float32)


def test_chunk_size_does_not_change_the_result():
    batch = make_linear_batch(T=9, V=131, seed=4)
    cfg = _cfg(batch, "dapo", "delta", 0.04, 0.7)
    results = [run_fused(batch, "torch", cfg, chunk_size=c) for c in (1, 6, 1000)]
    results.append(run_fused(batch, "torch", cfg, max_chunk_bytes=131 * 4 * 3))  # 3 rows per chunk
    for loss, _, grads in results[1:]:
        assert loss.item() == pytest.approx(results[0][0].item(), rel=1e-6)
        for name, got, want in zip(("grad_hidden", "grad_weight", "grad_bias"), grads, results[0][2]):
            assert_close(name, got, want, dtype=torch.float32)  # only the float32 summation order differs


def test_weight_is_an_ordinary_autograd_leaf():
    """Gradients accumulate into a Parameter across calls, a frozen input gets none, and grad_output scales
    all of them (what an optimizer and ZeRO-3's gradient hooks see)."""
    batch = make_linear_batch(T=5, V=131, seed=6)
    cfg = _cfg(batch, "bnpo", "symmetric", 0.04, 1.0)
    lm_head = torch.nn.Linear(24, 131, bias=True, device=DEVICE)
    with torch.no_grad():
        lm_head.weight.copy_(batch["weight"])
        lm_head.bias.copy_(batch["bias"])
    hidden = batch["hidden"]  # frozen: no gradient wanted
    kw = dict(advantages=batch["advantages"], old_logprobs=batch["old"], ref_logprobs=batch["ref"], backend="torch",
              **kernel_options(cfg, batch["mask"]))
    loss, _ = fused_linear_grpo_loss(hidden, lm_head.weight, batch["ids"], batch["mask"], bias=lm_head.bias, **kw)
    loss.backward()
    first = lm_head.weight.grad.clone()
    assert first.abs().sum() > 0 and hidden.grad is None
    loss, _ = fused_linear_grpo_loss(hidden, lm_head.weight, batch["ids"], batch["mask"], bias=lm_head.bias, **kw)
    (0.5 * loss).backward()
    torch.testing.assert_close(lm_head.weight.grad, 1.5 * first, rtol=1e-6, atol=1e-9)
    _, _, want = reference_linear(batch, torch.float64, **cfg)
    torch.testing.assert_close(lm_head.bias.grad.double(), 1.5 * want[2], rtol=1e-5, atol=1e-8)


def test_no_grad_gives_loss_and_metrics_only():
    batch = make_linear_batch(T=5, V=131, seed=8)
    cfg = _cfg(batch, "dr_grpo", "symmetric", 0.04, 1.0)
    with torch.no_grad():
        loss, metrics = fused_linear_grpo_loss(batch["hidden"], batch["weight"], batch["ids"], batch["mask"],
                                               bias=batch["bias"], advantages=batch["advantages"],
                                               old_logprobs=batch["old"], ref_logprobs=batch["ref"],
                                               backend="torch", **kernel_options(cfg, batch["mask"]))
    ref_loss, ref_metrics, _ = reference_linear(batch, torch.float64, **cfg)
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    assert metrics["entropy"].item() == pytest.approx(ref_metrics["entropy"].item(), rel=1e-5)


def test_seed_grpo_loss_hidden_weight_dispatch():
    """seed_grpo_loss(hidden=, weight=) with impl torch (chunked torch) and triton agree with
    the reference on the materialised logits."""
    batch = make_linear_batch(T=5, V=131, bias=False, beta=0.0, seed=9)
    kw = dict(completion_ids=batch["ids"], completion_mask=batch["mask"], advantages=batch["advantages"],
              old_logprobs=batch["old"], loss_type="dapo", epsilon=0.2, epsilon_high=0.28)
    want, _ = seedgrpo.seed_grpo_loss(batch["logits"], impl="torch", **kw)
    for impl in ("torch", "triton"):
        got, metrics = seedgrpo.seed_grpo_loss(hidden=batch["hidden"], weight=batch["weight"], impl=impl, **kw)
        assert got.item() == pytest.approx(want.item(), rel=1e-5), impl


@pytest.mark.parametrize("bad,match", [
    (dict(backend="cuda"), "backend"),
    (dict(weight=torch.zeros(131, 23)), "weight"),
    (dict(weight=torch.zeros(131, 24, dtype=torch.float64)), "dtype"),
    (dict(bias=torch.zeros(130)), "bias"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(max_chunk_bytes=-1), "max_chunk_bytes"),
    (dict(hidden=torch.zeros(6, 4, 24)), "hidden"),
])
def test_bad_arguments_raise_value_errors_naming_them(bad, match):
    batch = make_linear_batch(T=5, V=131, bias=False)
    kw = dict(hidden=batch["hidden"], weight=batch["weight"], bias=None, advantages=batch["advantages"],
              weights=batch["mask"] / 10.0, backend="torch")
    kw.update(bad)
    hidden, weight = kw.pop("hidden"), kw.pop("weight")
    with pytest.raises(ValueError, match=match):
        fused_linear_grpo_loss(hidden, weight, batch["ids"], batch["mask"], **kw)
