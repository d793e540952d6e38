"""The reference loss against per-token loops in float64, micro-batch invariance, gradcheck, validation."""
import math

import pytest
import torch

import seedgrpo
from seedgrpo.loss import default_normalizer, token_logprobs_and_entropy

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]


def make_batch(B=6, T=7, V=13, seed=0, dtype=torch.float64, masked_row=True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=dtype) * 2
    ids = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T) < lengths[:, None]).to(torch.int64)
    if masked_row:
        mask[1] = 0
    old = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3 - 2.0
    ref = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3 - 2.0
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    return logits, ids, mask, old, ref, adv


def loop_loss(logits, ids, mask, old, ref, adv, *, loss_type, eps_lo, eps_hi, delta, beta, T_temp, max_len=None):
    """Per-token loops straight from DESIGN.md §2, in Python floats."""
    B, T, V = logits.shape
    total, rows_terms, n_tok = 0.0, [], 0
    for b in range(B):
        row_sum, row_tok = 0.0, 0
        for t in range(T):
            if not mask[b, t]:
                continue
            z = [logits[b, t, v].item() / T_temp for v in range(V)]
            mx = max(z)
            lse = mx + math.log(sum(math.exp(x - mx) for x in z))
            logp = z[ids[b, t]] - lse
            o = logp if old is None else old[b, t].item()
            rho = math.exp(logp - o)
            a = adv[b].item()
            c1 = min(rho, delta) if delta is not None else rho
            c2 = min(max(rho, 1 - eps_lo), 1 + eps_hi)
            token_loss = -min(c1 * a, c2 * a)
            if beta:
                d = ref[b, t].item() - logp
                token_loss += beta * (math.exp(d) - d - 1)
            row_sum += token_loss
            row_tok += 1
        rows_terms.append(row_sum / max(row_tok, 1))
        total += row_sum
        n_tok += row_tok
    if loss_type == "grpo":
        return sum(rows_terms) / B
    if loss_type == "dr_grpo":
        return total / (B * (max_len or T))
    return total / max(n_tok, 1)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("clip", [dict(epsilon=0.2), dict(epsilon=0.2, epsilon_high=0.28),
                                  dict(epsilon=0.1, epsilon_high=0.3, delta=1.5)])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_loss_matches_loops(loss_type, clip, beta, temperature):
    logits, ids, mask, old, ref, adv = make_batch(seed=hash((loss_type, beta, temperature)) % 1000)
    loss, metrics = seedgrpo.seed_grpo_loss(
        logits, completion_ids=ids, completion_mask=mask, advantages=adv, old_logprobs=old,
        ref_logprobs=ref if beta else None, loss_type=loss_type, beta=beta, temperature=temperature,
        max_completion_length=10, impl="torch", **clip)
    want = loop_loss(logits, ids, mask, old, ref, adv, loss_type=loss_type, eps_lo=clip["epsilon"],
                     eps_hi=clip.get("epsilon_high", clip["epsilon"]), delta=clip.get("delta"), beta=beta,
                     T_temp=temperature, max_len=10)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_metrics_match_loops():
    logits, ids, mask, old, ref, adv = make_batch(seed=4)
    eps_lo, eps_hi = 0.1, 0.15
    _, m = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, advantages=adv,
                                   old_logprobs=old, ref_logprobs=ref, beta=0.1, epsilon=eps_lo,
                                   epsilon_high=eps_hi, impl="torch")
    logp, ent = token_logprobs_and_entropy(logits, ids)
    low = high = kl = en = n = 0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if not mask[b, t]:
                continue
            rho = math.exp(logp[b, t].item() - old[b, t].item())
            low += int(rho < 1 - eps_lo and adv[b].item() < 0)
            high += int(rho > 1 + eps_hi and adv[b].item() > 0)
            d = ref[b, t].item() - logp[b, t].item()
            kl += math.exp(d) - d - 1
            p = torch.softmax(logits[b, t], -1)
            en += -(p * p.log()).sum().item()
            n += 1
    assert low + high > 0, "the batch should clip some tokens for this test to mean anything"
    assert m["clip_ratio_low"].item() == pytest.approx(low / n, rel=1e-6)  # fractions are float32
    assert m["clip_ratio_high"].item() == pytest.approx(high / n, rel=1e-6)
    assert m["kl"].item() == pytest.approx(kl / n, rel=1e-10)
    assert m["entropy"].item() == pytest.approx(en / n, rel=1e-10)
    assert math.isnan(m["semantic_entropy"].item()) and math.isnan(m["advantage_scale"].item())


