"""GCPO-style uncertainties (seedgrpo/gcpo.py): float64 references written here from docs/gcpo.md, the limits
that fix each normalisation, invariances (row order, masks, scale), and the wiring through compute_advantages
and seed_grpo_loss."""
import math

import numpy as np
import pytest
import torch

import seedgrpo.gcpo as gcpo
from seedgrpo.advantages import SCALE_FNS, compute_advantages, seed_advantages
from seedgrpo.loss import seed_grpo_loss
from seedgrpo.registry import GroupContext, get_uncertainty, list_uncertainties

NAMES = ("gcpo_cd", "gcpo_bot", "gcpo_calibrated", "kle")
TAU = 1e-4  # DISPERSION_FLOOR as documented


# ------------------------------------------------------------------ references: one group at a time, numpy


def _active_units(e, mask):
    rows = [i for i in range(len(e)) if (mask is None or mask[i]) and np.linalg.norm(e[i]) > 0]
    return rows, {i: e[i] / np.linalg.norm(e[i]) for i in rows}


def ref_cd(e, mask=None):
    rows, u = _active_units(e, mask)
    n = len(rows)
    if n < 2:
        return 0.0
    mean = sum(u[i] for i in rows) / n
    return float(np.clip((1 - np.linalg.norm(mean)) / (1 - 1 / math.sqrt(n)), 0, 1))


def ref_bot(e, ids, logp=None, mask=None):
    rows, u = _active_units(e, mask)
    n = len(rows)
    if n < 2:
        return 0.0
    clusters = {}
    for i in rows:
        key = ("row", i) if ids[i] < 0 else ("id", int(ids[i]))
        clusters.setdefault(key, []).append(i)
    raw = {i: math.exp(logp[i]) if logp is not None else 1.0 for i in rows}
    z = sum(raw.values())
    mass = {k: sum(raw[i] for i in members) / z for k, members in clusters.items()}
    centroid = {k: sum(u[i] for i in members) / len(members) for k, members in clusters.items()}
    bary = sum(mass[k] * centroid[k] for k in clusters)
    transport = sum(mass[k] * float(np.sum((centroid[k] - bary) ** 2)) for k in clusters)
    return float(np.clip(transport / (1 - 1 / n), 0, 1))


def ref_rd(r, mask=None):
    vals = [r[i] for i in range(len(r)) if mask is None or mask[i]]
    return 0.0 if len(vals) < 2 else float(min(1.0, np.std(vals) / 0.5))


def ref_calibrated(e, r, mask=None):
    rows, u = _active_units(e, mask)
    n = len(rows)
    if n < 2:
        return 0.0
    mean_r = sum(r[i] for i in rows) / n
    tol = 1e-6 * max(1.0, max(abs(r[i]) for i in rows))
    classes = [[i for i in rows if r[i] - mean_r > tol], [i for i in rows if r[i] - mean_r <= tol]]

    def spread(members):
        if not members:
            return 0.0
        c = sum(u[i] for i in members) / len(members)
        return sum(float(np.sum((u[i] - c) ** 2)) for i in members)

    within = spread(classes[0]) + spread(classes[1])
    return float(np.clip(within / max(spread(rows), n * TAU), 0, 1))


def ref_kle(e, mask=None):
    rows, u = _active_units(e, mask)
    n = len(rows)
    if n < 2:
        return 0.0
    k = np.array([[float(u[i] @ u[j]) ** 2 for j in rows] for i in rows]) / n
    lam = np.clip(np.linalg.eigvalsh(k), 0, None)
    h = -sum(x * math.log(x) for x in lam if x > 0)
    return float(np.clip(h / math.log(n), 0, 1))


def per_group(fn, g, *arrays, mask=None):
    out = []
    for s in range(0, len(arrays[0]), g):
        parts = [a[s:s + g] if a is not None else None for a in arrays]
        out.append(fn(*parts, mask=None if mask is None else mask[s:s + g]))
    return torch.tensor(out, dtype=torch.float64)


def make_batch(num_groups, g, dim, seed, *, binary=True, with_mask=True):
    gen = torch.Generator().manual_seed(seed)
    # Few "answer directions" plus noise, so groups have shared answers and real clusters.
    centers = torch.randn(3, dim, generator=gen)
    which = torch.randint(0, 3, (num_groups * g,), generator=gen)
    e = centers[which] + 0.3 * torch.randn(num_groups * g, dim, generator=gen)
    if binary:
        r = torch.randint(0, 2, (num_groups * g,), generator=gen).double()
    else:
        r = torch.rand(num_groups * g, generator=gen, dtype=torch.float64)
    ids = which.clone()
    ids[torch.rand(num_groups * g, generator=gen) < 0.2] = -1
    logp = -torch.rand(num_groups * g, generator=gen, dtype=torch.float64) * 3
    mask = torch.rand(num_groups * g, generator=gen) > 0.25 if with_mask else None
    return e.double(), r, ids, logp, mask


