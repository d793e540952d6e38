"""The training configuration: one dataclass tree, read from YAML and overridden from the command line.

    from seedgrpo.training.config import load_config
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
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ..loss import IMPORTANCE_SAMPLING_LEVELS, IMPORTANCE_SAMPLING_MODES, LOSS_TYPES

AUTO = "auto"
# A Hub model id: "name" or "org/name" (no path separators beyond the one slash, no leading . or /).
HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


@dataclass
class DataConfig:
    path: str = "toy"                     # .jsonl/.json/.parquet, or "toy" (toy arithmetic, seedgrpo.tasks.toy)
    problem_field: Optional[str] = None   # dotted path into each record; None = auto-detect
    answer_field: Optional[str] = None
    limit: Optional[int] = None           # read at most this many problems
    shuffle: bool = True                  # a fresh permutation every epoch (seeded by `seed` and the epoch)


@dataclass
class ToyConfig:
    """The locally built model and task used when `model: toy` / `data.path: toy` (seedgrpo.tasks.toy)."""
    layers: int = 3
    hidden: int = 128
    num_problems: int = 2000
    ops: str = "+-*"
    max_digits: int = 2


@dataclass
class VLLMConfig:
    """The colocated vLLM engine (`rollout_engine: vllm`). Its recorded log-probs (se_rao's sequence weights)
    equal the hf engine's softmax(logits / T) before top-k/top-p, except at temperature != 1 combined with
    top_k/top_p, where vLLM only returns the filtered distribution's (seedgrpo/rollout/vllm.py)."""
    gpu_memory_utilization: float = 0.3   # colocated with training: leave room for the ZeRO-3 shards
    sleep: bool = True                    # free vLLM's weights and KV cache while the policy trains
    sync_bucket_mb: float = 0.0           # 0 = push one gathered parameter at a time
    max_model_len: Optional[int] = None   # default max_prompt_length + max_completion_length
    enable_prefix_caching: bool = True
    enforce_eager: bool = True            # no CUDA graphs: not yet shown to survive sleep mode on a GPU
    dtype: str = AUTO


@dataclass
class PeftConfig:
    """LoRA through peft (seedgrpo/training/engine.py `apply_peft`): peft's LoraConfig names; r = 0 trains the full model."""
    r: int = 0                            # adapter rank; 0 = no adapter
    lora_alpha: float = 32.0              # TRL's ModelConfig default
    lora_dropout: float = 0.0             # peft's default: dropout would make the training forward differ from
                                          # the (eval-mode) sampling forward, so the on-policy ratio is not 1
    target_modules: list[str] = field(default_factory=list)  # [] = peft's default for the model type; ["all-linear"]


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
    # where generation runs (docs/generation.md; seedgrpo/rollout/server.py and client.py; TRL's words)
    generation_mode: str = "colocate"     # colocate: in the training process | server: `seedgrpo serve`
    server_host: Optional[str] = None     # server mode: None = start a `seedgrpo serve` beside the trainer
    server_port: int = 8765               # the server's port (with server_host)
    server_timeout: float = 600.0         # seconds without a reply (connect, a generation) before failing
    server_threads: Optional[int] = None  # torch threads of the auto-started server; None = the trainer's
    server_bucket_mb: float = 64.0        # weight push: gather and send this much at a time (0 = one tensor)
    server_debug_checksum: bool = False   # after every weight push, compare the server's weights with ours
    async_generation: bool = False        # server mode: sample the next batches while the policy updates
    max_staleness: int = 1                # async: batches sampled k policy versions back; older ones dropped
    # scoring and advantages
    reward_fn: str = "math"               # older form: "math" or "package.module:function" (completions, problems)
    reward_funcs: list[str] = field(default_factory=list)  # TRL-style: "math" or dotted paths; [] = [reward_fn]
    reward_weights: Optional[list[float]] = None  # one per reward function; None = all 1 (TRL)
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
    # the policy-loss family (TRL 1.16's names and meanings; README "Loss types")
    importance_sampling_level: str = "token"  # token | sequence (GSPO)
    top_entropy_quantile: float = 1.0     # train only this top fraction of tokens by entropy (1 = all)
    off_policy_mask_threshold: Optional[float] = None  # drop rows with A < 0 whose mean KL(sampler||policy) exceeds it
    sapo_temperature_pos: float = 1.0
    sapo_temperature_neg: float = 1.05
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    entropy_coef: float = 0.0             # subtract entropy_coef x the mean token entropy
    # rollout correction when the engine's log-probs are not the training model's (rollout/base.py)
    vllm_importance_sampling_correction: bool = False
    vllm_importance_sampling_mode: str = "sequence_mask"  # token|sequence x truncate|mask
    vllm_importance_sampling_clip_max: Optional[float] = 3.0
    vllm_importance_sampling_clip_min: Optional[float] = None
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
    save_total_limit: Optional[int] = None  # keep the newest N complete checkpoints (None = all); HF's name
    save_final_model: bool = True         # HF-format export to output_dir/final
    logging_steps: int = 1
    sample_log_steps: int = 10            # write completions to samples.jsonl every N steps (0 = never)
    num_samples_logged: int = 4
    resume: Optional[str] = None          # "auto" (latest in output_dir) or a checkpoint directory
    ddp_timeout: int = 1800               # seconds a collective waits for a dead rank before failing (HF's)
    progress: Union[bool, str] = True     # true: one rank-0 bar over the run; detailed: + per-step bars; false
    keep_freed_host_memory: bool = True   # glibc: reuse freed host memory instead of faulting it in each step
    tensorboard: bool = True              # older key: with report_to auto, TensorBoard when installed
    report_to: list[str] = field(default_factory=lambda: [AUTO])  # tensorboard | wandb | trackio | all | none
    run_name: Optional[str] = None        # wandb/trackio run name; None = output_dir's name
    project: str = "seedgrpo"             # wandb/trackio project
    peft: PeftConfig = field(default_factory=PeftConfig)


# Allowed values of the string-valued knobs ("registry" = names checked against the registry at start-up).
CHOICES: dict[str, tuple] = {
    "dtype": (AUTO, "float32", "bfloat16", "float16"),
    "attn_implementation": (AUTO, "sdpa", "eager", "flash_attention_2"),
    "rollout_engine": ("hf", "vllm"),
    "generation_mode": ("colocate", "server"),
    "decode_loop": (AUTO, "lean", "generate"),
    "gather_for_generation": (AUTO, True, False),
    "progress": (True, False, "detailed"),
    "answer_backend": ("c", "python"),
    "scale_fn": ("linear", "exp", "focal", "reciprocal"),
    "scale_rewards": ("none", "group", "batch"),
    "embedding_source": (AUTO, "policy", "minilm", "none"),
    "loss_type": LOSS_TYPES,
    "importance_sampling_level": IMPORTANCE_SAMPLING_LEVELS,
    "vllm_importance_sampling_mode": IMPORTANCE_SAMPLING_MODES,
    "loss_impl": (AUTO, "torch", "triton"),
    "lr_scheduler_type": ("constant", "linear", "cosine"),
    "vllm.dtype": (AUTO, "float32", "bfloat16", "float16"),
    "report_to": (AUTO, "none", "all", "tensorboard", "wandb", "trackio"),  # checked per entry
}
# (low, low_inclusive, high, high_inclusive); None = unbounded.
RANGES: dict[str, tuple] = {
    "prompts_per_step": (1, True, None, True), "num_generations": (1, True, None, True),
    "max_prompt_length": (1, True, None, True), "max_completion_length": (1, True, None, True),
    "temperature": (0, False, None, True), "top_p": (0, False, 1, True), "top_k": (0, True, None, True),
    "generation_batch_size": (1, True, None, True), "alpha": (0, True, None, True),
    "beta": (0, True, None, True), "entropy_coef": (0, True, None, True), "epsilon": (0, True, 1, True), "epsilon_high": (0, True, None, True),
    "delta": (1, False, None, True), "num_iterations": (1, True, None, True),
    "top_entropy_quantile": (0, True, 1, True), "off_policy_mask_threshold": (0, True, None, True),
    "sapo_temperature_pos": (0, False, None, True), "sapo_temperature_neg": (0, False, None, True),
    "vespo_k_pos": (0, True, None, True), "vespo_lambda_pos": (0, True, None, True),
    "vespo_k_neg": (0, True, None, True), "vespo_lambda_neg": (0, True, None, True),
    "vllm_importance_sampling_clip_max": (0, True, None, True),
    "vllm_importance_sampling_clip_min": (0, True, None, True),
    "max_dynamic_sampling_rounds": (1, True, None, True),
    "server_port": (1, True, 65535, True), "server_timeout": (0, False, None, True),
    "server_threads": (1, True, None, True), "server_bucket_mb": (0, True, None, True),
    "max_staleness": (0, True, None, True),
    "learning_rate": (0, True, None, True), "weight_decay": (0, True, None, True),
    "adam_beta1": (0, True, 1, False), "adam_beta2": (0, True, 1, False),
    "adam_epsilon": (0, False, None, True),
    "max_grad_norm": (0, True, None, True), "warmup_steps": (0, True, None, True),
    "per_device_train_batch_size": (1, True, None, True),
    "gradient_accumulation_steps": (1, True, None, True),
    "max_steps": (1, True, None, True), "save_steps": (0, True, None, True),
    "save_total_limit": (1, True, None, True), "ddp_timeout": (1, True, None, True),
    "seed": (0, True, 2 ** 32 - 1, True),  # numpy's seed range
    "logging_steps": (1, True, None, True),
    "sample_log_steps": (0, True, None, True), "num_samples_logged": (0, True, None, True),
    "data.limit": (1, True, None, True), "toy.layers": (1, True, None, True),
    "toy.hidden": (32, True, None, True),
    "toy.num_problems": (1, True, None, True), "toy.max_digits": (1, True, 6, True),
    "vllm.gpu_memory_utilization": (0, False, 1, True), "vllm.sync_bucket_mb": (0, True, None, True),
    "vllm.max_model_len": (1, True, None, True),
    "peft.r": (0, True, None, True), "peft.lora_alpha": (0, False, None, True),
    "peft.lora_dropout": (0, True, 1, False),
}


def _is_reward_fn(value: str) -> bool:
    module, colon, function = value.partition(":")
    return value == "math" or bool(colon and module and function and ":" not in function)


def _is_prompt_template(value: str) -> bool:
    from ..tasks.data import TEMPLATES

    return value in TEMPLATES or "{problem}" in value


# String knobs with a rule: key -> (accepts(value), what the error says, allowed values for the message).
CHECKS: dict[str, tuple] = {
    "data.path": (lambda v: v == "toy" or Path(v).is_file(), " is not a file",
                  "'toy' or a .jsonl/.json/.parquet file"),
    "deepspeed_config": (lambda v: v is None or Path(v).is_file(), " is not a file",
                         "null (plain PyTorch, one process) or a DeepSpeed JSON such as "
                         "configs/ds_zero3.json (GPU) or configs/ds_zero3_cpu.json (CPU)"),
    "resume": (lambda v: v is None or v == AUTO or Path(v).is_dir(),
               ": give 'auto' or an existing checkpoint directory", "null, 'auto' or a checkpoint directory"),
    "reward_fn": (_is_reward_fn, " must be 'math' or 'package.module:function'",
                  "'math' or 'package.module:function' (a function (completions, problems) -> list[float])"),
    "toy.ops": (lambda v: bool(v) and not set(v) - set("+-*"), " must be a non-empty string over '+-*'",
                "a non-empty string over '+-*'"),
    "reward_weights": (lambda v: v is None or (isinstance(v, list) and len(v) > 0), " must not be an empty list",
                       "null (every reward function weighs 1) or a list of numbers, one per reward function"),
    "prompt_template": (_is_prompt_template, " is not a template",
                        "qwen_math, r1, none, or a string holding '{problem}'"),
}
# Keys whose every string is valid here: paths and model ids are checked where they are opened, field names
# against each record when the data loads.
FREE_TEXT = ("model", "tokenizer", "output_dir", "data.problem_field", "data.answer_field", "run_name", "project",
             "peft.target_modules", "server_host",
             "reward_funcs")  # each entry imported (with a one-line error naming it) when the Trainer starts
# Names checked against the registries when the Trainer starts (user code may register more after loading).
REGISTRY_CHECKED = ("advantage", "uncertainty")


def allowed_values(key: str) -> str:
    """What `key` accepts, as every error about it says (choices, an interval, a rule, or a type)."""
    if key in CHOICES:
        return f"one of {list(CHOICES[key])}"
    if key in RANGES:
        return _interval(key)
    if key in CHECKS:
        return CHECKS[key][2]
    tp = _key_type(key)
    if tp is bool:
        return "true or false"
    if key in REGISTRY_CHECKED:
        return "a registered name (see docs/trainer.md)"
    return f"a {_type_name(tp)}"


def _interval(key: str) -> str:
    low, low_incl, high, high_incl = RANGES[key]
    lo = "(-inf" if low is None else ("[" if low_incl else "(") + str(low)
    hi = "inf)" if high is None else str(high) + ("]" if high_incl else ")")
    return f"{lo}, {hi}"


def _describe(key: str) -> str:
    """allowed_values with the type of a number range in front ("an int in [1, inf)")."""
    if key not in RANGES:
        return allowed_values(key)
    tp = _key_type(key)
    auto = "'auto' or " if key == "gradient_accumulation_steps" else ""
    null = "null or " if type(None) in typing.get_args(tp) else ""
    number = "int" if int in (typing.get_args(tp) or (tp,)) else "float"
    return f"{null}{auto}{'an' if number == 'int' else 'a'} {number} in {_interval(key)}"


def _key_type(key: str):
    section, _, attr = key.rpartition(".")
    owner = _field_types(TrainConfig)[section] if section else TrainConfig
    return _field_types(owner)[attr]


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
    presets = Path(__file__).resolve().parents[2] / "configs"  # seedgrpo/training/ -> the repository
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


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# Nested blocks (`data:`, `toy:`, ...): every dataclass-typed field of TrainConfig.
_SECTIONS = {name for name, tp in _field_types(TrainConfig).items() if dataclasses.is_dataclass(tp)}


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
    args = typing.get_args(tp) if typing.get_origin(tp) is Union else ()
    optional = type(None) in args
    if isinstance(raw, str) and optional and raw.lower() in ("none", "null", "~", ""):
        return None
    if raw is None:
        if optional:
            return None
        raise ValueError(f"{key}=None is not allowed; give a value of type {_type_name(tp)}; "
                         f"allowed: {_describe(key)}")
    members = [a for a in args if a is not type(None)] or [tp]
    errors = []
    for member in members:
        try:
            return _coerce_one(raw, member)
        except (TypeError, ValueError) as e:
            errors.append(str(e))
    raise ValueError(f"{key}={raw!r} is not a valid {_type_name(tp)}; allowed: {_describe(key)}")


def _coerce_one(raw: Any, tp: Any) -> Any:
    if typing.get_origin(tp) is list:  # YAML list, or "a,b" on the command line
        (item,) = typing.get_args(tp)
        if isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, (list, tuple)):
            raise ValueError("not a list")
        return [_coerce_one(value, item) for value in raw]
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
    union = typing.get_args(tp) if typing.get_origin(tp) is Union else ()
    args = [a for a in union if a is not type(None)]
    names = [f"list of {typing.get_args(a)[0].__name__}" if typing.get_origin(a) is list
             else getattr(a, "__name__", str(a)) for a in (args or [tp])]
    return " or ".join(names) + (" or null" if type(None) in union else "")


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
        for entry in value if isinstance(value, list) else [value]:  # a list-valued key: each entry
            if entry not in allowed:
                which = f" ({entry!r})" if isinstance(value, list) else ""
                raise ValueError(f"{key}={value!r} is not allowed{which}; choose one of {list(allowed)}")
    for key, (low, low_incl, high, high_incl) in RANGES.items():
        value = _get(config, key)
        if value is None or (key == "gradient_accumulation_steps" and value == AUTO):
            continue
        if isinstance(value, str):
            either = " or 'auto'" if key == "gradient_accumulation_steps" else ""
            raise ValueError(f"{key}={value!r} must be a number{either}; allowed: {_describe(key)}")
        if (low is not None and (value < low or (value == low and not low_incl))) or \
                (high is not None and (value > high or (value == high and not high_incl))):
            raise ValueError(f"{key}={value!r} is out of range; allowed: {_interval(key)}")
    for key, (accepts, problem, allowed) in CHECKS.items():
        value = _get(config, key)
        if not accepts(value):
            raise ValueError(f"{key}={value!r}{problem}; allowed: {allowed}")
    if config.epsilon_high is not None and config.epsilon_high < config.epsilon:
        raise ValueError(f"epsilon_high={config.epsilon_high} must be >= epsilon={config.epsilon} "
                         "(DAPO's clip-higher)")
    if len(config.report_to) > 1 and set(config.report_to) & {AUTO, "none", "all"}:
        raise ValueError(f"report_to={config.report_to!r}: 'auto', 'none' and 'all' stand alone; give one of "
                         "them or a list of trackers (tensorboard, wandb, trackio)")
    if config.reward_funcs and config.reward_fn != "math":
        raise ValueError(f"reward_fn={config.reward_fn!r} and reward_funcs={config.reward_funcs!r} are both set; "
                         "reward_fn is the older form: move it into reward_funcs")
    # (with reward_funcs given in Python, Trainer(reward_funcs=[...]) checks the count)
    if config.reward_funcs and config.reward_weights is not None \
            and len(config.reward_weights) != len(config.reward_funcs):
        raise ValueError(f"reward_weights={config.reward_weights!r} has {len(config.reward_weights)} entries for "
                         f"{len(config.reward_funcs)} reward functions; give one weight per entry of reward_funcs")
    if config.peft.r == 0 and dataclasses.asdict(config.peft) != dataclasses.asdict(PeftConfig()):
        raise ValueError(f"peft.r=0 turns LoRA off, but other peft keys are set ({config.peft}); set peft.r "
                         "(e.g. 16) to train an adapter")
    for key in ("model", "tokenizer"):
        name = getattr(config, key)
        if name not in (None, "toy") and not Path(name).is_dir() and not HUB_MODEL_ID.fullmatch(name):
            raise ValueError(f"{key}={name!r} is neither a local directory nor a Hugging Face model id "
                             "('org/name'); give a directory holding config.json, a model id, or 'toy'")
    if config.async_generation and config.generation_mode != "server":
        raise ValueError("async_generation=true needs generation_mode: server (colocated generation shares "
                         "the training process and cannot run beside the update); set generation_mode: "
                         "server")
    if config.async_generation and config.max_staleness > 0 and config.dynamic_sampling:
        raise ValueError("async_generation with max_staleness > 0 draws prompts ahead, which "
                         "dynamic_sampling's extra draws would reorder; set dynamic_sampling: false or "
                         "max_staleness: 0")
    if config.toy.hidden % 32:
        raise ValueError(f"toy.hidden={config.toy.hidden} must be a multiple of 32 (the head size)")


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