def test_on_policy_default_and_gradient():
    """old_logprobs=None: ratio 1, and the gradient is -Â·∇logp·w (the policy-gradient form)."""
    logits, ids, mask, _, _, adv = make_batch(seed=7)
    logits.requires_grad_(True)
    loss, m = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, advantages=adv,
                                      loss_type="bnpo", impl="torch")
    loss.backward()
    assert m["clip_ratio_low"].item() == 0 and m["clip_ratio_high"].item() == 0
    x = logits.detach().requires_grad_(True)
    logp, _ = token_logprobs_and_entropy(x, ids)
    pg = -(adv[:, None] * logp * mask).sum() / mask.sum()
    pg.backward()
    torch.testing.assert_close(logits.grad, x.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_micro_batches_with_global_normalizer_give_whole_batch_gradient(loss_type):
    logits, ids, mask, old, ref, adv = make_batch(B=8, seed=3)
    common = dict(loss_type=loss_type, beta=0.05, epsilon=0.2, epsilon_high=0.25, max_completion_length=9,
                  impl="torch")
    whole = logits.clone().requires_grad_(True)
    loss, _ = seedgrpo.seed_grpo_loss(whole, completion_ids=ids, completion_mask=mask, advantages=adv,
                                      old_logprobs=old, ref_logprobs=ref, **common)
    loss.backward()
    norm = default_normalizer(mask, loss_type, 9)
    parts = logits.clone().requires_grad_(True)
    total = 0.0
    for sl in (slice(0, 3), slice(3, 4), slice(4, 8)):
        part_loss, _ = seedgrpo.seed_grpo_loss(parts[sl], completion_ids=ids[sl], completion_mask=mask[sl],
                                               advantages=adv[sl], old_logprobs=old[sl], ref_logprobs=ref[sl],
                                               normalizer=norm, **common)
        part_loss.backward()
        total += part_loss.item()
    assert total == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(parts.grad, whole.grad, rtol=1e-12, atol=1e-15)


def test_gradcheck_float64():
    logits, ids, mask, old, ref, adv = make_batch(B=4, T=3, V=5, seed=1)
    logits.requires_grad_(True)

    def f(x):
        return seedgrpo.seed_grpo_loss(x, completion_ids=ids, completion_mask=mask, advantages=adv,
                                       old_logprobs=old, ref_logprobs=ref, beta=0.1, temperature=0.8,
                                       loss_type="grpo", impl="torch")[0]

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-8)


def test_rewards_path_equals_compute_advantages_path():
    logits, ids, mask, old, _, _ = make_batch(B=8, seed=5, masked_row=False)
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1], dtype=torch.float64)
    clusters = torch.tensor([0, 1, 1, 0, 0, 0, 1, -3])
    seq = (old * mask).sum(-1) / mask.sum(-1)
    loss_a, m = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, rewards=rewards,
                                        group_size=4, cluster_ids=clusters, old_logprobs=old, alpha=0.5,
                                        scale_rewards="group", impl="torch")
    adv = seedgrpo.compute_advantages(rewards, 4, clusters, seq, alpha=0.5, scale_rewards="group")
    loss_b, _ = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, advantages=adv,
                                        old_logprobs=old, impl="torch")
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-12)
    u = seedgrpo.semantic_entropy(clusters, 4, seq, estimator="rao") / math.log(4)
    assert m["semantic_entropy"].item() == pytest.approx(u.mean().item(), rel=1e-6)
    assert m["advantage_scale"].item() == pytest.approx((1 / (1 + 0.5 * u)).mean().item(), rel=1e-6)


def test_alpha_zero_loss_equals_dr_grpo():
    logits, ids, mask, old, _, _ = make_batch(B=8, seed=6)
    rewards = torch.rand(8, dtype=torch.float64)
    clusters = torch.arange(8)
    a, _ = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, rewards=rewards,
                                   group_size=4, cluster_ids=clusters, old_logprobs=old, alpha=0.0, impl="torch")
    b, _ = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, rewards=rewards,
                                   group_size=4, old_logprobs=old, uncertainty=None, impl="torch")
    assert a.item() == b.item()


def test_bf16_logits_accumulate_in_float32():
    logits, ids, mask, old, _, adv = make_batch(seed=8)
    loss32, _ = seedgrpo.seed_grpo_loss(logits.float(), completion_ids=ids, completion_mask=mask,
                                        advantages=adv.float(), old_logprobs=old.float(), impl="torch")
    loss16, _ = seedgrpo.seed_grpo_loss(logits.bfloat16(), completion_ids=ids, completion_mask=mask,
                                        advantages=adv.float(), old_logprobs=old.float(), impl="torch")
    assert loss16.dtype == torch.float32
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.05, abs=1e-3)


