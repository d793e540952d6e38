"""Rollout with vLLM colocated in each training process (GPU; `rollout_engine: vllm`).

    engine = VLLMRolloutEngine(model=ds_engine, tokenizer=tok, sampling=...,
                               model_path="Qwen/Qwen2.5-Math-7B", vllm_config=config.vllm, seed=0)
    batch = engine.generate(prompts, num_generations=8, row_seeds=seeds)
    ...  # optimizer steps
    engine.sync_weights()            # push the updated policy into vLLM

Every rank runs its own vLLM engine on its own prompts (`distributed_executor_backend="external_launcher"`
when there are several ranks, as TRL's colocate mode does). With `vllm.sleep` (CUDA only) vLLM gives its
weights and KV cache back while the policy trains (sleep level 2) and gets them again for the next rollout.

Weight sync goes through vLLM's worker API, as vLLM's RLHF examples do: `LLM.collective_rpc("reload_weights",
...)` runs the worker's in-place reload (inside the vLLM config context, and re-running the weight
post-processing) on a generator that gathers one ZeRO-3 parameter at a time, or a bucket of up to
`vllm.sync_bucket_mb`. The generator is handed over by reference, so the engine must run in this process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`, set here unless the user set it otherwise, which is refused). Bucket sizes
use `ds_numel` (the full size): a partitioned parameter's `numel()` is 0 outside a gather, and sizing by it
would put the whole model in one bucket. The prefix cache is reset afterwards (its KV entries were computed
with the old weights). `vllm.enforce_eager` is on by default: CUDA graphs captured before a level-2 sleep
have not been shown to survive it on a GPU yet.

Each row's request carries its own seed (`row_seeds`), so a prompt's samples do not depend on the batch it
was generated in. The recorded log-probs follow the HF engine's definition, log softmax(logits / T) before
top-k/top-p filtering, as far as vLLM can return it (`logprobs_mode_for`): at T = 1 vLLM's `raw_logprobs` are
exactly that, whatever the filters; at T != 1 its `processed_logprobs` are, when top_k/top_p are off. At
T != 1 WITH top-k/top-p, vLLM only returns the filtered distribution's log-probs, log p_T(token) - log(kept
mass) >= the HF value, so `se_rao`'s sequence weights differ from the HF engine's (a warning says so). They
come from vLLM's own kernels either way, so `exact_logprobs` is False and the trainer recomputes old
log-probs with the training model when the loss needs them. vLLM is an optional dependency: without it this
module raises ImportError with the fix.
"""
from __future__ import annotations

import os
import tempfile
import warnings

import torch

from .. import dist
from .base import (RolloutBatch, RolloutEngine, SamplingSettings, completion_mask_after_eos,
                   decode_completions, eos_token_ids, expand_rows, pad_token_id, tokenize_prompts)
from ..modeling.model_access import gathered, has_lora, lora_merged_weights, unwrap, weight_buckets
from ..modeling.scoring import score_completions


def _import_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            "rollout_engine='vllm' needs vLLM, which is not installed: `pip install vllm` on a CUDA machine "
            "(or `pip install 'seedgrpo[gpu]'`), or set rollout_engine: hf") from error
    return vllm


