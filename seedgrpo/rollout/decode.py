"""A lean KV-cached decode loop for Llama-family decoders (Llama, Mistral, Qwen2, Qwen3; full attention).

    if lean_decode_unsupported(module) is None:
        completion_ids, logprobs = lean_decode(module, prompt_ids, prompt_mask, pick=sampler.pick,
                                               max_new_tokens=256, eos_ids=[2], pad_id=0, prefix=cache)

transformers' `generate` is general; an RL rollout needs less of it, and pays for what it does not need on
every decode step: the key/value cache grows by concatenation (every step copies the whole cache), a 4-D
attention mask is rebuilt, logits processors and stopping criteria run, and a row that has finished keeps
its place in the batch (and its share of every matmul) until the last row finishes. This loop prefills with
the model's own forward, then decodes by calling the model's own submodules (embedding, norms, projections,
rotary embedding, MLP, head) on preallocated key/value buffers, and drops finished rows from the batch
whenever a quarter of it has finished. Each row's arithmetic is the model's: the samples are those of
`generate` up to kernel rounding (token for token in float64; tests/test_decode.py).

Sampling goes through `pick(logits [b, V], step, rows [b]) -> (tokens [b], logprobs [b])`, where `rows` are
the output rows still in the batch: the seeded Gumbel sampler of sampling.py, whose noise depends on the row's
seed and the step only, so dropping rows changes nothing for the others.
"""
from __future__ import annotations

import sys

import torch

from ..modeling.scoring import generate_position_ids

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_INITIAL_CAPACITY = 64  # generated columns allocated up front; the buffers double when full
_COMPACT_FRACTION = 4   # drop finished rows once 1/4 of the batch has finished


def lean_decode_unsupported(module) -> str | None:
    """Why the lean loop cannot decode with `module`, or None when it can."""
    config = getattr(module, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}"
    inner = getattr(module, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or not all(hasattr(inner, name) for name in needed) or \
            not hasattr(module, "lm_head"):
        return "the model does not have the Llama layout (model.embed_tokens/layers/norm/rotary_emb, lm_head)"
    if getattr(getattr(module, "generation_config", None), "cache_implementation", None) is not None:
        return "the model asks generate for a cache implementation of its own"
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if any(type(layer) is not DynamicLayer for layer in DynamicCache(config=config).layers):
        return "the model has sliding-window or other non-full attention layers"
    return None


def _rotary_function(attention):
    """The `apply_rotary_pos_emb` of the model's own modeling file (the exact rotation it applies)."""
    return sys.modules[type(attention).__module__].apply_rotary_pos_emb


class _KeyValueBuffers:
    """Per-layer key/value tensors [rows, kv heads, capacity, head dim] filled up to `length` columns, and the
    boolean attention mask [rows, 1, 1, capacity] of the filled columns (False at left padding)."""

    def __init__(self, cache, prompt_mask: torch.Tensor, capacity: int):
        self.length = prompt_mask.shape[1]
        self.keys, self.values = [], []
        for layer in cache.layers:
            rows, heads, _, dim = layer.keys.shape
            for store, source in ((self.keys, layer.keys), (self.values, layer.values)):
                buffer = source.new_empty(rows, heads, capacity, dim)
                buffer[:, :, :self.length] = source
                store.append(buffer)
        self.mask = prompt_mask.new_ones(prompt_mask.shape[0], 1, 1, capacity, dtype=torch.bool)
        self.mask[:, 0, 0, :self.length] = prompt_mask.bool()

    def append(self, index: int, key: torch.Tensor, value: torch.Tensor):
        """Write one step's key/value [rows, kv heads, 1, dim] of layer `index` at column `length`; returns
        the filled keys/values including it."""
        end = self.length + 1
        self.keys[index][:, :, self.length:end] = key
        self.values[index][:, :, self.length:end] = value
        return self.keys[index][:, :, :end], self.values[index][:, :, :end]

    def advance(self):
        self.length += 1
        if self.length == self.keys[0].shape[2]:  # full: double the columns (amortised O(1) per step)
            grow = lambda t: torch.cat([t, torch.empty_like(t)], dim=2)  # noqa: E731
            self.keys, self.values = [grow(t) for t in self.keys], [grow(t) for t in self.values]
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask)], dim=3)

    def keep(self, rows: torch.Tensor):
        self.keys = [t[rows] for t in self.keys]
        self.values = [t[rows] for t in self.values]
        self.mask = self.mask[rows]

    def attention_mask(self) -> torch.Tensor:
        return self.mask[..., :self.length + 1]


