"""Three training steps of a randomly initialised model of Qwen2.5-1.5B's shape on one GPU (scripts/gpu-check.sh).

    python benchmarks/gpu_train_check.py --out benchmarks/out/gpu --engine hf            # ZeRO-3 bf16, lean decode
    python benchmarks/gpu_train_check.py --out DIR --engine hf --no-deepspeed             # plain torch bf16
    python benchmarks/gpu_train_check.py --out DIR --engine vllm                          # vLLM rollout

Nothing is downloaded: the model is built from a Qwen2Config (random weights, bf16, saved to a temporary
directory so that the trainer loads it the normal way, under HfDeepSpeedConfig) with a word-level tokenizer of
the same 151,936-entry vocabulary (the toy task's characters, then filler tokens), and the task is the toy
arithmetic one. An untrained model never samples EOS, so every row decodes the full `--new-tokens`: the
work per step is fixed. Writes one JSON row per step to OUT/train_<engine>[_torch].jsonl (the trainer's metrics
plus peak GPU memory) and prints them. The end-of-run checkpoint (~21 GB for ZeRO-3 at this size) is not
written: it is not what this check measures.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # seedgrpo itself comes from the install (kernels/ is mapped there)

# Qwen2.5-1.5B's shape (its config.json), random weights.
QWEN25_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu")
# The same code path at toy size, for the CPU test of this script (tests/test_gpu_check.py).
TINY = dict(QWEN25_15B, vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/out/gpu")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"])
    p.add_argument("--no-deepspeed", action="store_true", help="plain torch (TorchPolicy, fp32 masters)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--generations", type=int, default=8, help="G")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--shape", default="qwen2.5-1.5b", choices=["qwen2.5-1.5b", "tiny"])
    return p.parse_args(argv)


def make_tokenizer(vocab_size: int, save_dir: Path):
    """The toy task's character tokenizer, padded with filler tokens to the model's vocabulary size, so every
    id the model samples decodes."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from seedgrpo.tasks import toy

    base = toy.make_tokenizer()
    vocab = dict(base.get_vocab())
    for i in range(len(vocab), vocab_size):
        vocab[f"<t{i}>"] = i
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=base.unk_token))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=base.pad_token, eos_token=base.eos_token,
                                        bos_token=base.bos_token, unk_token=base.unk_token, padding_side="left")
    tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def build_model_dir(save_dir: Path, shape: dict) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = make_tokenizer(shape["vocab_size"], save_dir)
    config = Qwen2Config(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(_device()):  # initialised on the GPU: seconds, not a minute of CPU init
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(save_dir))
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _peak_gb() -> float:
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    peak = torch.cuda.max_memory_allocated() / 2 ** 30
    torch.cuda.reset_peak_memory_stats()
    return peak


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def digit_reward(completions, problems):
    """A dense reward an untrained model can earn (the math reward would be 0 everywhere)."""
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from seedgrpo.training import trainer as trainer_module
    from seedgrpo.training.config import load_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"train_{args.engine}{'_torch' if args.no_deepspeed else '_zero3'}"
    rows_path = out / f"{name}.jsonl"
    with tempfile.TemporaryDirectory(prefix="seedgrpo-qwen-shape-") as model_dir:
        started = time.perf_counter()
        build_model_dir(Path(model_dir), QWEN25_15B if args.shape == "qwen2.5-1.5b" else TINY)
        print(f"{name}: model of {args.shape}'s shape built and saved in {time.perf_counter() - started:.1f} s",
              flush=True)
        values = {
            "model": model_dir, "dtype": "bfloat16", "data.path": "toy", "prompt_template": "none",
            "rollout_engine": args.engine, "decode_loop": "lean", "prompts_per_step": args.prompts,
            "num_generations": args.generations, "max_prompt_length": 32, "max_completion_length": args.new_tokens,
            "per_device_train_batch_size": args.generations, "max_steps": args.steps, "learning_rate": 1e-6,
            "deepspeed_config": None if args.no_deepspeed else str(REPO / "configs" / "ds_zero3.json"),
            "output_dir": str(Path(model_dir) / "run"), "save_final_model": False, "progress": False,
            "tensorboard": False, "sample_log_steps": 0,
        }
        if args.engine == "vllm":
            values["vllm.gpu_memory_utilization"] = 0.3
        config = load_config(None, values)
        trainer_module.save_checkpoint = lambda *a, **k: None  # see the module docstring

        def record(trainer, step, metrics):
            row = dict(step=step, peak_gpu_gb=_peak_gb(),
                       **{k: metrics[k] for k in ("loss", "step_time", "tokens_per_s", "completion_length",
                                                  "grad_norm", "reward_mean")})
            print(json.dumps(row), flush=True)
            with rows_path.open("a") as f:
                f.write(json.dumps(dict(row, engine=args.engine, deepspeed=not args.no_deepspeed,
                                        shape=args.shape, device=_gpu_name(), torch=torch.__version__,
                                        date=time.strftime("%Y-%m-%d"))) + "\n")
            return {}

        trainer = trainer_module.Trainer(config, reward_fn=digit_reward, callbacks=[record])
        trainer.train()
    print(f"{name}: {args.steps} steps done; rows in {rows_path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
