"""Reaching into a policy whatever wraps it: the HF module inside a DeepSpeed engine, the lm_head weight, and
ZeRO-3-partitioned parameters (whole inside `gathered`). Used by the rollout engines, the training forward and
the checkpoint export alike.
"""
from __future__ import annotations

import contextlib

import torch


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


