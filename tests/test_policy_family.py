"""The policy-loss family (TRL 1.16's names and semantics) on every implementation against plain float64 loops.

The loops below are written from TRL's `_compute_loss` / `get_gamma_weights` / `get_off_policy_mask` /
`get_high_entropy_mask` token by token, without seedgrpo's reference module, and differentiated by autograd
(sg(.) parts detached). Each case runs the PyTorch reference (float64 logits), the Triton kernel from logits
(float32; compiled on a GPU, else the interpreter: on kernel_device.DEVICE), and the fused-linear path with
the torch and Triton backends (float32); loss, entropy metric and every gradient must agree with the loops
(compared on the CPU). Shapes are small and odd (the interpreter is slow); each batch has a partial row and a
fully masked row.
"""
import math

import pytest
import torch

import seedgrpo
from seedgrpo.loss import default_normalizer
from kernel_device import on_device

B, T, V, H = 6, 5, 67, 16
IMPLS = [("logits", "torch"), ("logits", "triton"), ("hidden", "torch"), ("hidden", "triton")]


def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64) * 0.4
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T)
    mask[1, 2:] = 0
    mask[3] = 0
    logits = (hidden.float() @ weight.float().T).double()  # what a float32 linear layer gives
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    ratio = torch.empty(B, T, dtype=torch.float64).uniform_(0.6, 1.5, generator=g)
    for bound in (0.8, 1.2, 1.28, 1.1):  # clip bounds of the cases: keep every ratio clear of them
        ratio = torch.where((ratio - bound).abs() < 0.02, ratio + 0.05, ratio)
    return dict(hidden=hidden, weight=weight, logits=logits, ids=ids, mask=mask,
                advantages=torch.tensor([0.9, -0.7, 0.4, 1.1, -1.3, 0.6], dtype=torch.float64),
                old=(logp - ratio.log()).float(),
                ref=(logp + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64)).float(),
                sampling=(logp - ratio.log() + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)).float(),
                isr_token=torch.empty(B, T).uniform_(0.5, 1.5, generator=g),
                isr_row=torch.empty(B).uniform_(0.5, 1.5, generator=g))


