"""seedgrpo.training.config: YAML + `--key value` overrides, validation before any work, presets, CLI errors."""
import subprocess
import sys
from pathlib import Path

import pytest

from seedgrpo.training.config import TrainConfig, all_keys, load_config, parse_overrides
from seedgrpo.training.engine import batch_layout, resolve_deepspeed_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_yaml_and_overrides_in_order(tmp_path):
    (tmp_path / "c.yaml").write_text("max_steps: 7\nlearning_rate: 1e-5\ndata:\n  limit: 10\n")
    config = load_config(tmp_path / "c.yaml", ["--max_steps", "9", "--data.limit=3", "--top_k", "none",
                                               "--fused_linear", "false", "--epsilon_high", "0.28"])
    assert isinstance(config, TrainConfig)
    assert (config.max_steps, config.learning_rate, config.data.limit) == (9, 1e-5, 3)
    assert config.top_k is None and config.fused_linear is False and config.epsilon_high == 0.28
    assert config.num_generations == TrainConfig().num_generations  # untouched default


def test_bare_flag_means_true_and_dashes_become_underscores():
    assert parse_overrides(["--gradient-checkpointing", "--seed", "3"]) == {
        "gradient_checkpointing": "true", "seed": "3"}
    assert load_config(None, ["--gradient-checkpointing"]).gradient_checkpointing is True


