"""The trainer with each loss of the policy-loss family (TRL 1.16's names in `seedgrpo train`'s config): a few
steps on the tiny config train (finite metrics, moving weights), the update does not depend on the micro-batch
split (global normalisers), and the config refuses bad values with the key's name.
"""
import math

import pytest

from seedgrpo.training.config import load_config
from seedgrpo.training.trainer import Trainer
from test_trainer import digit_reward, max_diff, params, tiny

FAMILY = [
    dict(loss_type="cispo", epsilon_high=5.0),
    dict(loss_type="sapo"),
    dict(loss_type="luspo", importance_sampling_level="sequence"),
    dict(loss_type="vespo"),
    dict(loss_type="grpo", importance_sampling_level="sequence"),  # GSPO
    dict(loss_type="bnpo", top_entropy_quantile=0.5),
    dict(loss_type="dapo", off_policy_mask_threshold=0.1, entropy_coef=0.01),
    # the hf engine's recorded log-probs are not the training model's: TRL's rollout correction applies
    dict(loss_type="dr_grpo", vllm_importance_sampling_correction=True, vllm_importance_sampling_mode="token_truncate",
         vllm_importance_sampling_clip_min=0.5),
    dict(loss_type="vespo", vllm_importance_sampling_correction=True, vllm_importance_sampling_mode="token_mask"),
]


@pytest.mark.parametrize("options", FAMILY, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_each_loss_trains(tmp_path, options):
    # two passes over the rollout in micro-batches of 8: the ratio moves away from 1 (old log-probs in use)
    trainer = Trainer(tiny(tmp_path, num_iterations=2, per_device_train_batch_size=8, **options),
                      reward_fn=digit_reward)
    start = params(trainer)
    metrics = trainer.train()
    for key in ("loss", "grad_norm", "entropy", "clip_ratio_low", "clip_ratio_high"):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert metrics["grad_norm"] > 0
    assert max_diff(start, params(trainer)) > 1e-4


@pytest.mark.parametrize("options", [
    dict(loss_type="cispo", epsilon_high=5.0), dict(loss_type="luspo"), dict(loss_type="vespo"),
    dict(loss_type="sapo", importance_sampling_level="sequence", entropy_coef=0.05),
], ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_update_does_not_depend_on_the_micro_batch_split(tmp_path, options):
    """16 rows in one micro-batch vs four of 4: the same loss and accumulated gradient (norm compared)."""
    whole = Trainer(tiny(tmp_path / "a", **options), reward_fn=digit_reward)
    split = Trainer(tiny(tmp_path / "b", per_device_train_batch_size=4, **options), reward_fn=digit_reward)
    assert (whole.gas, split.gas) == (1, 4)
    a, b = whole.train(), split.train()
    assert a["grad_norm"] > 0
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)
    # Adam divides each gradient entry by its own size: float32 summation-order noise on near-zero entries
    # moves them at the learning rate's scale (1e-3), so the weights agree to a few 1e-5
    assert max_diff(params(whole), params(split)) < 5e-5


@pytest.mark.parametrize("key,value", [
    ("loss_type", "gspo"), ("importance_sampling_level", "row"), ("top_entropy_quantile", 1.5),
    ("vllm_importance_sampling_mode", "token"), ("sapo_temperature_neg", 0.0), ("off_policy_mask_threshold", -1.0),
])
def test_config_refuses_bad_family_values_naming_the_key(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        load_config(None, {"output_dir": str(tmp_path), key: value})
