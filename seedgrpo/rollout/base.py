"""The rollout interface: prompts in, G completions per prompt out (ids, texts, sampling log-probs).

    engine = make_rollout_engine("hf", model=engine_or_module, tokenizer=tok, sampling=SamplingSettings(...))
    batch = engine.generate(prompts, num_generations=8, row_seeds=row_seeds(seed, step, prompt_indices, 8))
    ...  # optimizer step
    engine.sync_weights()                               # vLLM: push the new weights; HF: nothing to do

Rows are laid out TRL's way: rows g*G .. g*G+G-1 are the G samples of prompt g. Sampling is a pure function
of each row's seed (see `row_seeds`), so the samples of a prompt do not depend on which rank or batch it was
generated in, and a resumed run draws exactly what the uninterrupted run drew.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import torch

ENGINES = ("hf", "vllm")
_MASK64 = (1 << 64) - 1
# SplitMix64's increment and multipliers (Steele et al., 2014): the row seeds here, the sampler's noise in
# sampling.py (as int64 tensors) and csrc/sampling.cpp
SPLITMIX64_CONSTANTS = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


@dataclass
class SamplingSettings:
    max_prompt_length: int
    max_completion_length: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: Optional[int] = None


@dataclass
class RolloutBatch:
    prompt_ids: torch.Tensor        # [B, P] left-padded
    prompt_mask: torch.Tensor       # [B, P] 1 = token
    completion_ids: torch.Tensor    # [B, T] right-padded (pad id after EOS)
    completion_mask: torch.Tensor   # [B, T] 1 up to and including EOS
    logprobs: torch.Tensor          # [B, T] float32 log-probs of the sampled tokens under softmax(logits / T)
    texts: list                     # [B] decoded completions (special tokens skipped)
    is_truncated: torch.Tensor      # [B] bool: no EOS within max_completion_length
    hidden: Optional[torch.Tensor] = None  # [B, T, H] hidden states of the completion tokens, when asked
    completion_lengths: Optional[torch.Tensor] = None  # [B] tokens generated (set by the trainer)


class RolloutEngine(ABC):
    """Generates completions with the current policy."""

    # True when `logprobs` come from a full forward pass of the training model (bit-for-bit what the loss
    # computes); False when they come from generation's own kernels (KV-cached forward, vLLM), which differ
    # by rounding: the trainer then recomputes old log-probs when the loss needs them.
    exact_logprobs: bool = True

    @abstractmethod
    def generate(self, prompts: list[str], *, num_generations: int, row_seeds: list[int],
                 with_hidden: bool = False, progress=None) -> RolloutBatch:
        """G samples of each prompt; `row_seeds` has one seed per output row (len(prompts) * G)."""

    def sync_weights(self) -> None:
        """Make the engine sample from the policy's current weights (called after each optimizer step)."""

    def close(self) -> None:
        """Release what the engine holds (GPU memory, processes)."""


# ----------------------------------------------------------------------------------------------- helpers
def splitmix64(x: int) -> int:
    """One round of SplitMix64: a cheap, well-mixed 64-bit hash (Steele et al., 2014)."""
    golden, mix1, mix2 = SPLITMIX64_CONSTANTS
    x = (x + golden) & _MASK64
    x = ((x ^ (x >> 30)) * mix1) & _MASK64
    x = ((x ^ (x >> 27)) * mix2) & _MASK64
    return x ^ (x >> 31)


def row_seeds(seed: int, step: int, prompt_indices: list[int], num_generations: int) -> list[int]:
    """One 63-bit seed per row from (run seed, step, the prompt's global index, sample number)."""
    seeds = []
    for prompt_index in prompt_indices:
        base = splitmix64(splitmix64(splitmix64(seed & _MASK64) ^ step) ^ prompt_index)
        seeds += [splitmix64(base ^ g) >> 1 for g in range(num_generations)]
    return seeds


def expand_rows(prompts: list[str], num_generations: int, row_seeds: list[int]) -> list[str]:
    """The output rows (each prompt G times, grouped) after checking there is one seed per row."""
    rows = [p for p in prompts for _ in range(num_generations)]
    if len(row_seeds) != len(rows):
        raise ValueError(f"row_seeds has {len(row_seeds)} entries; expected one per row ({len(rows)})")
    return rows


def tokenize_prompts(tokenizer, prompts: list[str], max_prompt_length: int, device=None):
    """Left-padded prompt ids and mask; prompts longer than `max_prompt_length` keep their last tokens."""
    distinct = {p: None for p in prompts}  # a prompt comes G times: encode it once
    for p in distinct:
        distinct[p] = tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt_length:]
    encoded = [distinct[p] for p in prompts]
    if any(len(ids) == 0 for ids in encoded):
        raise ValueError("a prompt tokenized to zero tokens; check prompt_template and the data")
    width = max(len(ids) for ids in encoded)
    pad = pad_token_id(tokenizer)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, width - len(tokens):] = torch.tensor(tokens, dtype=torch.long)
        mask[row, width - len(tokens):] = 1
    return ids.to(device), mask.to(device)


def pad_token_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
    return pad


def eos_token_ids(tokenizer, model=None) -> list[int]:
    """EOS ids from the model's generation config (which may list several, e.g. <|im_end|>) and tokenizer."""
    ids = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if value is None:
            continue
        ids += list(value) if isinstance(value, (list, tuple)) else [value]
    if not ids:
        raise ValueError("neither the tokenizer nor the model's generation config defines an eos token")
    return sorted(set(ids))


def completion_mask_after_eos(completion_ids: torch.Tensor, eos_ids: list[int]):
    """(mask [B, T] = 1 up to and including the first EOS, is_truncated [B] = no EOS in the row)."""
    is_eos = torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device))
    length = completion_ids.shape[1]
    first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1),
                            torch.full_like(completion_ids[:, 0], length))
    positions = torch.arange(length, device=completion_ids.device)
    mask = (positions[None, :] <= first_eos[:, None]).long()
    return mask, ~is_eos.any(1)


def decode_completions(tokenizer, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[str]:
    return [tokenizer.decode(ids[: int(m.sum())].tolist(), skip_special_tokens=True)
            for ids, m in zip(completion_ids.cpu(), completion_mask.cpu())]