@pytest.mark.parametrize("overrides, message", [
    (["--max_stepz", "3"], "unknown config key 'max_stepz'.*did you mean max_steps"),
    (["--data.pth", "x"], "unknown config key 'data.pth'.*data.path"),
    (["--loss_type", "ppo"],
     r"loss_type='ppo' is not allowed; choose one of \['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', "
     r"'luspo', 'vespo'\]"),
    (["--max_steps", "two"], "max_steps='two' is not a valid int"),
    (["--temperature", "0"], r"temperature=0.0 is out of range; allowed: \(0, inf\)"),
    (["--top_p", "1.5"], r"top_p=1.5 is out of range; allowed: \(0, 1\]"),
    (["--gradient_accumulation_steps", "some"],
     "gradient_accumulation_steps='some' must be a number or 'auto'"),
    (["--epsilon", "0.3", "--epsilon_high", "0.2"], "epsilon_high=0.2 must be >= epsilon=0.3"),
    (["--deepspeed_config", "nope.json"], "deepspeed_config='nope.json' is not a file"),
    (["--data.path", "nope.jsonl"], "data.path='nope.jsonl' is not a file"),
    (["--reward_fn", "mymodule"], "reward_fn='mymodule' must be 'math' or 'package.module:function'"),
    (["--rollout_engine", "sglang"],
     r"rollout_engine='sglang' is not allowed; choose one of \['hf', 'vllm'\]"),
    (["--resume", "/no/such/dir"], "resume='/no/such/dir': give 'auto' or an existing checkpoint directory"),
    (["seed", "3"], "unexpected argument 'seed'"),
])
def test_bad_keys_and_values_raise_with_key_value_and_allowed(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_every_documented_key_is_a_config_key():
    doc = (REPO / "docs" / "trainer.md").read_text()
    missing = [key for key in all_keys() if f"`{key}`" not in doc]
    assert not missing, f"docs/trainer.md does not document {missing}"


@pytest.mark.parametrize("preset", ["tiny-cpu", "qwen2.5-math-1.5b", "qwen2.5-math-7b"])
def test_presets_load_and_lay_out_their_batches(preset, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(REPO / "configs" / f"{preset}.yaml")
    rows, gas = batch_layout(config, world_size=8 if preset.startswith("qwen") else 2)
    assert rows % (config.per_device_train_batch_size * gas) == 0
    if preset.startswith("qwen"):  # the paper's recipe
        c = config
        assert (c.num_generations, c.temperature, c.max_completion_length) == (8, 1.0, 3000)
        assert (c.max_prompt_length, c.learning_rate, c.lr_scheduler_type) == (1024, 1e-6, "constant")
        assert (c.adam_beta1, c.adam_beta2, c.weight_decay, c.max_grad_norm) == (0.9, 0.95, 0, 1)
        assert (c.beta, c.epsilon, c.prompts_per_step, c.loss_type) == (0, 0.2, 128, "dr_grpo")
        assert (config.uncertainty, config.scale_fn, config.alpha) == ("se_rao", "reciprocal", 0.0417)
        assert config.rollout_engine == "vllm" and config.deepspeed_config.endswith("ds_zero3.json")
        assert (config.data.path, config.data.split) == ("DigitalLearningGmbH/MATH-lighteval", "train")  # Hub
        assert 128 * 8 // (config.per_device_train_batch_size * gas * 8) == 8  # 128 samples per update


def test_deepspeed_auto_fields_are_filled_and_conflicts_rejected(tmp_path):
    config = load_config(None, {"per_device_train_batch_size": 4, "learning_rate": 2e-6, "adam_beta2": 0.95})
    ds = resolve_deepspeed_config(str(REPO / "configs" / "ds_zero3.json"), config, world_size=8, gas=2,
                                  hidden_size=1536)
    sizes = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")
    assert tuple(ds[key] for key in sizes) == (4, 2, 64)
    assert ds["optimizer"]["params"]["lr"] == 2e-6 and ds["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert ds["optimizer"]["params"]["torch_adam"] is True
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["reduce_bucket_size"] == 1536 ** 2
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert "auto" not in str(ds)
    (tmp_path / "ds.json").write_text('{"train_micro_batch_size_per_gpu": 3}')
    with pytest.raises(ValueError, match="train_micro_batch_size_per_gpu=3 conflicts"):
        resolve_deepspeed_config(str(tmp_path / "ds.json"), config, world_size=1, gas=1, hidden_size=64)


def test_cli_reports_a_bad_key_in_one_line_without_a_traceback():
    command = [sys.executable, "-m", "seedgrpo.cli", "train", "--config", "configs/tiny-cpu.yaml",
               "--num_generationz", "4"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown config key 'num_generationz'" in result.stderr
    assert "did you mean num_generations" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_dispatches_subcommands_lazily(capsys):
    from seedgrpo import cli

    assert cli.main([]) == 0 and "train" in capsys.readouterr().out
    assert cli.main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    from seedgrpo import train

    parsed = train.parse_args(["--local_rank=1", "--config", "x.yaml", "--seed", "2"])
    assert parsed == ("x.yaml", ["--seed", "2"])


def test_every_knob_has_help_and_a_rule_or_a_type():
    from seedgrpo.training.config import KNOBS

    assert len(KNOBS) >= 100
    for key, f in KNOBS.items():
        assert len(f.metadata["help"]) >= 5, key


def test_config_reference_in_docs_is_generated_from_the_fields():
    from pathlib import Path

    from seedgrpo.training.config import REFERENCE_BEGIN, REFERENCE_END, reference_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "trainer.md").read_text()
    block = text[text.index(REFERENCE_BEGIN) + len(REFERENCE_BEGIN):text.index(REFERENCE_END)]
    assert block.strip() == reference_markdown().strip(), \
        "run `python -m seedgrpo.training.config --markdown` and paste it between the markers of docs/trainer.md"


@pytest.mark.parametrize("key,value", [("epsilon", 1.5), ("entropy_coef", -0.1), ("top_entropy_quantile", 1.2),
                                       ("delta", 1.0), ("loss_type", "ppo")])
def test_loss_option_ranges_agree_between_config_and_loss(key, value):
    """One rule per knob: the config and seed_grpo_loss refuse the same values with the same message."""
    import torch

    import seedgrpo

    with pytest.raises(ValueError) as from_config:
        load_config(overrides={key: value})
    logits = torch.randn(2, 3, 5)
    with pytest.raises(ValueError) as from_loss:
        seedgrpo.seed_grpo_loss(logits, completion_ids=torch.zeros(2, 3, dtype=torch.long),
                                completion_mask=torch.ones(2, 3), advantages=torch.zeros(2), **{key: value})
    assert str(from_config.value) == str(from_loss.value)
    assert key in str(from_loss.value)