# ----------------------------------------------------------------------------------------------------- loops
def _quantile(values, q):
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def loop_loss(logits, d, *, loss_type, cfg, normalizer):
    """The loss of TRL 1.16 written token by token (float64, autograd through logits)."""
    eps_low = cfg.get("epsilon", 0.2)
    eps_high = cfg.get("epsilon_high", eps_low)
    delta, beta = cfg.get("delta"), cfg.get("beta", 0.0)
    level = cfg.get("importance_sampling_level", "token")
    q = cfg.get("top_entropy_quantile", 1.0)
    threshold = cfg.get("off_policy_mask_threshold")
    isr = cfg.get("importance_sampling_ratio")
    coef = cfg.get("entropy_coef", 0.0)
    old = cfg.get("old_logprobs")
    mask = d["mask"]
    rows = [[t for t in range(T) if mask[b, t] > 0] for b in range(B)]
    logp, ent = {}, {}
    for b in range(B):
        for t in rows[b]:
            z = logits[b, t]
            lse = torch.logsumexp(z, 0)
            logp[b, t] = z[d["ids"][b, t]] - lse
            p = torch.exp(z - lse)
            ent[b, t] = -(p * (z - lse)).sum()
    valid_tokens = [(b, t) for b in range(B) for t in rows[b]]
    cutoff = _quantile([ent[k].item() for k in valid_tokens], 1 - q) if q < 1 else None
    total = torch.zeros((), dtype=torch.float64)
    for b in range(B):
        if not rows[b]:
            continue
        a = d["advantages"].float()[b].item()  # the float32 advantages every impl is given
        old_b = {t: (logp[b, t].detach() if old is None else old[b, t].double()) for t in rows[b]}
        log_ratio = {t: logp[b, t] - old_b[t] for t in rows[b]}
        if level == "sequence":
            seq = sum(log_ratio.values()) / len(rows[b])
            rho = {t: torch.exp(seq) for t in rows[b]}
        else:
            rho = {t: torch.exp(log_ratio[t]) for t in rows[b]}
        phi = None
        if loss_type == "vespo":
            s = sum(torch.clamp(log_ratio[t].detach(), -20, 20) for t in rows[b])
            if isr is not None:
                s = s + sum(torch.clamp(torch.log(isr[b, t].double()), math.log(1e-8), 20) for t in rows[b])
            log_w = torch.clamp(s, math.log(1e-8), 20)
            k, lam = (cfg.get("vespo_k_pos", 2.0), cfg.get("vespo_lambda_pos", 3.0)) if a >= 0 else \
                (cfg.get("vespo_k_neg", 3.0), cfg.get("vespo_lambda_neg", 2.0))
            phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
        keep = 1.0
        if threshold is not None:
            sampler = cfg.get("sampling_logprobs")
            sampler = old if sampler is None else sampler
            kl = [(sampler[b, t].double() - logp[b, t].detach()).item() if sampler is not None else 0.0
                  for t in rows[b]]
            keep = 1.0 if (a >= 0 or sum(kl) / len(kl) <= threshold) else 0.0
        for t in rows[b]:
            r = rho[t]
            if loss_type == "cispo":
                pg = -torch.clamp(r, max=eps_high).detach() * a * logp[b, t]
            elif loss_type == "sapo":
                tau = cfg.get("sapo_temperature_pos", 1.0) if a > 0 else cfg.get("sapo_temperature_neg", 1.05)
                pg = -torch.sigmoid(tau * (r - 1)) * 4 / tau * a
            elif loss_type == "vespo":
                pg = -phi * a * logp[b, t]
            else:
                c1 = torch.clamp(r, max=delta) if delta is not None else r
                pg = -torch.min(c1 * a, torch.clamp(r, 1 - eps_low, 1 + eps_high) * a)
            pg = pg * keep
            if cutoff is not None:
                pg = pg * (1.0 if ent[b, t].item() >= cutoff else 0.0)
            if isr is not None and loss_type != "vespo":
                pg = pg * (isr[b, t] if isr.dim() == 2 else isr[b]).double()
            if beta:
                diff = d["ref"][b, t].double() - logp[b, t]
                pg = pg + beta * (torch.exp(diff) - diff - 1)
            if loss_type in ("grpo", "sapo"):
                w = 1.0 / (len(rows[b]) * normalizer)
            else:
                w = 1.0 / normalizer
            total = total + w * pg
    if coef:
        trained = [k for k in valid_tokens if cutoff is None or ent[k].item() >= cutoff]
        total = total - coef * sum(ent[k] for k in trained) / max(len(trained), 1)
    mean_entropy = sum(ent[k].item() for k in valid_tokens) / len(valid_tokens)
    return total, mean_entropy


# ------------------------------------------------------------------------------------------------ the cases
CASES = [
    ("grpo", dict(importance_sampling_level="sequence")),                       # GSPO
    ("dapo", dict(importance_sampling_level="sequence", epsilon_high=0.28, delta=1.5, beta=0.04)),
    ("cispo", dict(epsilon_high=1.1)),                                          # the ratio cap
    ("cispo", dict(epsilon_high=1.2, importance_sampling_level="sequence")),
    ("sapo", dict()),
    ("sapo", dict(importance_sampling_level="sequence", sapo_temperature_pos=2.0, sapo_temperature_neg=0.5)),
    ("luspo", dict(importance_sampling_level="sequence")),
    ("luspo", dict(beta=0.04)),
    ("vespo", dict(importance_sampling_ratio="token")),
    ("vespo", dict(vespo_k_pos=1.5, vespo_lambda_pos=2.0, vespo_k_neg=2.5, vespo_lambda_neg=1.0)),
    ("bnpo", dict(top_entropy_quantile=0.4)),
    ("dr_grpo", dict(off_policy_mask_threshold=0.02, sampling_logprobs=True)),
    ("grpo", dict(importance_sampling_ratio="token")),
    ("dapo", dict(importance_sampling_ratio="row", off_policy_mask_threshold=0.0)),
    ("dapo", dict(entropy_coef=0.05)),
    ("grpo", dict(entropy_coef=0.03, top_entropy_quantile=0.5, importance_sampling_level="sequence")),
    ("grpo", dict(on_policy=True, entropy_coef=0.02, importance_sampling_level="sequence")),
]


