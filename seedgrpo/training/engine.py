"""The policy and reference models: loading, and the optimizer engine around them (DeepSpeed or plain torch).

    tokenizer = load_tokenizer(config)
    policy = build_policy(config, tokenizer, world_size=2)     # DeepSpeedPolicy or TorchPolicy
    policy.backward(loss); policy.step()                       # one micro-batch
    reference = build_reference(config, tokenizer, policy)      # only when beta > 0

Both policies expose the same small surface (`model`, `backward`, `step`, `save`, `load`,
`consolidated_state_dict`), so the trainer has no DeepSpeed branches. The loss the trainer passes to
`backward` is its micro-batch's share of the *global* loss (global normalizer): DeepSpeed's division by the
accumulation steps is turned off and its data-parallel averaging is undone, so the accumulated gradient is
the gradient of the global loss whatever the number of ranks and micro-batches.

DeepSpeed pitfalls handled here: "auto" fields are filled from the trainer
config; a real model is built under `HfDeepSpeedConfig` (so `from_pretrained` partitions it while loading,
with the right init), and that object is dropped right after, because a later `from_pretrained` with it
alive hangs on rank 0.
"""
from __future__ import annotations

import copy
import json
import math
import os
import warnings
from pathlib import Path

import torch

from .. import dist
from ..modeling import lean_layers
from .config import TrainConfig
from .host_memory import return_freed_memory_in_backward


# ----------------------------------------------------------------------------------------------- models
def model_source(config: TrainConfig, key: str = "model"):
    """Where `config.model` (or `config.tokenizer`) loads from: a directory, a hub id or a GGUF file."""
    from ..modeling.loading import model_source as source

    if key == "tokenizer" and config.tokenizer:
        return source(config.tokenizer, key="tokenizer")
    return source(config.model, config.gguf_file)


def load_tokenizer(config: TrainConfig):
    if config.model == "toy" and config.tokenizer is None:
        from ..tasks import toy

        tokenizer = toy.make_tokenizer()
    else:
        from ..modeling.loading import load_tokenizer as load

        tokenizer = load(model_source(config, "tokenizer"))
    if config.prompt_template == "chat" and not getattr(tokenizer, "chat_template", None):
        which = config.tokenizer or config.model
        raise ValueError(f"prompt_template='chat' renders prompts with the tokenizer's chat template, but "
                         f"{which!r} has none; use qwen_math, r1, none or a string holding '{{problem}}'")
    return tokenizer


def model_dtype(config: TrainConfig) -> torch.dtype:
    if config.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, config.dtype)


def attn_implementation(config: TrainConfig) -> str:
    if config.attn_implementation != "auto":
        return config.attn_implementation
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def load_model(config: TrainConfig, tokenizer, ds_config: dict | None = None):
    """The policy (or reference) model; under ZeRO-3 a hub/local model is partitioned while it loads."""
    if config.model == "toy":
        from ..tasks import toy

        # Built whole on every rank from the same seed; deepspeed.initialize partitions it afterwards.
        model = toy.make_model(tokenizer, layers=config.toy.layers, hidden=config.toy.hidden,
                               seed=config.seed)
        return model.to(model_dtype(config))
    from ..modeling.loading import load_causal_lm

    source = model_source(config)
    load = dict(dtype=model_dtype(config), attn_implementation=attn_implementation(config))
    if source.gguf_file is not None:
        # Rebuilt whole on every rank from the dequantised file (like the toy model); under ZeRO-3,
        # deepspeed.initialize partitions it afterwards.
        return load_causal_lm(source, **load)
    hf_ds_config = None
    if ds_config is not None and ds_config.get("zero_optimization", {}).get("stage") == 3:
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds_config = HfDeepSpeedConfig(ds_config)  # noqa: F841  (its existence switches on zero.Init)
    try:
        model = load_causal_lm(source, **load)
    finally:
        del hf_ds_config
        if ds_config is not None:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
    return model


