"""The from-logits GRPO kernel (Triton: compiled on a GPU, else run by the CPU interpreter) against the float64
reference.

Loss, metrics and d(loss)/d(logits) are compared with ``seedgrpo.seed_grpo_loss(impl="torch")`` on float64
logits: float32 within 1e-5 relative, bf16/fp16 within twice the error of the PyTorch reference run in the
same dtype (flash-attention's rule). The interpreter is slow, so the cases are a covering set: every
(loss_type, clip) pair once, with beta, temperature, dtype, vocabulary, on/off-policy, in-place and a strided
logits layout rotating through them. The helpers here are shared with the other kernel test files; the
tensors live on kernel_device.DEVICE (CUDA when present) and are compared on the CPU.
"""
import math

import pytest
import torch

import seedgrpo
from seedgrpo.kernels import _utils
from seedgrpo.kernels.dispatch import grpo_loss_from_logits
from seedgrpo.kernels.reference import PolicyOptions, policy_loss
from seedgrpo.loss import default_normalizer, token_logprobs_and_entropy, token_weights
from kernel_device import DEVICE, on_device

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]
CLIPS = {
    "symmetric": dict(epsilon_low=0.2, epsilon_high=0.2, delta=None),
    "epsilon_high": dict(epsilon_low=0.2, epsilon_high=0.28, delta=None),
    "delta": dict(epsilon_low=0.2, epsilon_high=0.28, delta=1.5),
}
# Ratios this close to a clip bound could land on either side in float32 vs float64; keep the data clear.
_BOUNDS = (0.8, 1.2, 1.28, 1.5)
METRICS = ("clip_ratio_low", "clip_ratio_high", "kl", "entropy")


def make_batch(B=6, T=7, V=1001, *, temperature=1.0, dtype=torch.float32, seed=0, on_policy=False,
               strided=False, beta=0.04, device=DEVICE):
    """Random logits in ``dtype`` (a [:, :-1] slice of [B, T+1, V] when ``strided``), ids, a mask with a
    partial row and a fully masked row, advantages, and old/ref log-probs whose ratios to the current policy
    spread over both clip sides without touching a bound; drawn on the CPU, returned on ``device``."""
    g = torch.Generator().manual_seed(seed)
    full = (torch.randn(B, T + 1, V, generator=g) * 3).to(dtype)
    logits = full[:, :-1]
    ids = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).float()
    mask[min(2, B - 1)] = 0.0
    mask[0] = 1.0
    advantages = torch.randn(B, generator=g)
    logp64, _ = token_logprobs_and_entropy(logits.double(), ids, temperature)
    ratio = torch.empty(B, T, dtype=torch.float64).uniform_(0.55, 1.6, generator=g)
    for bound in _BOUNDS:
        ratio = torch.where((ratio - bound).abs() < 0.02, ratio + 0.05, ratio)
    old = None if on_policy else (logp64 - ratio.log()).float()
    ref = (logp64 + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)).float() if beta else None
    full = full.to(device)  # the logits are a view of it (strided) or a copy of that view
    logits = full[:, :-1] if strided else full[:, :-1].contiguous()
    return on_device(dict(full=full, logits=logits, ids=ids, mask=mask, advantages=advantages, old=old, ref=ref),
                     device)


def reference(logits, batch, dtype, *, loss_type, normalizer, epsilon_low, epsilon_high, delta, beta,
              temperature, advantages=None):
    """seed_grpo_loss(impl="torch") on ``logits`` cast to ``dtype``: (loss, metrics, d loss / d logits)."""
    x = logits.detach().to(dtype).requires_grad_()
    loss, metrics = seedgrpo.seed_grpo_loss(
        x, completion_ids=batch["ids"], completion_mask=batch["mask"],
        advantages=batch["advantages"] if advantages is None else advantages,
        old_logprobs=batch["old"], ref_logprobs=batch["ref"], loss_type=loss_type, normalizer=normalizer,
        epsilon=epsilon_low, epsilon_high=epsilon_high, delta=delta, beta=beta, temperature=temperature,
        impl="torch")
    loss.backward()
    return loss.detach(), {k: metrics[k] for k in METRICS}, x.grad


def kernel_options(cfg, mask):
    """The kernels take per-token weights (seedgrpo.loss owns the loss types): ``cfg`` with loss_type and
    normalizer as the kernels' keywords."""
    cfg = dict(cfg)
    loss_type, normalizer = cfg.pop("loss_type"), cfg.pop("normalizer")
    return dict(cfg, weights=token_weights(mask, loss_type, normalizer))


