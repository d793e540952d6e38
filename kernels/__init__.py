"""Fast paths of the GRPO / SEED-GRPO loss: Triton kernels on CUDA, chunked PyTorch everywhere; one job a
file:

- ``dispatch.grpo_loss_from_logits``: loss, metrics and d(loss)/d(logits) from logits [B, T, V]; checks the
  call and picks one of
  - ``one_pass.py``: the one-pass kernel (one launch from advantages and the per-group f(alpha*U), applied
    in the kernel) for token-local losses;
  - ``two_sweep.py``: the two sweeps (log-probs and entropies, the per-token math, the gradient) for losses
    that need row or batch statistics;
- ``backward.py``: the backward both share (the gradient buffer written in the forward, scaled by
  grad_output; float32 for fp16 logits);
- ``persistent.py``: the one-pass kernel on a persistent grid (``rows_in_flight`` programs), for measuring
  L2 reuse;
- ``fused_linear_grpo.fused_linear_grpo_loss``: the same from hidden states + lm_head weight, never holding
  all the logits;
- ``selective_logprob.selective_logprob``: per-token log-probs (and entropies) for the old-policy and
  reference passes;
- ``reference``: the per-token math in plain PyTorch, used by seedgrpo.loss and the torch backends here;
- ``_inputs`` (the per-token inputs laid out for the kernels, the metrics) and ``_utils`` (the @triton.jit row
  helpers, among them the one gradient sweep; chunk sizing; device checks).

A leaf: nothing here imports the rest of seedgrpo (tests/test_kernels_leaf.py), and the imports inside go one
way (dispatch -> one_pass / two_sweep -> backward, _utils; persistent -> one_pass; checked by
tests/test_architecture.py);
the kernels take tensors and plain options (per-token weights, advantages).
``seedgrpo.seed_grpo_loss(impl="triton"|"torch"|"auto")`` dispatches here. The Triton kernels run on the CPU
only through the interpreter (``TRITON_INTERPRET=1`` set before the first import; for tests). Import the
modules themselves (this package imports nothing, so that touching it does not load Triton).
"""
