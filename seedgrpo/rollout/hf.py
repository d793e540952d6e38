"""Rollout with the policy's own HF module (the default engine; runs on CPU and GPU, under ZeRO-3 or not).

    engine = HFRolloutEngine(model=ds_engine_or_module, tokenizer=tok, sampling=SamplingSettings(64, 256))
    batch = engine.generate(prompts, num_generations=8, row_seeds=seeds)

Sampling is done by sampling.py's seeded Gumbel-max sampler (a logits processor inside `generate`, a `pick`
function inside the lean loop): its noise is a hash of (row seed, step, token id), so a row's sample does
not depend on the other rows of the batch, on the rank that generated it, or on any RNG state.

The same processor records, at each step, the log-prob of the token it picks under softmax(logits /
temperature) (not the filtered distribution: the loss uses the same definition), so no second forward pass
is needed. These come from generation's KV-cached forward, equal to the training forward up to kernel
rounding; the trainer recomputes them with the training forward when the loss needs old log-probs
(`exact_logprobs = False`). With `with_hidden`, one full forward pass gives the hidden states and the
log-probs together.

The G rows of a prompt share its prefix: each distinct prompt is prefilled once (all but its last token) and
the KV cache is copied to its G rows before `generate` continues from it (`share_prompt_prefill`, on by
default), which takes (G - 1) / G of the prefill work away; the samples are those of the ordinary path up to
kernel rounding.

Decoding runs in decode.py's lean loop for the models it handles (Llama, Mistral, Qwen2, Qwen3 with full
attention: preallocated key/value buffers, finished rows leave the batch) and in transformers' `generate`
otherwise, or when `decode_loop="generate"`; both give the same samples up to kernel rounding.

Under ZeRO-3 the weights are gathered for generation when they fit (`gather_for_generation`), with ZeRO's
module hooks removed meanwhile (the full parameters are already there); otherwise every rank generates
with sharded weights and `synced_gpus=True`, which keeps the ranks' forward passes in lock-step. "Fit" is
decided on every rank's free memory together (one all-reduce), so that all ranks take the same branch.
"""
from __future__ import annotations

import contextlib

import torch

from .. import dist
from .base import (RolloutBatch, RolloutEngine, SamplingSettings, completion_mask_after_eos,
                   decode_completions, eos_token_ids, expand_rows, pad_token_id, tokenize_prompts)
from ..modeling import scoring
from .decode import lean_decode, lean_decode_unsupported
from .sampling import SeededGumbelSampler
from ..modeling.scoring import full_numel, is_zero3_param, score_completions, unwrap

