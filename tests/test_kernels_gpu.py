"""The compiled Triton kernels on a real GPU, at model-like shapes (skipped without CUDA).

Same acceptance rule as the CPU tests (float32 within 1e-5 relative, bf16 within twice the error of the PyTorch
bf16 reference, both against float64), plus the things only a GPU shows: autotuning with the gradient written
over the logits, Qwen's 151,936 vocabulary, and the memory the fused-linear path saves. Run by
``scripts/gpu-check.sh`` (``pytest -m gpu tests/test_kernels_gpu.py``).
"""
import pytest
import torch

from seedgrpo.kernels import _utils
from seedgrpo.kernels.fused_linear_grpo import fused_linear_grpo_loss
from seedgrpo.kernels.dispatch import grpo_loss_from_logits
from seedgrpo.kernels.selective_logprob import selective_logprob
from seedgrpo.loss import default_normalizer, token_logprobs_and_entropy  # noqa: F401
from test_kernels_fused_linear import check_linear, make_linear_batch, run_fused
from test_kernels_grpo_loss import CLIPS, METRICS, assert_close, check_against_reference, kernel_options, make_batch

pytestmark = pytest.mark.gpu
QWEN_VOCAB = 151936


def _cuda(batch):
    return {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def test_kernels_are_compiled_not_interpreted():
    assert torch.cuda.is_available() and not _utils.INTERPRET


@pytest.mark.parametrize("loss_type,clip,beta,dtype,V,inplace", [
    ("dapo", "epsilon_high", 0.04, torch.bfloat16, QWEN_VOCAB, True),
    ("grpo", "delta", 0.0, torch.bfloat16, 32000, True),
    ("dr_grpo", "symmetric", 0.04, torch.float32, 32000, False),
    ("bnpo", "delta", 0.04, torch.float16, 50257, True),  # a vocabulary no other test tunes first
])
def test_from_logits_matches_reference(loss_type, clip, beta, dtype, V, inplace):
    batch = _cuda(make_batch(B=8, T=64, V=V, temperature=0.7, dtype=dtype, seed=V, strided=True, beta=beta))
    cfg = dict(loss_type=loss_type, normalizer=default_normalizer(batch["mask"], loss_type, 64), beta=beta,
               temperature=0.7, **CLIPS[clip])
    full = batch["full"].clone().requires_grad_()
    loss, metrics = grpo_loss_from_logits(full[:, :-1], batch["ids"], batch["mask"], advantages=batch["advantages"],
                                          old_logprobs=batch["old"], ref_logprobs=batch["ref"], inplace=inplace,
                                          **kernel_options(cfg, batch["mask"]))
    loss.backward()
    check_against_reference(loss, metrics, full.grad[:, :-1], batch, dtype, cfg)


def test_group_factor_in_kernel_on_gpu():
    batch = _cuda(make_batch(B=16, T=32, V=32000, seed=1, beta=0.0))
    base = torch.randn(16, device="cuda")
    factor = torch.rand(2, device="cuda") + 0.5
    adv = base * factor.repeat_interleave(8)
    cfg = dict(loss_type="grpo", normalizer=16.0, beta=0.0, temperature=1.0, **CLIPS["symmetric"])
    logits = batch["logits"].clone().requires_grad_()
    loss, metrics = grpo_loss_from_logits(logits, batch["ids"], batch["mask"], advantages=base, group_size=8,
                                          group_factor=factor, old_logprobs=batch["old"],
                                          **kernel_options(cfg, batch["mask"]))
    loss.backward()
    check_against_reference(loss, metrics, logits.grad, batch, torch.float32, cfg, advantages=adv)


@pytest.mark.parametrize("dtype,V,H", [(torch.bfloat16, 32000, 1536), (torch.float32, 8192, 512)])
def test_fused_linear_triton_matches_reference(dtype, V, H):
    batch = _cuda(make_linear_batch(B=4, T=96, V=V, H=H, dtype=dtype, seed=2, temperature=0.7))
    cfg = dict(loss_type="dapo", normalizer=float(batch["mask"].sum()), beta=0.04, temperature=0.7,
               **CLIPS["epsilon_high"])
    loss, metrics, grads = run_fused(batch, "triton", cfg, chunk_size=128)
    check_linear(loss, metrics, grads, batch, dtype, cfg)


def test_fused_linear_backends_agree_on_gpu():
    batch = _cuda(make_linear_batch(B=4, T=64, V=32000, H=256, dtype=torch.float32, seed=3))
    cfg = dict(loss_type="grpo", normalizer=4.0, beta=0.04, temperature=1.0, **CLIPS["delta"])
    triton_run = run_fused(batch, "triton", cfg)
    torch_run = run_fused(batch, "torch", cfg)
    assert_close("loss", triton_run[0], torch_run[0], dtype=torch.float32)
    for name, a, b in zip(("grad_hidden", "grad_weight", "grad_bias"), triton_run[2], torch_run[2]):
        if b is not None:
            assert_close(name, a, b, dtype=torch.float32)
    for k in METRICS:
        assert_close(k, triton_run[1][k], torch_run[1][k], dtype=torch.float32)


def test_fused_linear_peak_memory_is_a_fraction_of_the_logits():
    """N = 8192 tokens of Qwen's vocabulary in bf16: the logits alone would be 2.5 GB; the fused path's peak
    above its inputs and gradients stays under half of that (one chunk of logits plus the matmul workspace)."""
    B, T, V, H = 8, 1024, QWEN_VOCAB, 1536
    g = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(B, T, H, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
    weight = (torch.randn(V, H, device="cuda", dtype=torch.bfloat16, generator=g) * H ** -0.5).requires_grad_()
    ids = torch.randint(0, V, (B, T), device="cuda", generator=g)
    mask = torch.ones(B, T, device="cuda")
    kw = dict(advantages=torch.randn(B, device="cuda"), weights=mask / float(B * T))
    fused_linear_grpo_loss(hidden, weight, ids, mask, **kw)[0].backward()  # warm-up: autotune, cuBLAS handles
    hidden.grad = weight.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fused_linear_grpo_loss(hidden, weight, ids, mask, **kw)[0].backward()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    grads = hidden.numel() * 2 + weight.numel() * (4 + 2)  # grad_hidden bf16, fp32 accumulator + bf16 copy
    logits_bytes = B * T * V * 2
    assert extra - grads < 0.5 * logits_bytes, (f"peak above inputs {extra / 2**20:.0f} MiB, gradients "
                                                f"{grads / 2**20:.0f} MiB, logits {logits_bytes / 2**20:.0f} MiB")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_selective_logprob_on_gpu(dtype):
    g = torch.Generator(device="cuda").manual_seed(4)
    logits = (torch.randn(4, 129, QWEN_VOCAB, device="cuda", generator=g) * 3).to(dtype)[:, :-1]
    ids = torch.randint(0, QWEN_VOCAB, (4, 128), device="cuda", generator=g)
    logp, entropy = selective_logprob(logits, ids, temperature=0.7, with_entropy=True)
    want = token_logprobs_and_entropy(logits.double(), ids, 0.7)
    lowp = None if dtype == torch.float32 else token_logprobs_and_entropy(logits, ids, 0.7)
    assert_close("logp", logp, want[0], dtype=dtype, torch_lowp=None if lowp is None else lowp[0])
    assert_close("entropy", entropy, want[1], dtype=dtype, torch_lowp=None if lowp is None else lowp[1])
    hidden = torch.randn(4, 128, 256, device="cuda", generator=g).to(dtype)
    weight = (torch.randn(QWEN_VOCAB, 256, device="cuda", generator=g) / 16).to(dtype)
    got = selective_logprob(None, ids, hidden=hidden, weight=weight, chunk_size=100)
    want = token_logprobs_and_entropy(torch.nn.functional.linear(hidden, weight).double(), ids)[0]
    assert_close("logp (hidden)", got, want, dtype=torch.float32, rtol=1e-4)
