"""The training configuration: one dataclass tree, read from YAML and overridden from the command line.

    from seedgrpo.config import load_config
    config = load_config("configs/tiny-cpu.yaml", ["--max_steps", "5", "--data.limit", "64"])

Knobs keep TRL's names where the meaning is the same (`num_generations`, `beta`, `epsilon`, `loss_type`, ...).
Every key and value is checked before any work starts: an unknown key, a wrong type or a value outside its
allowed set raises a ValueError naming the key, the value and what is allowed. docs/trainer.md is the
reference of every field.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

AUTO = "auto"


@dataclass
class DataConfig:
    path: str = "toy"                     # .jsonl/.json/.parquet, or "toy" (toy arithmetic, seedgrpo.toy)
    problem_field: Optional[str] = None   # dotted path into each record; None = auto-detect
    answer_field: Optional[str] = None
    limit: Optional[int] = None           # read at most this many problems
    shuffle: bool = True                  # a fresh permutation every epoch (seeded by `seed` and the epoch)


@dataclass
class ToyConfig:
    """The locally built model and task used when `model: toy` / `data.path: toy` (seedgrpo.toy)."""
    layers: int = 3
    hidden: int = 128
    num_problems: int = 2000
    ops: str = "+-*"
    max_digits: int = 2


@dataclass
class VLLMConfig:
    gpu_memory_utilization: float = 0.3   # colocated with training: leave room for the ZeRO-3 shards
    sleep: bool = True                    # free vLLM's weights and KV cache while the policy trains
    sync_bucket_mb: float = 0.0           # 0 = push one gathered parameter at a time
    max_model_len: Optional[int] = None   # default max_prompt_length + max_completion_length
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    dtype: str = AUTO


@dataclass
class TrainConfig:
    # model
    model: str = "toy"                    # a local HF directory / hub id, or "toy"
    tokenizer: Optional[str] = None       # default: the model's
    dtype: str = AUTO                     # auto = bfloat16 on CUDA, float32 on CPU
    attn_implementation: str = AUTO       # auto = flash_attention_2 when importable on CUDA, else sdpa
    gradient_checkpointing: bool = False
    # data
    data: DataConfig = field(default_factory=DataConfig)
    toy: ToyConfig = field(default_factory=ToyConfig)
    prompt_template: str = "qwen_math"    # qwen_math | r1 | none | any string holding "{problem}"
    # rollout
    rollout_engine: str = "hf"            # hf | vllm
    prompts_per_step: int = 8             # prompts per rollout, all ranks together
    num_generations: int = 8              # G completions per prompt
    max_prompt_length: int = 512
    max_completion_length: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: Optional[int] = None
    generation_batch_size: Optional[int] = None  # rows per generate() call per rank; None = all at once
    gather_for_generation: Union[bool, str] = AUTO  # ZeRO-3: generate from gathered weights (auto: if fit)
    share_prompt_prefill: bool = True     # run each prompt's prefix once for its G rows (generation + update)
    decode_loop: str = AUTO               # hf engine: auto = lean loop for Llama/Mistral/Qwen2/Qwen3, else generate
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    dynamic_sampling: bool = False        # DAPO: draw more prompts until the batch has signal (verl filter_groups)
    max_dynamic_sampling_rounds: int = 4  # rollouts per step at most with dynamic_sampling (the first included)
    # scoring and advantages
    reward_fn: str = "math"               # "math" (seedgrpo.rewards.math_reward) or "package.module:function"
    answer_backend: str = "c"             # c | python (seedgrpo.answers)
    advantage: str = "seed_grpo"          # a registered advantage estimator
    uncertainty: str = "se_rao"           # a registered uncertainty, or "none"
    scale_fn: str = "reciprocal"
    alpha: float = 0.0417
    scale_rewards: str = "none"
    embedding_source: str = AUTO          # auto | policy | minilm | none
    mask_truncated_completions: bool = False
    # loss
    loss_type: str = "dr_grpo"
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: Optional[float] = None
    delta: Optional[float] = None
    num_iterations: int = 1
    loss_impl: str = AUTO                 # auto | torch | triton (seed_grpo_loss impl)
    fused_linear: bool = True             # loss from hidden states + lm_head weight; never materialise logits
    skip_zero_advantage: bool = True      # leave rows with advantage exactly 0 out of the update (when exact)
    # optimisation
    learning_rate: float = 1e-6
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "constant"   # constant | linear | cosine (after warmup_steps)
    warmup_steps: int = 0
    per_device_train_batch_size: int = 8  # completions per micro-batch
    gradient_accumulation_steps: Union[int, str] = AUTO  # auto = one optimizer step per pass over the rollout
    deepspeed_config: Optional[str] = None  # a DeepSpeed JSON; None = plain PyTorch in one process
    # run
    seed: int = 0
    max_steps: int = 10
    output_dir: str = "runs/seedgrpo"
    save_steps: int = 0                   # 0 = only at the end (and on SIGTERM)
    save_final_model: bool = True         # HF-format export to output_dir/final
    logging_steps: int = 1
    sample_log_steps: int = 10            # write completions to samples.jsonl every N steps (0 = never)
    num_samples_logged: int = 4
    resume: Optional[str] = None          # "auto" (latest in output_dir) or a checkpoint directory
    progress: bool = True                 # rank-0 tqdm bars
    keep_freed_host_memory: bool = True   # glibc: reuse freed host memory instead of faulting it in each step
    tensorboard: bool = True              # when tensorboard is installed


# Allowed values of the string-valued knobs ("registry" = names checked against the registry at start-up).
CHOICES: dict[str, tuple] = {
    "dtype": (AUTO, "float32", "bfloat16", "float16"),
    "attn_implementation": (AUTO, "sdpa", "eager", "flash_attention_2"),
    "rollout_engine": ("hf", "vllm"),
    "decode_loop": (AUTO, "lean", "generate"),
    "gather_for_generation": (AUTO, True, False),
    "answer_backend": ("c", "python"),
    "scale_fn": ("linear", "exp", "focal", "reciprocal"),
    "scale_rewards": ("none", "group", "batch"),
    "embedding_source": (AUTO, "policy", "minilm", "none"),
    "loss_type": ("grpo", "bnpo", "dr_grpo", "dapo"),
    "loss_impl": (AUTO, "torch", "triton"),
    "lr_scheduler_type": ("constant", "linear", "cosine"),
    "vllm.dtype": (AUTO, "float32", "bfloat16", "float16"),
}
# (low, low_inclusive, high, high_inclusive); None = unbounded.
RANGES: dict[str, tuple] = {
    "prompts_per_step": (1, True, None, True), "num_generations": (1, True, None, True),
    "max_prompt_length": (1, True, None, True), "max_completion_length": (1, True, None, True),
    "temperature": (0, False, None, True), "top_p": (0, False, 1, True), "top_k": (0, True, None, True),
    "generation_batch_size": (1, True, None, True), "alpha": (0, True, None, True),
    "beta": (0, True, None, True), "epsilon": (0, True, 1, True), "epsilon_high": (0, True, None, True),
    "delta": (1, False, None, True), "num_iterations": (1, True, None, True),
    "max_dynamic_sampling_rounds": (1, True, None, True),
    "learning_rate": (0, True, None, True), "weight_decay": (0, True, None, True),
    "adam_beta1": (0, True, 1, False), "adam_beta2": (0, True, 1, False),
    "adam_epsilon": (0, False, None, True),
    "max_grad_norm": (0, True, None, True), "warmup_steps": (0, True, None, True),
    "per_device_train_batch_size": (1, True, None, True),
    "gradient_accumulation_steps": (1, True, None, True),
    "max_steps": (1, True, None, True), "save_steps": (0, True, None, True),
    "logging_steps": (1, True, None, True),
    "sample_log_steps": (0, True, None, True), "num_samples_logged": (0, True, None, True),
    "data.limit": (1, True, None, True), "toy.layers": (1, True, None, True),
    "toy.hidden": (32, True, None, True),
    "toy.num_problems": (1, True, None, True), "toy.max_digits": (1, True, 6, True),
    "vllm.gpu_memory_utilization": (0, False, 1, True), "vllm.sync_bucket_mb": (0, True, None, True),
    "vllm.max_model_len": (1, True, None, True),
}


# ----------------------------------------------------------------------------------------------- loading
def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Defaults ← YAML file ← overrides (`["--key", "value", "--a.b=value"]` or `{"a.b": value}`)."""
    values: dict = {}
    if path is not None:
        path = resolve_config_path(path)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a YAML mapping of keys to values")
        values = _flatten(loaded)
        # Paths inside a YAML file: relative to the working directory, or else to the YAML file itself.
        for key in ("deepspeed_config", "data.path"):
            value = values.get(key)
            if isinstance(value, str) and value != "toy" and not Path(value).exists() \
                    and (path.parent / value).exists():
                values[key] = str(path.parent / value)
    if isinstance(overrides, dict):
        values.update(_flatten(overrides))
    elif overrides:
        values.update(parse_overrides(overrides))
    return build_config(values)