def loss_magnitude(logits, batch, *, loss_type, normalizer, epsilon_low, epsilon_high, delta, beta, temperature,
                   advantages=None):
    """sum(w * |per-token loss|) in float64: the scale of the loss's rounding error (the loss itself is a sum
    of terms of both signs and can be much smaller than its terms)."""
    logp, _ = token_logprobs_and_entropy(logits.double(), batch["ids"], temperature)
    adv = (batch["advantages"] if advantages is None else advantages).double()
    opts = PolicyOptions(epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta, beta=beta)
    mask = batch["mask"]
    loss_tok = policy_loss(logp, None, mask=mask, weights=torch.ones_like(logp), advantages=adv,
                           old_logp=batch["old"], ref_logp=batch["ref"], opts=opts)[1]["loss"]
    return (token_weights(mask, loss_type, normalizer, torch.float64) * loss_tok.abs()).sum().item()


def _diffs(got, want):
    d = (got.detach().cpu().double() - want.detach().cpu().double()).abs()  # on the CPU: any device, float64
    return d.max().item(), d.mean().item()


def assert_close(name, got, want, *, dtype, torch_lowp=None, rtol=1e-5, scale=None):
    """float32: max |got - want| <= rtol * scale (default max |want|; plus a float64-rounding floor). Low
    precision: the error of ``got`` is at most twice that of ``torch_lowp`` (PyTorch in the same dtype), plus
    the rounding of a ``dtype`` result of that scale (half an ulp: what even a correctly rounded answer pays,
    and what PyTorch may happen to pay less of on its largest element)."""
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    scale = max(want.double().abs().max().item() if scale is None else scale, 1e-30)
    err_max, err_mean = _diffs(got, want)
    if dtype == torch.float32 or torch_lowp is None:
        bound = rtol * scale + 1e-12
        detail = f"rtol {rtol} x max|want| {scale:.3e}"
    else:
        pt_max, pt_mean = _diffs(torch_lowp, want)
        bound = 2 * pt_max + (torch.finfo(got.dtype).eps / 2 if got.dtype.is_floating_point
                              and got.dtype.itemsize < 4 else 2e-6) * scale
        detail = f"2 x torch {dtype} error {pt_max:.3e} (mean {pt_mean:.3e})"
    assert err_max <= bound, (f"{name}: max diff {err_max:.3e}, mean diff {err_mean:.3e} > bound {bound:.3e} "
                              f"({detail})")


def check_against_reference(loss, metrics, grad, batch, dtype, cfg, advantages=None, grad_ref_slice=None):
    """Loss, metrics and logits gradient of a fast path vs the float64 reference (and the torch lowp run)."""
    ref64 = reference(batch["logits"], batch, torch.float64, advantages=advantages, **cfg)
    lowp = None if dtype == torch.float32 else reference(batch["logits"], batch, dtype, advantages=advantages,
                                                        **cfg)
    assert_close("loss", loss, ref64[0], dtype=dtype, torch_lowp=None if lowp is None else lowp[0],
                 scale=loss_magnitude(batch["logits"], batch, advantages=advantages, **cfg))
    for k in METRICS:
        if k.startswith("clip"):  # counts: the data keeps every ratio clear of the bounds, so they are exact
            assert metrics[k].item() == pytest.approx(ref64[1][k].item(), abs=1e-6), k
        else:
            assert_close(k, metrics[k], ref64[1][k], dtype=dtype,
                         torch_lowp=None if lowp is None else lowp[1][k])
    if grad is not None:
        assert grad.dtype == dtype
        assert_close("grad_logits", grad, ref64[2], dtype=dtype, torch_lowp=None if lowp is None else lowp[2])
    return ref64


# Every (loss_type, clip) pair once; the other factors rotate so that each value of each appears several times.
COVERING = [
    # loss_type, clip,          beta, temp, dtype,          V,    on_policy, inplace, strided
    ("grpo",    "symmetric",    0.0,  1.0, torch.float32,  1001, False,     False,   False),
    ("grpo",    "epsilon_high", 0.04, 0.7, torch.bfloat16, 131,  True,      True,    False),
    ("grpo",    "delta",        0.04, 1.0, torch.float32,  131,  False,     True,    True),
    ("bnpo",    "symmetric",    0.04, 0.7, torch.float32,  131,  True,      False,   True),
    ("bnpo",    "epsilon_high", 0.0,  1.0, torch.bfloat16, 1001, False,     True,    True),
    ("bnpo",    "delta",        0.0,  0.7, torch.bfloat16, 1001, False,     False,   False),
    ("dr_grpo", "symmetric",    0.04, 1.0, torch.bfloat16, 131,  False,     True,    False),
    ("dr_grpo", "epsilon_high", 0.04, 0.7, torch.float32,  1001, False,     False,   True),
    ("dr_grpo", "delta",        0.0,  0.7, torch.float32,  131,  True,      False,   False),
    ("dapo",    "symmetric",    0.0,  0.7, torch.bfloat16, 1001, False,     False,   True),
    ("dapo",    "epsilon_high", 0.0,  1.0, torch.float32,  131,  False,     False,   False),
    ("dapo",    "delta",        0.04, 1.0, torch.float16,  1001, False,     True,    False),
]