def ctx_of(e, r, g, ids=None, logp=None, mask=None):
    return GroupContext(rewards=r, group_size=g, cluster_ids=ids, seq_logprobs=logp, embeddings=e, mask=mask)


# ------------------------------------------------------------------ against the references


@pytest.mark.parametrize("num_groups,g,dim,seed", [(3, 8, 16, 0), (5, 4, 3, 1), (2, 7, 33, 2), (4, 2, 5, 3)])
@pytest.mark.parametrize("binary", [True, False])
def test_matches_float64_references(num_groups, g, dim, seed, binary):
    e, r, ids, logp, mask = make_batch(num_groups, g, dim, seed, binary=binary)
    en, rn, idn, lpn, mn = e.numpy(), r.numpy(), ids.numpy(), logp.numpy(), mask.numpy()
    checks = [
        (gcpo.cosine_dispersion(e, g, mask=mask), per_group(ref_cd, g, en, mask=mn)),
        (gcpo.barycentric_transport(e, g, ids, logp, mask=mask),
         per_group(ref_bot, g, en, idn, lpn, mask=mn)),
        (gcpo.barycentric_transport(e, g, ids, mask=mask), per_group(ref_bot, g, en, idn, None, mask=mn)),
        (gcpo.reward_dispersion(r, g, mask=mask), per_group(ref_rd, g, rn, mask=mn)),
        (gcpo.calibrated_dispersion(e, r, g, mask=mask), per_group(ref_calibrated, g, en, rn, mask=mn)),
        (gcpo.kernel_entropy(e, g, mask=mask), per_group(ref_kle, g, en, mask=mn)),
    ]
    for got, want in checks:
        assert got.dtype == torch.float64 and got.shape == (num_groups,)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
        assert ((got >= 0) & (got <= 1)).all()


def test_registered_and_equal_to_functions():
    assert set(NAMES) <= set(list_uncertainties())
    e, r, ids, logp, mask = make_batch(3, 6, 8, 7)
    ctx = ctx_of(e, r, 6, ids, logp, mask)
    torch.testing.assert_close(get_uncertainty("gcpo_cd")(ctx), gcpo.cosine_dispersion(e, 6, mask=mask))
    torch.testing.assert_close(get_uncertainty("gcpo_bot")(ctx),
                               gcpo.barycentric_transport(e, 6, ids, logp, mask=mask))
    torch.testing.assert_close(get_uncertainty("gcpo_calibrated")(ctx),
                               gcpo.calibrated_dispersion(e, r, 6, mask=mask))
    torch.testing.assert_close(get_uncertainty("kle")(ctx), gcpo.kernel_entropy(e, 6, mask=mask))


# ------------------------------------------------------------------ the limits that fix the normalisations