def _kwargs(d, loss_type, case):
    cfg = dict(case)
    on_policy = cfg.pop("on_policy", False)
    if cfg.get("importance_sampling_ratio") == "token":
        cfg["importance_sampling_ratio"] = d["isr_token"]
    elif cfg.get("importance_sampling_ratio") == "row":
        cfg["importance_sampling_ratio"] = d["isr_row"]
    if cfg.pop("sampling_logprobs", False):
        cfg["sampling_logprobs"] = d["sampling"]
    cfg["old_logprobs"] = None if on_policy else d["old"]
    cfg["ref_logprobs"] = d["ref"] if cfg.get("beta") else None
    return cfg


def _run(d, form, impl, loss_type, cfg, normalizer):
    """One implementation's loss, metrics and gradients, back on the CPU (Triton runs on DEVICE)."""
    if impl == "triton":
        d, cfg = on_device(d), on_device(cfg)
    kw = dict(completion_ids=d["ids"], completion_mask=d["mask"], advantages=d["advantages"].float(),
              loss_type=loss_type, normalizer=normalizer, impl=impl, **cfg)
    if form == "logits":
        x = (d["logits"] if impl == "torch" else d["logits"].float()).clone().requires_grad_()
        loss, metrics = seedgrpo.seed_grpo_loss(x, **kw)
        loss.backward()
        grads = [x.grad]
    else:
        h, w = d["hidden"].float().clone().requires_grad_(), d["weight"].float().clone().requires_grad_()
        loss, metrics = seedgrpo.seed_grpo_loss(hidden=h, weight=w, **kw)
        loss.backward()
        grads = [h.grad, w.grad]
    return loss.cpu(), on_device(metrics, "cpu"), on_device(grads, "cpu")


def _close(name, got, want, rtol):
    got, want = got.double(), want.double()
    err = (got - want).abs().max().item()
    scale = max(want.abs().max().item(), 1e-12)
    assert err <= rtol * scale + 1e-9, f"{name}: max diff {err:.3e} vs scale {scale:.3e} (rtol {rtol})"


@pytest.mark.parametrize("form,impl", IMPLS)
@pytest.mark.parametrize("loss_type,case", CASES)
def test_matches_the_float64_loops(form, impl, loss_type, case):
    d = make(seed=len(str(case)) + len(loss_type))
    cfg = _kwargs(d, loss_type, case)
    normalizer = default_normalizer(d["mask"], loss_type, T + 2)
    loss, metrics, grads = _run(d, form, impl, loss_type, cfg, normalizer)

    leaves = [d["logits"].clone().requires_grad_()] if form == "logits" else \
        [d["hidden"].clone().requires_grad_(), d["weight"].clone().requires_grad_()]
    logits = leaves[0] if form == "logits" else leaves[0] @ leaves[1].T
    want, mean_entropy = loop_loss(logits, d, loss_type=loss_type, cfg=cfg, normalizer=normalizer)
    want.backward()
    assert want.item() != 0.0
    rtol = 1e-9 if (form, impl) == ("logits", "torch") else 2e-5
    scale = max(abs(want.item()), 1e-3)
    assert abs(loss.item() - want.item()) <= rtol * scale + 1e-7, (loss.item(), want.item())
    assert metrics["entropy"].item() == pytest.approx(mean_entropy, rel=1e-5)
    for i, (got, leaf) in enumerate(zip(grads, leaves)):
        _close(f"grad {i}", got, leaf.grad, rtol)


