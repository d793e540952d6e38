"""SEED-GRPO inside TRL's ``GRPOTrainer``: change two imports, keep your config.

    from seedgrpo.integrations.trl import SeedGRPOConfig as GRPOConfig
    from seedgrpo.integrations.trl import SeedGRPOTrainer as GRPOTrainer

``SeedGRPOTrainer`` lets TRL generate, score and compute its advantages as usual, then scales each prompt's
advantages by ``f(α·U_g)``, where ``U_g`` is the group's uncertainty (by default the normalised semantic
entropy of the final answers, DESIGN.md §2). The factor comes from ``seedgrpo.advantages.seed_advantages``, the
same code behind ``seedgrpo.compute_advantages``; with ``alpha=0`` the trainer is TRL's GRPO, bit for bit.
``use_seedgrpo_loss=True`` also replaces TRL's per-token loss by ``seedgrpo.seed_grpo_loss`` (the fused
kernels on GPU), with TRL's ``loss_type`` (all eight), ``epsilon`` / ``epsilon_high`` / ``delta`` / ``beta`` /
``temperature``, ``importance_sampling_level``, ``top_entropy_quantile``, ``off_policy_mask_threshold``, the
sapo / vespo knobs, a static ``entropy_coef``, the vLLM importance-sampling ratios TRL computes, and its
gradient-accumulation normalisers, so the loss and its gradients equal TRL's for the same inputs.

How the batch is laid out (TRL 1.16): every process generates ``per_device_train_batch_size *
steps_per_generation`` rows; concatenated in rank order they form the global generation batch, where rows
``g*G .. g*G+G-1`` are the G completions of prompt g. A group may straddle two processes, so the answer hashes,
log-probs and masks are gathered, the per-group factor is computed on the global batch (identically on every
rank) and each process keeps its own slice, as TRL does with its rewards.

TRL has no hook for custom advantages (trl#4525, trl#7291), so this module overrides ``_calculate_rewards``,
``_generate_and_score_completions`` and ``_compute_loss``: it is pinned to TRL 1.16.x. Run the example with
``python examples/trl_seed_grpo.py``; the tests are ``pytest tests/test_trl_integration.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

try:
    import trl
    from trl import GRPOConfig, GRPOTrainer
except ImportError as exc:  # pragma: no cover - trl is in requirements.txt
    raise ImportError("seedgrpo.integrations.trl needs TRL 1.16: pip install 'trl==1.16.*'") from exc
from packaging.version import InvalidVersion, Version
from transformers.utils import logging

from seedgrpo.advantages import DEFAULT_ALPHA, SCALE_FNS, SCALE_REWARDS, seed_advantages
from seedgrpo.grading import answers
from seedgrpo.embeddings import policy_embeddings
from seedgrpo.loss import LOSS_TYPES, LossOptions, normalizer_for, seed_grpo_loss
from seedgrpo.registry import (EMBEDDING_UNCERTAINTIES, GroupContext, get_uncertainty, group_context,
                               mean_token_logprobs, reads_text)

__all__ = ["SeedGRPOConfig", "SeedGRPOTrainer", "SUPPORTED_TRL", "check_trl_version"]

logger = logging.get_logger(__name__)

# The overridden methods read TRL internals (the output dict of _generate_and_score_completions, the
# gathered rewards of _calculate_rewards, the loss normalisers of _compute_loss); other minors may move them.
SUPPORTED_TRL = "1.16"
ANSWER_BACKENDS = ("c", "python")
# Where the per-token log-probs of pi_old come from, in order of preference (DESIGN.md: l_i under pi_old).
LOGPROB_KEYS = ("old_per_token_logps", "sampling_per_token_logps")


def check_trl_version(version: Optional[str] = None) -> None:
    """Raise a RuntimeError unless the installed TRL (or ``version``) is a supported 1.16.x release."""
    found = trl.__version__ if version is None else version
    try:
        release = Version(found).release[:2]
    except InvalidVersion:
        release = None
    if release != tuple(int(x) for x in SUPPORTED_TRL.split(".")):
        raise RuntimeError(
            f"seedgrpo.integrations.trl supports TRL {SUPPORTED_TRL}.x, found trl {found}: it overrides "
            "GRPOTrainer internals (_calculate_rewards, _generate_and_score_completions, _compute_loss) that "
            f"other releases change. Install it with pip install 'trl=={SUPPORTED_TRL}.*'.")


@dataclass
class SeedGRPOConfig(GRPOConfig):
    r"""[`GRPOConfig`] plus the SEED-GRPO knobs; every TRL field keeps its meaning.

    Parameters:
        uncertainty (`str`, defaults to `"se_rao"`):
            Registered uncertainty estimator (`seedgrpo.list_uncertainties()`), or `"none"` for plain GRPO.
            `se_rao`/`se_mc` weight answer clusters by the completions' mean token log-prob under the rollout
            policy when TRL has it (`old_per_token_logps`, `sampling_per_token_logps`), and count them
            otherwise (the `se_discrete` estimator).
        scale_fn (`str`, defaults to `"reciprocal"`):
            Map f of the factor f(alpha * U): `linear`, `exp`, `focal` or `reciprocal`.
        alpha (`float`, defaults to `0.0417`):
            Strength of the scaling; `0` reproduces TRL's GRPO exactly.
        answer_backend (`str`, defaults to `"c"`):
            Answer extraction and hashing backend of `seedgrpo.answers.answer_hashes`: `"c"` or `"python"`.
        use_seedgrpo_loss (`bool`, defaults to `False`):
            Compute the policy loss with `seedgrpo.seed_grpo_loss` (fused kernels on GPU) instead of TRL's.
            Supports every `loss_type` and TRL's loss options, except the adaptive entropy controller and
            the bias-corrected KL (`use_bias_correction_kl` with `beta > 0`).
    """

    uncertainty: str = field(default="se_rao", metadata={
        "help": "Uncertainty estimator U of each prompt's group (see seedgrpo.list_uncertainties()), or 'none'."})
    scale_fn: str = field(default="reciprocal", metadata={
        "help": "Advantage scaling f(alpha*U): 'linear', 'exp', 'focal' or 'reciprocal'."})
    alpha: float = field(default=DEFAULT_ALPHA, metadata={
        "help": "Scaling strength alpha in f(alpha*U); 0 reproduces GRPO."})
    answer_backend: str = field(default="c", metadata={
        "help": "Answer hashing backend of seedgrpo.answers.answer_hashes: 'c' or 'python'."})
    use_seedgrpo_loss: bool = field(default=False, metadata={
        "help": "Compute the policy loss with seedgrpo.seed_grpo_loss instead of TRL's own."})

    def __post_init__(self):
        check_trl_version()
        super().__post_init__()
        if self.uncertainty not in (None, "none"):
            get_uncertainty(self.uncertainty)  # raises a ValueError listing the registered names
        if self.scale_fn not in SCALE_FNS:
            raise ValueError(f"scale_fn={self.scale_fn!r} is not one of {SCALE_FNS}")
        if (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                or not math.isfinite(self.alpha) or self.alpha < 0):
            raise ValueError(f"alpha must be a finite number >= 0 (0 disables the scaling), got {self.alpha!r}")
        if self.answer_backend not in ANSWER_BACKENDS:
            raise ValueError(f"answer_backend={self.answer_backend!r} is not one of {ANSWER_BACKENDS}")
        if self.use_seedgrpo_loss:
            self._check_seed_loss_options()

    def _check_seed_loss_options(self) -> None:
        """seed_grpo_loss implements TRL's loss family; refuse the options it does not."""
        if self.loss_type not in LOSS_TYPES:  # the loss types seed_grpo_loss implements, TRL's names
            raise ValueError(f"use_seedgrpo_loss=True supports loss_type in {LOSS_TYPES}, got "
                             f"loss_type={self.loss_type!r}: pick one of them or set use_seedgrpo_loss=False")
        unsupported = [
            ("use_adaptive_entropy", self.use_adaptive_entropy, "False"),
            # TRL multiplies the KL by the importance ratio (its gradient differs even on-policy); ours is plain k3.
            ("use_bias_correction_kl", self.beta != 0.0 and self.use_bias_correction_kl, "False"),
        ]
        for name, is_set, off in unsupported:
            if is_set:
                raise ValueError(f"use_seedgrpo_loss=True does not implement {name}={getattr(self, name)!r}: "
                                 f"set {name}={off}, or use_seedgrpo_loss=False to keep TRL's loss")


