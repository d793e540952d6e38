"""Reference advantages and semantic entropy against independent float64 formulas written with loops."""
import math
import random

import pytest
import torch

import seedgrpo
from seedgrpo.advantages import FOCAL_GAMMA, base_advantages, scale_factor


# ---- independent formulas (plain Python, float64) ------------------------------------------------------

def loop_base(rewards, G, scale):
    out = []
    allr = [float(x) for x in rewards]
    batch_mean = sum(allr) / len(allr)
    batch_std = math.sqrt(sum((x - batch_mean) ** 2 for x in allr) / (len(allr) - 1)) if len(allr) > 1 else 0.0
    for g in range(len(allr) // G):
        r = allr[g * G:(g + 1) * G]
        mean = sum(r) / G
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (G - 1)) if G > 1 else 0.0
        for x in r:
            a = x - mean
            if scale == "group":
                a /= std + 1e-4
            elif scale == "batch":
                a /= batch_std + 1e-4
            out.append(a)
    return out


def loop_entropy(ids, G, seq_logprobs=None, estimator="rao", mask=None):
    out = []
    for g in range(len(ids) // G):
        rows = [i for i in range(g * G, (g + 1) * G) if mask is None or mask[i]]
        if not rows:
            out.append(0.0)
            continue
        w = {i: (math.exp(seq_logprobs[i]) if (seq_logprobs is not None and estimator != "discrete") else 1.0)
             for i in rows}
        total = sum(w.values())
        clusters = {}
        for i in rows:
            key = ("c", int(ids[i])) if ids[i] >= 0 else ("solo", i)
            clusters[key] = clusters.get(key, 0.0) + w[i] / total
        ps = list(clusters.values())
        if estimator == "mc":
            out.append(-sum(math.log(p) for p in ps) / len(ps))
        else:
            out.append(-sum(p * math.log(p) for p in ps))
    return out


def loop_factor(x, fn):
    return {"linear": max(0.0, 1 - x), "exp": math.exp(-x), "focal": max(0.0, 1 - x) ** FOCAL_GAMMA,
            "reciprocal": 1 / (1 + x)}[fn]


def random_batch(num_groups, G, seed, n_answers=3, no_answer_p=0.2):
    rng = random.Random(seed)
    ids = [rng.randrange(n_answers) if rng.random() > no_answer_p else -1 - rng.randrange(5)
           for _ in range(num_groups * G)]
    rewards = [float(rng.random() < 0.5) for _ in ids]
    logps = [rng.uniform(-3.0, -0.05) for _ in ids]
    return torch.tensor(ids), torch.tensor(rewards, dtype=torch.float64), torch.tensor(logps, dtype=torch.float64)


# ---- tests -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["none", "group", "batch"])
@pytest.mark.parametrize("G", [1, 3, 8])
def test_base_advantages_match_loops(scale, G):
    torch.manual_seed(G)
    r = torch.rand(5 * G, dtype=torch.float64)
    got = base_advantages(r, G, scale)
    want = torch.tensor(loop_base(r.tolist(), G, scale), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_all_equal_rewards_give_zero_advantage():
    r = torch.full((12,), 0.7, dtype=torch.float64)
    for scale in ("none", "group", "batch"):
        assert torch.count_nonzero(base_advantages(r, 4, scale)) == 0


@pytest.mark.parametrize("estimator", ["discrete", "rao", "mc"])
@pytest.mark.parametrize("G", [1, 4, 7])
def test_semantic_entropy_matches_loops(estimator, G):
    for seed in range(4):
        ids, _, logps = random_batch(6, G, seed)
        mask = torch.tensor([random.Random(seed + i).random() > 0.15 for i in range(ids.numel())])
        for m in (None, mask):
            got = seedgrpo.semantic_entropy(ids, G, logps, estimator=estimator, mask=m)
            want = loop_entropy(ids.tolist(), G, logps.tolist(), estimator, None if m is None else m.tolist())
            torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_rao_without_logprobs_is_discrete():
    ids, _, _ = random_batch(5, 6, seed=3)
    torch.testing.assert_close(seedgrpo.semantic_entropy(ids, 6, None, estimator="rao"),
                               seedgrpo.semantic_entropy(ids, 6, None, estimator="discrete"))


def test_entropy_extremes():
    G = 8
    one_cluster = torch.zeros(G, dtype=torch.long)
    distinct = torch.arange(G)
    no_answers = -1 - torch.arange(G)
    for est in ("discrete", "rao", "mc"):
        assert seedgrpo.semantic_entropy(one_cluster, G, estimator=est).item() == 0.0
        assert seedgrpo.semantic_entropy(distinct, G, estimator=est).item() == pytest.approx(math.log(G), rel=1e-12)
        # rows with no answer are singletons: as uncertain as G distinct answers
        assert seedgrpo.semantic_entropy(no_answers, G, estimator=est).item() == pytest.approx(math.log(G), rel=1e-12)


@pytest.mark.parametrize("fn", ["linear", "exp", "focal", "reciprocal"])
def test_scale_functions(fn):
    xs = torch.tensor([0.0, 0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    want = torch.tensor([loop_factor(x, fn) for x in xs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(scale_factor(xs, fn), want)


@pytest.mark.parametrize("uncertainty", ["se_discrete", "se_rao", "se_mc"])
@pytest.mark.parametrize("fn", ["linear", "exp", "focal", "reciprocal"])
@pytest.mark.parametrize("scale", ["none", "group"])
def test_compute_advantages_matches_loops(uncertainty, fn, scale):
    G, alpha = 6, 0.7
    ids, r, logps = random_batch(7, G, seed=11)
    got = seedgrpo.compute_advantages(r, G, ids, logps, uncertainty=uncertainty, scale_fn=fn, alpha=alpha,
                                      scale_rewards=scale)
    est = {"se_discrete": "discrete", "se_rao": "rao", "se_mc": "mc"}[uncertainty]
    se = loop_entropy(ids.tolist(), G, logps.tolist(), est)
    base = loop_base(r.tolist(), G, scale)
    want = [base[i] * loop_factor(alpha * min(1.0, se[i // G] / math.log(G)), fn) for i in range(len(base))]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", ["none", "group", "batch"])
def test_alpha_zero_reproduces_grpo_exactly(scale):
    ids, r, logps = random_batch(9, 8, seed=5)
    for fn in ("linear", "exp", "focal", "reciprocal"):
        got = seedgrpo.compute_advantages(r, 8, ids, logps, alpha=0.0, scale_fn=fn, scale_rewards=scale)
        assert torch.equal(got, base_advantages(r, 8, scale))


def test_one_cluster_gives_factor_one_and_distinct_gives_f_alpha():
    from seedgrpo.advantages import seed_advantages
    from seedgrpo.registry import GroupContext
    G = 8
    ids = torch.cat([torch.zeros(G, dtype=torch.long), torch.arange(G)])
    r = torch.tensor([1.0, 0.0] * G, dtype=torch.float64)
    for fn in ("linear", "exp", "focal", "reciprocal"):
        res = seed_advantages(GroupContext(rewards=r, group_size=G, cluster_ids=ids), uncertainty="se_rao",
                              scale_fn=fn, alpha=0.3)
        assert res.factor[0].item() == 1.0
        assert res.factor[1].item() == pytest.approx(loop_factor(0.3, fn), rel=1e-12)


@pytest.mark.parametrize("fn", ["linear", "exp", "focal", "reciprocal"])
def test_factor_range(fn):
    from seedgrpo.advantages import seed_advantages
    from seedgrpo.registry import GroupContext
    ids, r, logps = random_batch(20, 8, seed=2, n_answers=6)
    for alpha in (0.0417, 0.5, 1.0, 3.0):
        res = seed_advantages(GroupContext(rewards=r, group_size=8, cluster_ids=ids, seq_logprobs=logps),
                              scale_fn=fn, alpha=alpha)
        assert (res.factor <= 1.0).all()
        if fn in ("exp", "reciprocal") or alpha < 1.0:
            assert (res.factor > 0.0).all()
        else:
            assert (res.factor >= 0.0).all()


def test_permutation_invariance_within_groups():
    G = 7
    ids, r, logps = random_batch(5, G, seed=9)
    adv = seedgrpo.compute_advantages(r, G, ids, logps, alpha=0.9, scale_rewards="group")
    perm = torch.cat([g * G + torch.randperm(G, generator=torch.Generator().manual_seed(g)) for g in range(5)])
    adv_p = seedgrpo.compute_advantages(r[perm], G, ids[perm], logps[perm], alpha=0.9, scale_rewards="group")
    torch.testing.assert_close(adv_p, adv[perm], rtol=1e-12, atol=1e-14)
    # relabelling the clusters changes nothing either
    relabelled = torch.where(ids >= 0, ids * 17 + 123456789, ids)
    torch.testing.assert_close(seedgrpo.compute_advantages(r, G, relabelled, logps, alpha=0.9),
                               seedgrpo.compute_advantages(r, G, ids, logps, alpha=0.9))


def test_no_cluster_ids_means_no_scaling():
    _, r, _ = random_batch(3, 4, seed=1)
    assert torch.equal(seedgrpo.compute_advantages(r, 4, alpha=1.0), base_advantages(r, 4, "none"))


def test_registered_uncertainty_gets_full_context():
    seen = {}

    @seedgrpo.register_uncertainty("test_answer_count")
    def answer_count(ctx):
        seen["answers"], seen["texts"] = ctx.answers, ctx.texts
        n = torch.tensor([len({a for a in ctx.answers[g * ctx.group_size:(g + 1) * ctx.group_size]})
                          for g in range(ctx.num_groups)], dtype=torch.float64)
        return (n - 1) / (ctx.group_size - 1)

    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    answers = ["1", "2", "1", "3", "7", "7", "7", "7"]
    adv = seedgrpo.compute_advantages(r, 4, uncertainty="test_answer_count", alpha=1.0, scale_fn="linear",
                                      answers=answers, texts=[f"t{i}" for i in range(8)])
    assert seen["answers"] == answers and seen["texts"][0] == "t0"
    base = base_advantages(r, 4)
    torch.testing.assert_close(adv, base * torch.tensor([1 / 3] * 4 + [1.0] * 4))
    with pytest.raises(ValueError, match="already registered"):
        seedgrpo.register_uncertainty("test_answer_count")(lambda ctx: None)


def test_registered_advantage_estimator():
    @seedgrpo.register_advantage("test_sign")
    def sign_adv(ctx, **_):
        return torch.sign(base_advantages(ctx.rewards, ctx.group_size))

    r = torch.tensor([1.0, 0.0, 0.5, 0.5])
    got = seedgrpo.compute_advantages(r, 2, estimator="test_sign")
    assert got.tolist() == [1.0, -1.0, 0.0, 0.0]
    assert "grpo" in seedgrpo.list_advantages() and "seed_grpo" in seedgrpo.list_advantages()


@pytest.mark.parametrize("kwargs,match", [
    (dict(rewards=torch.ones(6), group_size=4), "does not divide"),
    (dict(rewards=torch.ones(6), group_size=0), "group_size"),
    (dict(rewards=torch.ones(6, dtype=torch.long), group_size=3), "float"),
    (dict(rewards=torch.ones(2, 3), group_size=3), "1-D"),
    (dict(rewards=torch.tensor([1.0, float("nan")]), group_size=2), "NaN"),
    (dict(rewards=torch.ones(6), group_size=3, cluster_ids=torch.zeros(5, dtype=torch.long)), "cluster_ids"),
    (dict(rewards=torch.ones(6), group_size=3, cluster_ids=torch.zeros(6, dtype=torch.long),
          seq_logprobs=torch.zeros(4)), "seq_logprobs"),
    (dict(rewards=torch.ones(6), group_size=3, uncertainty="nope"), "not registered"),
    (dict(rewards=torch.ones(6), group_size=3, scale_fn="cubic"), "scale_fn"),
    (dict(rewards=torch.ones(6), group_size=3, scale_rewards="rank"), "scale_rewards"),
    (dict(rewards=torch.ones(6), group_size=3, alpha=-1.0), "alpha"),
    (dict(rewards=torch.ones(6), group_size=3, embeddings=torch.ones(6)), "embeddings"),
])
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        seedgrpo.compute_advantages(**kwargs)


def test_semantic_entropy_validation():
    with pytest.raises(ValueError, match="estimator"):
        seedgrpo.semantic_entropy(torch.zeros(4, dtype=torch.long), 2, estimator="shannon")
    with pytest.raises(ValueError, match="integer"):
        seedgrpo.semantic_entropy(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="does not divide"):
        seedgrpo.semantic_entropy(torch.zeros(5, dtype=torch.long), 2)
