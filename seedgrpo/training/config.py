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

from ..advantages import DEFAULT_ALPHA, SCALE_FNS, SCALE_REWARDS
from ..knobs import Rule, above, at_least, help_of, knob, same_knob, within
from ..loss import IMPLS, IMPORTANCE_SAMPLING_MODES, LossOptions

AUTO = "auto"
# A Hub model id: "name" or "org/name" (no path separators beyond the one slash, no leading . or /).
HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


DTYPES = (AUTO, "float32", "bfloat16", "float16")


def _is_reward_fn(value: str) -> bool:
    module, colon, function = value.partition(":")
    return value == "math" or bool(colon and module and function and ":" not in function)


def _is_dataset_id(value: str) -> bool:
    from ..tasks.data import is_dataset_id

    return is_dataset_id(value)


def _is_prompt_template(value: str) -> bool:
    from ..tasks.data import TEMPLATES

    return value in TEMPLATES or "{problem}" in value


@dataclass
class DataConfig:
    path: str = knob("toy", "a .jsonl / .json / .parquet file, a Hugging Face dataset id (read through `datasets`), "
                     "or `toy` (synthetic arithmetic, seedgrpo/tasks/toy.py); the problem and answer fields of "
                     "common math datasets are detected",
                     rule=Rule(lambda v: v == "toy" or Path(v).is_file() or _is_dataset_id(v),
                               " is not a file (nor a Hugging Face dataset id)",
                               "'toy', a .jsonl/.json/.parquet file, or a dataset id 'org/name' (with data.split, "
                               "data.name)"))
    split: str = knob("train", "a dataset id only: the split to read", free_text=True)
    name: Optional[str] = knob(None, "a dataset id only: its config (subset) name", free_text=True)
    problem_field: Optional[str] = knob(None, "dotted path of the problem text in each record "
                                        "(`prompt.0.content`); null = detect", free_text=True)
    answer_field: Optional[str] = knob(None, "dotted path of the reference answer "
                                       "(`reward_model.ground_truth`); null = detect", free_text=True)
    limit: Optional[int] = knob(None, "read at most this many problems", at_least(1))
    shuffle: bool = knob(True, "a new seeded permutation of the problems every epoch")


@dataclass
class ToyConfig:
    """The locally built model and task used when `model: toy` / `data.path: toy` (seedgrpo.tasks.toy)."""
    layers: int = knob(3, "toy model depth", at_least(1))
    hidden: int = knob(128, "toy model width (a multiple of 32, the head size)", at_least(32))
    num_problems: int = knob(2000, "size of the toy task", at_least(1))
    ops: str = knob("+-*", "the toy task's operations",
                    rule=Rule(lambda v: bool(v) and not set(v) - set("+-*"), " must be a non-empty string over '+-*'",
                              "a non-empty string over '+-*'"))
    max_digits: int = knob(2, "digits of the toy task's operands", within(1, 6))


@dataclass
class VLLMConfig:
    """The colocated vLLM engine (`rollout_engine: vllm`). Its recorded log-probs (se_rao's sequence weights)
    equal the hf engine's softmax(logits / T) before top-k/top-p, except at temperature != 1 combined with
    top_k/top_p, where vLLM only returns the filtered distribution's (seedgrpo/rollout/vllm.py)."""
    gpu_memory_utilization: float = knob(0.3, "vLLM's share of GPU memory (colocated with training: leave room "
                                         "for the ZeRO-3 shards)", within(0, 1, low_inclusive=False))
    sleep: bool = knob(True, "free vLLM's weights and KV cache while the policy trains (CUDA)")
    sync_bucket_mb: float = knob(0.0, "weight-sync bucket size by full parameter size; 0 = one gathered "
                                 "parameter at a time", at_least(0))
    max_model_len: Optional[int] = knob(None, "vLLM's context; null = max_prompt_length + max_completion_length",
                                        at_least(1))
    enable_prefix_caching: bool = knob(True, "vLLM's prefix cache (reset after every weight sync)")
    enforce_eager: bool = knob(True, "no CUDA graphs (on until a GPU run shows they survive sleep mode)")
    dtype: str = knob(AUTO, "vLLM's dtype; auto = the policy's", choices=DTYPES)


