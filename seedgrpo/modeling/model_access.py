"""Reaching into a policy whatever wraps it: the HF module inside a DeepSpeed engine, the lm_head weight,
ZeRO-3-partitioned parameters (whole inside `gathered`), and the weights as a generation engine takes them
(buckets, LoRA merged). Used by the rollout engines (colocated vLLM, the generation server's client), the
training forward and the checkpoint export alike.
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


# ------------------------------------------------------------------- pushing weights to a generation engine
def weight_buckets(named_params, bucket_bytes: float) -> list[list]:
    """Consecutive (name, param) groups of about `bucket_bytes` each (0 = one parameter per bucket), sized
    by the FULL parameter: under ZeRO-3 `numel()` is 0 outside a gather, and sizing by it would make the
    whole model one bucket."""
    buckets, bucket, size = [], [], 0
    for name, param in named_params:
        bucket.append((name, param))
        size += full_numel(param) * param.element_size()
        if size >= bucket_bytes:
            buckets.append(bucket)
            bucket, size = [], 0
    if bucket:
        buckets.append(bucket)
    return buckets


def has_lora(module) -> bool:
    return any(".lora_" in name for name, _ in module.named_parameters())


def lora_merged_weights(module, bucket_bytes: float = 0):
    """(name, tensor) pairs of a peft-LoRA model as the plain model vLLM serves: each adapted layer's base
    weight with its active adapters merged in (W + Σ scale·B·A, from peft's `get_delta_weight`), under the
    base model's parameter names; the adapter tensors themselves are not sent. The merge is computed out of
    place from gathered shards, one bucket at a time: the same weights as peft's merge → push → unmerge, but
    the training weights are never written, so no unmerge rounding drifts them (W + ΔW − ΔW ≠ W in bf16)."""
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}
    entries = []  # (vLLM name, base parameter, LoRA layer whose delta it takes, or None)
    for name, param in module.named_parameters():
        if ".lora_" in name:
            continue
        owner, base, attr = name.rpartition(".base_layer.")
        layer = layers.get(owner) if base and attr == "weight" else None
        entries.append((owner + "." + attr if base else name, param, layer))
    by_name = {vllm_name: (param, layer) for vllm_name, param, layer in entries}
    for bucket in weight_buckets([(vllm_name, param) for vllm_name, param, _ in entries], bucket_bytes):
        adapters = [(layer, a) for n, _ in bucket if (layer := by_name[n][1]) is not None
                    for a in layer.active_adapters if a in layer.lora_A]
        adapter_params = [p for layer, a in adapters
                          for p in (layer.lora_A[a].weight, layer.lora_B[a].weight)]
        with gathered([p for _, p in bucket] + adapter_params):
            for vllm_name, param in bucket:
                layer = by_name[vllm_name][1]
                if layer is None:
                    yield vllm_name, param.data
                    continue
                merged = param.data.clone()
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A:
                        merged += layer.get_delta_weight(adapter).to(merged.dtype)
                yield vllm_name, merged