def test_module_and_presets():
    logits, ids, mask, old, _, _ = make_batch(B=8, seed=2)
    rewards = torch.rand(8, dtype=torch.float64)
    clusters = torch.tensor([0, 0, 1, 2, 5, 5, 5, 5])
    mod = seedgrpo.SeedGRPOLoss.from_preset("paper", impl="torch")
    assert mod.config["alpha"] == 0.0417 and mod.config["scale_fn"] == "reciprocal"
    got, _ = mod(logits, completion_ids=ids, completion_mask=mask, rewards=rewards, cluster_ids=clusters,
                 old_logprobs=old)
    want, _ = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, rewards=rewards,
                                      group_size=8, cluster_ids=clusters, old_logprobs=old, impl="torch")
    assert got.item() == want.item()
    with pytest.raises(ValueError, match="unknown configuration"):
        seedgrpo.SeedGRPOLoss(alpah=0.1)
    with pytest.raises(ValueError, match="preset"):
        seedgrpo.SeedGRPOLoss.from_preset("nope")
    with pytest.raises(ValueError, match="again in forward"):
        mod(logits, completion_ids=ids, completion_mask=mask, rewards=rewards, alpha=0.2)


def _good():
    logits, ids, mask, old, ref, adv = make_batch(B=4, T=3, V=5)
    return dict(logits=logits, completion_ids=ids, completion_mask=mask, advantages=adv)


@pytest.mark.parametrize("change,match", [
    (dict(logits=None), "either logits"),
    (dict(hidden=torch.zeros(4, 3, 2)), "not both"),
    (dict(completion_ids=torch.zeros(4, 3)), "completion_ids"),
    (dict(completion_ids=torch.full((4, 3), 7)), r"in \[0, 5\)"),
    (dict(completion_mask=torch.ones(4, 2)), "completion_mask"),
    (dict(logits=torch.zeros(4, 2, 5)), "logits must be"),
    (dict(logits=torch.zeros(4, 3, 5, dtype=torch.long)), "floating point"),
    (dict(advantages=torch.zeros(3)), "advantages"),
    (dict(advantages=None), "rewards"),
    (dict(advantages=None, rewards=torch.ones(4)), "group_size"),
    (dict(advantages=None, rewards=torch.ones(4), group_size=3), "does not divide"),
    (dict(old_logprobs=torch.zeros(4, 2)), "old_logprobs"),
    (dict(loss_type="ppo"), "loss_type"),
    (dict(epsilon=-0.1), "epsilon"),
    (dict(delta=0.9), "delta"),
    (dict(beta=0.1), "ref_logprobs"),
    (dict(temperature=0.0), "temperature"),
    (dict(max_completion_length=2), "max_completion_length"),
    (dict(normalizer=0.0), "normalizer"),
    (dict(impl="cuda"), "impl"),
    (dict(scale_fn="cubic"), "scale_fn"),
    (dict(scale_rewards="rank"), "scale_rewards"),
    (dict(advantages=None, rewards=torch.ones(4), group_size=2, cluster_ids=torch.zeros(4, dtype=torch.long),
          uncertainty="unknown_u"), "not registered"),
])
def test_validation_errors(change, match):
    kwargs = {**_good(), **change}
    logits = kwargs.pop("logits")
    with pytest.raises(ValueError, match=match):
        seedgrpo.seed_grpo_loss(logits, **kwargs)


def test_triton_impl_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="impl='triton' needs CUDA"):
        seedgrpo.seed_grpo_loss(**{**_good(), "impl": "triton"})


@pytest.mark.parametrize("uncertainty", ["se_rao", "se_mc", "gcpo_bot"])
def test_seq_logprobs_default_to_the_old_policy_mean(uncertainty):
    logits, ids, mask, old, _, _ = make_batch(B=8, seed=12, masked_row=False)
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1], dtype=torch.float64)
    clusters = torch.tensor([0, 1, 1, 0, 0, 2, 1, 2])
    emb = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    common = dict(completion_ids=ids, completion_mask=mask, rewards=rewards, group_size=4, cluster_ids=clusters,
                  embeddings=emb, old_logprobs=old, alpha=1.0, uncertainty=uncertainty, impl="torch")
    implicit, m1 = seedgrpo.seed_grpo_loss(logits, **common)
    seq = (old * mask).sum(-1) / mask.sum(-1)
    explicit, m2 = seedgrpo.seed_grpo_loss(logits, seq_logprobs=seq, **common)
    counts, m3 = seedgrpo.seed_grpo_loss(logits, seq_logprobs=torch.zeros(8, dtype=torch.float64), **common)
    assert implicit.item() == explicit.item()
    assert m1["semantic_entropy"].item() == m2["semantic_entropy"].item()
    assert m1["semantic_entropy"].item() != m3["semantic_entropy"].item()  # the masses matter
