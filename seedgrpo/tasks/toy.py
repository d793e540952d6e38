"""The embedded default: a character tokenizer, a tiny Qwen2 and a synthetic arithmetic task, made locally.

Nothing here touches a model hub, so the demo, the CPU presets and the tests run offline:

    from seedgrpo.tasks import toy
    tok = toy.make_tokenizer("runs/toy-tok")          # builds, and saves when given a directory
    model = toy.make_model(tok, layers=3, hidden=128) # ~0.8M parameters, init std 0.02
    problems = toy.arithmetic_problems(1000, seed=0)  # "12*7=" -> answer "84"
    toy.completion_for(problems[0])                   # "\\boxed{84}"

The task is `a op b` with op in {+, -, *}. Each operand's digit count is drawn uniformly from
1..max_digits, so a batch mixes easy and hard problems and a group of samples has real answer
diversity; the second factor of a product has half the digits (99*9 at most for max_digits=2, answers
below 900), which keeps products learnable by a tiny model. Subtraction is ordered so that answers are
never negative. The prompt is the bare expression followed by "=" and the expected completion is just
the boxed answer: short sequences for a character tokenizer (~6 prompt and ~12 completion tokens).
"""
from __future__ import annotations

import random
import string
from pathlib import Path

import torch

from seedgrpo.tasks.data import Problem

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK)
# Printable ASCII (without the rarely useful \t\r\x0b\x0c) covers prompts, "\boxed{}" and any text a user
# types into the demo; the vocabulary stays ~100 entries, so the embedding is a negligible part of the model.
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"
OPERATIONS = "+-*"


def make_tokenizer(save_dir: str | Path | None = None):
    """A character-level `PreTrainedTokenizerFast` (one token per character) with pad/eos/bos/unk tokens.

    Built with the `tokenizers` library, so it needs no download; when `save_dir` is given it is saved there
    and `AutoTokenizer.from_pretrained(save_dir)` loads it back offline. It has no chat template, so
    `data.format_prompt(..., template="none")` is the matching prompt format. It adds no BOS/EOS on its own:
    rollouts and the warm start append EOS where a completion ends.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # One piece per character; "[\s\S]" rather than "." so that newlines are characters too.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters back without the spaces WordLevel would insert
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, bos_token=BOS, unk_token=UNK,
        padding_side="left",  # decoder-only generation wants prompts right-aligned
    )
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def make_model(tokenizer, *, layers: int = 3, hidden: int = 128, seed: int = 0,
               max_positions: int = 128):
    """A tiny `Qwen2ForCausalLM` (tied embeddings, SwiGLU width 4·hidden, 32-dim heads), init std 0.02.

    3 layers × 128 gives ~0.8M parameters: a 512 × 12-token `generate` takes ~0.3 s and a fwd+bwd step on
    512 × 20 tokens ~0.5 s on 2 CPU threads (measured on the 2-core development machine), fast enough for RL
    on a laptop.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if layers < 1:
        raise ValueError(f"layers={layers} must be >= 1")
    if hidden < 32 or hidden % 32:
        raise ValueError(f"hidden={hidden} must be a positive multiple of 32 (the head size)")
    heads = hidden // 32
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, initializer_range=0.02, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, use_cache=True,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG stream
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def max_completion_tokens(max_digits: int = 2) -> int:
    """Tokens of the longest reference completion, EOS included: "\\boxed{" + "}" (8) + the answer + 1.

    The longest answers are sums (max_digits + 1 digits) and products (max_digits + max_digits // 2).
    """
    return 8 + max_digits + max(1, max_digits // 2) + 1


def completion_for(problem: Problem) -> str:
    """The reference completion of a toy problem: its answer in `\\boxed{}` (what the warm start teaches)."""
    return f"\\boxed{{{problem.answer}}}"


def arithmetic_problems(n: int, *, seed: int, ops: str = OPERATIONS, max_digits: int = 2,
                        exclude: set[str] | None = None) -> list[Problem]:
    """`n` distinct problems "a op b=" with exact integer answers, drawn reproducibly from `seed`.

    `exclude` holds prompts that must not appear (e.g. the training set when drawing a held-out set): the
    demo draws train, dev and test sets with disjoint prompts. `meta` records the operation and the digit
    counts, so accuracy can be broken down by difficulty.
    """
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    if not ops or set(ops) - set(OPERATIONS):
        raise ValueError(f"ops={ops!r} must be a non-empty string over {OPERATIONS!r}")
    if not 1 <= max_digits <= 6:
        raise ValueError(f"max_digits={max_digits} must be in 1..6")
    taken = set(exclude or ())
    rng = random.Random(seed)
    problems: list[Problem] = []
    # Rejection sampling: give up once draws keep hitting taken prompts (the space is nearly exhausted).
    attempts_left = 50 * n + 1000
    while len(problems) < n:
        attempts_left -= 1
        if attempts_left < 0:
            raise ValueError(f"n={n} is too close to the number of distinct problems for ops={ops!r}, "
                             f"max_digits={max_digits} (minus the excluded ones): raise max_digits "
                             "or lower n")
        op = rng.choice(ops)
        digits_a = rng.randint(1, max_digits)
        digits_b = rng.randint(1, max(1, max_digits // 2)) if op == "*" else rng.randint(1, max_digits)
        a, b = _number(rng, digits_a), _number(rng, digits_b)
        if op == "-" and b > a:
            a, b = b, a
        prompt = f"{a}{op}{b}="
        if prompt in taken:
            continue
        taken.add(prompt)
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        problems.append(Problem(problem=prompt, answer=str(answer), id=f"toy-{seed}-{len(problems)}",
                                meta={"op": op, "digits": (len(str(a)), len(str(b)))}))
    return problems


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)
