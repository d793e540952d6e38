"""Quick start: the SEED-GRPO loss as a drop-in, on random tensors (CPU, a second).

    python examples/quickstart_loss.py

Shows the three ways in: from logits, from hidden states + lm_head weight (logits never materialised),
and with advantages computed by you. Every call returns (loss, metrics).
"""
import torch

import seedgrpo

torch.manual_seed(0)
G, prompts, T, V, H = 8, 4, 32, 1000, 64          # G completions per prompt, T completion tokens, V vocab
B = G * prompts

hidden = torch.randn(B, T, H, requires_grad=True)
lm_head = torch.nn.Linear(H, V, bias=False)
completion_ids = torch.randint(0, V, (B, T))
completion_mask = (torch.arange(T) < torch.randint(4, T + 1, (B, 1))).long()   # right-padded completions
rewards = torch.randint(0, 2, (B,)).float()                                     # 1 = correct answer

# The final answers of each group, hashed and clustered (here: from text, with the compiled extractor when
# available; any integer ids work: equal id = same answer, negative = no answer).
texts = [f"... so the answer is \\boxed{{{torch.randint(0, 3, ()).item()}}}" for _ in range(B)]
try:
    from seedgrpo import answers
    cluster_ids = answers.cluster_ids(answers.answer_hashes(texts), G)
except (ImportError, AttributeError):
    cluster_ids = torch.tensor([int(t[-2]) for t in texts])

# 1) from logits: the reference path on CPU, the fused Triton kernel on CUDA (impl="auto")
logits = lm_head(hidden)
loss, metrics = seedgrpo.seed_grpo_loss(logits, completion_ids=completion_ids, completion_mask=completion_mask,
                                        rewards=rewards, group_size=G, cluster_ids=cluster_ids)
loss.backward()
print(f"from logits      loss={loss.item():+.5f}  " + "  ".join(f"{k}={v.item():.4f}" for k, v in metrics.items()))

# 2) fused-linear: hidden + weight, chunked so that the [B*T, V] logits never exist at once
hidden.grad = None
loss2, _ = seedgrpo.seed_grpo_loss(hidden=hidden, weight=lm_head.weight, completion_ids=completion_ids,
                                   completion_mask=completion_mask, rewards=rewards, group_size=G,
                                   cluster_ids=cluster_ids)
loss2.backward()
print(f"fused-linear     loss={loss2.item():+.5f}  (same loss, |diff|={abs(loss2.item() - loss.item()):.2e})")

# 3) your own advantages (e.g. computed once for the whole generation batch), the paper's preset
adv = seedgrpo.compute_advantages(rewards, G, cluster_ids, alpha=0.0417, scale_fn="reciprocal")
loss_fn = seedgrpo.SeedGRPOLoss.from_preset("paper")
loss3, _ = loss_fn(lm_head(hidden), completion_ids=completion_ids, completion_mask=completion_mask,
                   rewards=rewards, cluster_ids=cluster_ids)
print(f"preset 'paper'   loss={loss3.item():+.5f}  advantages[:8]={[round(a, 3) for a in adv[:8].tolist()]}")
print("semantic entropy per group (nats):", [round(x, 3) for x in seedgrpo.semantic_entropy(cluster_ids, G).tolist()])
