"""The engine pieces of issue 14 on a real GPU (skipped without CUDA; run by scripts/gpu-check.sh's tests stage):
the free-memory probe the ZeRO-3 gather decision reads, and bf16 training with float32 masters on CUDA."""
import pytest
import torch

pytestmark = pytest.mark.gpu


def test_free_memory_probe_reads_this_gpu():
    from seedgrpo.rollout.hf import free_accelerator_bytes

    free = free_accelerator_bytes()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    assert isinstance(free, int) and 0 < free <= total


def test_bf16_policy_keeps_float32_masters_on_the_gpu(tmp_path):
    from seedgrpo.tasks import toy
    from seedgrpo.training.config import load_config
    from seedgrpo.training.engine import TorchPolicy

    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=2, hidden=64, seed=0).to(torch.bfloat16)
    config = load_config(None, {"learning_rate": 1e-6, "output_dir": str(tmp_path)})
    policy = TorchPolicy(model, config, gas=1, total_optimizer_steps=3)
    assert all(m.is_cuda and m.dtype == torch.float32 for m in policy.masters)
    before = [m.clone() for m in policy.masters]
    ids = torch.randint(3, len(tokenizer), (4, 16), device="cuda")
    for _ in range(3):
        policy.backward(policy.model(input_ids=ids).logits.float().logsumexp(-1).mean())
        assert policy.step()
    for b, m, p in zip(before, policy.masters, policy.params):
        assert (m - b).abs().max() > 0 and torch.equal(p, m.to(torch.bfloat16))