# Gather the policy for generation when its full weights take less than this share of free GPU memory.
_GATHER_MEMORY_SHARE = 0.5
DECODE_LOOPS = ("auto", "lean", "generate")
class HFRolloutEngine(RolloutEngine):
    exact_logprobs = False  # recorded during (KV-cached) generation; see the module docstring

    def __init__(self, *, model, tokenizer, sampling: SamplingSettings, gather_for_generation="auto",
                 generation_batch_size: int | None = None, share_prompt_prefill: bool = True,
                 decode_loop: str = "auto"):
        if decode_loop not in DECODE_LOOPS:
            raise ValueError(f"decode_loop={decode_loop!r} is not one of {DECODE_LOOPS}")
        self.model = model  # a DeepSpeed engine or a plain module: always the live training weights
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.gather_for_generation = gather_for_generation
        self.generation_batch_size = generation_batch_size
        self.share_prompt_prefill = share_prompt_prefill
        self.decode_loop = decode_loop
        self.eos_ids = eos_token_ids(tokenizer, unwrap(model))
        self.pad_id = pad_token_id(tokenizer)

    # ------------------------------------------------------------------------------------------ generate
    @torch.no_grad()
    def generate(self, prompts, *, num_generations, row_seeds, with_hidden=False,
                 progress=None) -> RolloutBatch:
        rows = expand_rows(prompts, num_generations, row_seeds)
        module = unwrap(self.model)
        device = next(module.parameters()).device
        prompt_ids, prompt_mask = tokenize_prompts(self.tokenizer, rows, self.sampling.max_prompt_length,
                                                   device)
        chunk = self.generation_batch_size or len(rows)
        was_training = module.training
        module.eval()
        pieces = []
        try:
            with self._weights_for_generation() as (generator, sharded):
                for start in range(0, len(rows), chunk):
                    end = min(start + chunk, len(rows))
                    part = slice(start, end)
                    pieces.append(self._generate_chunk(generator, prompt_ids[part], prompt_mask[part],
                                                       row_seeds[part], sharded, with_hidden))
                    if progress is not None:
                        progress.update(end - start)
        finally:
            module.train(was_training)
        return self._concat(prompt_ids, prompt_mask, pieces)

    def _generate_chunk(self, generator, prompt_ids, prompt_mask, seeds, sharded, with_hidden):
        sampler = SeededGumbelSampler(seeds, prompt_ids.shape[1], self.sampling)
        prefix = None if sharded else self._shared_prefix_cache(generator, prompt_ids, prompt_mask)
        if self._use_lean_decode(generator, sharded):
            completion_ids, recorded = lean_decode(
                generator, prompt_ids, prompt_mask, pick=sampler.pick, eos_ids=self.eos_ids,
                pad_id=self.pad_id, max_new_tokens=self.sampling.max_completion_length, prefix=prefix)
        else:
            completion_ids = self._transformers_generate(generator, prompt_ids, prompt_mask, sampler, sharded,
                                                         prefix)
            recorded = torch.stack(sampler.logprobs, dim=1)
        mask, truncated = completion_mask_after_eos(completion_ids, self.eos_ids)
        completion_ids = completion_ids.masked_fill(mask == 0, self.pad_id)
        if with_hidden:  # a full forward pass for the hidden states; take its log-probs too
            logprobs, hidden = score_completions(generator, prompt_ids, prompt_mask, completion_ids, mask,
                                                 self.sampling.temperature, with_hidden=True,
                                                 gather_head=sharded)
        else:
            logprobs, hidden = recorded * mask, None
        return completion_ids, mask, truncated, logprobs, hidden

    def _use_lean_decode(self, module, sharded) -> bool:
        """The lean loop (decode.py) decodes unless generation is sharded (ZeRO-3 hooks fetch the weights
        layer by layer inside the model's forward), the user chose `generate`, or the model is not one it
        handles (then `decode_loop="lean"` is an error, `"auto"` falls back to generate)."""
        if self.decode_loop == "generate" or sharded:
            return False
        reason = lean_decode_unsupported(module)
        if reason is not None and self.decode_loop == "lean":
            raise ValueError(f"decode_loop='lean' cannot decode this model: {reason}; set decode_loop to "
                             "auto or generate")
        return reason is None

    def _transformers_generate(self, generator, prompt_ids, prompt_mask, sampler, sharded, prefix):
        from transformers import GenerationConfig, LogitsProcessorList

        config = GenerationConfig(
            max_new_tokens=self.sampling.max_completion_length, do_sample=False, num_beams=1,
            pad_token_id=self.pad_id, eos_token_id=self.eos_ids, use_cache=True,
            # neutral values, so that defaults in the model's generation_config cannot alter the sampling
            temperature=1.0, top_p=1.0, repetition_penalty=1.0,
        )
        sequences = generator.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                                       generation_config=config, synced_gpus=sharded,
                                       logits_processor=LogitsProcessorList([sampler]),
                                       past_key_values=prefix)
        return sequences[:, prompt_ids.shape[1]:]

    def _shared_prefix_cache(self, module, prompt_ids, prompt_mask):
        """A KV cache of every row's prompt but its last token, computed once per distinct prompt; None when
        there is nothing to share (or the model asks generate for a cache of its own kind)."""
        if not self.share_prompt_prefill or not scoring.can_share_prefix(module, training=False):
            return None
        shared = scoring.shareable_prefix_rows(prompt_ids, prompt_mask)
        if shared is None:
            return None
        return scoring.prefix_cache(module, *shared, position_ids_of=scoring.generate_position_ids)

    def _concat(self, prompt_ids, prompt_mask, pieces) -> RolloutBatch:
        width = max(p[0].shape[1] for p in pieces)

        def pad(t, value):
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

        completion_ids = torch.cat([pad(p[0], self.pad_id) for p in pieces])
        mask = torch.cat([pad(p[1], 0) for p in pieces])
        logprobs = torch.cat([pad(p[3], 0.0) for p in pieces])
        hidden = None
        if pieces[0][4] is not None:
            hidden = torch.cat([torch.nn.functional.pad(p[4], (0, 0, 0, width - p[4].shape[1]))
                                for p in pieces])
        return RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids,
                            completion_mask=mask, logprobs=logprobs,
                            texts=decode_completions(self.tokenizer, completion_ids, mask),
                            is_truncated=torch.cat([p[2] for p in pieces]), hidden=hidden)

    # ------------------------------------------------------------------------------------ ZeRO-3 weights
    @contextlib.contextmanager
    def _weights_for_generation(self):
        """Yields (module to generate with, whether generation is sharded across ranks)."""
        module = unwrap(self.model)
        params = list(module.parameters())
        if not any(is_zero3_param(p) for p in params):
            yield module, False
            return
        if not self._should_gather(params):
            yield module, True  # ZeRO's hooks fetch each layer's shards as generation reaches it
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            _remove_zero3_hooks(self.model)
            try:
                yield module, False
            finally:
                _restore_zero3_hooks(self.model)

    def _should_gather(self, params) -> bool:
        """Gather when the full weights fit on EVERY rank. The two branches run different collectives (an
        all-gather of every parameter vs. generate's lock-step all-reduces), so ranks that decided apart
        would hang in unmatched NCCL calls: one all-reduce makes the decision common."""
        if self.gather_for_generation in (True, False):
            return self.gather_for_generation
        full_bytes = sum(full_numel(p) * p.element_size() for p in params)
        free_bytes = free_accelerator_bytes()
        fits = free_bytes is None or full_bytes < _GATHER_MEMORY_SHARE * free_bytes
        return not dist.any_rank(not fits)