@pytest.mark.parametrize("loss_type,clip,beta,temperature,dtype,V,on_policy,inplace,strided", COVERING)
def test_matches_reference(loss_type, clip, beta, temperature, dtype, V, on_policy, inplace, strided):
    T = 17 if V == 131 else 5
    batch = make_batch(T=T, V=V, temperature=temperature, dtype=dtype, seed=V + T, on_policy=on_policy,
                       strided=strided, beta=beta)
    cfg = dict(loss_type=loss_type, normalizer=default_normalizer(batch["mask"], loss_type, T + 3), beta=beta,
               temperature=temperature, **CLIPS[clip])
    # A leaf of its own (inplace=True overwrites its input); strided: a [:, :-1] view of [B, T+1, V].
    full = batch["full"].clone().requires_grad_()
    logits = full[:, :-1] if strided else full[:, :-1].contiguous()
    loss, metrics = grpo_loss_from_logits(logits, batch["ids"], batch["mask"], advantages=batch["advantages"],
                                          old_logprobs=batch["old"], ref_logprobs=batch["ref"], inplace=inplace,
                                          **kernel_options(cfg, batch["mask"]))
    loss.backward()
    grad = full.grad[:, :-1]
    assert loss.dtype == torch.float32 and loss.dim() == 0
    check_against_reference(loss, metrics, grad, batch, dtype, cfg)
    if inplace:
        assert torch.equal(logits.detach(), grad), "inplace=True must leave the gradient in the logits buffer"
    else:
        assert torch.equal(logits.detach(), batch["logits"]), "inplace=False must not touch the logits"
    assert torch.all(full.grad[:, -1] == 0), "the position outside the slice got a gradient"


@pytest.mark.parametrize("group_size", [3, 1, 6])
def test_group_factor_applied_in_kernel(group_size):
    """Advantages (computed upstream) + the per-group f(alpha*U), multiplied inside the kernel: the same loss
    and gradient as passing the scaled advantages."""
    batch = make_batch(T=6, V=131, seed=group_size, beta=0.0)
    g = torch.Generator().manual_seed(7)
    factor = on_device(torch.rand(6 // group_size, generator=g) + 0.5)
    scaled = batch["advantages"] * factor.repeat_interleave(group_size)
    cfg = dict(loss_type="dr_grpo", normalizer=60.0, beta=0.0, temperature=1.0, **CLIPS["epsilon_high"])
    logits = batch["logits"].clone().requires_grad_()
    loss, metrics = grpo_loss_from_logits(logits, batch["ids"], batch["mask"], advantages=batch["advantages"],
                                          group_size=group_size, group_factor=factor, old_logprobs=batch["old"],
                                          **kernel_options(cfg, batch["mask"]))
    loss.backward()
    check_against_reference(loss, metrics, logits.grad, batch, torch.float32, cfg, advantages=scaled)
    assert loss.item() != 0.0


def test_grad_output_scales_the_gradient_and_no_grad_skips_it():
    batch = make_batch(T=5, V=131, seed=3)
    kw = dict(advantages=batch["advantages"], old_logprobs=batch["old"], ref_logprobs=batch["ref"], beta=0.04,
              weights=batch["mask"] / 20.0)
    a = batch["logits"].clone().requires_grad_()
    loss_a, _ = grpo_loss_from_logits(a, batch["ids"], batch["mask"], **kw)
    loss_a.backward()
    b = batch["logits"].clone().requires_grad_()
    loss_b, _ = grpo_loss_from_logits(b, batch["ids"], batch["mask"], **kw)
    (-2.5 * loss_b).backward()
    torch.testing.assert_close(b.grad, -2.5 * a.grad, rtol=1e-6, atol=1e-9)
    with pytest.raises(RuntimeError, match="once"):
        loss_b.backward()  # the buffer was scaled in place: a second backward would be wrong, so it refuses
    frozen = batch["logits"].clone()
    loss_c, metrics_c = grpo_loss_from_logits(frozen, batch["ids"], batch["mask"], inplace=True, **kw)
    assert not loss_c.requires_grad and loss_c.item() == pytest.approx(loss_a.item(), rel=1e-6)
    assert torch.equal(frozen, batch["logits"]), "no gradient wanted: the logits must stay untouched"


def test_all_tokens_masked_gives_zero_loss_gradient_and_metrics():
    batch = make_batch(B=3, T=4, V=131, seed=5)
    logits = batch["logits"].clone().requires_grad_()
    zeros = on_device(torch.zeros(3, 4))
    loss, metrics = grpo_loss_from_logits(logits, batch["ids"], zeros, advantages=batch["advantages"],
                                          old_logprobs=batch["old"], ref_logprobs=batch["ref"], beta=0.04,
                                          weights=zeros)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)
    assert all(metrics[k].item() == 0.0 for k in METRICS)


def test_large_logits_keep_logp_and_entropy_accurate():
    """Logits around 1e4 (fp32) would lose the entropy to cancellation in lse - E[z]; the kernel keeps it."""
    batch = make_batch(B=2, T=3, V=1001, seed=9, beta=0.0)
    logits = (batch["logits"] + 1.0e4).requires_grad_()
    batch["logits"] = logits.detach()
    cfg = dict(loss_type="bnpo", normalizer=float(batch["mask"].sum()), beta=0.0, temperature=1.0,
               **CLIPS["symmetric"])
    loss, metrics = grpo_loss_from_logits(logits, batch["ids"], batch["mask"], advantages=batch["advantages"],
                                          old_logprobs=batch["old"], **kernel_options(cfg, batch["mask"]))
    ref_loss, ref_metrics, _ = reference(logits, batch, torch.float64, **cfg)
    assert metrics["entropy"].item() == pytest.approx(ref_metrics["entropy"].item(), rel=1e-5)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-4)