class VLLMRolloutEngine(RolloutEngine):
    exact_logprobs = False

    def __init__(self, *, model, tokenizer, sampling: SamplingSettings, model_path: str, vllm_config,
                 seed: int = 0):
        vllm = _import_vllm()
        self.model, self.tokenizer, self.sampling, self.vllm_config = model, tokenizer, sampling, vllm_config
        self.eos_ids = eos_token_ids(tokenizer, unwrap(model))
        self.pad_id = pad_token_id(tokenizer)
        self.sleep = bool(vllm_config.sleep and torch.cuda.is_available())  # needs CUDA's allocator
        # Keep the engine in this process: the weight sync hands vLLM's worker a generator of gathered tensors.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0":
            raise ValueError(f"VLLM_ENABLE_V1_MULTIPROCESSING={os.environ['VLLM_ENABLE_V1_MULTIPROCESSING']!r}: "
                             "the colocated vLLM engine must run in the training process (its weight sync "
                             "streams gathered tensors to it); unset it or set it to 0")
        self._tmpdir = None
        if not os.path.isdir(model_path) and model_path == "toy":
            model_path = self._save_initial_weights()
        dtype = vllm_config.dtype
        if dtype == "auto":
            dtype = str(next(unwrap(model).parameters()).dtype).removeprefix("torch.")
        max_model_len = (vllm_config.max_model_len
                         or sampling.max_prompt_length + sampling.max_completion_length)
        kwargs = dict(
            model=model_path, dtype=dtype, seed=seed,
            gpu_memory_utilization=vllm_config.gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=vllm_config.enable_prefix_caching, enforce_eager=vllm_config.enforce_eager,
            logprobs_mode=logprobs_mode_for(sampling),
        )
        if self.sleep:
            kwargs["enable_sleep_mode"] = True
        if dist.world_size() > 1:
            kwargs["distributed_executor_backend"] = "external_launcher"
        self.llm = vllm.LLM(**kwargs)
        self.SamplingParams = vllm.SamplingParams
        self._sleeping: set[str] = set()  # what vLLM has released: "weights", "kv_cache"
        self._weights_current = False  # the policy may differ from model_path (resume, toy): push before use

    # ------------------------------------------------------------------------------------------ generate
    @torch.no_grad()
    def generate(self, prompts, *, num_generations, row_seeds, with_hidden=False,
                 progress=None) -> RolloutBatch:
        rows = expand_rows(prompts, num_generations, row_seeds)
        if not self._weights_current:
            self.sync_weights()
        self._wake("kv_cache")
        device = next(unwrap(self.model).parameters()).device
        prompt_ids, prompt_mask = tokenize_prompts(self.tokenizer, rows, self.sampling.max_prompt_length)
        requests = [{"prompt_token_ids": ids[mask.bool()].tolist()}
                    for ids, mask in zip(prompt_ids, prompt_mask)]
        s = self.sampling
        top_k = {"top_k": s.top_k} if s.top_k else {}
        params = [self.SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p,
                                      max_tokens=s.max_completion_length, seed=seed, logprobs=0,
                                      detokenize=False, **top_k) for seed in row_seeds]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        if self.sleep:
            self.llm.sleep(level=2)  # level 2 drops the weights too: they are pushed again before next use
            self._sleeping, self._weights_current = {"weights", "kv_cache"}, False
        if progress is not None:
            progress.update(len(rows))

        tokens = [list(out.outputs[0].token_ids) for out in outputs]
        width = max(1, max(len(t) for t in tokens))
        completion_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        logprobs = torch.zeros((len(rows), width), dtype=torch.float32)
        for row, (out, ids) in enumerate(zip(outputs, tokens)):
            completion_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            for t, (token, candidates) in enumerate(zip(ids, out.outputs[0].logprobs or [])):
                logprobs[row, t] = candidates[token].logprob
        mask, truncated = completion_mask_after_eos(completion_ids, self.eos_ids)
        completion_ids = completion_ids.masked_fill(mask == 0, self.pad_id)
        logprobs = logprobs * mask
        hidden = None
        if with_hidden:  # vLLM does not return hidden states: one forward pass of the training model does
            _, hidden = score_completions(self.model, prompt_ids.to(device), prompt_mask.to(device),
                                          completion_ids.to(device), mask.to(device), s.temperature,
                                          with_hidden=True)
        return RolloutBatch(prompt_ids=prompt_ids.to(device), prompt_mask=prompt_mask.to(device),
                            completion_ids=completion_ids.to(device), completion_mask=mask.to(device),
                            logprobs=logprobs.to(device),
                            texts=decode_completions(self.tokenizer, completion_ids, mask),
                            is_truncated=truncated.to(device), hidden=hidden)

    # --------------------------------------------------------------------------------------- weight sync
    @torch.no_grad()
    def sync_weights(self) -> None:
        self._wake("weights")
        # The worker's reload_weights enters the vLLM config context and re-runs the weight post-processing.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": self._gathered_weights()})
        if getattr(unwrap(self.model).config, "tie_word_embeddings", False):
            self.llm.collective_rpc(_retie_output_embeddings_in_worker)
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self._weights_current = True

    def _gathered_weights(self):
        """(name, full tensor) pairs, gathered one bucket at a time: vLLM consumes each before the next
        bucket is gathered, so at most one bucket of full parameters exists beyond the shards."""
        bucket_bytes = self.vllm_config.sync_bucket_mb * 2 ** 20
        if has_lora(unwrap(self.model)):  # vLLM holds the plain model: push W + ΔW under the base names
            yield from lora_merged_weights(unwrap(self.model), bucket_bytes)
            return
        for bucket in weight_buckets(unwrap(self.model).named_parameters(), bucket_bytes):
            with gathered([p for _, p in bucket]):
                for name, param in bucket:
                    yield name, param.data

    def _wake(self, tag: str) -> None:
        if tag in self._sleeping:
            if tag == "weights":
                torch.cuda.empty_cache()  # room for the weights next to the training state
            self.llm.wake_up(tags=[tag])
            self._sleeping.discard(tag)

    def _save_initial_weights(self) -> str:
        """A locally built model (model: toy) has no directory vLLM could load: write one per rank."""
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f"seedgrpo-vllm-rank{dist.rank()}-")
        module = unwrap(self.model)
        if has_lora(module):
            state = {name: t.detach().cpu().clone() for name, t in lora_merged_weights(module, 0)}
        else:
            with gathered(list(module.parameters())):
                state = {name: p.detach().cpu().clone() for name, p in module.state_dict().items()}
        module.save_pretrained(self._tmpdir.name, state_dict=state)
        self.tokenizer.save_pretrained(self._tmpdir.name)
        return self._tmpdir.name

    def close(self) -> None:
        del self.llm
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


