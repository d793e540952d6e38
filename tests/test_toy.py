"""The embedded default (seedgrpo/tasks/toy.py): character tokenizer, tiny Qwen2, synthetic arithmetic problems."""
import operator
import re

import pytest
import torch

from seedgrpo.tasks import toy


@pytest.fixture(scope="module")
def tokenizer():
    return toy.make_tokenizer()


def test_tokenizer_is_one_token_per_character_and_round_trips(tokenizer):
    text = "12*34=\\boxed{408}\nThe answer: x_1 = -3.5"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens_are_distinct_and_skippable(tokenizer):
    specials = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id,
                tokenizer.unk_token_id}
    assert None not in specials and len(specials) == 4
    ids = tokenizer("7+8=", add_special_tokens=False).input_ids
    ids += [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "7+8="
    assert tokenizer.padding_side == "left"


def test_tokenizer_saves_and_loads_offline(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    toy.make_tokenizer(tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    text = "99*9=\\boxed{891}"
    assert loaded(text).input_ids == tokenizer(text).input_ids
    assert (loaded.pad_token_id, loaded.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)


def test_model_is_tiny_seeded_and_initialised_with_std_002(tokenizer):
    model = toy.make_model(tokenizer, layers=3, hidden=128, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n_params < 1.2e6
    assert model.config.vocab_size == len(tokenizer)
    std = model.model.layers[0].mlp.up_proj.weight.std().item()
    assert abs(std - 0.02) < 0.002
    same = toy.make_model(tokenizer, layers=3, hidden=128, seed=0)
    other = toy.make_model(tokenizer, layers=3, hidden=128, seed=1)
    w = model.model.embed_tokens.weight
    assert torch.equal(w, same.model.embed_tokens.weight)
    assert not torch.equal(w, other.model.embed_tokens.weight)


def test_model_generates_and_saves(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    model = toy.make_model(tokenizer, layers=1, hidden=32)
    batch = tokenizer(["1+1=", "12*3="], return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    prompt_len = batch.input_ids.shape[1]
    assert out.shape[0] == 2 and prompt_len < out.shape[1] <= prompt_len + 5
    model.save_pretrained(tmp_path / "m")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)


@pytest.mark.parametrize("bad", [dict(layers=0), dict(hidden=48)])
def test_model_rejects_bad_shapes(tokenizer, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        toy.make_model(tokenizer, **bad)


def test_problems_have_exact_answers_and_boxed_completions():
    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    for p in toy.arithmetic_problems(300, seed=3):
        a, op, b = re.fullmatch(r"(\d+)([-+*])(\d+)=", p.problem).groups()
        assert p.answer == str(ops[op](int(a), int(b)))
        assert int(p.answer) >= 0
        assert toy.completion_for(p) == f"\\boxed{{{p.answer}}}"
        assert p.meta["op"] == op


def test_problems_are_reproducible_distinct_and_mixed_in_difficulty():
    problems = toy.arithmetic_problems(500, seed=7)
    assert [p.problem for p in problems] == [p.problem for p in toy.arithmetic_problems(500, seed=7)]
    assert [p.problem for p in problems] != [p.problem for p in toy.arithmetic_problems(500, seed=8)]
    assert len({p.problem for p in problems}) == 500
    assert {p.meta["op"] for p in problems} == {"+", "-", "*"}
    assert {p.meta["digits"][0] for p in problems} == {1, 2}
    assert len({p.answer for p in problems}) > 120  # real answer diversity
    assert max(int(p.answer) for p in problems if p.meta["op"] == "*") < 900  # 2-digit × 1-digit


def test_problems_respect_ops_digits_and_exclusions():
    train = toy.arithmetic_problems(200, seed=0, ops="+", max_digits=3)
    assert all("+" in p.problem for p in train)
    assert max(len(p.problem.split("+")[0]) for p in train) == 3
    test = toy.arithmetic_problems(200, seed=0, ops="+", max_digits=3, exclude={p.problem for p in train})
    assert not {p.problem for p in train} & {p.problem for p in test}


@pytest.mark.parametrize("kwargs, name", [(dict(n=-1), "n"), (dict(n=5, ops="/"), "ops"),
                                          (dict(n=5, max_digits=0), "max_digits"),
                                          (dict(n=10_000, ops="*", max_digits=1), "n")])
def test_problems_reject_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        toy.arithmetic_problems(seed=0, **kwargs)


@pytest.mark.parametrize("max_digits", [1, 2, 3, 4])
def test_max_completion_tokens_is_the_longest_reference_plus_eos(tokenizer, max_digits):
    problems = toy.arithmetic_problems(200, seed=0, max_digits=max_digits)
    longest = max(len(tokenizer(toy.completion_for(p), add_special_tokens=False).input_ids) for p in problems)
    assert longest + 1 <= toy.max_completion_tokens(max_digits)
    # The bound is attained by the largest sum or product.
    top = 10 ** max_digits - 1
    biggest = max(top + top, top * (10 ** max(1, max_digits // 2) - 1))
    assert len(f"\\boxed{{{biggest}}}") + 1 == toy.max_completion_tokens(max_digits)
