"""The SEED-GRPO trainer: rollout → score → advantage → update → log, under DeepSpeed ZeRO-3 or plain torch.

    from seedgrpo.training.config import load_config
    from seedgrpo.training.trainer import Trainer
    Trainer(load_config("configs/tiny-cpu.yaml")).train()

    python -m seedgrpo.train --config configs/tiny-cpu.yaml                       # one process
    deepspeed --num_gpus 8 --module seedgrpo.train --config configs/qwen2.5-math-7b.yaml

One step: every rank takes its slice of `prompts_per_step` prompts and samples `num_generations` completions
of each (whole groups stay on one rank, so the group statistics need no communication); the completions are
scored (answers → hashes → clusters, rewards); advantages come from the registered estimator with the
configured uncertainty; then `num_iterations` passes over micro-batches of `per_device_train_batch_size`
completions run the loss and the optimizer. The loss's normalizer is global (all ranks, all micro-batches of
one optimizer step), so the gradient does not depend on how the batch is split.
"""
from __future__ import annotations

import contextlib
import math
import random
import signal
import time
import warnings

import numpy as np
import torch

from .. import dist
from ..advantages import STD_EPS, seed_advantages
from .checkpoint import export_hf, find_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .console import RunConsole
from ..tasks.data import PromptSampler, format_prompt, load_problems, training_problems
from .dynamic_sampling import groups_with_signal, resample_for_signal
from .engine import batch_layout, build_policy, build_reference, init_distributed, load_tokenizer
from .faults import fault_point
from .host_memory import keep_freed_host_memory, return_freed_host_memory
from ..grading.equivalence import tier_counts
from ..loss import LossOptions, normalizer_for, rollout_importance_ratio, seed_grpo_loss
from .metrics_log import RunLogger, resolve_report_to
from ..registry import (EMBEDDING_UNCERTAINTIES, get_advantage, get_uncertainty, group_context, list_advantages,
                        list_uncertainties, mean_token_logprobs)
from .reward_funcs import from_config as reward_functions, trainer_state, trl_arguments
from .row_skipping import plan_micro_batches, rows_to_run, skipping_is_exact, zero_weight_piece
from ..rollout import make_rollout_engine
from ..rollout.base import SamplingSettings, pad_token_id, row_seeds
from ..modeling.model_access import gathered, lm_head_weight
from ..modeling.scoring import score_completions, shareable_prefix_rows
from ..modeling.training_forward import completion_forward