def logprobs_mode_for(sampling: SamplingSettings) -> str:
    """vLLM's `logprobs_mode` whose values equal the HF engine's log softmax(logits / T) before filtering (see
    the module docstring); warns when no mode does (T != 1 with top-k/top-p)."""
    if sampling.temperature == 1.0:
        return "raw_logprobs"  # log softmax of the model's logits: T = 1, before any filter
    if sampling.top_k or sampling.top_p < 1.0:
        warnings.warn(f"rollout_engine='vllm' with temperature={sampling.temperature}, top_p={sampling.top_p}, "
                      f"top_k={sampling.top_k}: vLLM records log-probs of the top-k/top-p filtered distribution, "
                      "not softmax(logits / T) as the hf engine does, so se_rao's sequence weights differ; "
                      "use temperature 1 or no top-k/top-p for the hf engine's definition", stacklevel=3)
    return "processed_logprobs"  # after temperature (and after the filters, when there are any)


def _retie_output_embeddings_in_worker(worker) -> None:
    """Run by `collective_rpc` on each vLLM worker, inside that worker's vLLM config context."""
    from vllm.config import set_current_vllm_config

    with set_current_vllm_config(worker.vllm_config):
        _retie_output_embeddings(worker.get_model())


def _retie_output_embeddings(vllm_model) -> None:
    """A tied model's head receives no weights of its own (vLLM skips `lm_head.weight`), so vLLM's in-place
    reload does not post-process it ("ParallelLMHead: Failed to load weights" in vLLM 0.32's log): on the
    CPU backend the head keeps a GEMM pre-packed from the OLD weights. Make sure the head shares the new
    embedding, then re-run its post-processing (a no-op on GPUs)."""
    head = getattr(vllm_model, "lm_head", None)
    embed = getattr(getattr(vllm_model, "model", None), "embed_tokens", None)
    if head is None or embed is None or not hasattr(head, "weight"):
        raise RuntimeError("a tied-embedding model in vLLM without lm_head / model.embed_tokens: "
                           "cannot re-tie the output embedding after a weight sync")
    if head.weight.data_ptr() != embed.weight.data_ptr():
        head.weight.data.copy_(embed.weight.data)
    method = getattr(head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(head)
