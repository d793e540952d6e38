"""Models as users have them (issue 22): a GGUF file with a BPE tokenizer and a chat template, end to end.

The test writes a tiny Llama GGUF itself with the `gguf` package (float32 tensors, llama.cpp's names and
its q/k row permutation, a byte-level BPE vocabulary with ChatML control tokens and SmolLM2's chat
template), so nothing is downloaded. It checks that:
- the GGUF loads as the model it was written from (same logits), as a plain (not "quantized") float model;
- the trainer trains it with `prompt_template: chat`, checkpoints, resumes, and exports `final/` as
  ordinary safetensors that plain `from_pretrained` loads with the same log-probs as the trained policy;
- a tokenizer without a chat template and `prompt_template: chat` is one clear error.
"""
import pytest
import torch

gguf = pytest.importorskip("gguf")

from seedgrpo.tasks.data import format_prompt  # noqa: E402
from seedgrpo.modeling.loading import load_causal_lm, load_tokenizer, model_source  # noqa: E402
from seedgrpo.training.config import load_config  # noqa: E402
from seedgrpo.training.trainer import Trainer  # noqa: E402

CHAT_TEMPLATE = (  # SmolLM2-135M-Instruct's (a default system turn when the messages have none)
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _byte_level_vocab():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = sorted(bytes_to_unicode().values())
    merges = ["Ġ t", "h e", "Ġt he", "1 2"]  # a few merges, so the tokenizer is a real BPE
    merged = ["Ġt", "he", "Ġthe", "12"]
    return SPECIALS + alphabet + merged, merges


def _permute(weights, heads):
    """llama.cpp's q/k row order (convert_hf_to_gguf.py `LlamaModel.permute`); transformers undoes it."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(path, hidden: int = 64, heads: int = 4, kv_heads: int = 2):
    """A 2-layer Llama (tied embeddings, GQA) written as float32 GGUF; returns the HF model it holds.
    (scripts/check-vllm-gguf-final.sh asks for 32-dim heads: vLLM's CPU attention has no 16-dim kernel.)"""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens, merges = _byte_level_vocab()
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=256,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_block_count(2)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIALS else 1 for t in tokens])  # 3 = CONTROL, 1 = NORMAL
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
                 "post_attention_layernorm": "ffn_norm"}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: llama.cpp leaves `output.weight` out, and transformers reads that as tied
        if name.startswith("model.layers."):
            layer, rest = name[len("model.layers."):].split(".", 1)
            module, kind = rest.rsplit(".", 1)
            target = f"blk.{layer}.{per_layer[module]}.{kind}"
            if module == "self_attn.q_proj":
                tensor = _permute(tensor, heads)
            elif module == "self_attn.k_proj":
                tensor = _permute(tensor, kv_heads)
        else:
            target = names[name]
        writer.add_tensor(target, tensor.float().numpy().copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


def test_a_gguf_file_loads_as_the_plain_float_model_it_was_written_from(tiny_gguf):
    path, reference = tiny_gguf
    source = model_source(str(path))
    assert (source.name, source.gguf_file) == (str(path.parent), "tiny.gguf")
    assert model_source(str(path.parent), "tiny.gguf") == source
    model = load_causal_lm(source, dtype=torch.float32).eval()
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config")
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    tokenizer = load_tokenizer(source)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<|im_end|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "the 12 hens"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert ids[0, 0].item() == 1 and (ids == 2).sum() == 2  # <|im_start|> and <|im_end|> stay whole tokens
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-5)


def test_bad_model_sources_are_one_line_errors(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    with pytest.raises(ValueError, match="gguf_file"):
        model_source(str(path), "other.gguf")
    with pytest.raises(ValueError, match="no such file"):
        model_source(str(path.parent), "missing.gguf")
    with pytest.raises(ValueError, match="not a file"):
        model_source(str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match="set gguf_file: tiny.gguf"):  # a directory of GGUFs, no config.json
        load_causal_lm(model_source(str(path.parent)))
    with pytest.raises(ValueError, match="gguf_file"):
        load_config(None, {"model": str(path), "gguf_file": "tiny.gguf"})
    with pytest.raises(ValueError, match="prompt_template: chat"):
        load_config(None, {"model": str(path), "system_prompt": "Be brief."})


def _config(path, output_dir, **overrides):
    values = {"model": str(path), "data.path": "toy", "toy.num_problems": 16, "prompt_template": "chat",
              "system_prompt": "Put the answer in \\boxed{}.", "max_prompt_length": 64,
              "max_completion_length": 6, "prompts_per_step": 2, "num_generations": 4,
              "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_steps": 2, "save_steps": 1,
              "progress": False, "report_to": ["none"], "output_dir": str(output_dir),
              "embedding_source": "none"}
    values.update(overrides)
    return load_config(None, values)


def _some_reward(completions, problems):  # distinct rewards in every group, so every step updates
    return [float(len(text) % 3) for text in completions]


def test_a_gguf_model_trains_with_the_chat_template_resumes_and_exports_plain_safetensors(tiny_gguf,
                                                                                          tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, reference = tiny_gguf
    trainer = Trainer(_config(path, tmp_path / "run"), reward_fn=_some_reward)
    assert trainer.policy.model.lm_head.weight is trainer.policy.model.model.embed_tokens.weight
    start = [p.detach().clone() for p in trainer.policy.model.parameters()]
    trainer.train()
    moved = [(p.detach() - s).abs().max().item() for p, s in zip(trainer.policy.model.parameters(), start)]
    assert max(moved) > 0
    prompt = format_prompt(trainer.problems[0], "chat", trainer.tokenizer, "Put the answer in \\boxed{}.")
    assert prompt.startswith("<|im_start|>system\nPut the answer in \\boxed{}.<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")

    # final/: ordinary safetensors and a tokenizer with the chat template, read with no GGUF involved
    final = tmp_path / "run" / "final"
    assert (final / "model.safetensors").is_file() and not list(final.glob("*.gguf"))
    plain = AutoModelForCausalLM.from_pretrained(str(final), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    assert tokenizer.chat_template == CHAT_TEMPLATE
    ids = tokenizer(prompt + "12", add_special_tokens=False, return_tensors="pt").input_ids
    policy = trainer.policy.model.eval()
    with torch.no_grad():
        ours = torch.log_softmax(policy(ids).logits, -1)
        theirs = torch.log_softmax(plain(ids).logits, -1)
        initial = torch.log_softmax(reference(ids).logits, -1)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    assert (theirs - initial).abs().max() > 1e-3  # the export is the trained model, not the file's

    # resume from the step-1 checkpoint: the same step 2 as the uninterrupted run
    step_1 = tmp_path / "run" / "checkpoints" / "step_000001"
    resumed = Trainer(_config(path, tmp_path / "run", resume=str(step_1), save_final_model=False),
                      reward_fn=_some_reward)
    assert resumed.step == 1
    resumed.train()
    for a, b in zip(resumed.policy.model.parameters(), trainer.policy.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_chat_template_missing_is_one_clear_error(tmp_path):
    config = load_config(None, {"model": "toy", "prompt_template": "chat", "output_dir": str(tmp_path),
                                "progress": False, "report_to": ["none"]})
    with pytest.raises(ValueError, match="prompt_template='chat'.*has none"):
        Trainer(config)
