"""The training forward of a micro-batch: prompt + completion through the policy, with autograd, returning
exactly what scores each completion token (the rollout only generates and scores without gradients:
seedgrpo/modeling/scoring.py).

    hidden = completion_forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask)   # [B, T, H]
    logits = completion_forward(..., output="logits")                                             # [B, T, V]

Exactly the T completion rows come back: with `output="logits"` the hidden states are sliced *before* the
lm_head (`logits_to_keep` as the positions P - 1 .. P + T - 2), so the loss kernel may write its gradient over
a logits tensor that is the lm_head's own output, and autograd's backward allocates no [B, T+1, V] buffer
(a slice of bigger logits would make it allocate and copy one).

Rows that share prompts (G rows per prompt): each distinct prompt's first P - 1 tokens go through the model
once, their KV cache is indexed out to the rows that share them, and only (last prompt token, completion)
runs per row. Autograd sums the rows' gradients into the shared prefix, so the loss and every gradient are
those of the full forward up to kernel rounding, on (G - 1) / G less prompt compute.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from .model_access import unwrap
from .scoring import (can_share_prefix, forward_hidden, position_ids_from_mask, prefix_inputs,
                              shareable_prefix_rows)

__all__ = ["completion_forward", "shared_prefix_training_cache"]


@contextlib.contextmanager
def _cache_through_checkpointing(module):
    """Let checkpointed layers keep `past_key_values` for the calls inside (the flag is read when the layer is
    called; the backward replay reuses that call's arguments). Safe only with the replay-safe caches below.

    Yields the `use_cache` to pass: the layers read and write the cache they are given either way, and
    `use_cache=False` under checkpointing only keeps transformers from warning that it turns caching off."""
    layers = [m for m in module.modules()
              if getattr(m, "gradient_checkpointing", False) and hasattr(type(m), "_can_checkpoint_with_cache")]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield not (module.training and layers)
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache


@functools.cache
def _training_cache_layers():
    """Two KV-cache layer kinds for the training forward, both safe to replay (gradient checkpointing calls a
    layer's forward again in backward, and a cache that appends would then grow):
    `RecordLayer` keeps the keys/values of the latest call (the prefix pass: a replay stores the same
    values again); `ReadOnlyLayer` returns its stored prefix + the new keys/values and stores nothing."""
    from transformers.cache_utils import DynamicLayer

    class RecordLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
            return key_states, value_states

    class ReadOnlyLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    return DynamicLayer, RecordLayer, ReadOnlyLayer


def _training_cache(module, layer_class):
    """A DynamicCache whose layers are `layer_class`, or None when the model's cache has other layer kinds
    (sliding windows, linear attention), which the shared-prefix forward does not handle."""
    from transformers import DynamicCache

    dynamic_layer = _training_cache_layers()[0]
    cache = DynamicCache(config=module.config)
    if not cache.layers or any(type(layer) is not dynamic_layer for layer in cache.layers):
        return None
    cache.layers = [layer_class() for _ in cache.layers]
    return cache


def shared_prefix_training_cache(model, distinct: torch.Tensor, row_of: torch.Tensor):
    """The training forward's prefix pass: each distinct prompt's first P - 1 tokens run once, with autograd;
    returns a read-only cache holding them for every row (indexing: gradients are summed back), or None when
    the model's cache kind is not supported."""
    module = unwrap(model)
    _, record_layer, read_only_layer = _training_cache_layers()
    record, tail = _training_cache(module, record_layer), _training_cache(module, read_only_layer)
    if record is None:
        return None
    ids, mask = prefix_inputs(distinct)
    with _cache_through_checkpointing(module) as use_cache:
        model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
              past_key_values=record, use_cache=use_cache, logits_to_keep=1)
    for source, target in zip(record.layers, tail.layers):
        target.lazy_initialization(source.keys, source.values)
        target.keys, target.values = source.keys[row_of], source.values[row_of]
    return tail


def completion_forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask, *,
                       output: str = "hidden", share_prefix: bool = True,
                       lockstep: bool = False) -> torch.Tensor:
    """The training forward of prompt + completion, returning what predicts each completion token:
    `output="hidden"` -> final hidden states [B, T, H], `"logits"` -> logits [B, T, V] (positions P - 1 ..
    P + T - 2). Rows that share a prompt share its prefix pass when `share_prefix` (see the module notes).

    `lockstep`: every rank must make the same forward calls (ZeRO-3 gathers parameters inside each one), so
    when sharing is on the two passes are taken whatever this rank's batch holds: with nothing shared, and
    with one-token prompts given a masked column (positions follow the mask: the result is unchanged).
    """
    if output not in ("hidden", "logits"):
        raise ValueError(f"output={output!r} must be 'hidden' or 'logits'")
    share_prefix = share_prefix and can_share_prefix(model, training=torch.is_grad_enabled())
    if share_prefix and lockstep and prompt_ids.shape[1] < 2:
        prompt_ids = torch.nn.functional.pad(prompt_ids, (1, 0), value=int(prompt_ids[0, 0]))
        prompt_mask = torch.nn.functional.pad(prompt_mask, (1, 0), value=0)
    prompt_len, length = prompt_ids.shape[1], completion_ids.shape[1]
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = position_ids_from_mask(attention_mask)
    shared = shareable_prefix_rows(prompt_ids, prompt_mask, always=lockstep) if share_prefix else None
    if shared is None:
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        if output == "hidden":
            return forward_hidden(model, input_ids, attention_mask)[:, prompt_len - 1:-1]
        # positions P - 1 .. P + T - 2 predict the T completion tokens: only those rows reach the lm_head
        keep = torch.arange(prompt_len - 1, prompt_len - 1 + length, device=input_ids.device)
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                    logits_to_keep=keep, use_cache=False)
        return out.logits
    cache = shared_prefix_training_cache(model, *shared)
    if cache is None:
        return completion_forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask, output=output,
                                  share_prefix=False)
    # the rest of each row: its last prompt token and all completion tokens but the last
    tail_ids = torch.cat([prompt_ids[:, -1:], completion_ids[:, :-1]], dim=1)
    with _cache_through_checkpointing(unwrap(model)) as use_cache:
        out = model(input_ids=tail_ids, attention_mask=attention_mask[:, :-1],
                    position_ids=positions[:, prompt_len - 1:-1], past_key_values=cache, use_cache=use_cache,
                    logits_to_keep=0 if output == "logits" else 1, output_hidden_states=output == "hidden")
    return out.hidden_states[-1] if output == "hidden" else out.logits