def apply_peft(model, config: TrainConfig):
    """LoRA (`peft.r > 0`): (the model to train, the PeftModel around it, or None without an adapter).

    peft injects its LoRA layers into the HF model in place and freezes every other parameter; the model
    handed on is that HF model (`get_base_model()`), so the rollout, the shared-prefix forward, the lean
    decode loop and the fused-linear head run the adapted layers unchanged. The PeftModel is kept to save
    the adapter alone (peft's format: adapter_config.json + adapter_model.safetensors)."""
    if config.peft.r == 0:
        return model, None
    try:
        from peft import LoraConfig, get_peft_model
        from peft.tuners.lora import LoraLayer
    except ImportError:
        raise ImportError("peft.r > 0 needs the peft package: pip install peft (pinned in requirements.txt), "
                          "or set peft.r: 0") from None
    modules = config.peft.target_modules
    lora = LoraConfig(r=config.peft.r, lora_alpha=config.peft.lora_alpha, lora_dropout=config.peft.lora_dropout,
                      target_modules=(modules[0] if modules == ["all-linear"] else modules) or None,
                      task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated checkpointing question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            peft_model = get_peft_model(model, lora)
    except ValueError as error:  # e.g. a target module the model does not have
        raise ValueError(f"peft.target_modules={modules!r}: {error}") from None
    inner = peft_model.get_base_model()
    if isinstance(inner.get_output_embeddings(), LoraLayer):
        raise ValueError(f"peft.target_modules={modules!r} puts an adapter on the lm_head, which the loss "
                         "reads as a plain weight; leave lm_head out of target_modules")
    return inner, peft_model


# ------------------------------------------------------------------------------------ batch arithmetic
def batch_layout(config: TrainConfig, world_size: int) -> tuple[int, int]:
    """(rows per rank per rollout, gradient accumulation steps), checked for divisibility."""
    if config.prompts_per_step % world_size:
        raise ValueError(f"prompts_per_step={config.prompts_per_step} must be divisible by the number of "
                         f"ranks ({world_size}): every rank generates whole groups")
    rows = config.prompts_per_step // world_size * config.num_generations
    micro = config.per_device_train_batch_size
    if rows % micro:
        raise ValueError(f"per_device_train_batch_size={micro} must divide the {rows} completions per rank "
                         f"(prompts_per_step / ranks * num_generations)")
    gas = config.gradient_accumulation_steps
    if gas == "auto":
        gas = rows // micro  # one optimizer step per pass over the rollout: on-policy when num_iterations=1
    elif rows % (micro * gas):
        raise ValueError(f"gradient_accumulation_steps={gas} x per_device_train_batch_size={micro} must "
                         f"divide the {rows} completions per rank; use 'auto' for one optimizer step per "
                         "rollout")
    return rows, gas


def lr_lambda(config: TrainConfig, total_optimizer_steps: int):
    warmup, kind = config.warmup_steps, config.lr_scheduler_type

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_optimizer_steps - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


# --------------------------------------------------------------------------------------- DeepSpeed config
def resolve_deepspeed_config(path: str, config: TrainConfig, world_size: int, gas: int,
                             hidden_size: int) -> dict:
    """Load the JSON and fill its "auto" fields from the trainer config; explicit conflicts are errors."""
    ds = json.loads(Path(path).read_text())
    micro = config.per_device_train_batch_size
    wanted = {"train_micro_batch_size_per_gpu": micro, "gradient_accumulation_steps": gas,
              "train_batch_size": micro * gas * world_size, "gradient_clipping": config.max_grad_norm}
    for key, value in wanted.items():
        if ds.get(key, "auto") == "auto":
            ds[key] = value
        elif ds[key] != value:
            raise ValueError(f"{path}: {key}={ds[key]!r} conflicts with the trainer config ({value!r}); "
                             "set it to \"auto\" in the JSON")
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {"torch_adam": True}})
    params = optimizer.setdefault("params", {})
    for key, value in (("lr", config.learning_rate), ("betas", [config.adam_beta1, config.adam_beta2]),
                       ("eps", config.adam_epsilon), ("weight_decay", config.weight_decay)):
        if params.get(key, "auto") == "auto":
            params[key] = value
    for precision, enabled in (("bf16", torch.cuda.is_available()), ("fp16", False)):
        section = ds.get(precision)
        if isinstance(section, dict) and section.get("enabled") == "auto":
            section["enabled"] = enabled
    zero = ds.get("zero_optimization", {})
    for key, value in (("reduce_bucket_size", hidden_size * hidden_size),
                       ("stage3_prefetch_bucket_size", int(0.9 * hidden_size * hidden_size)),
                       ("stage3_param_persistence_threshold", 10 * hidden_size)):
        if zero.get(key) == "auto":
            zero[key] = value
    ds.setdefault("steps_per_print", 10 ** 9)  # the trainer logs; keep DeepSpeed quiet
    return ds