@pytest.mark.parametrize("g", [2, 3, 8])
def test_identical_answers_give_zero(g):
    norms = torch.linspace(0.5, 2.0, g, dtype=torch.float64).unsqueeze(1)
    e = torch.randn(1, 11, dtype=torch.float64).repeat(g, 1) * norms  # one direction, any norm
    r = torch.tensor([1.0, 0.0] * (g // 2) + [1.0] * (g % 2))
    ids = torch.zeros(g, dtype=torch.long)
    ctx = ctx_of(e, r, g, ids)
    for name in NAMES:
        assert get_uncertainty(name)(ctx).item() == pytest.approx(0.0, abs=1e-12), name


@pytest.mark.parametrize("g", [2, 4, 8])
def test_orthogonal_answers_reach_one(g):
    e = torch.eye(g, 16)
    ids = torch.arange(g)
    r = torch.ones(g)  # one reward class: nothing explains the spread
    ctx = ctx_of(e, r, g, ids)
    for name in NAMES:
        assert get_uncertainty(name)(ctx).item() == pytest.approx(1.0, abs=1e-12), name
    # Without the normalisation CD would be 1 - 1/sqrt(G) and BoT 1 - 1/G: check the raw values behind them.
    mean_norm = e.mean(0).norm().item()
    assert 1 - mean_norm == pytest.approx(1 - 1 / math.sqrt(g))


def test_negative_cosines_clip_at_one():
    e = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    ids = torch.arange(4)
    assert gcpo.cosine_dispersion(e, 4).item() == 1.0  # |ē| = 0 < 1/2: raw ratio 2, clipped
    assert gcpo.barycentric_transport(e, 4, ids).item() == 1.0
    # cos² counts an antipodal pair as one answer: two distinct directions of four rows -> log 2 / log 4.
    assert gcpo.kernel_entropy(e, 4).item() == pytest.approx(0.5)


def test_bot_is_normalised_gini_simpson_for_orthogonal_clusters():
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    e = torch.nn.functional.one_hot(ids, 6).double()
    p = torch.bincount(ids).double() / 8
    want = (1 - (p ** 2).sum()) / (1 - 1 / 8)
    assert gcpo.barycentric_transport(e, 8, ids).item() == pytest.approx(want.item(), abs=1e-12)
    logp = torch.linspace(-2.0, -0.5, 8, dtype=torch.float64)
    w = torch.softmax(logp, 0)
    pw = torch.zeros(4, dtype=torch.float64).index_add_(0, ids, w)
    want_rao = (1 - (pw ** 2).sum()) / (1 - 1 / 8)
    assert gcpo.barycentric_transport(e, 8, ids, logp).item() == pytest.approx(want_rao.item(), abs=1e-12)


def test_kle_is_discrete_semantic_entropy_for_orthogonal_clusters():
    import seedgrpo.uncertainty  # noqa: F401  (registers se_discrete)

    # One-hot embeddings per cluster: cos² is block-diagonal with all-ones blocks, eigenvalues n_k / n.
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 0, 1, 1, 1, 1, 1, 2, 2])
    e = torch.nn.functional.one_hot(ids, 5).double()
    ctx = ctx_of(e, torch.zeros(16), 8, ids)
    torch.testing.assert_close(get_uncertainty("kle")(ctx), get_uncertainty("se_discrete")(ctx),
                               rtol=1e-10, atol=1e-12)


def test_bot_sees_distance_between_clusters_unlike_entropy():
    # Two clusters of equal mass: near answers transport little, far answers much (the anisotropic gap).
    ids = torch.tensor([0, 0, 1, 1])
    near = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.95, 0.05], [0.95, 0.05]])
    far = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert gcpo.barycentric_transport(near, 4, ids).item() < 0.01
    assert gcpo.barycentric_transport(far, 4, ids).item() == pytest.approx(0.5 / 0.75)


def test_calibrated_zero_when_rewards_explain_all_dispersion():
    a, b = torch.randn(2, 9, dtype=torch.float64)
    e = torch.stack([a, a, b, b, a])
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])
    assert gcpo.calibrated_dispersion(e, r, 5).item() == pytest.approx(0.0, abs=1e-12)
    # Same answers, rewards unrelated to them: class centroids coincide -> all dispersion unexplained.
    e2 = torch.stack([a, b, a, b])
    r2 = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert gcpo.calibrated_dispersion(e2, r2, 4).item() == pytest.approx(1.0, abs=1e-12)


def test_calibrated_degenerate_cases():
    a, b = torch.randn(2, 5, dtype=torch.float64)
    equal_rewards = torch.full((4,), 0.3)
    # All rewards equal: one class; different answers -> 1, identical answers -> 0.
    differ = torch.stack([a, b, a, b])
    assert gcpo.calibrated_dispersion(differ, equal_rewards, 4).item() == pytest.approx(1.0)
    assert gcpo.calibrated_dispersion(torch.stack([a, a, a, a]), equal_rewards, 4).item() == 0.0
    # Spread below the noise floor does not give a ratio of noise.
    noisy = a.repeat(4, 1) + 1e-7 * torch.randn(4, 5, dtype=torch.float64)
    assert gcpo.calibrated_dispersion(noisy, torch.tensor([1.0, 0.0, 1.0, 0.0]), 4).item() < 1e-6


def test_calibrated_ignores_a_shared_direction_that_flattens_the_others():
    # Anisotropic embeddings (policy hidden states): a common component k*c pulls every answer together.
    gen = torch.Generator().manual_seed(5)
    c = torch.randn(64, generator=gen, dtype=torch.float64)
    d = torch.randn(8, 64, generator=gen, dtype=torch.float64)
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    spread = {k: gcpo.calibrated_dispersion(k * c + d, r, 8).item() for k in (0, 10, 30)}
    cd = {k: gcpo.cosine_dispersion(k * c + d, 8).item() for k in (0, 10, 30)}
    assert cd[30] < cd[0] / 100  # the geometric measures collapse ...
    assert max(spread.values()) - min(spread.values()) < 0.01  # ... the calibrated share does not
    # Past the noise floor (all cosines above ~0.9999) it gives way, by design.
    assert gcpo.calibrated_dispersion(1000 * c + d, r, 8).item() < 0.5 * spread[0]


