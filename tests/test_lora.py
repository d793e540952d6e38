"""LoRA through peft (`peft.r > 0`): the base frozen, the adapter trained (plain torch and ZeRO-3, in-process,
one rank), rollout with the adapted model, vLLM's merged push (faked engine), the adapter in final/ and in
checkpoints, exact resume."""
import os
import signal
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from seedgrpo.tasks import toy  # noqa: E402
from seedgrpo.training.config import load_config  # noqa: E402
from seedgrpo.training.engine import apply_peft  # noqa: E402
from seedgrpo.training.trainer import Trainer  # noqa: E402
from tests.test_trainer import digit_reward, max_diff, params, tiny  # noqa: E402
from tests.test_rollout import fake_vllm  # noqa: E402,F401,F811  (the faked vllm module, a fixture)

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
LORA = {"peft.r": 4, "peft.lora_alpha": 8.0, "learning_rate": 2e-2}


def _base_model():
    return toy.make_model(toy.make_tokenizer(), layers=2, hidden=64, seed=0)


def _merged_copy(peft_model):
    import copy

    return copy.deepcopy(peft_model).merge_and_unload()


def test_only_the_adapter_trains_and_final_holds_it(tmp_path):
    from peft import PeftModel

    trainer = Trainer(tiny(tmp_path, max_steps=2, save_final_model=True, **LORA), reward_fn=digit_reward)
    trainable = {n for n, p in trainer.policy.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    before = params(trainer)
    trainer.train()
    after = params(trainer)
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert moved and moved <= trainable, moved - trainable  # the base did not move by a single bit
    assert {p.name for p in (tmp_path / "final").iterdir()} >= {"adapter_config.json",
                                                                "adapter_model.safetensors", "tokenizer.json"}
    assert not (tmp_path / "final" / "model.safetensors").exists()
    assert (tmp_path / "checkpoints" / "step_000002" / "adapter" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(_base_model(), str(tmp_path / "final")).eval()
    ids = torch.randint(3, 20, (3, 11))
    trainer.policy.model.eval()
    with torch.no_grad():
        expected = trainer.policy.model(ids).logits
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-6)
        assert not torch.allclose(_base_model()(ids).logits, expected, atol=1e-3)  # the adapter matters


def test_rollout_samples_from_the_adapted_model(tmp_path):
    """The HF engine's samples and log-probs after training equal those of the merged model."""
    from seedgrpo.rollout.base import SamplingSettings, row_seeds
    from seedgrpo.rollout.hf import HFRolloutEngine

    trainer = Trainer(tiny(tmp_path, max_steps=2, **LORA), reward_fn=digit_reward)
    trainer.train()
    merged = _merged_copy(trainer.policy.peft_model)
    prompts, seeds = ["12+3=", "4*5="], row_seeds(0, 9, [0, 1], 4)
    sampling = SamplingSettings(max_prompt_length=16, max_completion_length=10)
    outputs = [HFRolloutEngine(model=model, tokenizer=trainer.tokenizer, sampling=sampling)
               .generate(prompts, num_generations=4, row_seeds=seeds)
               for model in (trainer.policy.model, merged, _base_model())]
    adapted, plain, base = outputs
    assert adapted.texts == plain.texts
    assert torch.allclose(adapted.logprobs, plain.logprobs, atol=1e-5)
    assert adapted.texts != base.texts or not torch.allclose(adapted.logprobs, base.logprobs, atol=1e-3)


def test_resume_is_exact_with_an_adapter(tmp_path):
    config = dict(max_steps=3, **LORA)
    straight = Trainer(tiny(tmp_path / "straight", **config), reward_fn=digit_reward)
    straight.train()

    def stop_after_step_1(trainer, step, metrics):
        if step == 1:
            signal.raise_signal(signal.SIGTERM)

    first = Trainer(tiny(tmp_path / "run", **config), reward_fn=digit_reward, callbacks=[stop_after_step_1])
    first.train()
    assert first.step == 1 and (tmp_path / "run" / "checkpoints" / "step_000001" / "adapter").is_dir()
    resumed = Trainer(tiny(tmp_path / "run", resume="auto", **config), reward_fn=digit_reward)
    assert resumed.step == 1
    resumed.train()
    assert max_diff(params(straight), params(resumed)) == 0.0
    assert max_diff(params(straight), params(first)) > 0  # the straight run moved on after step 1


def test_vllm_push_sends_the_merged_weights_under_the_base_names(tmp_path, fake_vllm):  # noqa: F811
    """merge → gather → load → unmerge, through the faked vLLM engine of tests/test_rollout.py (its worker API,
    collective_rpc("reload_weights")): vLLM gets every parameter of the plain model, with W + ΔW for the adapted
    layers; the training weights are untouched."""
    from tests.test_rollout import _fake_vllm_engine

    config = load_config(None, {"peft.r": 4, "peft.target_modules": "q_proj,v_proj,down_proj"})
    model, peft_model = apply_peft(_base_model(), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # peft starts B at 0 (ΔW = 0): make the merge visible
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {k: v.clone() for k, v in _merged_copy(peft_model).state_dict().items()}
    received = {}
    engine = _fake_vllm_engine(model, toy.make_tokenizer(), bucket_mb=0.01)
    calls = engine.llm.calls
    engine.llm.worker.reload_weights = \
        lambda weights_iterator=None: received.update((n, t.clone()) for n, t in weights_iterator)
    engine.sync_weights()
    base_names = [n for n, _ in _base_model().named_parameters()]
    assert list(received) == base_names
    for name in base_names:
        assert torch.allclose(received[name], expected[name], atol=1e-6), name
    adapted = [n for n in base_names if n.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight"))]
    assert adapted and all(not torch.allclose(received[n], _base_model().state_dict()[n]) for n in adapted)
    assert max_diff(before, model.state_dict()) == 0.0  # nothing merged in place
    assert calls[-1] == "reset"
    # model: toy has no directory for vLLM to start from: the one written holds the merged plain model
    from transformers import AutoModelForCausalLM

    engine.tokenizer = toy.make_tokenizer()
    written = AutoModelForCausalLM.from_pretrained(engine._save_initial_weights()).state_dict()
    engine._tmpdir.cleanup()
    assert written.keys() == expected.keys()
    assert all(torch.allclose(written[k], expected[k], atol=1e-6) for k in expected)


def test_lm_head_adapters_and_a_missing_module_are_refused():
    with pytest.raises(ValueError, match="peft.target_modules=\\['lm_head'\\].*leave lm_head out"):
        apply_peft(_base_model(), load_config(None, {"peft.r": 2, "peft.target_modules": "lm_head"}))
    with pytest.raises(ValueError, match="peft.target_modules=\\['no_such_proj'\\]"):
        apply_peft(_base_model(), load_config(None, {"peft.r": 2, "peft.target_modules": "no_such_proj"}))


def test_zero3_trains_the_same_adapter_as_plain_torch_and_resumes_exactly(tmp_path):
    """One rank in this process under ZeRO-3 (configs/ds_zero3_cpu.json): the adapter equals plain torch's,
    the checkpointed adapter equals final/'s, and a run stopped after step 1 and resumed ends with exactly
    the uninterrupted run's adapter (DeepSpeed's checkpoint holds the adapter's optimizer state)."""
    pytest.importorskip("deepspeed")
    from safetensors.torch import load_file

    def adapter(run, where="final"):
        return load_file(str(tmp_path / run / where / "adapter_model.safetensors"))

    def stop_after_step_1(trainer, step, metrics):
        if step == 1:
            signal.raise_signal(signal.SIGTERM)

    # ZeRO-3 partitions the norms' weights, which then keep their own forward: plain torch runs the same forms
    # (the lean ones are tested against autograd in test_lean_layers.py)
    common = dict(max_steps=2, save_final_model=True, per_device_train_batch_size=8, lean_layers=False, **LORA)
    zero3 = dict(deepspeed_config=str(REPO / "configs" / "ds_zero3_cpu.json"), **common)
    zero = Trainer(tiny(tmp_path / "zero", **zero3), reward_fn=digit_reward)
    assert zero.policy.is_deepspeed
    zero_metrics = zero.train()
    plain_metrics = Trainer(tiny(tmp_path / "plain", **common), reward_fn=digit_reward).train()
    a, b = adapter("zero"), adapter("plain")
    assert a.keys() == b.keys() and a
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert max(b[k].abs().max().item() for k in b if "lora_B" in k) > 1e-4  # B moved off its zero start
    assert zero_metrics["grad_norm"] == pytest.approx(plain_metrics["grad_norm"], rel=1e-4)
    saved = adapter("zero", "checkpoints/step_000002/adapter")
    assert all(torch.equal(a[k], saved[k]) for k in a)

    Trainer(tiny(tmp_path / "resumed", **zero3), reward_fn=digit_reward, callbacks=[stop_after_step_1]).train()
    assert not (tmp_path / "resumed" / "final").exists()
    resumed = Trainer(tiny(tmp_path / "resumed", resume="auto", **zero3), reward_fn=digit_reward)
    assert resumed.step == 1
    resumed.train()
    c = adapter("resumed")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_activation_checkpointing_trains_the_adapter_like_the_plain_forward(tmp_path):
    runs = [Trainer(tiny(tmp_path / str(flag), max_steps=1, gradient_checkpointing=flag, **LORA),
                    reward_fn=digit_reward) for flag in (False, True)]
    start = params(runs[0])
    metrics = [run.train() for run in runs]
    assert metrics[1]["grad_norm"] == pytest.approx(metrics[0]["grad_norm"], rel=1e-5)
    assert max_diff(params(runs[0]), params(runs[1])) < 1e-6
    assert max_diff(start, params(runs[0])) > 1e-4
