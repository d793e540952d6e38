"""The lean decode loop (seedgrpo/rollout/decode.py) against transformers' generate, in float64."""
import pytest
import torch

from seedgrpo.tasks import toy
from seedgrpo.rollout import decode
from seedgrpo.rollout.base import SamplingSettings, row_seeds
from seedgrpo.rollout.hf import HFRolloutEngine

PROMPTS = ["12+7=", "3*45=", "9-4=", "100-1=", "7="]  # different lengths: left padding


def _model(kind: str, tokenizer, *, eos_boost: float = 0.0, seed: int = 0):
    """A tiny float64 model of the given family (GQA: 4 query heads, 2 key/value heads). `eos_boost` raises
    the EOS logit so that rows finish at different steps."""
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    config = {
        "llama": lambda: transformers.LlamaConfig(**common, attention_bias=True),
        "llama_rope_linear": lambda: transformers.LlamaConfig(
            **common, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
        "mistral": lambda: transformers.MistralConfig(**common, sliding_window=None),
        "qwen2": lambda: transformers.Qwen2Config(**common),
        "qwen3": lambda: transformers.Qwen3Config(**common, head_dim=24),
    }[kind]()
    model = transformers.AutoModelForCausalLM.from_config(config).double().eval()
    with torch.no_grad():
        for param in model.parameters():  # larger than the 0.02 default init: peaked, varied distributions
            param.normal_(0, 0.2) if param.dim() > 1 else None
        model.lm_head.weight[tokenizer.eos_token_id] += eos_boost * model.lm_head.weight.std()
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return toy.make_tokenizer()


def _generate(model, tokenizer, loop, *, sampling=None, share=True, chunk=None, generations=3):
    engine = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=sampling or SamplingSettings(16, 20),
                             decode_loop=loop, share_prompt_prefill=share, generation_batch_size=chunk)
    return engine.generate(PROMPTS, num_generations=generations,
                           row_seeds=row_seeds(5, 1, list(range(len(PROMPTS))), generations))


def _assert_same(batch, reference):
    assert torch.equal(batch.completion_ids, reference.completion_ids)
    assert torch.equal(batch.completion_mask, reference.completion_mask)
    assert torch.equal(batch.is_truncated, reference.is_truncated)
    assert batch.texts == reference.texts
    error = (batch.logprobs - reference.logprobs).abs().max() / reference.logprobs.abs().max()
    assert error < 1e-10, error


@pytest.mark.parametrize("kind", ["llama", "llama_rope_linear", "mistral", "qwen2", "qwen3"])
@pytest.mark.parametrize("share", [False, True])
def test_lean_loop_samples_what_generate_samples(kind, share, tokenizer):
    model = _model(kind, tokenizer, eos_boost=2.0)
    assert decode.lean_decode_unsupported(model) is None
    reference = _generate(model, tokenizer, "generate", share=share)
    lengths = reference.completion_mask.sum(1)
    assert lengths.min() < lengths.max() and reference.is_truncated.any() and not reference.is_truncated.all()
    _assert_same(_generate(model, tokenizer, "lean", share=share), reference)


@pytest.mark.parametrize("sampling", [SamplingSettings(16, 12, temperature=0.7, top_p=0.8),
                                      SamplingSettings(16, 12, temperature=1.3, top_k=5)])
def test_lean_loop_with_filtered_sampling_and_chunks(sampling, tokenizer):
    model = _model("qwen2", tokenizer, eos_boost=1.0)
    reference = _generate(model, tokenizer, "generate", sampling=sampling)
    _assert_same(_generate(model, tokenizer, "lean", sampling=sampling, chunk=4), reference)


def test_finished_rows_leave_the_batch(tokenizer, monkeypatch):
    model = _model("qwen2", tokenizer, eos_boost=3.0)
    reference = _generate(model, tokenizer, "generate", generations=4)
    rows_per_step = []
    step = decode._decode_step

    def counting_step(module, token, position, buffers):
        rows_per_step.append(token.shape[0])
        return step(module, token, position, buffers)

    monkeypatch.setattr(decode, "_decode_step", counting_step)
    _assert_same(_generate(model, tokenizer, "lean", generations=4), reference)
    assert rows_per_step[0] <= 20 and rows_per_step[-1] < rows_per_step[0]
    assert rows_per_step == sorted(rows_per_step, reverse=True)
    unfinished = (reference.completion_mask.sum(1) > torch.arange(1, 21)[:, None]).sum(1)  # per step
    for taken, live in zip(rows_per_step, unfinished.tolist()):
        assert live <= taken  # never drops a live row; a quarter finished at most is carried
        assert taken * 3 <= 4 * max(live, 1) + 3


def test_key_value_buffers_grow_past_their_first_capacity(tokenizer, monkeypatch):
    model = _model("llama", tokenizer)
    sampling = SamplingSettings(16, 30)
    reference = _generate(model, tokenizer, "generate", sampling=sampling)
    assert reference.completion_ids.shape[1] > 8
    monkeypatch.setattr(decode, "_INITIAL_CAPACITY", 3)
    _assert_same(_generate(model, tokenizer, "lean", sampling=sampling), reference)


def test_unsupported_models_fall_back_to_generate_or_say_why(tokenizer):
    import transformers

    windowed = transformers.MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                          sliding_window=4, pad_token_id=tokenizer.pad_token_id,
                                          eos_token_id=tokenizer.eos_token_id)
    gpt2 = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    for config, reason in ((windowed, "sliding-window"), (gpt2, "model_type 'gpt2'")):
        model = transformers.AutoModelForCausalLM.from_config(config).double().eval()
        assert reason in decode.lean_decode_unsupported(model)
        _assert_same(_generate(model, tokenizer, "auto"), _generate(model, tokenizer, "generate"))
        with pytest.raises(ValueError, match="decode_loop='lean' cannot decode this model"):
            _generate(model, tokenizer, "lean")
    with pytest.raises(ValueError, match="decode_loop='fast' is not one of"):
        HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(4, 4), decode_loop="fast")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lean_loop_on_cuda_agrees_with_generate(dtype, tokenizer):
    """On a GPU the two loops run different attention kernels, so a near-tie may be broken differently and a
    row may diverge from there on: most rows must still be identical, with their log-probs close."""
    model = _model("qwen2", tokenizer, eos_boost=1.0).to("cuda", dtype)
    sampling = SamplingSettings(16, 24)
    reference = _generate(model, tokenizer, "generate", sampling=sampling, generations=8)
    lean = _generate(model, tokenizer, "lean", sampling=sampling, generations=8)
    assert lean.completion_ids.device.type == "cuda"
    width = min(lean.completion_ids.shape[1], reference.completion_ids.shape[1])
    same = (lean.completion_ids[:, :width] == reference.completion_ids[:, :width]).all(1)
    assert same.float().mean() >= (0.9 if dtype == torch.float32 else 0.6), same
    tolerance = 1e-3 if dtype == torch.float32 else 5e-2
    close = (lean.logprobs[same, :width] - reference.logprobs[same, :width]).abs().max()
    assert close <= tolerance * max(1.0, reference.logprobs.abs().max().item()), close