def resolve_config_path(path: str | Path) -> Path:
    """A file path, or a preset name looked up in the repository's configs/ ("tiny-cpu")."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    presets = Path(__file__).resolve().parents[1] / "configs"
    for name in (f"{path}", f"{path}.yaml"):
        if (presets / name).is_file():
            return presets / name
    raise ValueError(f"--config {str(path)!r}: no such file (nor a preset in {presets})")


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` pairs to {dotted_key: raw value}; a bare `--flag` means true."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"unexpected argument {arg!r}: overrides are `--key value` or `--key=value`")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted in _SECTIONS:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


_SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name in ("data", "toy", "vllm")}


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys() -> list[str]:
    keys = []
    for name, tp in _field_types(TrainConfig).items():
        if dataclasses.is_dataclass(tp):
            keys += [f"{name}.{sub}" for sub in _field_types(tp)]
        else:
            keys.append(name)
    return keys


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from {dotted_key: value}; raises ValueError on the first bad entry."""
    config = TrainConfig()
    keys = all_keys()
    for key, raw in values.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; known keys: {', '.join(keys)}"
            raise ValueError(f"unknown config key {key!r} (value {raw!r}){hint}")
        owner, attr = (getattr(config, key.split(".")[0]), key.split(".")[1]) if "." in key else (config, key)
        setattr(owner, attr, _coerce(key, raw, _field_types(type(owner))[attr]))
    validate(config)
    return config