@dataclass
class PeftConfig:
    """LoRA through peft (seedgrpo/training/engine.py `apply_peft`): peft's LoraConfig names; r = 0 trains the
    full model."""
    r: int = knob(0, "LoRA rank; 0 = train the whole model, > 0 = a LoRA adapter through peft", at_least(0))
    lora_alpha: float = knob(32.0, "LoRA scaling numerator (scale = lora_alpha / r; TRL's default)", above(0))
    lora_dropout: float = knob(0.0, "dropout on the adapter's input in the training forward; sampling runs in "
                               "eval mode, so > 0 makes the on-policy ratio differ from 1",
                               within(0, 1, high_inclusive=False))
    target_modules: list[str] = knob(help="module names to adapt ([q_proj, v_proj], [all-linear]); [] = peft's "
                                     "default for the model type; lm_head is refused", free_text=True,
                                     default_factory=list)


@dataclass
class TrainConfig:
    # model
    model: str = knob("toy", "a local HF directory, a hub id, a .gguf file (rebuilt as a plain float model), or "
                      "`toy` (a tiny Qwen2 built locally)", free_text=True)
    gguf_file: Optional[str] = knob(None, "a .gguf file inside `model` (a directory or hub id); rebuilt as a plain "
                                    "float model", free_text=True)
    tokenizer: Optional[str] = knob(None, "tokenizer path or id when it differs from `model`", free_text=True)
    dtype: str = knob(AUTO, "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16", choices=DTYPES)
    attn_implementation: str = knob(AUTO, "auto = flash_attention_2 when flash-attn imports on CUDA, else sdpa",
                                    choices=(AUTO, "sdpa", "eager", "flash_attention_2"))
    gradient_checkpointing: bool = knob(False, "recompute activations in the backward pass")
    lean_layers: bool = knob(True, "SwiGLU MLPs and RMSNorms keep fewer tensors for backward (the same forward "
                             "bit for bit; only elementwise work is recomputed): about a third less activation "
                             "memory on Llama/Qwen/Mistral-style models")
    peft: PeftConfig = field(default_factory=PeftConfig)
    toy: ToyConfig = field(default_factory=ToyConfig)
    # data
    data: DataConfig = field(default_factory=DataConfig)
    prompt_template: str = knob("qwen_math", "qwen_math (Qwen2.5-Math system + user turn; the tokenizer's chat "
                                "template when it has one), r1 (R1-Zero plain text), chat (the problem as a user "
                                "turn through the tokenizer's own chat template), none, or a string holding "
                                "{problem}", rule=Rule(_is_prompt_template, " is not a template",
                                                       "qwen_math, r1, chat, none, or a string holding '{problem}'"))
    system_prompt: Optional[str] = knob(None, "with prompt_template: chat, a system turn before the problem; null = "
                                        "the chat template's own", free_text=True)
    # rollout
    rollout_engine: str = knob("hf", "hf (the policy's own HF module; CPU or GPU) or vllm (colocated, GPU)",
                               choices=("hf", "vllm"))
    prompts_per_step: int = knob(8, "prompts per rollout over all ranks (divisible by the number of ranks)",
                                 at_least(1))
    num_generations: int = knob(8, "G, completions per prompt", at_least(1))
    max_prompt_length: int = knob(512, "prompts keep their last tokens", at_least(1))
    max_completion_length: int = knob(256, "new tokens per completion (also the Dr. GRPO normaliser)",
                                      at_least(1))
    temperature: float = same_knob(LossOptions, "temperature")
    top_p: float = knob(1.0, "nucleus sampling", within(0, 1, low_inclusive=False))
    top_k: Optional[int] = knob(None, "top-k sampling; null = off", at_least(0))
    generation_batch_size: Optional[int] = knob(None, "rows per generate call on a rank (hf); null = all at once",
                                                at_least(1))
    gather_for_generation: Union[bool, str] = knob(
        AUTO, "ZeRO-3 + hf: generate from gathered weights (true), sharded with synced_gpus (false), or gathered "
        "when they take under half the free GPU memory (auto)", choices=(AUTO, True, False))
    share_prompt_prefill: bool = knob(True, "run each prompt's prefix once for its G rows, in generation and in "
                                      "the training forward (same results up to float rounding)")
    decode_loop: str = knob(AUTO, "hf engine: auto = the lean loop for Llama/Mistral/Qwen2/Qwen3, else generate; "
                            "lean requires the lean loop; generate always uses transformers' generate",
                            choices=(AUTO, "lean", "generate"))
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    dynamic_sampling: bool = knob(False, "DAPO's dynamic sampling (verl's filter_groups): draw fresh prompts "
                                  "until the batch has groups with unequal rewards")
    max_dynamic_sampling_rounds: int = knob(4, "rollouts per step at most with dynamic_sampling, the first "
                                            "included; at the cap the batch is filled", at_least(1))
    # where generation runs (docs/generation.md; seedgrpo/rollout/server.py and client.py; TRL's words)
    generation_mode: str = knob("colocate", "colocate (sample in the training process) or server (a `seedgrpo "
                                "serve` process; docs/generation.md)", choices=("colocate", "server"))
    server_host: Optional[str] = knob(None, "server mode: null = start `seedgrpo serve` beside the trainer "
                                      "(and stop it at the end); host, host:port, or several "
                                      "comma-separated: connect to the servers there", free_text=True)
    server_port: int = knob(8765, "the generation server's port (with server_host)", within(1, 65535))
    num_servers: int = knob(1, "servers to auto-start when server_host is null (each request's prompts are "
                            "split across them); with server_host, list several: 'gen1:8765,gen2:8765'",
                            at_least(1))
    server_timeout: float = knob(600.0, "seconds without a reply from the server (connect, one generation) "
                                 "before the run stops with an error", above(0))
    server_threads: Optional[int] = knob(None, "torch threads of the auto-started server; null = the "
                                         "trainer's", at_least(1))
    server_bucket_mb: float = knob(64.0, "weight push: gather (ZeRO-3), copy to the CPU and send this much at a "
                                   "time; 0 = one tensor at a time", at_least(0))
    server_debug_checksum: bool = knob(False, "after every weight push, compare the server's weights with the "
                                       "trainer's (SHA-256, bitwise); every push then waits for the server")
    async_generation: bool = knob(False, "server mode: sample the next batches while the policy updates "
                                  "(max_staleness steps ahead)")
    max_staleness: int = knob(1, "async: requests go out k steps ahead, so batches are sampled k policy "
                              "versions back; an older batch is dropped, counted and sampled again; 0 = sync",
                              at_least(0))
    # scoring and advantages
    reward_fn: str = knob("math", "the older single reward: math, or package.module:function taking "
                          "(completions, problems); not together with reward_funcs",
                          rule=Rule(_is_reward_fn, " must be 'math' or 'package.module:function'",
                                    "'math' or 'package.module:function' (a function (completions, problems) -> "
                                    "list[float])"))
    reward_funcs: list[str] = knob(help="TRL-style reward functions: math and dotted paths, called as TRL calls "
                                   "them; [] = [reward_fn]", free_text=True, default_factory=list)
    reward_weights: Optional[list[float]] = knob(
        None, "one weight per reward function (TRL's key); null = all 1",
        rule=Rule(lambda v: v is None or (isinstance(v, list) and len(v) > 0), " must not be an empty list",
                  "null (every reward function weighs 1) or a list of numbers, one per reward function"))
    answer_backend: str = knob("c", "answer hashing: c (compiled, threaded) or python", choices=("c", "python"))
    advantage: str = knob("seed_grpo", "a registered advantage estimator (seed_grpo, grpo, or your own)",
                          registry="advantage")
    uncertainty: str = knob("se_rao", "se_rao, se_discrete, se_mc, gcpo_cd, gcpo_bot, gcpo_calibrated, kle, "
                            "none, or a registered one", registry="uncertainty")
    scale_fn: str = knob("reciprocal", "f in Â = A · f(α·U)", choices=SCALE_FNS)
    alpha: float = knob(DEFAULT_ALPHA, "α, the strength of the scaling; 0 gives GRPO / Dr. GRPO", at_least(0))
    scale_rewards: str = knob("none", "none (Dr. GRPO), group (÷ group std), batch (÷ std of every reward)",
                              choices=SCALE_REWARDS)
    embedding_source: str = knob(AUTO, "policy (mean last hidden state), minilm (sentence encoder), none; auto = "
                                 "policy for the embedding uncertainties", choices=(AUTO, "policy", "minilm", "none"))
    mask_truncated_completions: bool = knob(False, "completions without EOS take no part in the loss")
    # loss (LossOptions' fields: the same defaults, ranges and help as seedgrpo.seed_grpo_loss)
    loss_type: str = same_knob(LossOptions, "loss_type")
    beta: float = same_knob(LossOptions, "beta")
    epsilon: float = same_knob(LossOptions, "epsilon")
    epsilon_high: Optional[float] = same_knob(LossOptions, "epsilon_high")
    delta: Optional[float] = same_knob(LossOptions, "delta")
    importance_sampling_level: str = same_knob(LossOptions, "importance_sampling_level")
    top_entropy_quantile: float = same_knob(LossOptions, "top_entropy_quantile")
    off_policy_mask_threshold: Optional[float] = same_knob(LossOptions, "off_policy_mask_threshold")
    sapo_temperature_pos: float = same_knob(LossOptions, "sapo_temperature_pos")
    sapo_temperature_neg: float = same_knob(LossOptions, "sapo_temperature_neg")
    vespo_k_pos: float = same_knob(LossOptions, "vespo_k_pos")
    vespo_lambda_pos: float = same_knob(LossOptions, "vespo_lambda_pos")
    vespo_k_neg: float = same_knob(LossOptions, "vespo_k_neg")
    vespo_lambda_neg: float = same_knob(LossOptions, "vespo_lambda_neg")
    entropy_coef: float = same_knob(LossOptions, "entropy_coef")
    # rollout correction when the engine's log-probs are not the training model's (rollout/base.py)
    vllm_importance_sampling_correction: bool = knob(False, "weight the loss by TRL's rollout-mismatch ratios "
                                                     "when the engine's log-probs are not the training model's")
    vllm_importance_sampling_mode: str = knob("sequence_mask", "per token or sequence × clamp (truncate) or zero "
                                              "(mask) outside the bounds", choices=IMPORTANCE_SAMPLING_MODES)
    vllm_importance_sampling_clip_max: Optional[float] = knob(3.0, "upper bound of those modes; null = none",
                                                              at_least(0))
    vllm_importance_sampling_clip_min: Optional[float] = knob(None, "lower bound of those modes; null = none",
                                                              at_least(0))
    num_iterations: int = knob(1, "passes over each rollout (PPO epochs)", at_least(1))
    loss_impl: str = knob(AUTO, "seed_grpo_loss implementation: auto (Triton on CUDA), torch, triton",
                          choices=IMPLS)
    fused_linear: bool = knob(True, "loss from hidden states + lm_head weight, never the [tokens, vocab] logits; "
                              "false = through logits")
    skip_zero_advantage: bool = knob(True, "leave rows whose advantage is exactly 0 out of the update where that "
                                     "provably changes nothing (beta = 0, no entropy bonus, no entropy quantile)")
    # optimisation
    learning_rate: float = knob(1e-6, "AdamW learning rate", at_least(0))
    weight_decay: float = knob(0.0, "AdamW weight decay", at_least(0))
    adam_beta1: float = knob(0.9, "AdamW β1", within(0, 1, high_inclusive=False))
    adam_beta2: float = knob(0.999, "AdamW β2 (the paper's recipe uses 0.95)", within(0, 1, high_inclusive=False))
    adam_epsilon: float = knob(1e-8, "AdamW ε", above(0))
    max_grad_norm: float = knob(1.0, "gradient clipping (0 = off)", at_least(0))
    lr_scheduler_type: str = knob("constant", "after warmup_steps of linear warm-up",
                                  choices=("constant", "linear", "cosine"))
    warmup_steps: int = knob(0, "linear warm-up, in optimizer steps", at_least(0))
    per_device_train_batch_size: int = knob(8, "completions per micro-batch per rank", at_least(1))
    gradient_accumulation_steps: Union[int, str] = knob(AUTO, "micro-batches per optimizer step; auto = one "
                                                        "optimizer step per pass over the rollout", at_least(1))
    deepspeed_config: Optional[str] = knob(
        None, "a DeepSpeed JSON (configs/ds_zero3.json GPU, configs/ds_zero3_cpu.json CPU), its auto fields filled "
        "from this config; null = plain PyTorch, one process",
        rule=Rule(lambda v: v is None or Path(v).is_file(), " is not a file",
                  "null (plain PyTorch, one process) or a DeepSpeed JSON such as configs/ds_zero3.json (GPU) or "
                  "configs/ds_zero3_cpu.json (CPU)"))
    # run
    seed: int = knob(0, "seeds sampling, data order and the toy model", within(0, 2 ** 32 - 1))  # numpy's range
    max_steps: int = knob(10, "rollouts, each followed by its updates", at_least(1))
    output_dir: str = knob("runs/seedgrpo", "the run directory", free_text=True)
    save_steps: int = knob(0, "checkpoint every N steps (0 = only at the end and on SIGTERM)", at_least(0))
    save_total_limit: Optional[int] = knob(None, "keep the N newest complete checkpoints (null = all; HF's name)",
                                           at_least(1))
    save_final_model: bool = knob(True, "save_pretrained export to output_dir/final")
    logging_steps: int = knob(1, "a metrics row and console line every N steps", at_least(1))
    sample_log_steps: int = knob(10, "completions to samples.jsonl every N steps (0 = never)", at_least(0))
    num_samples_logged: int = knob(4, "prompts (with all their G completions) per samples row set", at_least(0))
    resume: Optional[str] = knob(None, "auto (the latest checkpoint in output_dir, or a fresh start) or a "
                                 "checkpoint directory",
                                 rule=Rule(lambda v: v is None or v == AUTO or Path(v).is_dir(),
                                           ": give 'auto' or an existing checkpoint directory",
                                           "null, 'auto' or a checkpoint directory"))
    ddp_timeout: int = knob(1800, "seconds a collective waits for a dead rank before failing (HF's name)",
                            at_least(1))
    progress: Union[bool, str] = knob(True, "true: one rank-0 bar over the run; detailed: also per-step bars; "
                                      "false: a line every logging_steps", choices=(True, False, "detailed"))
    keep_freed_host_memory: bool = knob(True, "glibc: reuse freed host memory within a phase instead of faulting "
                                        "it in each step, and hand it back between phases and in backward "
                                        "(every tenth layer)")
    tensorboard: bool = knob(True, "the older key: with report_to auto, TensorBoard events when installed")
    report_to: list[str] = knob(help="trackers: tensorboard, wandb, trackio, a list of them, all (those installed) "
                                "or none; auto = TensorBoard when `tensorboard` is true and installed",
                                choices=(AUTO, "none", "all", "tensorboard", "wandb", "trackio"),
                                default_factory=lambda: [AUTO])
    run_name: Optional[str] = knob(None, "wandb/trackio run name; null = output_dir's name", free_text=True)
    project: str = knob("seedgrpo", "wandb/trackio project", free_text=True)


