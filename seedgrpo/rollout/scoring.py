"""Scoring completions under a causal LM without materialising [B, T, V] logits.

    hidden = forward_hidden(model, input_ids, attention_mask)          # [B, L, H], final-norm output
    logp = completion_logprobs(hidden[:, P - 1:-1], lm_head_weight(model), completion_ids, temperature)

`forward_hidden` runs the *whole* model (a DeepSpeed engine or a plain module) with `logits_to_keep=1` and
reads the last hidden state, rather than calling `model.model` directly: under ZeRO-3 the root module's
forward hooks reset the parameter-prefetch trace, and skipping them leaves the coordinator out of step.
Only one logit row per sequence is computed. Position ids follow the attention mask, so a left-padded row
gets the same positions whatever the padding of the batch it sits in (generation does the same).

`completion_forward` runs the training forward of a micro-batch whose rows share prompts (G rows per
prompt): each distinct prompt's first P - 1 tokens go through the model once, their KV cache is indexed out
to the rows that share them, and only (last prompt token, completion) runs per row. Autograd sums the rows'
gradients into the shared prefix, so the loss and every gradient are those of the full forward up to kernel
rounding, on (G - 1) / G less prompt compute.

`completion_logprobs` projects onto the vocabulary a chunk of rows at a time, in float32, with the
temperature applied: the log-probs of the distribution that was sampled from (DESIGN.md §2).
"""
from __future__ import annotations

import contextlib
import functools

import torch

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

    ids, mask = _prefix_inputs(distinct)
    positions = (position_ids_of or position_ids_from_mask)(mask)
    cache = DynamicCache(config=unwrap(model).config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_select_indices(row_of)  # row r gets the cache of its prompt (indexing: differentiable)
    return cache


def _prefix_inputs(distinct: torch.Tensor):
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
    ids, mask = _prefix_inputs(distinct)
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
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                    logits_to_keep=length + 1, use_cache=False)
        return out.logits[:, :-1]
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


def unwrap(model):
    """The HF module inside a DeepSpeed engine (or the module itself)."""
    return getattr(model, "module", model)


def lm_head_weight(model) -> torch.Tensor:
    head = unwrap(model).get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("the model's lm_head has a bias, which the fused-linear loss does not take; "
                         "set fused_linear: false")
    return head.weight


def is_zero3_param(param: torch.Tensor) -> bool:
    return hasattr(param, "ds_id")


def gathered(params, *, modifier_rank=None):
    """Context in which ZeRO-3-partitioned `params` hold their full data (a no-op for ordinary tensors).

    modifier_rank=None: every rank reads, nobody writes, so nothing is broadcast back on exit; gradients
    that flow into the parameters while gathered reach ZeRO's reduce hooks as usual.
    """
    params = [p for p in params if is_zero3_param(p)]
    if not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def full_numel(param: torch.Tensor) -> int:
    """Element count of the whole parameter: under ZeRO-3 `param.numel()` is 0 outside a gather."""
    return int(getattr(param, "ds_numel", param.numel()))


def full_shape(param: torch.Tensor) -> tuple:
    return tuple(getattr(param, "ds_shape", param.shape))


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
