"""Fast paths of the GRPO / SEED-GRPO loss: Triton kernels on CUDA, chunked PyTorch everywhere.

- ``grpo_loss_from_logits``: loss, metrics and d(loss)/d(logits) in one launch, from rewards or advantages.
- ``fused_linear_grpo_loss``: the same from hidden states + lm_head weight, never holding all the logits.
- ``selective_logprob``: per-token log-probs (and entropies) for the old-policy and reference passes.

``seedgrpo.seed_grpo_loss(impl="triton"|"torch"|"auto")`` dispatches here. The Triton kernels run on the CPU
only through the interpreter (``TRITON_INTERPRET=1`` set before the first import; for tests).
"""
from .fused_linear_grpo import fused_linear_grpo_loss
from .grpo_loss import grpo_loss_from_logits
from .selective_logprob import selective_logprob

__all__ = ["grpo_loss_from_logits", "fused_linear_grpo_loss", "selective_logprob"]
