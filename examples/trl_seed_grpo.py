"""SEED-GRPO with TRL's GRPOTrainer: a TRL script where only two imports changed.

    .venv/bin/python examples/trl_seed_grpo.py                          # tiny model made locally, CPU, ~10 s
    .venv/bin/python examples/trl_seed_grpo.py --model /path/to/local/hf-model --steps 50
    .venv/bin/python examples/trl_seed_grpo.py --use-seedgrpo-loss     # seedgrpo's fused loss as the loss

Without --model it builds a tiny random Qwen2 and a character tokenizer (seedgrpo.tasks.toy) and trains a few
steps on toy arithmetic: it shows the plumbing (semantic_entropy and advantage_scale are logged next to
TRL's metrics), it does not learn anything in a few steps. The reward is the exact-answer reward plus a
small format reward so that an untrained model's groups have some spread.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

import torch
from datasets import Dataset

from seedgrpo import answers

from seedgrpo.tasks import toy
from seedgrpo.integrations.trl import SeedGRPOConfig as GRPOConfig  # was: from trl import GRPOConfig
from seedgrpo.integrations.trl import SeedGRPOTrainer as GRPOTrainer  # was: from trl import GRPOTrainer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=None, help="local Hugging Face model directory (default: a tiny toy Qwen2)")
parser.add_argument("--steps", type=int, default=3, help="optimizer steps")
parser.add_argument("--alpha", type=float, default=0.5, help="SEED-GRPO strength in f(alpha * U); 0 = GRPO")
parser.add_argument("--uncertainty", default="se_rao", help="se_rao, se_mc, se_discrete, gcpo_cd, ...")
parser.add_argument("--use-seedgrpo-loss", action="store_true", help="compute the loss with seed_grpo_loss")
parser.add_argument("--output-dir", default="runs/trl-seed-grpo")


def correct_answer(completions, answer, **kwargs):
    """1 when the final answer (\\boxed{...}, "the answer is ...") equals the gold one after canonicalisation."""
    extracted = [answers.extract_answer(c) for c in completions]
    return [float(a is not None and answers.canonicalize(a) == answers.canonicalize(gold))
            for a, gold in zip(extracted, answer)]


def has_digits(completions, **kwargs):
    """A small shaping reward: the share of digit characters, so that random completions differ."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def main(argv=None) -> None:
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.model is None:
        tokenizer = toy.make_tokenizer()
        model = toy.make_model(tokenizer, layers=2, hidden=64)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
    problems = toy.arithmetic_problems(64, seed=0)
    dataset = Dataset.from_dict({"prompt": [p.problem for p in problems], "answer": [p.answer for p in problems]})

    config = GRPOConfig(
        output_dir=args.output_dir, report_to="none", save_strategy="no", logging_steps=1, max_steps=args.steps,
        per_device_train_batch_size=16, num_generations=8, max_completion_length=12, learning_rate=1e-4,
        temperature=1.0, loss_type="dr_grpo", scale_rewards="none", reward_weights=[1.0, 0.1],
        use_cpu=not torch.cuda.is_available(),
        # The SEED-GRPO knobs (SeedGRPOConfig); everything above is plain GRPOConfig.
        uncertainty=args.uncertainty, alpha=args.alpha, scale_fn="reciprocal",
        use_seedgrpo_loss=args.use_seedgrpo_loss,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[correct_answer, has_digits], args=config,
                          train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    for log in trainer.state.log_history[:-1]:
        print(f"step {log['step']}: loss {log['loss']:+.4f}  reward {log['reward']:.3f}  "
              f"semantic_entropy {log.get('semantic_entropy', float('nan')):.3f}  "
              f"advantage_scale {log.get('advantage_scale', float('nan')):.3f}")


if __name__ == "__main__":
    main()