@pytest.mark.parametrize("loss_type,case", [
    ("cispo", dict(epsilon_high=1.1)), ("sapo", dict()), ("luspo", dict(importance_sampling_level="sequence")),
    ("vespo", dict(importance_sampling_ratio="token")), ("grpo", dict(importance_sampling_level="sequence")),
    ("dapo", dict(entropy_coef=0.05, off_policy_mask_threshold=0.0, importance_sampling_ratio="row")),
    ("bnpo", dict(top_entropy_quantile=0.5)),
])
def test_micro_batch_split_gives_the_whole_batch_loss_and_gradient(loss_type, case):
    """With the global normaliser (and the global entropy normaliser / a precomputed entropy threshold), the
    losses of any row split add up to the whole batch's: the trainer's invariance, for every new type."""
    from seedgrpo.kernels.reference import entropy_threshold, token_logprobs_and_entropy

    d = make(seed=5)
    cfg = _kwargs(d, loss_type, case)
    mask = d["mask"]
    normalizer = default_normalizer(mask, loss_type, T)
    extra = dict(normalizer=normalizer, entropy_normalizer=float(mask.sum()))
    if cfg.get("top_entropy_quantile", 1.0) < 1.0:
        _, ent = token_logprobs_and_entropy(d["logits"], d["ids"])
        extra["entropy_threshold"] = entropy_threshold(ent, mask, 1 - cfg["top_entropy_quantile"])

    def loss_of(rows):
        x = d["logits"].clone().requires_grad_()
        part = {k: (v[rows] if isinstance(v, torch.Tensor) and v.shape[:1] == (B,) else v) for k, v in cfg.items()}
        loss, _ = seedgrpo.seed_grpo_loss(x[rows], completion_ids=d["ids"][rows], completion_mask=mask[rows],
                                          advantages=d["advantages"][rows], loss_type=loss_type, impl="torch",
                                          **part, **extra)
        loss.backward()
        return loss, x.grad

    whole, grad = loss_of(slice(0, B))
    parts = [loss_of(slice(0, 2)), loss_of(slice(2, 5)), loss_of(slice(5, 6))]
    assert whole.item() != 0.0
    assert sum(p[0].item() for p in parts) == pytest.approx(whole.item(), rel=1e-12, abs=1e-14)
    torch.testing.assert_close(sum(p[1] for p in parts), grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("bad,match", [
    (dict(loss_type="gspo"), "loss_type"),
    (dict(importance_sampling_level="row"), "importance_sampling_level"),
    (dict(top_entropy_quantile=1.5), "top_entropy_quantile"),
    (dict(off_policy_mask_threshold=-0.1), "off_policy_mask_threshold"),
    (dict(sapo_temperature_neg=0.0), "sapo_temperature_neg"),
    (dict(vespo_lambda_pos=-1.0), "vespo_lambda_pos"),
    (dict(entropy_coef=float("nan")), "entropy_coef"),
    (dict(importance_sampling_ratio=torch.ones(B, T + 1)), "importance_sampling_ratio"),
    (dict(sampling_logprobs=torch.ones(B, 2)), "sampling_logprobs"),
])
def test_bad_family_options_raise_one_line_errors_naming_them(bad, match):
    d = make()
    kw = dict(completion_ids=d["ids"], completion_mask=d["mask"], advantages=d["advantages"], impl="torch")
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        seedgrpo.seed_grpo_loss(d["logits"], **kw)


def test_rollout_importance_ratio_follows_trl_modes():
    from seedgrpo.loss import rollout_importance_ratio

    train = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, float("nan"), -3.0]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -1.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    token = rollout_importance_ratio(train, sampler, mask, mode="token_truncate", clip_min=0.5, clip_max=1.5)
    assert torch.allclose(token, torch.tensor([[1.5, 0.5, 1.0], [1.0, 1.0, 1.0]]))  # e^0.5, e^-1 clamped
    masked = rollout_importance_ratio(train, sampler, mask, mode="token_mask", clip_max=1.5)
    assert torch.allclose(masked, torch.tensor([[0.0, math.exp(-1.0), 1.0], [1.0, 1.0, 1.0]]))
    seq = rollout_importance_ratio(train, sampler, mask, mode="sequence_truncate", clip_max=3.0)
    assert seq.shape == (2, 1) and seq[0, 0].item() == pytest.approx(math.exp(-0.5))
    seq_mask = rollout_importance_ratio(train, sampler, mask, mode="sequence_mask", clip_min=0.7)
    assert seq_mask[0, 0].item() == 0.0 and seq_mask[1, 0].item() == 1.0
    with pytest.raises(ValueError, match="vllm_importance_sampling_mode"):
        rollout_importance_ratio(train, sampler, mask, mode="token")
