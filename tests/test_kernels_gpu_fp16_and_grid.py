"""On a real GPU (skipped without CUDA): the fp16 gradients under DeepSpeed's 65536 loss scale and the
persistent-grid launch, compiled, at Qwen's vocabulary. Same acceptance rules as the CPU tests
(test_kernels_fp16_grad.py, test_kernels_persistent.py): against float64, within twice the error of PyTorch
in the same dtype. Run with ``pytest -m gpu tests/test_kernels_gpu_fp16_and_grid.py``."""
import pytest
import torch

from seedgrpo.kernels._inputs import TokenInputs, masked_metrics
from seedgrpo.kernels.fused_linear_grpo import fused_linear_grpo_loss
from seedgrpo.kernels.dispatch import grpo_loss_from_logits
from seedgrpo.kernels.persistent import PersistentGrid, launch_persistent
from seedgrpo.kernels.reference import PolicyOptions
from seedgrpo.loss import default_normalizer, token_weights
from test_kernels_fp16_grad import LEVELS, LOSS_SCALE, _kernel_kwargs, _reference_logits_grad, _reference_loss
from test_kernels_fused_linear import make_linear_batch
from test_kernels_grpo_loss import CLIPS, assert_close, check_against_reference, make_batch

pytestmark = pytest.mark.gpu
QWEN_VOCAB = 151936


def _cuda(batch):
    return {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("inplace", [True, False])
def test_fp16_logits_gradient_under_loss_scale_on_gpu(inplace, level):
    batch = _cuda(make_batch(B=4, T=64, V=QWEN_VOCAB, temperature=0.7, dtype=torch.float16, seed=5))
    full = batch["full"].clone().requires_grad_()
    kw = _kernel_kwargs(batch, level)
    loss, _ = grpo_loss_from_logits(full[:, :-1] * 1, kw.pop("completion_ids"), kw.pop("completion_mask"),
                                    inplace=inplace, **kw)
    (loss * LOSS_SCALE).backward()
    grad = full.grad[:, :-1]
    assert torch.isfinite(grad).all()
    assert_close("grad_logits", grad, _reference_logits_grad(batch, torch.float64, level), dtype=torch.float16,
                 torch_lowp=_reference_logits_grad(batch, torch.float16, level))


@pytest.mark.parametrize("level", LEVELS)
def test_fp16_fused_linear_gradients_under_loss_scale_on_gpu(level):
    batch = _cuda(make_linear_batch(B=4, T=96, V=32000, H=256, temperature=0.7, dtype=torch.float16, seed=6))
    leaves = [batch[k].clone().requires_grad_() for k in ("hidden", "weight", "bias")]
    kw = _kernel_kwargs(batch, level)
    loss, _ = fused_linear_grpo_loss(leaves[0], leaves[1], kw.pop("completion_ids"), kw.pop("completion_mask"),
                                     bias=leaves[2], chunk_size=128, **kw)
    (loss * LOSS_SCALE).backward()

    def reference(dtype):
        ref = [batch[k].detach().to(dtype).requires_grad_() for k in ("hidden", "weight", "bias")]
        (_reference_loss(torch.nn.functional.linear(*ref), batch, level) * LOSS_SCALE).backward()
        return [t.grad for t in ref]

    for name, leaf, want, lowp in zip(("grad_hidden", "grad_weight", "grad_bias"), leaves, reference(torch.float64),
                                      reference(torch.float16)):
        assert torch.isfinite(leaf.grad).all(), name
        assert_close(name, leaf.grad, want, dtype=torch.float16, torch_lowp=lowp)


@pytest.mark.parametrize("block", [(4096, 8), (8192, 16)])
def test_persistent_grid_matches_reference_and_does_not_depend_on_rows_in_flight(block):
    batch = _cuda(make_batch(B=8, T=64, V=QWEN_VOCAB, temperature=0.7, dtype=torch.bfloat16, seed=7,
                             strided=True))
    cfg = dict(loss_type="dapo", normalizer=default_normalizer(batch["mask"], "dapo", 64), beta=0.04,
               temperature=0.7, **CLIPS["epsilon_high"])
    config = PolicyOptions(epsilon_low=0.2, epsilon_high=0.28, delta=None, beta=0.04, temperature=0.7)
    tokens = TokenInputs(batch["ids"], batch["mask"], weights=token_weights(batch["mask"], "dapo", cfg["normalizer"]),
                         advantages=batch["advantages"], old_logprobs=batch["old"], ref_logprobs=batch["ref"],
                         opts=config, device=torch.device("cuda"))
    results = []
    for rows_in_flight in (132, 1000):
        full = batch["full"].clone()
        logits = full[:, :-1]
        out = launch_persistent(logits, tokens, config, grad=logits,
                                rows_in_flight=PersistentGrid(rows_in_flight, *block))
        results.append((out, logits.clone()))
    (a, grad_a), (b, grad_b) = results
    assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(grad_a, grad_b)
    w = tokens.weights.view(-1)
    loss = (w * a["loss"]).sum()
    metrics = masked_metrics(tokens.mask, a["kl"], a["entropy"], a["clip_low"], a["clip_high"])
    check_against_reference(loss, metrics, grad_a, batch, torch.bfloat16, cfg)
