"""Fast paths of the GRPO / SEED-GRPO loss: Triton kernels on CUDA, chunked PyTorch everywhere.

- ``grpo_loss.grpo_loss_from_logits``: loss, metrics and d(loss)/d(logits) in one launch from advantages (and
  the per-group f(alpha*U)), or two sweeps (``logit_grad.py``) for losses that need row or batch statistics.
- ``fused_linear_grpo.fused_linear_grpo_loss``: the same from hidden states + lm_head weight, never holding all
  the logits.
- ``selective_logprob.selective_logprob``: per-token log-probs (and entropies) for the old-policy and reference
  passes.

- ``reference``: the per-token math in plain PyTorch, used by seedgrpo.loss and the torch backends here.

A leaf: nothing here imports the rest of seedgrpo (tests/test_kernels_leaf.py); the kernels take tensors and
plain options (per-token weights, advantages). ``seedgrpo.seed_grpo_loss(impl="triton"|"torch"|"auto")``
dispatches here. The Triton kernels run on the CPU
only through the interpreter (``TRITON_INTERPRET=1`` set before the first import; for tests). Import the
modules themselves (this package imports nothing, so that touching it does not load Triton).
"""
