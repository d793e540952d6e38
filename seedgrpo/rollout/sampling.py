"""The rollout's sampler: seeded Gumbel-max sampling whose noise is a pure function of (row seed, step, token).

    sampler = SeededGumbelSampler(row_seeds, prompt_length, sampling)
    tokens, logprobs = sampler.pick(logits, step, rows)        # decode.py's interface
    processors = LogitsProcessorList([sampler])                # or inside transformers' `generate`

The sampler adds Gumbel noise to the (temperature-scaled, top-k/top-p filtered) logits and takes the
arg-max: the Gumbel-max trick draws exactly from the softmax. The noise of token t in a row at a step is
-log(-log u) with u a 53-bit uniform hashed (splitmix64) from the row's seed, the step and t, so a row's
sample does not depend on the other rows of the batch, on the rank that generated it, or on any RNG state.

The hash costs ~20 passes over a [rows, vocab] int64 tensor in PyTorch: ~18 ms a decode step for 32 rows of
a 49k vocabulary on 2 CPU cores, a third of the step. On the CPU the compiled core (seedgrpo._C,
csrc/sampling.cpp) computes the uniforms in one pass, bit for bit those of `reference_uniforms` (integer
arithmetic and two exactly rounded float64 operations; tests/test_sampling.py), and PyTorch takes the logs
as before: the samples are the same with or without the extension. On a GPU the PyTorch form runs.
"""
from __future__ import annotations

import torch

from .base import SPLITMIX64_CONSTANTS, SamplingSettings


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN, _MIX1, _MIX2 = (_signed(c) for c in SPLITMIX64_CONSTANTS)
_ROW_PRIME = 0x100000001B3  # spreads the row seeds before the step is added


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic on negative values)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN  # int64 arithmetic wraps around, as the hash wants
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


def row_hashes(row_keys: torch.Tensor, step: int) -> torch.Tensor:
    """One int64 per row mixing its seed and the decode step; the tokens' hashes start from it."""
    return _splitmix64(row_keys * _ROW_PRIME + step)


def reference_uniforms(row_keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """The uniforms [B, V] in (0, 1), float64 with 53 random bits, in PyTorch (any device): the definition."""
    tokens = torch.arange(vocab_size, device=row_keys.device, dtype=torch.int64)
    x = _splitmix64(row_hashes(row_keys, step)[:, None] ^ tokens[None, :])
    return (_shift_right(x, 11).to(torch.float64) + 0.5) * 2.0 ** -53


def _compiled_uniforms():
    """seedgrpo._C.sampling_uniforms, or None: installed with SEEDGRPO_SKIP_EXTENSION=1, or an extension built
    before it existed (not rebuilt after an update). Either way the PyTorch form runs: the same samples."""
    try:
        from .. import _C
    except ImportError:
        return None
    return getattr(_C, "sampling_uniforms", None)


def uniforms(row_keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """`reference_uniforms`, from the compiled core on the CPU (one pass, torch's thread count)."""
    compiled = _compiled_uniforms() if row_keys.device.type == "cpu" else None
    if compiled is None:
        return reference_uniforms(row_keys, step, vocab_size)
    out = torch.empty(row_keys.shape[0], vocab_size, dtype=torch.float64)
    compiled(row_hashes(row_keys, step).contiguous().numpy(), out.numpy(), torch.get_num_threads())
    return out


def gumbel_noise(row_keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise [B, V], a pure function of (row key, step, token id); float32."""
    return uniforms(row_keys, step, vocab_size).log_().neg_().log_().neg_().to(torch.float32)


def filter_logits(logits: torch.Tensor, top_k, top_p: float) -> torch.Tensor:
    """Top-k then top-p (nucleus) filtering with transformers' conventions; removed tokens get -inf."""
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1)  # ascending
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        remove_sorted = cumulative <= 1.0 - top_p
        remove_sorted[:, -1] = False  # always keep the most likely token
        remove = remove_sorted.scatter(1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


class SeededGumbelSampler:
    """A `LogitsProcessor`: returns filtered logits / T + Gumbel noise, so greedy decoding samples; keeps the
    log-prob of each picked token under softmax(logits / T) in `logprobs` (one [B] tensor per step)."""

    def __init__(self, row_seeds: list[int], prompt_length: int, sampling: SamplingSettings):
        self.row_keys = torch.tensor(row_seeds, dtype=torch.int64)
        self.prompt_length = prompt_length
        self.sampling = sampling
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_length
        noisy, picked, logprob = self._sample(scores, step)
        self.logprobs.append(logprob)
        return noisy

    def pick(self, scores: torch.Tensor, step: int, rows: torch.Tensor):
        """(tokens [b], log-probs [b]) for the batch rows that are output `rows` (decode.py's interface)."""
        _, picked, logprob = self._sample(scores, step, rows)
        return picked, logprob

    def _sample(self, scores, step, rows=None):
        if self.row_keys.device != scores.device:  # once: the keys then stay where the logits are
            self.row_keys = self.row_keys.to(scores.device)
        row_keys = self.row_keys if rows is None else self.row_keys[rows]
        logits = scores.float() / self.sampling.temperature
        noisy = filter_logits(logits, self.sampling.top_k, self.sampling.top_p)
        noisy = noisy + gumbel_noise(row_keys, step, logits.shape[-1])
        picked = noisy.argmax(-1, keepdim=True)  # what greedy decoding will take from the returned scores
        logprob = (logits.gather(-1, picked) - torch.logsumexp(logits, -1, keepdim=True))[:, 0]
        return noisy, picked[:, 0], logprob


