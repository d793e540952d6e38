"""The data flow goes one way (config -> trainer -> seed_grpo_loss -> kernels): kernels/ imports nothing from
the rest of seedgrpo, and the training forward hands the kernel logits it may overwrite.

- every import in kernels/*.py is read from its AST: no `seedgrpo` module, no relative import that leaves the
  package (`from .. import x`);
- NaN/inf old/ref log-probs at masked positions (vLLM and TRL mark unscorable tokens NaN) take no part, on
  every implementation;
- the from-logits Triton path (compiled on a GPU, else the interpreter) with the trainer's forward (exactly T
  rows, sliced before the lm_head) and inplace=True: after backward the gradient lives in the logits' own
  storage and backward allocates no [N, V] buffer.
"""
import ast
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import seedgrpo
from seedgrpo.tasks import toy
from seedgrpo.modeling.training_forward import completion_forward
from kernel_device import DEVICE, on_device

KERNELS = Path(__file__).resolve().parent.parent / "kernels"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_kernels_import_nothing_from_seedgrpo():
    files = sorted(KERNELS.glob("*.py"))
    assert len(files) >= 10  # __init__, _utils, _inputs, reference, backward, dispatch, the five kernel files
    offending = [(f.name, module, level) for f in files for module, level in _imports(f)
                 if level > 1 or module == "seedgrpo" or module.startswith("seedgrpo.")]
    assert not offending, f"kernels/ must be a leaf (tensors and plain options in): {offending}"


def test_the_leaf_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..loss import token_weights\nimport seedgrpo.advantages\n")
    assert [(m, lvl) for m, lvl in _imports(bad)] == [("loss", 2), ("seedgrpo.advantages", 0)]


def _batch(seed=0, B=4, T=6, V=97):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T)
    mask[1, 3:] = 0
    mask[2] = 0
    old = -torch.rand(B, T, generator=g) * 3 - 2
    ref = old + 0.1 * torch.randn(B, T, generator=g)
    return on_device((logits, ids, mask, old, ref, torch.randn(B, generator=g)))


@pytest.mark.parametrize("form,impl", [("logits", "torch"), ("logits", "triton"), ("hidden", "torch"),
                                       ("hidden", "triton")])
@pytest.mark.parametrize("loss_type,level", [("dapo", "token"), ("grpo", "sequence"), ("vespo", "token")])
def test_non_finite_inputs_at_masked_positions_take_no_part(form, impl, loss_type, level):
    logits, ids, mask, old, ref, adv = _batch()
    hidden = on_device(torch.randn(4, 6, 16, generator=torch.Generator().manual_seed(3)))
    weight = on_device(torch.randn(97, 16, generator=torch.Generator().manual_seed(4)) * 0.3)
    kw = dict(completion_ids=ids, completion_mask=mask, advantages=adv, beta=0.05, loss_type=loss_type,
              importance_sampling_level=level, off_policy_mask_threshold=0.5,
              importance_sampling_ratio=on_device(torch.full((4, 6), 0.9)), impl=impl)

    def run(old_lp, ref_lp, isr):
        if form == "logits":
            x = logits.clone().requires_grad_()
            loss, metrics = seedgrpo.seed_grpo_loss(x, old_logprobs=old_lp, ref_logprobs=ref_lp,
                                                    **dict(kw, importance_sampling_ratio=isr))
        else:
            x = hidden.clone().requires_grad_()
            loss, metrics = seedgrpo.seed_grpo_loss(hidden=x, weight=weight, old_logprobs=old_lp,
                                                    ref_logprobs=ref_lp, **dict(kw, importance_sampling_ratio=isr))
        loss.backward()
        return loss, metrics, x.grad

    padding = mask == 0
    clean = run(old, ref, kw["importance_sampling_ratio"])
    poisoned = run(old.masked_fill(padding, float("nan")), ref.masked_fill(padding, float("inf")),
                   kw["importance_sampling_ratio"].masked_fill(padding, float("nan")))
    assert torch.isfinite(clean[0]) and clean[0].item() != 0.0
    assert torch.equal(poisoned[0], clean[0])
    assert torch.equal(poisoned[2], clean[2])
    for k in ("kl", "entropy", "clip_ratio_low", "clip_ratio_high"):
        assert torch.equal(poisoned[1][k], clean[1][k]), k


class _BigAllocations(TorchDispatchMode):
    """Records every op output of at least ``numel`` elements over a last dimension of ``vocab`` (logits-like)
    that does not alias ``storage``."""

    def __init__(self, numel, vocab, storage_ptr):
        super().__init__()
        self.numel, self.vocab, self.storage_ptr, self.seen = numel, vocab, storage_ptr, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() >= self.numel and t.shape[-1] == self.vocab \
                    and t.untyped_storage().data_ptr() != self.storage_ptr:
                self.seen.append((str(func), tuple(t.shape)))
        return out


@pytest.mark.parametrize("share_prefix", [False, True])
def test_trainer_forward_and_inplace_kernel_keep_the_gradient_in_the_logits(share_prefix):
    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=1, hidden=32, seed=0).to(DEVICE)
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    B, P, T = 4, 5, 9  # B * T = 36 > H = 32: the [H, V] weight gradient is smaller than [N, V]
    prompt_ids = torch.randint(3, V, (B // 2, P), generator=g).repeat_interleave(2, 0)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    ids = torch.randint(3, V, (B, T), generator=g)
    mask = torch.ones(B, T)
    mask[0, 6:] = 0
    prompt_ids, prompt_mask, ids, mask = on_device((prompt_ids, prompt_mask, ids, mask))
    logits = completion_forward(model, prompt_ids, prompt_mask, ids, mask.long(), output="logits",
                                share_prefix=share_prefix)
    assert logits.shape == (B, T, V) and logits.is_contiguous()
    # the same rows the full [B, P+T, V] forward gives for positions P-1 .. P+T-2 (on completion tokens)
    with torch.no_grad():
        full = model(input_ids=torch.cat([prompt_ids, ids], 1),
                     attention_mask=torch.cat([prompt_mask, mask.long()], 1)).logits[:, P - 1:-1]
    valid = mask.bool()
    torch.testing.assert_close(logits.detach()[valid], full[valid], rtol=1e-4, atol=1e-5)
    storage = logits.untyped_storage().data_ptr()
    seen_grad = []
    logits.register_hook(lambda grad: seen_grad.append(grad.untyped_storage().data_ptr()))
    loss, _ = seedgrpo.seed_grpo_loss(logits, completion_ids=ids, completion_mask=mask,
                                      advantages=on_device(torch.randn(B, generator=g)), impl="triton",
                                      inplace=True, loss_type="dapo")
    with _BigAllocations(B * T * V, V, storage) as big:
        loss.backward()
    assert seen_grad == [storage], "the logits' gradient is not the logits' own buffer"
    assert not big.seen, f"backward allocated [N, V]-sized buffers: {big.seen}"
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0