# ------------------------------------------------------------------------------------------- policies
class TorchPolicy:
    """One process, plain PyTorch: AdamW, LambdaLR, gradient clipping at accumulation boundaries.

    A bf16 model keeps float32 master weights, as DeepSpeed's bf16 optimizer does: the model (so generation,
    the forward and the fused kernels) stays in bf16; each backward adds the bf16 gradients into float32
    master gradients and frees them; AdamW steps the float32 masters, which are then rounded into the model.
    Without them AdamW would update the bf16 weights directly, and at lr 1e-6 almost every update is below
    half a bf16 ulp and rounds away (0.83% of the weights changed over 10 steps). fp16 needs a loss scaler,
    which only the DeepSpeed engine has (`build_policy` refuses fp16 without `deepspeed_config`).
    """

    is_deepspeed = False

    def __init__(self, model, config: TrainConfig, gas: int, total_optimizer_steps: int):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(device)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.masters = None  # float32 copies of bf16 parameters (None: the parameters are float32 already)
        if any(p.dtype == torch.bfloat16 for p in self.params):
            self.masters = [p.detach().float().clone() for p in self.params]
        self.optimizer = torch.optim.AdamW(self.masters or self.params, lr=config.learning_rate,
                                           betas=(config.adam_beta1, config.adam_beta2),
                                           eps=config.adam_epsilon, weight_decay=config.weight_decay,
                                           fused=True)
        # fused: one pass per tensor, no temporaries. On the CPU, for SmolLM2-135M's 135M float32 parameters
        # it stepped in 0.17 s with no transient memory, where foreach took 0.69 s and +513 MB (a copy of
        # the square roots of the second moments) and the per-tensor loop 0.63 s and +215 MB (2026-12-05,
        # benchmarks/RESULTS-e2e.md).
        schedule = lr_lambda(config, total_optimizer_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.gas, self.max_grad_norm = gas, config.max_grad_norm
        self.micro_steps, self.grad_norm = 0, float("nan")
        self._boundary = None  # set by set_accumulation_boundary; None = every `gas` micro-batches

    @property
    def device(self):
        return next(self.model.parameters()).device

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        if self.masters is None:
            return
        for param, master in zip(self.params, self.masters):  # accumulate in float32, not in bf16
            if param.grad is not None:
                if master.grad is None:
                    master.grad = param.grad.float()
                else:
                    master.grad.add_(param.grad)
                param.grad = None

    def set_accumulation_boundary(self, is_boundary: bool) -> None:
        """Say, before a micro-batch's forward, whether it is the last of its optimizer step (the trainer
        may run fewer micro-batches than `gas` when it skips rows: seedgrpo/training/row_skipping.py)."""
        self._boundary = is_boundary

    def step(self) -> bool:
        """Count one micro-batch; at an accumulation boundary clip, step and return True."""
        self.micro_steps += 1
        boundary = self.micro_steps % self.gas == 0 if self._boundary is None else self._boundary
        if not boundary:
            return False
        trained = self.masters or self.params
        if self.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(trained, self.max_grad_norm)
            self.grad_norm = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.masters is not None:
            self._round_masters_into_model()
        return True

    @torch.no_grad()
    def _round_masters_into_model(self) -> None:
        torch._foreach_copy_(self.params, self.masters)

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save(self, directory: Path, tag: str) -> None:
        path = Path(directory) / tag
        path.mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "micro_steps": self.micro_steps,
                    "masters": self.masters}, path / "policy.pt")

    def load(self, directory: Path, tag: str) -> None:
        state = torch.load(Path(directory) / tag / "policy.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        if self.masters is not None:  # the float32 masters, not the bf16 weights rounded from them
            masters = state.get("masters") or [p.detach().float() for p in self.params]
            with torch.no_grad():
                torch._foreach_copy_(self.masters, masters)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.micro_steps = state["micro_steps"]

    def consolidated_state_dict(self) -> dict:
        return self.model.state_dict()


class DeepSpeedPolicy:
    """A DeepSpeed engine (ZeRO stage from the JSON); see the module docstring for the loss scaling."""

    is_deepspeed = True

    def __init__(self, model, config: TrainConfig, ds_config: dict, total_optimizer_steps: int):
        import deepspeed

        self.ds_config = ds_config
        schedule = lr_lambda(config, total_optimizer_steps)
        self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=ds_config,
            lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
        self.model.train()
        self.grad_norm = float("nan")

    @property
    def device(self):
        return self.model.device

    def backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed averages gradients over data-parallel ranks; our per-rank losses already sum to the
        # global loss, so scale by the world size, and do not divide by the accumulation steps either.
        self.model.backward(loss * self.model.dp_world_size, scale_wrt_gas=False)

    def set_accumulation_boundary(self, is_boundary: bool) -> None:
        # Before the forward: ZeRO reduces the accumulated gradients in the boundary micro-batch's backward.
        self.model.set_gradient_accumulation_boundary(is_boundary)

    def step(self) -> bool:
        boundary = self.model.is_gradient_accumulation_boundary()
        self.model.step()
        if boundary:
            norm = self.model.get_global_grad_norm()
            self.grad_norm = float(norm) if norm is not None else float("nan")
        return boundary

    def lr(self) -> float:
        return self.model.get_lr()[0]

    def save(self, directory: Path, tag: str) -> None:
        self.model.save_checkpoint(str(directory), tag=tag, save_latest=False)

    def load(self, directory: Path, tag: str) -> None:
        path, _ = self.model.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                             load_lr_scheduler_states=True)
        if path is None:
            raise ValueError(f"DeepSpeed found no checkpoint {tag!r} in {directory}")

    def consolidated_state_dict(self) -> dict:
        """The full state dict on rank 0 (collective: every rank must call it)."""
        if self.model.zero_optimization_partition_weights():
            return self.model._zero3_consolidated_16bit_state_dict()
        return self.model.module.state_dict()