def test_reward_dispersion_limits():
    r = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    rd = gcpo.reward_dispersion(r, 4)
    assert rd[0].item() == pytest.approx(1.0) and rd[1].item() == 0.0
    assert rd[2].item() == pytest.approx(math.sqrt(3 / 16) / 0.5)


def test_groups_of_one_and_empty_groups_are_zero():
    e = torch.randn(3, 4)
    r = torch.tensor([1.0, 0.0, 1.0])
    for name in NAMES:
        u = get_uncertainty(name)(ctx_of(e, r, 1, torch.arange(3)))
        assert torch.equal(u, torch.zeros(3, dtype=u.dtype)), name
    mask = torch.tensor([False, False, True, False])
    ctx = ctx_of(torch.randn(4, 4), torch.tensor([1.0, 0, 1, 0]), 2, torch.arange(4), mask=mask)
    for name in NAMES:
        assert torch.equal(get_uncertainty(name)(ctx), torch.zeros(2, dtype=torch.float64)), name


# ------------------------------------------------------------------ invariances


@pytest.mark.parametrize("seed", range(4))
def test_permutation_invariance_within_groups(seed):
    num_groups, g = 3, 6
    e, r, ids, logp, mask = make_batch(num_groups, g, 7, seed, binary=seed % 2 == 0)
    gen = torch.Generator().manual_seed(100 + seed)
    perm = torch.cat([torch.randperm(g, generator=gen) + k * g for k in range(num_groups)])
    before = ctx_of(e, r, g, ids, logp, mask)
    after = ctx_of(e[perm], r[perm], g, ids[perm], logp[perm], mask[perm])
    for name in NAMES:
        torch.testing.assert_close(get_uncertainty(name)(after), get_uncertainty(name)(before),
                                   rtol=1e-10, atol=1e-12)


def test_masked_rows_take_no_part():
    e, r, ids, logp, _ = make_batch(1, 8, 5, 11)
    mask = torch.tensor([True, False, True, True, False, True, True, True])
    keep = mask.nonzero().flatten()
    e2, r2 = e.clone(), r.clone()
    e2[~mask] = torch.randn(2, 5, dtype=torch.float64) * 100  # whatever the masked rows hold
    r2[~mask] = torch.tensor([7.0, -3.0], dtype=torch.float64)
    masked = ctx_of(e2, r2, 8, ids, logp, mask)
    # The same group with the masked rows removed (a group of 6).
    removed = ctx_of(e[keep], r[keep], 6, ids[keep], logp[keep])
    for name in NAMES:
        torch.testing.assert_close(get_uncertainty(name)(masked), get_uncertainty(name)(removed),
                                   rtol=1e-10, atol=1e-12)


def test_zero_embedding_rows_are_masked_rows():
    e, r, ids, logp, _ = make_batch(2, 4, 6, 12, with_mask=False)
    e[1] = 0.0
    mask = torch.ones(8, dtype=torch.bool)
    mask[1] = False
    for name in NAMES:
        torch.testing.assert_close(get_uncertainty(name)(ctx_of(e, r, 4, ids, logp)),
                                   get_uncertainty(name)(ctx_of(e, r, 4, ids, logp, mask)))


def test_invariant_to_row_norms_and_low_precision_inputs():
    e, r, ids, logp, mask = make_batch(2, 5, 8, 13)
    scaled = e * torch.rand(10, 1, dtype=torch.float64).add(0.1) * 50
    for name in NAMES:
        fn = get_uncertainty(name)
        base = fn(ctx_of(e, r, 5, ids, logp, mask))
        torch.testing.assert_close(fn(ctx_of(scaled, r, 5, ids, logp, mask)), base, rtol=1e-9, atol=1e-12)
        low = fn(ctx_of(e.bfloat16(), r.float(), 5, ids, logp.float(), mask))
        torch.testing.assert_close(low, base, rtol=0, atol=0.05)  # bf16 inputs: same within rounding


# ------------------------------------------------------------------ through compute_advantages and the loss