@torch.no_grad()
def lean_decode(module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, pick, max_new_tokens: int,
                eos_ids: list[int], pad_id: int, prefix=None):
    """Sample up to `max_new_tokens` tokens after left-padded prompts. Returns (completion ids [B, T'], the
    picked tokens' log-probs [B, T']) with T' the number of steps taken (the longest row), pad after EOS
    and 0 log-prob there. `prefix`: a DynamicCache holding every row's prompt but its last token
    (hf.py's shared prefill), with generate's position convention."""
    from transformers import DynamicCache

    rows, prompt_len = prompt_ids.shape
    device = prompt_ids.device
    positions = generate_position_ids(prompt_mask)  # what the shared prefix was built with
    cache = prefix if prefix is not None else DynamicCache(config=module.config)
    start = cache.get_seq_length()
    prefill = module(input_ids=prompt_ids[:, start:], attention_mask=prompt_mask,
                     position_ids=positions[:, start:], past_key_values=cache, use_cache=True,
                     logits_to_keep=1)
    buffers = _KeyValueBuffers(cache, prompt_mask, prompt_len + min(max_new_tokens, _INITIAL_CAPACITY))
    del cache

    completion_ids = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(rows, max_new_tokens, dtype=torch.float32, device=device)
    eos = torch.tensor(eos_ids, device=device)
    live = torch.arange(rows, device=device)                # output row of each batch row
    next_position = prompt_mask.sum(1)                      # position of the token fed next
    token, token_logprob = pick(prefill.logits[:, -1], 0, live)
    completion_ids[:, 0], logprobs[:, 0] = token, token_logprob
    finished = torch.isin(token, eos)
    steps = 1
    for step in range(1, max_new_tokens):
        if bool(finished.all()):
            break
        if int(finished.sum()) * _COMPACT_FRACTION >= finished.numel():
            keep = (~finished).nonzero()[:, 0]
            live, token, finished = live[keep], token[keep], finished[keep]
            next_position = next_position[keep]
            buffers.keep(keep)
        logits = _decode_step(module, token, next_position, buffers)
        token, token_logprob = pick(logits, step, live)
        token = token.masked_fill(finished, pad_id)
        completion_ids[live, step] = token
        logprobs[live, step] = token_logprob.masked_fill(finished, 0.0)
        finished |= torch.isin(token, eos)
        next_position = next_position + 1
        buffers.advance()
        steps = step + 1
    return completion_ids[:, :steps], logprobs[:, :steps]


def _decode_step(module, token: torch.Tensor, position: torch.Tensor, buffers: _KeyValueBuffers):
    """One token per row through the decoder (the Llama layer: x + attn(norm(x)), then x + mlp(norm(x)));
    returns the logits [rows, V]."""
    inner = module.model
    hidden = inner.embed_tokens(token[:, None])                      # [rows, 1, D]
    cos, sin = inner.rotary_emb(hidden, position[:, None])
    mask = buffers.attention_mask()
    for index, layer in enumerate(inner.layers):
        attention = layer.self_attn
        normed = layer.input_layernorm(hidden)
        query = attention.q_proj(normed).view(normed.shape[0], 1, -1, attention.head_dim)
        key = attention.k_proj(normed).view(normed.shape[0], 1, -1, attention.head_dim)
        value = attention.v_proj(normed).view(normed.shape[0], 1, -1, attention.head_dim)
        if hasattr(attention, "q_norm"):  # Qwen3: RMSNorm over each head before the rotation
            query, key = attention.q_norm(query), attention.k_norm(key)
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        query, key = _rotary_function(attention)(query, key, cos, sin)
        keys, values = buffers.append(index, key, value)
        out = torch.nn.functional.scaled_dot_product_attention(
            query, keys, values, attn_mask=mask, scale=attention.scaling,
            enable_gqa=keys.shape[1] != query.shape[1])
        hidden = hidden + attention.o_proj(out.transpose(1, 2).reshape(hidden.shape[0], 1, -1))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return module.lm_head(inner.norm(hidden))[:, -1]