def build_policy(config: TrainConfig, tokenizer, *, world_size: int, total_optimizer_steps: int):
    _, gas = batch_layout(config, world_size)
    if config.deepspeed_config is None:
        if world_size > 1:
            raise ValueError(f"deepspeed_config=None runs in one process, but WORLD_SIZE={world_size}: pass "
                             "--deepspeed_config configs/ds_zero3.json (or ds_zero3_cpu.json on CPU)")
        if model_dtype(config) == torch.float16:
            raise ValueError("dtype='float16' without deepspeed_config: fp16 training needs a loss scaler, "
                             "which the plain-torch engine does not have; use dtype bfloat16 or float32, or "
                             "pass --deepspeed_config configs/ds_zero3.json with an fp16 section")
        model, peft_model = apply_peft(load_model(config, tokenizer), config)
        _maybe_checkpointing(model, config)
        policy = TorchPolicy(model, config, gas, total_optimizer_steps)
    else:
        hidden = _hidden_size(config)
        ds_config = resolve_deepspeed_config(config.deepspeed_config, config, world_size, gas, hidden)
        model, peft_model = apply_peft(load_model(config, tokenizer, ds_config), config)
        _maybe_checkpointing(model, config)
        policy = DeepSpeedPolicy(model, config, ds_config, total_optimizer_steps)
    if config.lean_layers:  # after deepspeed.initialize: parameters ZeRO-3 partitions are then marked, and skipped
        lean_layers.apply(model)
    if config.keep_freed_host_memory:
        return_freed_memory_in_backward(model)
    policy.peft_model = peft_model  # None without LoRA; checkpoint.save_adapter / export_adapter read it
    return policy


def build_reference(config: TrainConfig, tokenizer, policy):
    """A frozen copy of the initial policy for the KL term (beta > 0): a ZeRO-3 inference engine under
    DeepSpeed (no optimizer), a plain module otherwise."""
    model = load_model(config, tokenizer, getattr(policy, "ds_config", None))
    model.eval().requires_grad_(False)
    if not policy.is_deepspeed:
        return model.to(policy.device)
    import deepspeed

    ds = copy.deepcopy(policy.ds_config)
    for key in ("optimizer", "scheduler"):
        ds.pop(key, None)
    if ds.get("zero_optimization", {}).get("stage") != 3:
        ds["zero_optimization"] = {"stage": 0}  # stages 1-2 shard optimizer state only: nothing to shard here
    engine, *_ = deepspeed.initialize(model=model, config=ds)
    engine.eval()
    return engine


def _hidden_size(config: TrainConfig) -> int:
    if config.model == "toy":
        return config.toy.hidden
    from ..modeling.loading import load_config

    model_config = load_config(model_source(config))
    return getattr(model_config, "hidden_size", 4096)


def _maybe_checkpointing(model, config: TrainConfig) -> None:
    if config.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False


def init_distributed(config: TrainConfig) -> None:
    """Start the process group (DeepSpeed's helper: NCCL on GPUs, gloo on CPU) when DeepSpeed is used.

    `ddp_timeout` bounds how long a collective waits for a rank that died (on another node, whose launcher
    cannot end this one's ranks): then it raises, this rank exits, and its launcher ends the rest."""
    dist.set_launcher_defaults()
    if config.deepspeed_config is None:
        return
    import datetime

    import deepspeed

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_init_required=True,
                                   timeout=datetime.timedelta(seconds=config.ddp_timeout))
        dist.unlink_deepspeed_shm_buffers()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
