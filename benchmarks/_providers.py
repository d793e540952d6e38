"""The benchmark's baselines and our kernels behind one interface, and the one input factory.

A provider turns the inputs of ``make_inputs`` into a scalar loss whose ``.backward()`` fills the gradients.
``kind`` says what it consumes: "logits" ([B, T+1, V] model output, sliced to [:, :-1] like a causal LM's) or
"linear" (hidden [B, T, H] + lm_head weight [V, H]; the logits are the provider's business). Used by
``benchmarks/bench_loss.py``; nothing here times anything.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from seedgrpo.kernels.reference import PolicyOptions, policy_loss
from seedgrpo.loss import token_logprobs_and_entropy, token_weights


@dataclass(frozen=True)
class LossSettings:
    """The loss configuration every provider runs with (TRL's names)."""
    loss_type: str = "dapo"
    beta: float = 0.04
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28
    temperature: float = 1.0


def make_inputs(n_tokens: int, vocab: int, hidden_size: int, *, kind: str, dtype: torch.dtype, device: str,
                seq_len: int = 1024, seed: int = 0) -> dict:
    """Inputs for ``n_tokens`` completion tokens (B = n_tokens / seq_len rows of seq_len): ids, a mask with
    completions of random length (at least half the row), advantages, old and reference log-probs, and either
    logits [B, T+1, V] or hidden + weight, all requiring grad where a policy would."""
    g = torch.Generator(device=device).manual_seed(seed)  # generated in place: a 10 GB logits tensor included
    T = min(seq_len, n_tokens)
    B = max(1, n_tokens // T)

    def randn(*shape, scale=1.0, dtype=torch.float32):
        return torch.randn(*shape, generator=g, device=device, dtype=dtype).mul_(scale)

    ids = torch.randint(0, vocab, (B, T), generator=g, device=device)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g, device=device)
    mask = (torch.arange(T, device=device) < lengths[:, None]).float()
    inputs = dict(
        ids=ids, mask=mask, advantages=randn(B), normalizer=float(mask.sum().clamp(min=1)), shape=(B, T),
        # Plausible log-probs of sampled tokens; their values only steer which clip branch each token takes.
        old=-torch.rand(B, T, generator=g, device=device) * 4, ref=-torch.rand(B, T, generator=g, device=device) * 4,
    )
    if kind == "logits":
        inputs["logits_full"] = randn(B, T + 1, vocab, scale=2.0, dtype=dtype).requires_grad_()
        # What a forward with logits_to_keep returns to our kernel: exactly the T completion rows, as a leaf of
        # its own (a view of the same storage), so that the in-place gradient stays in it: a slice of a
        # [B, T+1, V] leaf would make autograd allocate and copy a full-size gradient in its backward.
        inputs["logits"] = inputs["logits_full"].detach()[:, :-1].requires_grad_()
        inputs["leaves"] = [inputs["logits_full"], inputs["logits"]]
    else:
        inputs["hidden"] = randn(B, T, hidden_size, dtype=dtype).requires_grad_()
        inputs["weight"] = randn(vocab, hidden_size, scale=hidden_size ** -0.5, dtype=dtype).requires_grad_()
        inputs["leaves"] = [inputs["hidden"], inputs["weight"]]
    return inputs


def reference_loss(logits, ids, mask, advantages, old, ref, normalizer, s: LossSettings):
    """The PyTorch reference (seedgrpo.loss's public pieces), as eager code torch.compile can trace."""
    logp, _entropy = token_logprobs_and_entropy(logits, ids, s.temperature)
    opts = PolicyOptions(epsilon_low=s.epsilon_low, epsilon_high=s.epsilon_high, beta=s.beta,
                         temperature=s.temperature)
    return policy_loss(logp, None, mask=mask, weights=token_weights(mask, s.loss_type, normalizer),
                       advantages=advantages, old_logp=old, ref_logp=ref, opts=opts)[0]


_compiled_reference: Optional[Callable] = None


def _torch_eager(x, s):
    return reference_loss(x["logits_full"][:, :-1], x["ids"], x["mask"], x["advantages"], x["old"], x["ref"],
                          x["normalizer"], s)


def _torch_compile(x, s):
    global _compiled_reference
    if _compiled_reference is None:
        _compiled_reference = torch.compile(reference_loss)  # shapes go dynamic after the first recompile
    return _compiled_reference(x["logits_full"][:, :-1], x["ids"], x["mask"], x["advantages"], x["old"], x["ref"],
                               x["normalizer"], s)


def _torch_eager_linear(x, s):
    logits = F.linear(x["hidden"], x["weight"])  # materialised [B, T, V]: what the fused paths avoid
    return reference_loss(logits, x["ids"], x["mask"], x["advantages"], x["old"], x["ref"], x["normalizer"], s)


def _policy_kwargs(x, s):
    return dict(advantages=x["advantages"], old_logprobs=x["old"], ref_logprobs=x["ref"],
                weights=token_weights(x["mask"], s.loss_type, x["normalizer"]), epsilon_low=s.epsilon_low,
                epsilon_high=s.epsilon_high, beta=s.beta, temperature=s.temperature)


def _ours_logits(x, s):
    from seedgrpo.kernels.dispatch import grpo_loss_from_logits

    loss, _ = grpo_loss_from_logits(x["logits"], x["ids"], x["mask"], inplace=True, **_policy_kwargs(x, s))
    return loss


def _ours_fused_linear(backend):
    def run(x, s):
        from seedgrpo.kernels.fused_linear_grpo import fused_linear_grpo_loss

        loss, _ = fused_linear_grpo_loss(x["hidden"], x["weight"], x["ids"], x["mask"], backend=backend,
                                         **_policy_kwargs(x, s))
        return loss
    return run


def _liger_triton(x, s):
    from liger_kernel.transformers.grpo_loss import triton_grpo_loss

    # Liger takes the [B, T+1, V] model output and drops the last position itself.
    loss, _ = triton_grpo_loss(x["logits_full"], x["old"], x["ref"], x["ids"], x["advantages"], x["mask"],
                               temperature=s.temperature, beta=s.beta, eps_low=s.epsilon_low,
                               eps_high=s.epsilon_high, inplace=True, loss_type=s.loss_type, reduce=True)
    return loss


_liger_modules: dict = {}


def _liger_fused_linear(x, s):
    from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

    compiled = x["hidden"].is_cuda  # on the CPU it runs in plain torch
    key = (s, compiled)
    if key not in _liger_modules:
        _liger_modules[key] = LigerFusedLinearGRPOLoss(
            beta=s.beta, compiled=compiled, use_ref_model=s.beta != 0.0, epsilon_low=s.epsilon_low,
            epsilon_high=s.epsilon_high, loss_type=s.loss_type, temperature=s.temperature)
    loss, _ = _liger_modules[key](x["hidden"], x["weight"], x["ids"], x["mask"], x["advantages"],
                                  ref_per_token_logps=x["ref"], old_per_token_logps=x["old"])
    return loss


def _matmuls_only(x, s):
    """The three GEMMs of the fused-linear path at its chunking (logits, grad_hidden, grad_weight), no loss:
    the floor its time is compared with."""
    from seedgrpo.kernels._utils import chunk_logit_bytes, chunk_rows

    B, T = x["shape"]
    h = x["hidden"].detach().reshape(B * T, -1)
    w = x["weight"].detach()
    grad_weight = torch.zeros(w.shape, device=w.device, dtype=torch.float32)
    rows = chunk_rows(B * T, w.shape[0], w.device, logit_bytes=chunk_logit_bytes(w.dtype, with_grad=True))
    for start in range(0, B * T, rows):
        chunk = h[start:start + rows]
        logits = chunk @ w.t()
        _grad_hidden = logits @ w
        grad_weight += logits.t() @ chunk
    return torch.zeros((), device=w.device, requires_grad=True)  # a leaf: its backward does nothing


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str  # "logits" or "linear"
    devices: tuple  # device types it runs on
    run: Callable
    needs: str = ""  # a module that must be importable

    def available(self, device: str) -> bool:
        return device in self.devices and (not self.needs or _has(self.needs))


PROVIDERS = {p.name: p for p in (
    Provider("torch_eager", "logits", ("cuda", "cpu"), _torch_eager),
    Provider("torch_compile", "logits", ("cuda", "cpu"), _torch_compile),
    Provider("ours_logits", "logits", ("cuda",), _ours_logits),
    Provider("liger_triton", "logits", ("cuda",), _liger_triton, needs="liger_kernel"),
    Provider("torch_eager_linear", "linear", ("cuda", "cpu"), _torch_eager_linear),
    Provider("ours_fused_linear", "linear", ("cuda",), _ours_fused_linear("triton")),
    Provider("ours_fused_linear_torch", "linear", ("cuda", "cpu"), _ours_fused_linear("torch")),
    Provider("matmuls_only", "linear", ("cuda",), _matmuls_only),
    Provider("liger_fused_linear", "linear", ("cuda", "cpu"), _liger_fused_linear, needs="liger_kernel"),
)}
