"""Scoring completions under a causal LM without materialising [B, T, V] logits (the rollout's no-grad side;
the training forward is seedgrpo/modeling/training_forward.py).

    hidden = forward_hidden(model, input_ids, attention_mask)          # [B, L, H], final-norm output
    logp = completion_logprobs(hidden[:, P - 1:-1], lm_head_weight(model), completion_ids, temperature)

`forward_hidden` runs the *whole* model (a DeepSpeed engine or a plain module) with `logits_to_keep=1` and
reads the last hidden state, rather than calling `model.model` directly: under ZeRO-3 the root module's
forward hooks reset the parameter-prefetch trace, and skipping them leaves the coordinator out of step.
Only one logit row per sequence is computed. Position ids follow the attention mask, so a left-padded row
gets the same positions whatever the padding of the batch it sits in (generation does the same).

`prefix_cache` runs each distinct prompt's prefix once for generation (G rows per prompt share it).

`completion_logprobs` projects onto the vocabulary a chunk of rows at a time, in float32, with the
temperature applied: the log-probs of the distribution that was sampled from (DESIGN.md §2).
"""
from __future__ import annotations

import torch

from .model_access import full_numel, full_shape, gathered, is_zero3_param, lm_head_weight, unwrap  # noqa: F401

# Rows of hidden states projected at once: bounds the float32 logits chunk to ~chunk * V * 4 bytes
# (4096 rows x 152k vocabulary = 2.5 GB on a GPU; a few MB for the toy model).
_LOGPROB_CHUNK_ELEMENTS = 1 << 28


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def generate_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """transformers `generate`'s positions: as above, but 1 at left padding (a cache built for generation
    must match its prefill)."""
    return (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)


def forward_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final hidden states [B, L, H] of a causal LM (after its last norm), with autograd when enabled."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), logits_to_keep=1,
                output_hidden_states=True, use_cache=False)
    return out.hidden_states[-1]


def shareable_prefix_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, always: bool = False):
    """(distinct (ids, mask) rows [U, 2P], row -> distinct row [B]) or None when no two rows share a prompt
    (unless `always`), or the prompt is a single token (nothing before the last token to share)."""
    if prompt_ids.shape[1] < 2:
        return None
    # (ids, mask) together: a pad id that is also a real token must not merge prompts of different length
    distinct, row_of = torch.unique(torch.cat([prompt_ids, prompt_mask], 1), dim=0, return_inverse=True)
    return None if distinct.shape[0] == prompt_ids.shape[0] and not always else (distinct, row_of)


def prefix_cache(model, distinct: torch.Tensor, row_of: torch.Tensor, position_ids_of=None):
    """Run each distinct prompt's first P - 1 tokens once (`distinct` from `shareable_prefix_rows`) and return
    a KV cache holding them for every row; with autograd when it is enabled."""
    from transformers import DynamicCache

    ids, mask = prefix_inputs(distinct)
    positions = (position_ids_of or position_ids_from_mask)(mask)
    cache = DynamicCache(config=unwrap(model).config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_select_indices(row_of)  # row r gets the cache of its prompt (indexing: differentiable)
    return cache


def prefix_inputs(distinct: torch.Tensor):
    """(ids, mask) of the first P - 1 tokens of each distinct (ids, mask) row from `shareable_prefix_rows`."""
    width = distinct.shape[1] // 2
    return distinct[:, :width - 1], distinct[:, width:2 * width - 1]


def can_share_prefix(model, *, training: bool) -> bool:
    """A KV cache built by hand works with HF models that use the default dynamic cache. Under gradient
    checkpointing (training) transformers drops a layer's cache unless the layer declares it safe, which
    transformers 5 lets us do (`_can_checkpoint_with_cache`; the training caches below are replay-safe);
    with an older transformers, checkpointing rules sharing out."""
    module = unwrap(model)
    generation_config = getattr(module, "generation_config", None)
    if not hasattr(module, "config") or getattr(generation_config, "cache_implementation", None) is not None:
        return False
    return not (training and _checkpointing(module) and not _checkpoint_layers_can_keep_a_cache())


def _checkpointing(module) -> bool:
    # transformers 5 renamed the property (the old name warns); 4.x has only the old one
    name = "is_activation_checkpointing" if hasattr(type(module), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    return bool(getattr(module, name, False))


def _checkpoint_layers_can_keep_a_cache() -> bool:
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:
        return False
    return hasattr(GradientCheckpointingLayer, "_can_checkpoint_with_cache")


@torch.no_grad()
def completion_logprobs(hidden: torch.Tensor, weight: torch.Tensor, completion_ids: torch.Tensor,
                        temperature: float = 1.0) -> torch.Tensor:
    """log softmax(hidden @ weightᵀ / T)[completion_ids], float32 [B, T]; `hidden[b, t]` predicts token t."""
    rows, length, width = hidden.shape
    flat_hidden = hidden.reshape(-1, width)
    flat_ids = completion_ids.reshape(-1)
    out = torch.empty(flat_ids.shape, dtype=torch.float32, device=hidden.device)
    chunk = max(1, _LOGPROB_CHUNK_ELEMENTS // weight.shape[0])
    for start in range(0, flat_hidden.shape[0], chunk):
        logits = (flat_hidden[start:start + chunk] @ weight.t()).float()
        if temperature != 1.0:
            logits /= temperature
        target = logits.gather(-1, flat_ids[start:start + chunk, None]).squeeze(-1)
        out[start:start + chunk] = target - torch.logsumexp(logits, dim=-1)
    return out.view(rows, length)


@torch.no_grad()
def score_completions(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature: float,
                      *, with_hidden: bool = False, gather_head: bool = True):
    """Per-token log-probs [B, T] (0 at padding) of completions after their prompts, and optionally the
    completion tokens' own hidden states [B, T, H] (for policy embeddings). `gather_head=False` when the
    caller already holds every ZeRO-3 parameter gathered (DeepSpeed forbids nested gathers)."""
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    hidden = forward_hidden(model, input_ids, attention_mask)
    prompt_len = prompt_ids.shape[1]
    predicting = hidden[:, prompt_len - 1:-1]
    weight = lm_head_weight(model)
    with gathered([weight] if gather_head else []):
        logp = completion_logprobs(predicting, weight, completion_ids, temperature)
    logp = logp * completion_mask
    return (logp, hidden[:, prompt_len:]) if with_hidden else (logp, None)