def free_accelerator_bytes() -> int | None:
    """Free memory of this rank's GPU; None on the CPU, where the gathered weights live in host memory."""
    if not torch.cuda.is_available():
        return None
    free_bytes, _ = torch.cuda.mem_get_info()
    return free_bytes


def _parameter_offload(engine):
    optimizer = getattr(engine, "optimizer", None)
    if optimizer is None:
        return None
    return getattr(optimizer, "parameter_offload", optimizer)


def _remove_zero3_hooks(engine) -> None:
    """Detach ZeRO-3's fetch/release module hooks while the full weights are gathered: otherwise every
    layer would release its (gathered) parameters after its forward and generation would re-fetch them."""
    offload = _parameter_offload(engine)
    if offload is None or not hasattr(offload, "forward_hooks"):
        return
    for param in offload.module.parameters(recurse=True):
        param.ds_active_sub_modules.clear()
    for hook in offload.forward_hooks + offload.backward_hooks:
        hook.remove()
    offload.forward_hooks, offload.backward_hooks = [], []


def _restore_zero3_hooks(engine) -> None:
    offload = _parameter_offload(engine)
    if offload is None or not hasattr(offload, "forward_hooks"):
        return
    coordinator = getattr(offload, "param_coordinator", None)
    if coordinator is not None and not coordinator.is_invalid_trace():
        coordinator._invalidate_trace()  # the recorded prefetch order no longer matches: record it afresh
    offload._register_deepspeed_module(offload.module)