def _coerce(key: str, raw: Any, tp: Any) -> Any:
    """Convert `raw` (from YAML or the command line) to the field's type, or raise naming the key."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if isinstance(raw, str) and optional and raw.lower() in ("none", "null", "~", ""):
        return None
    if raw is None:
        if optional:
            return None
        raise ValueError(f"{key}=None is not allowed; give a value of type {_type_name(tp)}")
    members = [a for a in args if a is not type(None)] or [tp]
    errors = []
    for member in members:
        try:
            return _coerce_one(raw, member)
        except (TypeError, ValueError) as e:
            errors.append(str(e))
    raise ValueError(f"{key}={raw!r} is not a valid {_type_name(tp)}")


def _coerce_one(raw: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "yes", "1", "false", "no", "0"):
            return raw.lower() in ("true", "yes", "1")
        raise ValueError("not a bool")
    if tp is int:
        if isinstance(raw, bool):
            raise ValueError("bool is not an int")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            number = float(raw)  # accepts "1e3"
            if number.is_integer():
                return int(number)
        raise ValueError("not an int")
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError("bool is not a float")
        value = float(raw)  # YAML reads "1e-6" as a string: parse it here
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise ValueError("not a str")
    raise TypeError(f"unsupported field type {tp}")


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in (args or [tp])]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(tp) else "")


# -------------------------------------------------------------------------------------------- validation
def _get(config: TrainConfig, key: str):
    section, _, attr = key.rpartition(".")
    return getattr(getattr(config, section) if section else config, attr)


def validate(config: TrainConfig) -> None:
    """Check every value and the relations between them; registry names are checked by the trainer."""
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if isinstance(value, str) and value.lower() in ("true", "false") and True in allowed:
            value = value.lower() == "true"
            setattr(config, key, value)
        if value not in allowed:
            raise ValueError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}")
    for key, (low, low_incl, high, high_incl) in RANGES.items():
        value = _get(config, key)
        if value is None or (key == "gradient_accumulation_steps" and value == AUTO):
            continue
        if isinstance(value, str):
            either = " or 'auto'" if key == "gradient_accumulation_steps" else ""
            raise ValueError(f"{key}={value!r} must be a number{either}")
        if (low is not None and (value < low or (value == low and not low_incl))) or \
                (high is not None and (value > high or (value == high and not high_incl))):
            lo = "(-inf" if low is None else ("[" if low_incl else "(") + str(low)
            hi = "inf)" if high is None else str(high) + ("]" if high_incl else ")")
            raise ValueError(f"{key}={value!r} is out of range; allowed: {lo}, {hi}")
    if config.epsilon_high is not None and config.epsilon_high < config.epsilon:
        raise ValueError(f"epsilon_high={config.epsilon_high} must be >= epsilon={config.epsilon} "
                         "(DAPO's clip-higher)")
    if set(config.toy.ops) - set("+-*") or not config.toy.ops:
        raise ValueError(f"toy.ops={config.toy.ops!r} must be a non-empty string over '+-*'")
    module, colon, function = config.reward_fn.partition(":")
    if config.reward_fn != "math" and (not colon or not module or not function or ":" in function):
        raise ValueError(f"reward_fn={config.reward_fn!r} must be 'math' or 'package.module:function' "
                         "(a function (completions, problems) -> list[float])")
    if config.toy.hidden % 32:
        raise ValueError(f"toy.hidden={config.toy.hidden} must be a multiple of 32 (the head size)")
    if config.resume is not None and config.resume != AUTO and not Path(config.resume).is_dir():
        raise ValueError(f"resume={config.resume!r}: give 'auto' or an existing checkpoint directory")
    if config.deepspeed_config is not None and not Path(config.deepspeed_config).is_file():
        raise ValueError(f"deepspeed_config={config.deepspeed_config!r} is not a file; "
                         "use configs/ds_zero3.json (GPU) or configs/ds_zero3_cpu.json (CPU), or null")
    if config.data.path != "toy" and not Path(config.data.path).is_file():
        raise ValueError(f"data.path={config.data.path!r} is not a file; "
                         "give a .jsonl/.json/.parquet file or 'toy'")


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