class Trainer:
    """`Trainer(config).train()`.

    `reward_funcs` (a function or a list: callables, "math" or dotted paths) are called as TRL calls them and
    replace `config.reward_funcs`; `reward_weights` come from the config (seedgrpo/training/reward_funcs.py). The older
    `reward_fn(completions, problems) -> list[float]` still works (default: the math reward,
    `seedgrpo.rewards.math_reward` against each problem's reference answer). Each of `callbacks` is called
    as `fn(trainer, step, metrics)` on every rank after each step's update; a dict it returns is merged into
    that step's metrics row.
    """

    def __init__(self, config: TrainConfig, *, reward_funcs=None, reward_fn=None, callbacks=()):
        self.config = config
        _check_registered_names(config)
        resolve_report_to(config)  # a tracker that is not installed stops the run here, before any work
        if config.keep_freed_host_memory:  # before the model and the first step allocate (host_memory.py)
            keep_freed_host_memory()
        # DeepSpeed 0.19 calls torch.distributed functions that torch 2.13 deprecates, once per bucket.
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
        init_distributed(config)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.rows_per_rank, self.gas = batch_layout(config, self.world_size)
        self.optimizer_steps_per_step = config.num_iterations * self.rows_per_rank // (
            config.per_device_train_batch_size * self.gas)
        _seed_everything(config.seed)

        self.tokenizer = load_tokenizer(config)
        self.problems = _load_training_problems(config)
        self.sampler = PromptSampler(len(self.problems), seed=config.seed, shuffle=config.data.shuffle)
        self.rewards = reward_functions(config, reward_funcs=reward_funcs, reward_fn=reward_fn)
        self.callbacks = list(callbacks)
        self.policy = build_policy(config, self.tokenizer, world_size=self.world_size,
                                   total_optimizer_steps=config.max_steps * self.optimizer_steps_per_step)
        self.reference = build_reference(config, self.tokenizer, self.policy) if config.beta > 0 else None
        self.rollout = self._make_rollout_engine()
        self.embedding_source = _embedding_source(config)
        not_exact = skipping_is_exact(config)
        self.skip_rows = config.skip_zero_advantage and not_exact is None
        if config.skip_zero_advantage and not_exact:
            dist.print0(f"skip_zero_advantage: every row runs the update because of {not_exact}")

        self.step = 0
        checkpoint = find_checkpoint(config.resume, config.output_dir)
        if checkpoint is not None:
            state = load_checkpoint(self.policy, checkpoint)
            self.step = state["step"]
            self.sampler.load_state_dict(state["sampler"])
            self.rollout.sync_weights()
            dist.print0(f"resumed from {checkpoint} at step {self.step}")
        self.log = RunLogger(config.output_dir, config, resume_step=self.step)
        self.console = RunConsole(config, start_step=self.step)  # rank 0: the run's bar, or a line per step
        self._stop_requested = False
        self.sampling_rounds = 1  # rollouts of the current step (dynamic_sampling)
        # async generation (server mode): requests sent ahead, and the sampler's state before each one's draw
        self._requested_through, self._ahead, self._sampler_before = self.step, {}, {}
        self.dropped_batches, self._generation_stats = 0, {}

    def _rollout_kwargs(self) -> dict:
        c = self.config
        sampling = SamplingSettings(max_prompt_length=c.max_prompt_length,
                                    max_completion_length=c.max_completion_length,
                                    temperature=c.temperature, top_p=c.top_p, top_k=c.top_k)
        kwargs = dict(model=self.policy.model, tokenizer=self.tokenizer, sampling=sampling)
        if c.rollout_engine == "hf":
            kwargs.update(gather_for_generation=c.gather_for_generation,
                          generation_batch_size=c.generation_batch_size,
                          share_prompt_prefill=c.share_prompt_prefill, decode_loop=c.decode_loop)
        else:
            kwargs.update(model_path=c.model, vllm_config=c.vllm, seed=c.seed)
        return kwargs

    # ================================================================================================ loop
    def train(self) -> dict:
        """Run until `max_steps` (or SIGTERM, after which a checkpoint is saved); returns the last metrics."""
        c = self.config
        metrics = {}
        tier_counts(reset=True)  # the grader's tier counts of step 1 are step 1's (not an evaluation's before it)
        with self._sigterm_saves_checkpoint(), self._closing_rollout_on_error():
            while self.step < c.max_steps:
                self.step += 1
                started = time.perf_counter()
                problems, batch = self._generated_batch()                                # 1. rollout
                return_freed_host_memory()  # between phases (host_memory.py)
                scores = self._score(batch, problems)                                    # 2. score
                if c.dynamic_sampling:  # DAPO: more prompts until enough groups carry a signal
                    problems, batch, scores = self._resample_for_signal(problems, batch, scores)
                advantages, adv_stats = self._advantages(batch, scores)                  # 3. advantage
                update_stats = self._update(batch, advantages)                           # 4. update
                return_freed_host_memory()
                self._sync_weights()  # vLLM, a generation server: the next rollouts sample the new weights
                metrics = self._log(batch, scores, adv_stats, update_stats, problems, started)  # 5. log
                stop = dist.any_rank(self._stop_requested)
                if stop or self.step == c.max_steps or (c.save_steps and self.step % c.save_steps == 0):
                    save_checkpoint(self.policy, c.output_dir, self.step,
                                    {"sampler": self._sampler_before.get(self.step + 1,
                                                                         self.sampler.state_dict())},
                                    save_total_limit=c.save_total_limit)
                if stop:
                    dist.print0(f"SIGTERM: saved a checkpoint at step {self.step}; resume with --resume auto")
                    break
        if self.step == c.max_steps and c.save_final_model:
            export_hf(self.policy, self.tokenizer, f"{c.output_dir}/final")
        self.rollout.close()  # vLLM's memory and temporary files; the policy stays usable
        self.log.close()
        return metrics

    # ------------------------------------------------------------------ 1. rollout: where generation runs
    def _make_rollout_engine(self):
        if self.config.generation_mode == "colocate":
            return make_rollout_engine(self.config.rollout_engine, **self._rollout_kwargs())
        from ..rollout.client import ServerRolloutEngine  # a `seedgrpo serve` process (docs/generation.md)

        kwargs = self._rollout_kwargs()
        return ServerRolloutEngine(model=kwargs["model"], tokenizer=self.tokenizer,
                                   sampling=kwargs["sampling"], config=self.config)

    def _generated_batch(self):
        """(This step's problems, its rollout): drawn and generated now, or (async server mode) requested
        `max_staleness` steps ago, sampled by the policy of then; `_generation_stats` gets the wait."""
        started = time.perf_counter()
        ahead = self.config.max_staleness if self.config.async_generation else 0
        if ahead == 0:
            problems, positions = self._next_problems()
            problems, batch, staleness = problems, self._rollout(problems, positions), 0
        else:
            problems, batch, staleness = self._requested_batch(ahead)
        self._generation_stats = dict(generation_wait_s=time.perf_counter() - started)
        if self.config.generation_mode == "server":
            self._generation_stats.update(staleness=staleness, dropped_batches=self.dropped_batches)
        return problems, batch

    def _requested_batch(self, ahead: int):
        """Send the requests of the steps up to `step + ahead` (each drawn in step order, as a synchronous
        run draws them; its row seeds are its step's), then take this step's result. A result more than
        `ahead` versions old (only after a server restart) is dropped, counted, and sampled again now."""
        c = self.config
        for step in range(self._requested_through + 1, min(self.step + ahead, c.max_steps) + 1):
            self._sampler_before[step] = self.sampler.state_dict()  # a checkpoint at step-1 resumes here
            problems, positions = self._next_problems()
            prompts = [format_prompt(p, c.prompt_template, self.tokenizer, c.system_prompt) for p in problems]
            self.rollout.submit(step, prompts, c.num_generations,
                                row_seeds(c.seed, step, positions, c.num_generations))
            self._ahead[step], self._requested_through = (problems, positions), step
        self._sampler_before.pop(self.step, None)
        problems, positions = self._ahead.pop(self.step)
        fault_point("rollout", self.step)
        batch, version = self.rollout.result(self.step, with_hidden=self.embedding_source == "policy")
        staleness = self.rollout.version - version
        if staleness > c.max_staleness:
            self.dropped_batches += 1
            return problems, self._rollout(problems, positions), 0
        return problems, self._finish_rollout(batch), staleness

    def _sync_weights(self):
        started = time.perf_counter()
        self.rollout.sync_weights()
        if self.config.generation_mode == "server":  # the push: the trainer waits for the socket meanwhile
            self._generation_stats["weight_sync_s"] = time.perf_counter() - started

    @contextlib.contextmanager
    def _closing_rollout_on_error(self):
        """A failing run still stops what the engine started (vLLM's memory, a generation server)."""
        try:
            yield
        except BaseException:
            self.rollout.close()
            raise

    def _next_problems(self):
        """This rank's slice of the global batch, and each prompt's position in the global batch."""
        per_rank = self.config.prompts_per_step // self.world_size
        indices = self.sampler.next(self.config.prompts_per_step)
        positions = list(range(self.rank * per_rank, (self.rank + 1) * per_rank))
        return [self.problems[indices[p]] for p in positions], positions

    # ---------------------------------------------------------------------------------------- 1. rollout
    def _rollout(self, problems, batch_positions):
        c = self.config
        prompts = [format_prompt(p, c.prompt_template, self.tokenizer, c.system_prompt) for p in problems]
        seeds = row_seeds(c.seed, self.step, batch_positions, c.num_generations)
        fault_point("rollout", self.step)
        with self._progress("rollout", len(seeds)) as bar:
            batch = self.rollout.generate(prompts, num_generations=c.num_generations, row_seeds=seeds,
                                          with_hidden=self.embedding_source == "policy", progress=bar)
        return self._finish_rollout(batch)

    def _finish_rollout(self, batch):
        c = self.config
        batch.completion_lengths = batch.completion_mask.sum(1)  # what was generated, for the metrics
        if c.mask_truncated_completions:  # the loss mask only: truncated rows still count in the lengths
            batch.completion_mask = batch.completion_mask * (~batch.is_truncated).long()[:, None]
        return batch

    def _resample_for_signal(self, problems, batch, scores):
        """Dynamic sampling (seedgrpo/training/dynamic_sampling.py): fresh prompts until the batch has signal."""
        c = self.config

        def draw(round_index):
            more, positions = self._next_problems()
            # a later round's seeds: the prompts' places in the batch, after those of the earlier rounds
            extra = self._rollout(more, [p + round_index * c.prompts_per_step for p in positions])
            return more, extra, self._score(extra, more)

        (problems, batch, scores), self.sampling_rounds = resample_for_signal(
            (problems, batch, scores), draw, group_size=c.num_generations,
            max_rounds=c.max_dynamic_sampling_rounds, pad_id=pad_token_id(self.tokenizer))
        return problems, batch, scores

    # ------------------------------------------------------------------------------------------ 2. score
    def _score(self, batch, problems) -> dict:
        from ..grading import answers

        c, G = self.config, self.config.num_generations
        row_problems = [p for p in problems for _ in range(G)]
        trl_inputs = {}
        if self.rewards.takes_trl_arguments:  # prompts, token ids and the state only for TRL-style functions
            state = trainer_state(self.step, c.max_steps, self.optimizer_steps_per_step,
                                  self.sampler.epoch + self.sampler.position / self.sampler.n)
            prompts = [format_prompt(p, c.prompt_template, self.tokenizer, c.system_prompt) for p in problems]
            trl_inputs = trl_arguments(batch, prompts, G, c.max_completion_length, state)
        rewards, per_function = self.rewards(completions=batch.texts, problems=row_problems, group_size=G,
                                             **trl_inputs)
        hashes = answers.answer_hashes(batch.texts, backend=c.answer_backend)
        mask = batch.completion_mask.cpu()
        seq_logprobs = mean_token_logprobs(batch.logprobs.cpu(), mask)
        embeddings = None
        if self.embedding_source == "policy":
            from ..embeddings import policy_embeddings

            embeddings = policy_embeddings(batch.hidden, batch.completion_mask).cpu()
            batch.hidden = None  # [B, T, H]: large, and not needed any more
        elif self.embedding_source == "minilm":
            from ..embeddings import minilm_embeddings

            embeddings = minilm_embeddings(batch.texts)
        return dict(rewards=rewards, rewards_per_function=per_function, hashes=hashes,
                    cluster_ids=answers.cluster_ids(hashes, G), seq_logprobs=seq_logprobs, embeddings=embeddings,
                    row_mask=mask.bool().any(1))

    # -------------------------------------------------------------------------------------- 3. advantage
    def _advantages(self, batch, scores):
        c = self.config
        ctx = group_context(rewards=scores["rewards"], group_size=c.num_generations, texts=batch.texts,
                            hashes=scores["hashes"], uncertainty=c.uncertainty, advantage=c.advantage,
                            seq_logprobs=scores["seq_logprobs"], embeddings=scores["embeddings"],
                            mask=scores["row_mask"], answer_backend=c.answer_backend)
        # "batch" scaling divides by the std of ALL rewards (every rank): done below, with global sums.
        options = dict(uncertainty=c.uncertainty, scale_fn=c.scale_fn, alpha=c.alpha,
                       scale_rewards="none" if c.scale_rewards == "batch" else c.scale_rewards)
        factor = uncertainty = None
        if c.advantage == "seed_grpo":
            result = seed_advantages(ctx, **options)
            advantages, factor, uncertainty = result.advantages, result.factor, result.uncertainty
        else:
            advantages = get_advantage(c.advantage)(ctx, **options)
        if c.scale_rewards == "batch":
            r = scores["rewards"].double()
            n, total, squares = dist.all_reduce_sum(torch.stack([torch.tensor(float(r.numel())), r.sum(),
                                                                  (r * r).sum()])).tolist()
            std = math.sqrt(max(squares - total * total / n, 0.0) / max(n - 1, 1))
            advantages = advantages / (std + STD_EPS)
        semantic = get_uncertainty("se_rao")(ctx)  # logged whatever the configured uncertainty
        stats = dict(semantic_entropy=semantic, advantage_scale=factor, uncertainty=uncertainty)
        return advantages.float(), stats

    # ----------------------------------------------------------------------------------------- 4. update
    def _update(self, batch, advantages) -> dict:
        c = self.config
        device = self.policy.device
        micro = c.per_device_train_batch_size
        per_optimizer_step = micro * self.gas
        rows = batch.completion_ids.shape[0]
        data = dict(prompt_ids=batch.prompt_ids, prompt_mask=batch.prompt_mask,
                    completion_ids=batch.completion_ids, completion_mask=batch.completion_mask,
                    advantages=advantages)
        data = {k: v.to(device) for k, v in data.items()}
        # Rows with advantage 0 carry no gradient: left out of every pass, old log-probs included
        # (seedgrpo/training/row_skipping.py); the normalizers below still count them.
        run = (rows_to_run(data["advantages"], data["completion_mask"]) if self.skip_rows
               else torch.ones(rows, dtype=torch.bool))
        plan = plan_micro_batches(run, per_optimizer_step, micro, lockstep=self._lockstep())
        # Old log-probs matter once the policy moves within a rollout; before that the ratio is 1 by
        # construction and the loss uses the detached current log-probs (exactly on-policy). The rollout
        # correction (TRL's vllm_importance_sampling_*) compares the sampler's log-probs with the training
        # model's, so it needs the latter whenever the engine's are not exact.
        correct = c.vllm_importance_sampling_correction and not self.rollout.exact_logprobs
        off_policy = c.num_iterations > 1 or rows > per_optimizer_step
        if off_policy or correct:
            data["old_logprobs"] = (batch.logprobs.to(device) if self.rollout.exact_logprobs
                                    else self._score_all(self.policy.model, data, plan))
        if correct:
            data["importance_sampling_ratio"] = rollout_importance_ratio(
                data["old_logprobs"], batch.logprobs.to(device), data["completion_mask"],
                mode=c.vllm_importance_sampling_mode, clip_min=c.vllm_importance_sampling_clip_min,
                clip_max=c.vllm_importance_sampling_clip_max)
            if not off_policy:  # on-policy: the training model's log-probs are the current ones
                del data["old_logprobs"]
        if c.off_policy_mask_threshold is not None:
            data["sampling_logprobs"] = batch.logprobs.to(device)
        if self.reference is not None:
            data["ref_logprobs"] = self._score_all(self.reference, data, plan)

        # loss, tokens that ran, clip_low, clip_high, kl, entropy (x tokens that ran), tokens of all rows,
        # rows that ran
        totals = torch.zeros(8, dtype=torch.float64)
        grad_norms = []
        with self._progress("update", c.num_iterations * sum(map(len, plan))) as bar:
            for _ in range(c.num_iterations):
                for step_index, calls in enumerate(plan):
                    group = slice(step_index * per_optimizer_step, (step_index + 1) * per_optimizer_step)
                    # over all rows, skipped ones included
                    normalizer, entropy_normalizer = self._global_normalizer(data["completion_mask"][group])
                    for call_index, indices in enumerate(calls):
                        self.policy.set_accumulation_boundary(call_index == len(calls) - 1)
                        piece = ({k: v[indices.to(device)] for k, v in data.items()} if indices.numel()
                                 else zero_weight_piece(data, group.start))
                        loss, metrics = self._micro_batch_loss(piece, normalizer, entropy_normalizer)
                        fault_point("update", self.step)
                        tokens = float(piece["completion_mask"].sum()) if indices.numel() else 0.0
                        weighted = [float(metrics[k]) * tokens
                                    for k in ("clip_ratio_low", "clip_ratio_high", "kl", "entropy")]
                        totals[:6] += torch.tensor([float(loss), tokens] + weighted)
                        totals[7] += indices.numel()
                        if self.policy.step():
                            grad_norms.append(self.policy.grad_norm)
                        bar.update(1)
                    totals[6] += float(data["completion_mask"][group].sum())
        totals = dist.all_reduce_sum(totals)
        ran_tokens, all_tokens = max(totals[1].item(), 1.0), max(totals[6].item(), 1.0)
        # A skipped row is never clipped (the clip counts need a nonzero advantage) and has no KL (beta = 0):
        # those ratios stay token means over ALL rows. The entropy is measured only where rows ran.
        return dict(loss=totals[0].item() / self.optimizer_steps_per_step,
                    clip_ratio_low=totals[2].item() / all_tokens,
                    clip_ratio_high=totals[3].item() / all_tokens,
                    kl=totals[4].item() / all_tokens, entropy=totals[5].item() / ran_tokens,
                    skipped_row_frac=1.0 - totals[7].item() / (c.num_iterations * rows * self.world_size),
                    grad_norm=float(np.mean(grad_norms)) if grad_norms else float("nan"), lr=self.policy.lr())

    def _lockstep(self) -> bool:
        """Every rank must make the same forward/backward calls (ZeRO-3 gathers parameters in each one)."""
        return self.policy.is_deepspeed and self.world_size > 1

    def _micro_batch_loss(self, piece, normalizer, entropy_normalizer=None):
        """Forward, loss and backward of one micro-batch (its share of the global loss).

        Without lockstep the rows may run as length buckets (`_length_buckets`): each bucket's forward pads
        only to its own longest completion; the bucket losses add up to the micro-batch's loss (the
        normalizer is global). On the plain PyTorch engine each bucket's backward runs right after its
        forward, so only one bucket's activations are alive at a time (the gradients add up to those of
        the summed loss); under DeepSpeed one backward takes them all (ZeRO reduces the gradients in the
        boundary micro-batch's backward, once). The entropy mask's quantile is a statistic of one call
        (TRL's: one micro-batch, over all ranks), so with it the micro-batch runs as one call."""
        c = self.config
        lockstep = self._lockstep()
        one_call = lockstep or c.top_entropy_quantile < 1.0
        buckets = [None] if one_call else _length_buckets(piece, shared_prefix=c.share_prompt_prefill)
        backward_each = not self.policy.is_deepspeed
        # The Triton kernel from logits may write the gradient over them: nothing else reads them.
        inplace = not c.fused_linear
        options = self._loss_options(entropy_normalizer)  # validated once per micro-batch, not per bucket
        weight = lm_head_weight(self.policy.model) if c.fused_linear else None
        results, pending, all_args = [], [], []
        for rows in buckets:
            part = piece if rows is None else {k: v[rows] for k, v in piece.items()}
            prompt_ids, prompt_mask, completion_ids, completion_mask = _trim_padding(part)
            loss_args = dict(completion_ids=completion_ids, completion_mask=completion_mask,
                             advantages=part["advantages"],
                             old_logprobs=_trim(part.get("old_logprobs"), completion_ids),
                             ref_logprobs=_trim(part.get("ref_logprobs"), completion_ids),
                             sampling_logprobs=_trim(part.get("sampling_logprobs"), completion_ids),
                             importance_sampling_ratio=_trim(part.get("importance_sampling_ratio"),
                                                             completion_ids),
                             normalizer=normalizer, impl=c.loss_impl,
                             entropy_normalizer=entropy_normalizer, options=options)
            output = completion_forward(self.policy.model, prompt_ids, prompt_mask, completion_ids,
                                        completion_mask, share_prefix=c.share_prompt_prefill,
                                        lockstep=lockstep,
                                        output="hidden" if c.fused_linear else "logits")
            all_args.append(loss_args)
            if backward_each:
                loss, metrics = self._bucket_loss(output, loss_args, weight, inplace)
                self.policy.backward(loss)
                results.append((loss.detach(), metrics))
            else:
                pending.append(output)
            del output
        if pending:
            # Under ZeRO-3 the head is partitioned outside its module's forward: gather it for the loss AND
            # its backward, so the weight gradient reaches the partitioned parameter through ZeRO's hooks.
            with gathered([weight] if weight is not None else []):
                results = [self._bucket_loss(output, args, weight, inplace)
                           for output, args in zip(pending, all_args)]
                self.policy.backward(sum(r[0] for r in results))
        loss = sum(r[0].detach() for r in results)
        return loss, _token_weighted_metrics(results, all_args)

    @staticmethod
    def _bucket_loss(output, loss_args, weight, inplace):
        """seed_grpo_loss of one bucket: from its hidden states and the head's weight (fused linear), or from
        its logits."""
        if weight is not None:
            return seed_grpo_loss(hidden=output, weight=weight, **loss_args)
        return seed_grpo_loss(output, inplace=inplace, **loss_args)

    def _global_normalizer(self, completion_mask):
        """(The loss denominator, the entropy bonus's) of one optimizer step over all ranks (seedgrpo/loss.py
        owns the rule). The bonus is the mean entropy of the step's tokens; with the entropy mask its token
        set is a statistic of each call, so each call takes its own mean (TRL's) and the coefficient is shared
        out over the step's micro-batches instead (see _loss_options)."""
        c = self.config
        rows = completion_mask.shape[0] * self.world_size
        tokens = dist.all_reduce_sum((completion_mask != 0).sum().cpu().double().reshape(1)).item()
        normalizer = normalizer_for(c.loss_type, rows=rows, tokens=tokens,
                                    max_completion_length=c.max_completion_length)
        return normalizer, (max(tokens, 1.0) if c.top_entropy_quantile >= 1.0 else None)

    def _loss_options(self, entropy_normalizer) -> LossOptions:
        """The config's policy-loss options as one LossOptions (the TRL adapter builds its own the same way)."""
        entropy_coef = self.config.entropy_coef
        if entropy_normalizer is None:  # a mean per call: each micro-batch of the step takes its share
            entropy_coef = entropy_coef / self.gas
        return LossOptions.from_object(self.config, entropy_coef=entropy_coef)

    @torch.no_grad()
    def _score_all(self, model, data, plan) -> torch.Tensor:
        """Per-token log-probs [rows, T] of the rollout's completions under `model`, over the micro-batches
        of the update's `plan` (rows it skips stay 0; a padding call runs one row: ranks keep lockstep)."""
        ids = data["completion_ids"]
        out = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        for indices in (indices for calls in plan for indices in calls):
            rows = indices if indices.numel() else torch.zeros(1, dtype=torch.long)
            piece = {k: v[rows.to(v.device)] for k, v in data.items()}
            prompt_ids, prompt_mask, completion_ids, completion_mask = _trim_padding(piece)
            logp, _ = score_completions(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                        self.config.temperature)
            if indices.numel():
                out[indices.to(out.device), :completion_ids.shape[1]] = logp
        return out

    # -------------------------------------------------------------------------------------------- 5. log
    def _log(self, batch, scores, adv_stats, update_stats, problems, started) -> dict:
        c, G = self.config, self.config.num_generations
        rewards = scores["rewards"]
        grouped = rewards.view(-1, G)
        lengths = batch.completion_lengths.float().cpu()  # generated tokens, not the loss mask's
        semantic = adv_stats["semantic_entropy"].double()
        factor = adv_stats["advantage_scale"]
        local = torch.tensor([
            rewards.numel(), rewards.sum(), (rewards > 0.5).sum(),                         # 0-2
            grouped.shape[0], (~groups_with_signal(rewards, G)).sum(),                      # 3-4
            semantic.sum(), (scores["hashes"] < 0).sum(), lengths.sum(),                   # 5-7
            batch.is_truncated.sum(), factor.sum() if factor is not None else grouped.shape[0],  # 8-9
        ], dtype=torch.float64)
        total = dist.all_reduce_sum(local)
        semantic_max = dist.all_reduce_max(semantic.max().reshape(1)).item()
        elapsed = time.perf_counter() - started
        n, groups = total[0].item(), total[3].item()
        metrics = dict(
            loss=update_stats["loss"], reward_mean=total[1].item() / n, accuracy=total[2].item() / n,
            semantic_entropy_mean=total[5].item() / groups, semantic_entropy_max=semantic_max,
            advantage_scale_mean=total[9].item() / groups,
            clip_ratio_low=update_stats["clip_ratio_low"], clip_ratio_high=update_stats["clip_ratio_high"],
            kl=update_stats["kl"], entropy=update_stats["entropy"], completion_length=total[7].item() / n,
            tokens_per_s=total[7].item() / elapsed, step_time=elapsed,
            zero_variance_group_frac=total[4].item() / groups, no_answer_rate=total[6].item() / n,
            truncated_rate=total[8].item() / n, grad_norm=update_stats["grad_norm"], lr=update_stats["lr"],
            skipped_row_frac=update_stats["skipped_row_frac"],
            **(dict(dynamic_sampling_rounds=self.sampling_rounds) if c.dynamic_sampling else {}),
        )
        metrics.update(self.rewards.metrics(scores["rewards_per_function"]))  # rewards/<name>/mean|std (TRL)
        # which tier of the grader decided this step's verdicts (this rank's; README "Answers")
        metrics.update({f"grader/tier_{tier}": n for tier, n in tier_counts().items()})
        metrics.update(self._generation_stats)  # the wait for generation; server mode: staleness, drops
        for callback in self.callbacks:
            metrics.update(callback(self, self.step, metrics) or {})
        if self.step % c.logging_steps == 0 or self.step == c.max_steps:
            self.log.metrics(self.step, metrics)
        self.console.step(self.step, metrics)
        if self.step == c.max_steps or self._stop_requested:
            self.console.finish(self.step, stopped=self.step < c.max_steps)
        extra = self.rewards.take_logged_columns()  # reward functions' log_extra(column, values)
        if c.sample_log_steps and self.step % c.sample_log_steps == 0:
            rows = range(min(c.num_samples_logged * G, len(batch.texts)))
            self.log.samples(self.step, [
                dict(problem=problems[i // G].problem, answer=problems[i // G].answer,
                     completion=batch.texts[i], reward=float(rewards[i]),
                     cluster=int(scores["cluster_ids"][i]),
                     **{k: v[i] for k, v in extra.items() if i < len(v)}) for i in rows])
        return metrics

    # --------------------------------------------------------------------------------------------- misc
    def _progress(self, name: str, total: int):
        if not (self.config.progress == "detailed" and dist.is_main()):  # per-step bars: detailed only
            return contextlib.nullcontext(_NoBar())
        from .console import progress_bar

        return progress_bar(total=total, desc=f"step {self.step} {name}", leave=False, dynamic_ncols=True)

    @contextlib.contextmanager
    def _sigterm_saves_checkpoint(self):
        def request_stop(signum, frame):
            self._stop_requested = True

        try:
            previous = signal.signal(signal.SIGTERM, request_stop)
        except ValueError:  # not the main thread: no handler, no checkpoint on SIGTERM
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


class _NoBar:
    def update(self, n=1):
        pass


# ------------------------------------------------------------------------------------------- helpers
def _trim_padding(piece):
    """Drop the prompt columns that are padding in every row and the completion columns past the longest
    completion: positions follow the attention mask, so the result is the same, on less compute."""
    prompt_mask, completion_mask = piece["prompt_mask"], piece["completion_mask"]
    prompt_start = int((prompt_mask.sum(0) > 0).int().argmax()) if prompt_mask.any() else 0
    completion_len = max(1, int(completion_mask.sum(1).max()))
    return (piece["prompt_ids"][:, prompt_start:], prompt_mask[:, prompt_start:],
            piece["completion_ids"][:, :completion_len], completion_mask[:, :completion_len])


def _length_buckets(piece, *, shared_prefix: bool, max_buckets: int = 8, call_overhead: float = 0.04):
    """Row index tensors splitting a micro-batch by completion length (longest first) into 1, 2, 4 or 8
    equal-count buckets, whichever runs the fewest padded tokens through the model: a bucket pads to its
    own longest completion, but (with the shared prefix) runs the prefix of each distinct prompt it holds
    again, and each extra forward call is charged `call_overhead` of the whole. One bucket keeps the rows in
    order."""
    lengths = piece["completion_mask"].sum(1)
    rows = lengths.numel()
    prompt_tokens = int(piece["prompt_mask"].sum(1).max())
    order = torch.argsort(lengths, descending=True, stable=True)

    def padded_tokens(parts):
        total = 0
        for part in parts:
            # prompt rows through the model: the distinct prompts when the forward shares their prefix
            ids, mask = piece["prompt_ids"][part], piece["prompt_mask"][part]
            shared = shared_prefix and shareable_prefix_rows(ids, mask, always=True)
            prompts = shared[0].shape[0] if shared else len(part)
            total += len(part) * int(lengths[part].max()) + prompts * prompt_tokens
        return total

    best, best_cost = [None], padded_tokens([order])
    for count in (2, 4, 8):
        if count > min(max_buckets, rows):
            break
        parts = list(order.chunk(count))
        cost = padded_tokens(parts) * (1 + call_overhead * (count - 1))
        if cost < best_cost:
            best, best_cost = parts, cost
    return best


def _token_weighted_metrics(results, loss_args) -> dict:
    """The loss metrics of the buckets together: token-weighted means (each bucket's are its token means)."""
    if len(results) == 1:
        return results[0][1]
    tokens = [float(args["completion_mask"].sum()) for args in loss_args]
    total = max(sum(tokens), 1.0)
    merged = {}
    for key in results[0][1]:
        values = [float(metrics[key]) * n for (_, metrics), n in zip(results, tokens) if n > 0]
        merged[key] = torch.tensor(sum(values) / total)
    return merged


def _trim(per_token, completion_ids):
    return None if per_token is None else per_token[:, :completion_ids.shape[1]]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_training_problems(config: TrainConfig):
    if config.data.path == "toy":
        from ..tasks import toy

        problems = toy.arithmetic_problems(config.toy.num_problems, seed=config.seed, ops=config.toy.ops,
                                           max_digits=config.toy.max_digits)
        return problems[: config.data.limit] if config.data.limit else problems
    problems = load_problems(config.data.path, problem_field=config.data.problem_field,
                             answer_field=config.data.answer_field, limit=config.data.limit,
                             split=config.data.split, name=config.data.name)
    usable, skipped = training_problems(problems)
    if skipped:
        dist.print0(skipped)
    return usable


def _embedding_source(config: TrainConfig) -> str:
    if config.embedding_source != "auto":
        return config.embedding_source
    return "policy" if config.uncertainty in EMBEDDING_UNCERTAINTIES else "none"


def _check_registered_names(config: TrainConfig) -> None:
    import seedgrpo.uncertainty  # noqa: F401  (registers se_*)

    try:
        import seedgrpo.gcpo  # noqa: F401  (registers gcpo_* and kle)
    except ImportError:
        pass
    if config.uncertainty != "none" and config.uncertainty not in list_uncertainties():
        raise ValueError(f"uncertainty={config.uncertainty!r} is not registered; choose one of "
                         f"{['none'] + list_uncertainties()} or register it with "
                         "seedgrpo.register_uncertainty")
    if config.advantage not in list_advantages():
        raise ValueError(f"advantage={config.advantage!r} is not registered; choose one of "
                         f"{list_advantages()}")
    if config.uncertainty in EMBEDDING_UNCERTAINTIES and config.embedding_source == "none":
        raise ValueError(f"uncertainty={config.uncertainty!r} needs embeddings; set embedding_source to "
                         "policy or minilm (or auto)")
