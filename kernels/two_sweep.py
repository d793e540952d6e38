"""The two-sweep loss from logits, for the policy losses whose token terms need a statistic of the whole row
or batch of current log-probs or entropies: GSPO's sequence ratio, VESPO's sequence weight, the off-policy and
entropy masks
(and, with the same machinery, cispo, sapo, importance-sampling ratios and the entropy bonus).

    sweep 1   selective_logprob kernel: logp and entropy H of every token (no gradient)
    between   kernels/reference.py's per-token math on [B, T] float32 with autograd: the loss, and
              c_logp = d loss / d logp, c_ent = d loss / d H per token
    sweep 2   this module's kernel: grad[v] = (c_logp (onehot - p_v) - c_ent p_v (log p_v + H)) / T
              (the gradient sweep the one-pass kernel also runs: _utils.write_logit_grad; over the logits
              themselves with inplace=True); backward.py scales it by grad_output

Each row is read twice and its gradient written once, as in the one-pass kernel of one_pass.py, so a
sequence-level loss costs what a token-level one does; the step between the sweeps touches [B, T] only.
(dH/dz_v = -p_v (log p_v + H), with log p_v = z_v - lse; lse is recovered as z[target] - logp.)

``fused_linear_grpo.py`` runs the same sweeps on chunks of recomputed logits.
Tests: ``pytest tests/test_policy_family.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._inputs import STAT_NAMES, TokenInputs, masked_metrics
from ._utils import INTERPRET, block_v_for, row_layout, target_logit, write_logit_grad, write_zero_row
from .backward import keep_logit_grad, logit_grad_buffer, scaled_logit_grad
from .reference import PolicyOptions, policy_loss
from .selective_logprob import _launch as launch_selective_logprob

__all__ = ["TwoSweepLossFromLogits", "token_coefficients", "launch_logit_grad", "torch_logit_grad"]

# One fixed launch rather than autotuning: the gradient may overwrite the logits, which an autotuner's
# repeated benchmark runs would then read as logits. A 4,096-wide block with 8 warps is in the middle of the
# loss kernel's tuning list (a streaming read-modify-write like its second sweep).
_GPU_BLOCK_V = 4096
_GPU_NUM_WARPS = 8


@triton.jit
def _logit_grad_kernel(LOGITS, stride_logits_b, stride_logits_t, GRAD, stride_grad_b, stride_grad_t,
                       IDS, LOGP, ENTROPY, C_LOGP, C_ENT, token_offset, logits_rows, V, inv_temperature,
                       HAS_ENTROPY_GRAD: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK_V: tl.constexpr):
    # Program i: logits row i (row i // logits_rows, i % logits_rows) and flattened token token_offset + i.
    pid = tl.program_id(0).to(tl.int64)
    row_ptr = LOGITS + (pid // logits_rows) * stride_logits_b + (pid % logits_rows) * stride_logits_t
    grad_ptr = GRAD + (pid // logits_rows) * stride_grad_b + (pid % logits_rows) * stride_grad_t
    n = token_offset + pid
    c_logp = tl.load(C_LOGP + n)
    c_ent = 0.0
    if HAS_ENTROPY_GRAD:
        c_ent = tl.load(C_ENT + n)
    if (c_logp == 0.0) & (c_ent == 0.0):
        write_zero_row(grad_ptr, V, BLOCK_V)
        return
    target = tl.load(IDS + n)
    lse = target_logit(row_ptr, target, V, inv_temperature) - tl.load(LOGP + n)
    write_logit_grad(row_ptr, grad_ptr, V, target, lse, inv_temperature, c_logp * inv_temperature,
                     c_ent * inv_temperature, tl.load(ENTROPY + n), HAS_ENTROPY_GRAD, ROUND_BF16, BLOCK_V)


def launch_logit_grad(logits: torch.Tensor, grad: torch.Tensor, ids: torch.Tensor, logp: torch.Tensor,
                      entropy: torch.Tensor, c_logp: torch.Tensor, c_ent: Optional[torch.Tensor],
                      temperature: float, token_offset: int = 0) -> None:
    """Sweep 2 on ``logits`` [B, T, V] or a [rows, V] chunk whose row i is flattened token
    ``token_offset + i`` of the flat float32 ``ids``, ``logp``, ``entropy``, ``c_logp``, ``c_ent`` (None: no
    entropy term); ``grad`` (same shape, may be ``logits``) receives d loss / d logits."""
    V = logits.shape[-1]
    rows = logits.numel() // V
    if rows == 0:
        return
    sb, st, logits_rows = row_layout(logits)
    gb, gt, _ = row_layout(grad)
    args = (logits, sb, st, grad, gb, gt, ids, logp, entropy, c_logp, c_ent, token_offset, logits_rows, V,
            1.0 / temperature)
    if INTERPRET:
        _logit_grad_kernel[(rows,)](*args, HAS_ENTROPY_GRAD=c_ent is not None,
                                    ROUND_BF16=grad.dtype == torch.bfloat16, BLOCK_V=block_v_for(V),
                                    num_warps=4)
    else:
        _logit_grad_kernel[(rows,)](*args, HAS_ENTROPY_GRAD=c_ent is not None, ROUND_BF16=False,
                                    BLOCK_V=min(_GPU_BLOCK_V, triton.next_power_of_2(V)),
                                    num_warps=_GPU_NUM_WARPS)


def torch_logit_grad(logits: torch.Tensor, ids: torch.Tensor, entropy: torch.Tensor, c_logp: torch.Tensor,
                     c_ent: Optional[torch.Tensor], temperature: float) -> torch.Tensor:
    """Sweep 2 in PyTorch on a [rows, V] chunk (float32 result; the flat per-row inputs are [rows])."""
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    log_p = z - torch.logsumexp(z, dim=-1, keepdim=True)
    p = torch.exp(log_p)
    grad = p * -c_logp.unsqueeze(1)
    grad.scatter_add_(1, ids.unsqueeze(1), c_logp.unsqueeze(1))
    if c_ent is not None:
        grad -= c_ent.unsqueeze(1) * p * torch.where(p > 0, log_p + entropy.unsqueeze(1), 0.0)
    return grad.div_(temperature) if temperature != 1.0 else grad


def token_coefficients(logp: torch.Tensor, entropy: torch.Tensor, tokens: TokenInputs, opts: PolicyOptions,
                       entropy_cutoff: Optional[torch.Tensor], want_grad: bool):
    """Between the sweeps: the loss of the call from the per-token ``logp``, ``entropy`` [B, T] (float32), its
    per-token stats, and c_logp, c_ent [B*T] (c_ent None when the loss does not depend on the entropies)."""
    entropy_term = want_grad and opts.entropy_coef != 0.0
    with torch.enable_grad():
        lp = logp.detach().requires_grad_(want_grad)
        ent = entropy.detach().requires_grad_(entropy_term)
        loss, stats = policy_loss(lp, ent, mask=tokens.mask, weights=tokens.weights,
                                  advantages=tokens.row_advantages(), old_logp=tokens.old_logprobs,
                                  ref_logp=tokens.ref_logprobs, sampling_logp=tokens.sampling_logprobs,
                                  importance_sampling_ratio=tokens.importance_sampling_ratio, opts=opts,
                                  entropy_cutoff=entropy_cutoff)
        c_logp = c_ent = None
        if want_grad:
            inputs = [lp, ent] if entropy_term else [lp]
            if loss.requires_grad:
                grads = torch.autograd.grad(loss, inputs, allow_unused=True)
            else:
                grads = [None] * len(inputs)
            grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]
            # masked tokens get exactly zero (their gradient rows are zeroed, not computed)
            grads = [torch.where(tokens.valid, g, 0.0).reshape(-1).contiguous() for g in grads]
            c_logp = grads[0]
            c_ent = grads[1] if entropy_term else None
    return loss.detach(), stats, c_logp, c_ent


class TwoSweepLossFromLogits(torch.autograd.Function):
    """The two-sweep loss from logits [B, T, V]; backward (backward.py) only scales the gradient buffer.
    ``inplace`` and fp16 logits: as one_pass.OnePassLossFromLogits."""

    @staticmethod
    def forward(ctx, logits, tokens: TokenInputs, opts: PolicyOptions, inplace: bool,
                entropy_cutoff: Optional[torch.Tensor]):
        needs_grad = ctx.needs_input_grad[0]
        n = tokens.B * tokens.T
        ids = tokens.ids.view(-1)
        logp = torch.empty(n, device=logits.device, dtype=torch.float32)
        entropy = torch.empty(n, device=logits.device, dtype=torch.float32)
        launch_selective_logprob(logits, ids, logp, entropy, opts.temperature)
        loss, stats, c_logp, c_ent = token_coefficients(logp.view(tokens.B, tokens.T),
                                                        entropy.view(tokens.B, tokens.T), tokens, opts,
                                                        entropy_cutoff, needs_grad)
        if needs_grad:
            grad = logit_grad_buffer(logits, inplace=inplace)
            launch_logit_grad(logits, grad, ids, logp, entropy, c_logp, c_ent, opts.temperature)
            keep_logit_grad(ctx, logits, grad, inplace=inplace)
        metrics = masked_metrics(tokens.mask, stats["kl"], entropy, stats["clip_low"], stats["clip_high"])
        out = torch.stack([metrics[k].float() for k in STAT_NAMES])
        ctx.mark_non_differentiable(out)
        return loss.float(), out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_stats):
        return scaled_logit_grad(ctx, grad_loss, "TwoSweepLossFromLogits"), None, None, None, None