def _knob_fields() -> dict[str, dataclasses.Field]:
    """Every knob by dotted key (the sections' fields as `section.key`)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SECTION_TYPES:
            out.update({f"{f.name}.{g.name}": g for g in dataclasses.fields(_SECTION_TYPES[f.name])})
        else:
            out[f.name] = f
    return out


_SECTION_TYPES = {"data": DataConfig, "toy": ToyConfig, "vllm": VLLMConfig, "peft": PeftConfig}
KNOBS = _knob_fields()
# The rules, read off the fields (tests and messages use these views; the fields are the one home).
CHOICES: dict[str, tuple] = {k: f.metadata["choices"] for k, f in KNOBS.items() if f.metadata["choices"]}
RANGES: dict[str, tuple] = {k: tuple(f.metadata["range"]) for k, f in KNOBS.items() if f.metadata["range"]}
CHECKS: dict[str, tuple] = {k: tuple(f.metadata["rule"]) for k, f in KNOBS.items() if f.metadata["rule"]}
FREE_TEXT = tuple(k for k, f in KNOBS.items() if f.metadata["free_text"])
REGISTRY_CHECKED = tuple(k for k, f in KNOBS.items() if f.metadata["registry"])


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


def parse_bool(raw: Any) -> bool:
    """A bool as the config reads one (true/false, yes/no, 1/0); ValueError otherwise."""
    return _coerce_one(raw, bool)


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
    LossOptions.from_object(config)  # the policy-loss options' relations (epsilon_high >= epsilon), checked there
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
        if name not in (None, "toy") and not Path(name).is_dir() and not HUB_MODEL_ID.fullmatch(name) \
                and not (name.lower().endswith(".gguf") and Path(name).is_file()):
            raise ValueError(f"{key}={name!r} is neither a local directory nor a Hugging Face model id "
                             "('org/name') nor a .gguf file; give a directory holding config.json, a model "
                             "id, a .gguf file, or 'toy'")
    if config.gguf_file is not None and (config.model == "toy" or config.model.lower().endswith(".gguf")):
        raise ValueError(f"gguf_file={config.gguf_file!r} names a file inside `model`, but model="
                         f"{config.model!r}; set model to the directory (or hub id) holding it, or drop gguf_file")
    if config.system_prompt is not None and config.prompt_template != "chat":
        raise ValueError(f"system_prompt is set but prompt_template={config.prompt_template!r}; the system "
                         "prompt goes through the tokenizer's chat template: set prompt_template: chat")
    if config.server_host is not None and config.num_servers > 1:
        raise ValueError(f"num_servers={config.num_servers} counts auto-started servers, but server_host="
                         f"{config.server_host!r} is set; list every server in server_host "
                         "('gen1:8765,gen2:8765') and leave num_servers at 1")
    if config.server_host is not None:
        server_addresses(config.server_host, config.server_port)  # a bad entry: the error, before any work
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


def server_addresses(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """`server_host` as (host, port) pairs: "gen1" or "gen1:8765,gen2:8766" (a missing port: server_port)."""
    addresses = []
    for entry in (part.strip() for part in hosts.split(",")):
        host, colon, port = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        if not colon:
            host, port = entry, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"server_host={hosts!r}: {entry!r} is not host or host:port; give e.g. "
                             "'gen1' or 'gen1:8765,gen2:8765'")
        addresses.append((host, int(port)))
    return addresses


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


# ------------------------------------------------------------------------------------------- reference
# The headings of the generated reference (docs/trainer.md): a heading starts at its first key.
REFERENCE_HEADINGS = {"model": "Model", "data.path": "Data", "rollout_engine": "Rollout",
                      "reward_fn": "Scoring and advantages", "loss_type": "Loss", "learning_rate": "Optimisation",
                      "seed": "Run"}
REFERENCE_BEGIN, REFERENCE_END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def reference_markdown() -> str:
    """The configuration reference, one table row per key (default, allowed values, help), from the fields."""
    lines = []
    for key, f in KNOBS.items():
        if key in REFERENCE_HEADINGS:
            lines += ["", f"### {REFERENCE_HEADINGS[key]}", "| key | default | allowed | meaning |",
                      "| --- | --- | --- | --- |"]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = "null" if default is None else (str(default).lower() if isinstance(default, bool) else default)
        allowed, meaning = (text.replace("|", "\\|") for text in (allowed_values(key), help_of(f)))
        lines.append(f"| `{key}` | `{shown}` | {allowed} | {meaning} |")
    return "\n".join(lines[1:]) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m seedgrpo.training.config --markdown   (prints the configuration reference)")
    print(reference_markdown(), end="")