class SeedGRPOTrainer(GRPOTrainer):
    """[`GRPOTrainer`] with SEED-GRPO advantage scaling and, optionally, seedgrpo's fused loss.

    Takes the same arguments as `GRPOTrainer`; `args` must be a [`SeedGRPOConfig`]. Logs `semantic_entropy`
    (mean U over the prompts of a generation batch) and `advantage_scale` (mean f(alpha * U)) next to TRL's
    metrics.
    """

    _tag_names = ["trl", "grpo", "seed-grpo"]

    def __init__(self, model, reward_funcs=None, args: Optional[SeedGRPOConfig] = None, *pos, **kwargs):
        check_trl_version()
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "model"
            args = SeedGRPOConfig(f"{name.split('/')[-1]}-SeedGRPO")
        if not isinstance(args, SeedGRPOConfig):
            raise ValueError(f"args must be a SeedGRPOConfig, got {type(args).__name__}: build it with "
                             "SeedGRPOConfig(...) and the same keywords as your GRPOConfig")
        super().__init__(model, reward_funcs, args, *pos, **kwargs)
        self._rewards_per_func = None  # the gathered rewards of the current batch, kept by _calculate_rewards
        self._warned_no_logprobs = False
        self._loss_input = self._choose_loss_input() if args.use_seedgrpo_loss else None

    # ------------------------------------------------------------------------------------------------------
    # Advantages
    # ------------------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL returns the rewards of every process (gathered), rows in global order; the uncertainty of a
        # group may need them (e.g. GCPO's reward dispersion), and TRL does not put them in its output.
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.args.uncertainty in (None, "none"):
            return output
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        ctx = self._global_group_context(output, group_size)
        scale_rewards = self.scale_rewards if self.scale_rewards in SCALE_REWARDS else "none"
        result = seed_advantages(ctx, uncertainty=self.args.uncertainty, scale_fn=self.args.scale_fn,
                                 alpha=float(self.args.alpha), scale_rewards=scale_rewards)
        if result.factor is None:
            return output
        # One factor per row of the global batch; this process owns rows [rank*B_local, (rank+1)*B_local).
        row_factor = result.factor.repeat_interleave(group_size)
        local_rows = output["completion_ids"].size(0)
        start = self.accelerator.process_index * local_rows
        advantages = output["advantages"]
        local_factor = row_factor[start:start + local_rows].to(advantages.dtype)
        output["advantages"] = advantages * local_factor.view(-1, *([1] * (advantages.dim() - 1)))
        self._rescale_logged_advantages(row_factor)
        self._metrics[mode]["semantic_entropy"].append(result.uncertainty.float().mean().item())
        self._metrics[mode]["advantage_scale"].append(result.factor.float().mean().item())
        return output

    def _global_group_context(self, output: dict[str, Any], group_size: int) -> GroupContext:
        """Everything the uncertainty estimators may read, for the global batch (rows of all processes)."""
        device = self.accelerator.device
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        loss_mask = completion_mask if "tool_mask" not in output else completion_mask * output["tool_mask"]
        texts = self._completion_texts(completion_ids, completion_mask)
        hashes = answers.answer_hashes(texts, backend=self.args.answer_backend).to(device)

        rewards_per_func, self._rewards_per_func = self._rewards_per_func, None
        weighted = rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        scorable = ~torch.isnan(rewards_per_func).all(dim=1)  # TRL zeroes the advantage of unscorable rows
        rewards = weighted.nansum(dim=1).masked_fill(~scorable, 0.0).float()

        # A row whose completion mask is empty (mask_truncated_completions) or that no reward function could
        # score takes no part in its group's uncertainty.
        active_local = completion_mask.sum(dim=1) > 0
        seq_logprobs_local = self._mean_token_logprobs(output, loss_mask)
        embeddings_local = (self._completion_embeddings(output)
                            if self.args.uncertainty in EMBEDDING_UNCERTAINTIES else None)

        gather = self.accelerator.gather
        hashes = gather(hashes)
        mask = gather(active_local) & scorable.to(device)
        seq_logprobs = None if seq_logprobs_local is None else gather(seq_logprobs_local)
        embeddings = None if embeddings_local is None else gather(embeddings_local)
        if reads_text(self.args.uncertainty):  # a registered estimator may read the texts: every rank's
            from accelerate.utils import gather_object

            texts = gather_object(texts) if self.accelerator.num_processes > 1 else texts
        else:
            texts = None
        return group_context(rewards=rewards.to(device), group_size=group_size, texts=texts, hashes=hashes,
                             uncertainty=self.args.uncertainty, seq_logprobs=seq_logprobs, embeddings=embeddings,
                             mask=mask, answer_backend=self.args.answer_backend)

    def _completion_texts(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[str]:
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(completion_ids.cpu(), completion_mask.cpu())]
        return self.processing_class.batch_decode(rows, skip_special_tokens=True)

    def _mean_token_logprobs(self, output: dict[str, Any], loss_mask: torch.Tensor) -> Optional[torch.Tensor]:
        """Masked mean of pi_old's token log-probs per row, or None when TRL computed none."""
        logps = next((output[key] for key in LOGPROB_KEYS if output.get(key) is not None), None)
        if logps is None:
            if self.args.uncertainty in ("se_rao", "se_mc") and not self._warned_no_logprobs:
                logger.warning(
                    f"uncertainty={self.args.uncertainty!r} weights answer clusters by sequence likelihood, but "
                    "TRL computed no log-probs for this batch (it does so with vLLM, num_iterations > 1, or "
                    "steps_per_generation > gradient_accumulation_steps): clusters are counted instead, as "
                    "se_discrete does.")
                self._warned_no_logprobs = True
            return None
        # vLLM marks tokens it could not score as NaN: mean_token_logprobs leaves them out of the mean.
        return mean_token_logprobs(logps.float(), loss_mask)

    @torch.no_grad()
    def _completion_embeddings(self, output: dict[str, Any]) -> torch.Tensor:
        """The policy's last hidden state mean-pooled over each completion, [B_local, H] float32."""
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        input_ids = torch.cat([output["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], completion_mask], dim=1)
        length = completion_ids.size(1)
        mode = "train" if self.model.training else "eval"
        chunk = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        pooled = []
        for start in range(0, input_ids.size(0), chunk):  # TRL's own chunking of no-grad forwards
            rows = slice(start, start + chunk)
            with self.accelerator.autocast():
                out = self.model(input_ids=input_ids[rows], attention_mask=attention_mask[rows],
                                 output_hidden_states=True, logits_to_keep=1, use_cache=False)
            pooled.append(policy_embeddings(out.hidden_states[-1][:, -length:], completion_mask[rows]))
        return torch.cat(pooled)

    def _rescale_logged_advantages(self, row_factor: torch.Tensor) -> None:
        # TRL appended the unscaled advantages of the global batch to its completion log; log what is trained on.
        logged = self._logs["advantages"]
        count = min(row_factor.numel(), len(logged))
        if count == 0:
            return
        tail = [logged.pop() for _ in range(count)][::-1]
        factor = row_factor[-count:].tolist()
        logged.extend(a * f for a, f in zip(tail, factor))

    # ------------------------------------------------------------------------------------------------------
    # Loss
    # ------------------------------------------------------------------------------------------------------

    def _choose_loss_input(self) -> str:
        """'hidden' (fused linear + loss, no [B, T, V] logits) when lm_head can be read directly, else 'logits'."""
        if self.aux_loss_enabled:
            raise ValueError("use_seedgrpo_loss=True does not add the MoE router auxiliary loss: set "
                             "router_aux_loss_coef=0.0, or use_seedgrpo_loss=False")
        model = self.accelerator.unwrap_model(self.model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        lm_head = base.get_output_embeddings()
        text_config = base.config.get_text_config()
        # Logit softcapping/scaling live in the model's forward; under ZeRO-3 / FSDP the head's weight is only
        # whole inside its module's forward. In those cases the model computes the logits itself.
        rescales = any(getattr(text_config, key, None) is not None for key in
                       ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                        "logits_scaling"))
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if lm_head is None or getattr(lm_head, "bias", None) is not None or rescales or sharded:
            return "logits"
        return "hidden"

    def _compute_loss(self, model, inputs):
        if not self.args.use_seedgrpo_loss:
            return super()._compute_loss(model, inputs)
        for key in ("pixel_values", "image_grid_thw", "token_type_ids", "mm_token_type_ids"):
            if inputs.get(key) is not None:
                raise ValueError(f"use_seedgrpo_loss=True supports text-only models; the batch has {key!r}: "
                                 "set use_seedgrpo_loss=False for vision-language models")
        advantages = inputs["advantages"]
        if advantages.dim() != 1:
            raise ValueError(f"use_seedgrpo_loss=True needs one advantage per sequence, got shape "
                             f"{tuple(advantages.shape)}; set use_seedgrpo_loss=False for per-token advantages")
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        length = completion_ids.size(1)
        mode = "train" if self.model.training else "eval"

        # Position t-1 predicts completion token t: keep the last `length + 1` positions, drop the final one.
        # The forward goes through the wrapped model (DDP / DeepSpeed hooks), without TRL's fused log-prob head.
        with self.accelerator.autocast():
            if self._loss_input == "hidden":
                out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                            logits_to_keep=1, use_cache=False)
                weight = self._lm_head_weight()
                hidden = out.hidden_states[-1][:, -length - 1:-1]
                policy_input = dict(hidden=hidden.to(weight.dtype), weight=weight)
            else:
                # only the T rows that score the completion reach the lm_head: logits the kernel may overwrite
                total = input_ids.size(1)
                keep = torch.arange(total - length - 1, total - 1, device=input_ids.device)
                out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep,
                            use_cache=False)
                policy_input = dict(logits=out.logits, inplace=True)
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        rollout_correction = self.use_vllm and self.vllm_importance_sampling_correction
        args = self.args
        loss, metrics = seed_grpo_loss(
            **policy_input, completion_ids=completion_ids, completion_mask=mask, advantages=advantages,
            old_logprobs=inputs.get("old_per_token_logps"),
            ref_logprobs=inputs.get("ref_per_token_logps") if self.beta != 0.0 else None,
            sampling_logprobs=inputs.get("sampling_per_token_logps"),
            importance_sampling_ratio=inputs.get("importance_sampling_ratio") if rollout_correction else None,
            # the same LossOptions the trainer builds from its config, read from TRL's GRPOConfig (the trainer
            # holds a few of them resolved); TRL's entropy bonus is the call's mean, scaled for accumulation only
            options=LossOptions.from_object(
                args, loss_type=self.loss_type, epsilon=self.epsilon_low, epsilon_high=self.epsilon_high,
                beta=self.beta, temperature=self.temperature,
                importance_sampling_level=self.importance_sampling_level,
                top_entropy_quantile=self.top_entropy_quantile,
                off_policy_mask_threshold=self.off_policy_mask_threshold,
                entropy_coef=self.entropy_coef / accumulation),
            normalizer=self._loss_normalizer(inputs, mask, mode))
        self._log_loss_metrics(metrics, mask, mode)
        return loss

    def _lm_head_weight(self) -> torch.Tensor:
        model = self.accelerator.unwrap_model(self.model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        return base.get_output_embeddings().weight

    def _loss_normalizer(self, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> float:
        """The denominator TRL 1.16's _compute_loss divides by for this micro-batch, through seedgrpo's one
        rule (seedgrpo.loss.normalizer_for) with TRL's counts: every type is also divided by the accumulation
        steps; bnpo counts this micro-batch's tokens, dapo/cispo/vespo TRL's global token count."""
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        if self.loss_type in ("dapo", "cispo", "vespo"):
            # num_items_in_batch counts the whole generation batch of all ranks; TRL rescales it to one
            # accumulation window of one rank.
            tokens = inputs["num_items_in_batch"].clamp(min=1.0).item() / self.accelerator.num_processes
            if mode == "train":
                tokens = tokens * accumulation / self.args.steps_per_generation
        else:
            tokens = float(mask.sum().clamp(min=1).item() * accumulation)
        return normalizer_for(self.loss_type, rows=mask.size(0) * accumulation, tokens=tokens,
                              max_completion_length=self.max_completion_length)

    def _log_loss_metrics(self, metrics: dict[str, torch.Tensor], mask: torch.Tensor, mode: str) -> None:
        """TRL's metric names, averaged over the tokens of all processes as TRL's global_masked_mean does."""
        count = mask.sum().float()

        def global_mean(value: torch.Tensor) -> float:
            local = torch.stack([value.float().to(count.device) * count, count])
            total = self.accelerator.reduce(local, reduction="sum")
            return (total[0] / total[1].clamp(min=1.0)).item()

        low, high = global_mean(metrics["clip_ratio_low"]), global_mean(metrics["clip_ratio_high"])
        if self.beta != 0.0:
            self._metrics[mode]["kl"].append(global_mean(metrics["kl"]))
        self._metrics[mode]["entropy"].append(global_mean(metrics["entropy"]))
        if self.loss_type == "cispo":  # the tokens whose ratio cispo's epsilon_high caps
            self._metrics[mode]["cispo_clip_ratio"].append(high)
        if self.loss_type in ("cispo", "sapo", "vespo"):
            return
        self._metrics[mode]["clip_ratio/low_mean"].append(low)
        self._metrics[mode]["clip_ratio/high_mean"].append(high)
        # Low clipping needs A < 0 and high clipping A > 0: the regions are disjoint, so their union is the sum.
        self._metrics[mode]["clip_ratio/region_mean"].append(low + high)