@pytest.mark.parametrize("bad,match", [
    (dict(weights=None), "weights"),
    (dict(weights=torch.ones(6, 4)), "weights"),
    (dict(beta=0.1), "ref_logprobs"),
    (dict(advantages=torch.zeros(5)), "advantages"),
    (dict(group_size=4, group_factor=torch.ones(1)), "group_size"),
    (dict(group_size=3, group_factor=torch.ones(3)), "group_factor"),
    (dict(old_logprobs=torch.zeros(6, 4)), "old_logprobs"),
    (dict(importance_sampling_ratio=torch.ones(6, 4)), "importance_sampling_ratio"),
])
def test_bad_arguments_raise_value_errors_naming_them(bad, match):
    """The kernels keep cheap structural checks; value ranges are seed_grpo_loss's (test_reference_loss.py)."""
    batch = make_batch(T=5, V=131)
    kw = dict(advantages=batch["advantages"], weights=batch["mask"] / 10.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        grpo_loss_from_logits(batch["logits"], batch["ids"], batch["mask"], **kw)


def test_triton_without_cuda_or_interpreter_says_so(monkeypatch):
    monkeypatch.setattr(_utils, "INTERPRET", False)
    batch = make_batch(T=3, V=131, device="cpu")  # CPU tensors without the interpreter, on any machine
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        grpo_loss_from_logits(batch["logits"], batch["ids"], batch["mask"], advantages=batch["advantages"],
                              weights=batch["mask"])


def test_seed_grpo_loss_dispatches_to_the_kernel():
    """The public API with impl="triton" (rewards + cluster ids: SEED-GRPO's factor formed in the kernel)
    agrees with impl="torch"."""
    batch = make_batch(T=5, V=131, seed=11, beta=0.0)
    rewards = on_device(torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0]))
    clusters = on_device(torch.tensor([0, 1, 0, 0, 1, 2]))
    kw = dict(completion_ids=batch["ids"], completion_mask=batch["mask"], rewards=rewards, group_size=3,
              cluster_ids=clusters, old_logprobs=batch["old"], scale_rewards="group", alpha=0.5,
              loss_type="grpo")
    results = {}
    for impl in ("torch", "triton"):
        x = batch["logits"].clone().requires_grad_()
        loss, metrics = seedgrpo.seed_grpo_loss(x, impl=impl, **kw)
        loss.backward()
        results[impl] = (loss, metrics, x.grad)
    assert math.isfinite(results["torch"][0].item()) and results["torch"][0].item() != 0.0
    assert results["triton"][0].item() == pytest.approx(results["torch"][0].item(), rel=1e-5)
    torch.testing.assert_close(results["triton"][2], results["torch"][2], rtol=1e-4, atol=1e-7)
    for k in METRICS + ("semantic_entropy", "advantage_scale"):
        assert results["triton"][1][k].item() == pytest.approx(results["torch"][1][k].item(), rel=1e-5), k