@pytest.mark.parametrize("name", NAMES)
def test_alpha_zero_leaves_advantages_unchanged(name):
    e, r, ids, logp, mask = make_batch(3, 4, 6, 21)
    plain = compute_advantages(r, 4, uncertainty=None)
    got = compute_advantages(r, 4, ids, logp, embeddings=e, uncertainty=name, alpha=0.0, mask=mask)
    assert torch.equal(got, plain)


@pytest.mark.parametrize("name", NAMES)
def test_identical_embeddings_give_factor_one(name):
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    e = torch.randn(1, 12).repeat(6, 1)
    ids = torch.zeros(6, dtype=torch.long)
    got = compute_advantages(r, 3, ids, embeddings=e, uncertainty=name, alpha=5.0)
    torch.testing.assert_close(got, compute_advantages(r, 3, uncertainty=None))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale_fn", SCALE_FNS)
def test_factor_in_unit_interval_and_applied_per_group(name, scale_fn):
    e, r, ids, logp, mask = make_batch(4, 4, 6, 31, with_mask=False)
    alpha = 0.9  # below 1 so that linear and focal stay above 0 even at U = 1
    res = seed_advantages(ctx_of(e, r, 4, ids, logp), uncertainty=name, scale_fn=scale_fn, alpha=alpha)
    assert ((res.factor > 0) & (res.factor <= 1)).all()
    u = get_uncertainty(name)(ctx_of(e, r, 4, ids, logp))
    torch.testing.assert_close(res.uncertainty, u)
    base = compute_advantages(r, 4, uncertainty=None).double()
    torch.testing.assert_close(res.advantages.double(), base * res.factor.repeat_interleave(4))


def test_missing_or_bad_embeddings_raise_value_errors():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    for name in NAMES:
        with pytest.raises(ValueError, match="embeddings"):
            compute_advantages(r, 2, torch.arange(4), uncertainty=name)
    bad_inputs = [torch.randn(4), torch.randn(3, 5), torch.randint(0, 3, (4, 5)),
                  torch.tensor([[1.0, float("nan")]] * 4)]
    for bad in bad_inputs:
        with pytest.raises(ValueError, match="embeddings"):
            compute_advantages(r, 2, torch.arange(4), embeddings=bad, uncertainty="gcpo_cd")
    with pytest.raises(ValueError, match="cluster_ids"):
        compute_advantages(r, 2, embeddings=torch.randn(4, 3), uncertainty="gcpo_bot")
    with pytest.raises(ValueError, match="cluster_ids"):
        gcpo.barycentric_transport(torch.randn(4, 3), 2, torch.zeros(4))
    with pytest.raises(ValueError, match="group_size"):
        gcpo.cosine_dispersion(torch.randn(5, 3), 2)


@pytest.mark.parametrize("name", NAMES)
def test_seed_grpo_loss_passes_embeddings_through(name):
    torch.manual_seed(0)
    b, t, v, g = 8, 5, 11, 4
    logits = torch.randn(b, t, v, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, v, (b, t))
    mask = torch.ones(b, t)
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    cluster = torch.tensor([0, 1, 2, 0, 0, 0, 1, 0])
    e = torch.randn(b, 6, dtype=torch.float64)
    # explicit sequence log-probs, so that gcpo_bot's Rao masses are the same on both sides
    seq = -torch.rand(b, dtype=torch.float64)
    loss, metrics = seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, rewards=r, group_size=g,
                                   cluster_ids=cluster, seq_logprobs=seq, embeddings=e, uncertainty=name,
                                   alpha=1.0, impl="torch")
    u = get_uncertainty(name)(ctx_of(e, r, g, cluster, seq, mask.bool().any(-1)))
    torch.testing.assert_close(metrics["semantic_entropy"].double(), u.mean(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(metrics["advantage_scale"].double(), (1 / (1 + u)).mean(),
                               rtol=1e-6, atol=1e-7)
    adv = compute_advantages(r, g, cluster, seq, embeddings=e, uncertainty=name, alpha=1.0)
    ref, _ = seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask, advantages=adv, impl="torch")
    torch.testing.assert_close(loss, ref)


@pytest.mark.gpu
def test_cuda_inputs_match_cpu():
    e, r, ids, logp, mask = make_batch(4, 8, 64, 41)
    cpu = ctx_of(e, r, 8, ids, logp, mask)
    cuda = ctx_of(e.cuda(), r.cuda(), 8, ids.cuda(), logp.cuda(), mask.cuda())
    for name in NAMES:
        got = get_uncertainty(name)(cuda)
        assert got.is_cuda
        torch.testing.assert_close(got.cpu(), get_uncertainty(name)(cpu), rtol=1e-9, atol=1e-10)
