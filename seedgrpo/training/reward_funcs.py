"""Reward functions called the way TRL's GRPOTrainer calls them: a list, weights, None = "does not apply".

    from seedgrpo.training.reward_funcs import RewardFunctions
    rewards = RewardFunctions(["math", "my_pkg.rewards:format_reward"], weights=[1.0, 0.2])
    total, per_function = rewards(prompts=..., completions=..., completion_ids=..., problems=..., state=...)

Each function is called as TRL 1.16 calls a custom reward (`GRPOTrainer._calculate_rewards`):

    fn(prompts=[...], completions=[...], completion_ids=[[...], ...], trainer_state=TrainerState,
       log_extra=fn(column, values), log_metric=fn(name, value), **columns)   # -> list[float | None]

with one entry per completion (G consecutive rows per prompt), `columns` every column of the problem's
dataset record (the toy task's: problem, answer, id and its metadata), sync or `async def` (async ones run
together under asyncio.gather). `None` becomes NaN: that function is left out of that row's weighted sum
(nansum), and its `rewards/<name>/mean|std` metrics are over the rows it scored. A row no function scored
(all None) takes no part in its group's baseline, as in TRL: its reward is set to the mean of the group's
scored rows, which leaves their advantages as TRL's nanmean baseline gives them, and its own at zero (up
to float rounding when the scored rows differ).

Names: a Python callable, `"math"` (the default: `seedgrpo.rewards.math_reward` against each problem's
reference answer), or a dotted path `package.module:function` / `package.module.function`. The older
`reward_fn(completions, problems)` form (config `reward_fn`, `Trainer(reward_fn=)`) is one entry of the
list, called as before.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

MATH = "math"
# Keyword names the trainer passes itself; a dataset column with one of these names is not passed (TRL
# drops "prompt", "completion" and "completion_ids" the same way).
_RESERVED = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
             "prompt", "completion")


@dataclass
class RewardFunction:
    name: str                  # logged as rewards/<name>/mean, as TRL names it
    fn: Callable
    trl_style: bool = True     # False: our older fn(completions, problems) form


def callable_name(fn: Callable) -> str:
    """TRL's display name: a function's __name__ (through functools.partial), else its class name."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", type(fn).__name__)


def is_async(fn: Callable) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (callable(fn) and inspect.iscoroutinefunction(fn.__call__))


def import_dotted(path: str, key: str = "reward_funcs") -> Callable:
    """`package.module:function` or `package.module.function` (the last dot splits module and name)."""
    module_name, colon, attr = path.partition(":")
    if not colon:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{key}: {path!r} is not a dotted path; give 'package.module:function' or "
                         "'package.module.function' (or 'math')")
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"{key}: {path!r} cannot be imported ({error}); check that the module is on "
                         "PYTHONPATH and defines that function") from None
    if not callable(target):
        raise ValueError(f"{key}: {path!r} is a {type(target).__name__}, not a function")
    return target


def _math_reward(completions, problems):
    from ..grading.rewards import math_reward

    return math_reward(completions, [p.answer for p in problems])


def resolve(spec, key: str = "reward_funcs") -> RewardFunction:
    """One entry of `reward_funcs`: a callable, "math" or a dotted path."""
    if callable(spec):
        return RewardFunction(callable_name(spec), spec)
    if spec == MATH:
        return RewardFunction("math", _math_reward, trl_style=False)
    if isinstance(spec, str):
        fn = import_dotted(spec, key)
        return RewardFunction(callable_name(fn), fn)
    raise ValueError(f"{key}: {spec!r} is a {type(spec).__name__}; give a function, 'math' or "
                     "'package.module:function'")


def problem_columns(problem) -> dict:
    """The dataset columns of one problem as TRL passes them: the file's record as read (every column),
    with `problem` and `answer` (the parsed reference) added when the record has no such column."""
    columns = dict(getattr(problem, "columns", None) or {})
    if not columns:
        columns.update(problem.meta)
        columns["id"] = problem.id
    columns.setdefault("problem", problem.problem)
    columns.setdefault("answer", problem.answer)
    return columns


class RewardFunctions:
    """The configured reward functions and weights; `__call__` scores one rollout (this rank's rows)."""

    def __init__(self, specs: Sequence, weights: Sequence[float] | None = None, *, legacy: Callable | None = None):
        self.functions = [resolve(s) for s in specs]
        if legacy is not None:
            self.functions.insert(0, RewardFunction(callable_name(legacy), legacy, trl_style=False))
        if not self.functions:
            raise ValueError("reward_funcs is empty; give at least one reward function (or 'math')")
        names = [f.name for f in self.functions]
        self.names = [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]
        if weights is None:
            weights = [1.0] * len(self.functions)
        if len(weights) != len(self.functions):
            raise ValueError(f"reward_weights has {len(weights)} entries but there are {len(self.functions)} "
                             f"reward functions ({', '.join(self.names)}); give one weight per function")
        self.weights = torch.tensor([float(w) for w in weights], dtype=torch.float64)
        self.logged_metrics: dict[str, list[float]] = {}   # from log_metric, read (and cleared) by the trainer
        self.logged_columns: dict[str, list] = {}          # from log_extra

    def log_metric(self, name: str, value: float) -> None:
        self.logged_metrics.setdefault(name, []).append(float(value))

    def log_extra(self, column: str, values: list) -> None:
        self.logged_columns.setdefault(column, []).extend(values)

    @property
    def takes_trl_arguments(self) -> bool:
        """Whether any function is called TRL's way (else prompts, token ids and the state are not needed)."""
        return any(f.trl_style for f in self.functions)

    def __call__(self, *, completions: list[str], problems: list, group_size: int, prompts: list[str] = None,
                 completion_ids: list[list[int]] = None, trainer_state=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(rewards [B] float32, per-function rewards [B, F] float32 with NaN where a function gave None)."""
        rows = len(completions)
        columns = [problem_columns(p) for p in problems]
        keys = sorted({k for c in columns for k in c} - set(_RESERVED))
        kwargs = {k: [c.get(k) for c in columns] for k in keys}
        kwargs.update(trainer_state=trainer_state, log_extra=self.log_extra, log_metric=self.log_metric)
        call = dict(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        outputs: list[Any] = [None] * len(self.functions)
        pending = []
        for i, entry in enumerate(self.functions):
            if not entry.trl_style:
                outputs[i] = entry.fn(completions, problems)
            elif is_async(entry.fn):
                pending.append(i)
            else:
                outputs[i] = entry.fn(**call)
        if pending:
            for i, output in zip(pending, _run_async([self.functions[i].fn(**call) for i in pending])):
                outputs[i] = output
        per_function = torch.empty(rows, len(self.functions), dtype=torch.float64)
        for i, output in enumerate(outputs):
            per_function[:, i] = self._column(i, output, rows)
        return combine(per_function, self.weights, group_size), per_function.float()

    def metrics(self, per_function: torch.Tensor) -> dict:
        """`rewards/<name>/mean` and `/std` over every rank's rows the function scored (TRL's nanmean and
        unbiased nanstd), then the `log_metric` values of this rank since the last call (their mean)."""
        from .. import dist

        values = per_function.double()
        scored = ~torch.isnan(values)
        zeroed = torch.where(scored, values, torch.zeros_like(values))
        count, total, squares = dist.all_reduce_sum(torch.stack([scored.sum(0).double(), zeroed.sum(0),
                                                                 (zeroed * zeroed).sum(0)]))
        out = {}
        for i, name in enumerate(self.names):
            n = count[i].item()
            mean = total[i].item() / n if n else math.nan
            var = (squares[i].item() - n * mean * mean) / (n - 1) if n > 1 else math.nan
            out[f"rewards/{name}/mean"], out[f"rewards/{name}/std"] = mean, math.sqrt(max(var, 0.0))
        out.update({name: sum(v) / len(v) for name, v in self.logged_metrics.items()})
        self.logged_metrics.clear()
        return out

    def take_logged_columns(self) -> dict[str, list]:
        """The `log_extra` columns since the last call (one value per row), for samples.jsonl."""
        columns, self.logged_columns = self.logged_columns, {}
        return columns

    def _column(self, i: int, output, rows: int) -> torch.Tensor:
        name = self.names[i]
        if output is None or isinstance(output, (str, bytes)) or not hasattr(output, "__len__"):
            raise ValueError(f"reward function {name!r} returned {type(output).__name__}; it must return a "
                             f"list with one float (or None) per completion ({rows})")
        if len(output) != rows:
            raise ValueError(f"reward function {name!r} returned {len(output)} rewards for {rows} completions; "
                             "return exactly one reward per completion")
        try:
            return torch.tensor([math.nan if r is None else float(r) for r in output], dtype=torch.float64)
        except (TypeError, ValueError):
            bad = next(r for r in output if r is not None and not _is_number(r))
            raise ValueError(f"reward function {name!r} returned {bad!r}; each reward must be a number or "
                             "None") from None


def combine(per_function: torch.Tensor, weights: torch.Tensor, group_size: int) -> torch.Tensor:
    """The weighted nansum of each row's rewards; a row no function scored gets its group's mean of the
    scored rows (0 when none is scored), so it moves neither the baseline nor, at advantage 0, the policy."""
    rewards = (per_function * weights[None, :]).nansum(dim=1)
    unscored = torch.isnan(per_function).all(dim=1)
    if unscored.any():
        grouped, missing = rewards.view(-1, group_size), unscored.view(-1, group_size)
        scored = (~missing).sum(1, keepdim=True)
        means = (grouped * ~missing).sum(1, keepdim=True) / scored.clamp(min=1)
        rewards = torch.where(missing, means.expand_as(grouped), grouped).reshape(-1)
    return rewards.float()


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _run_async(coroutines: list) -> list:
    async def gather():
        return await asyncio.gather(*coroutines)

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no loop in this thread
        return asyncio.run(gather())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # inside a running loop (a notebook): own thread
        return pool.submit(asyncio.run, gather()).result()


def from_config(config, *, reward_funcs: Sequence | None = None, reward_fn: Callable | None = None
                ) -> RewardFunctions:
    """The trainer's reward functions: `Trainer(reward_funcs=[...])` (callables or names), else the older
    `Trainer(reward_fn=fn)`, else the config's `reward_funcs`, else its `reward_fn` ("math" by default)."""
    if reward_funcs is not None and reward_fn is not None:
        raise ValueError("Trainer(reward_funcs=..., reward_fn=...): pass one; reward_fn(completions, problems) "
                         "is the older form of a single reward function")
    if reward_funcs is not None and not isinstance(reward_funcs, (list, tuple)):
        reward_funcs = [reward_funcs]  # TRL accepts a single function too
    if reward_fn is not None:
        return RewardFunctions([], config.reward_weights, legacy=reward_fn)
    if reward_funcs:
        return RewardFunctions(reward_funcs, config.reward_weights)
    if config.reward_funcs:
        return RewardFunctions(config.reward_funcs, config.reward_weights)
    if config.reward_fn == MATH:
        return RewardFunctions([MATH], config.reward_weights)
    return RewardFunctions([], config.reward_weights, legacy=import_dotted(config.reward_fn, "reward_fn"))


def trl_arguments(batch, prompts: list[str], group_size: int, max_completion_length: int, state) -> dict:
    """The per-row inputs TRL passes besides the completions: each row's prompt (G rows per prompt), its
    sampled token ids up to and including EOS (all of them when truncated), and the trainer state."""
    lengths = torch.where(batch.is_truncated.cpu(), min(batch.completion_ids.shape[1], max_completion_length),
                          batch.completion_mask.sum(1).cpu()).tolist()
    ids = batch.completion_ids.tolist()
    return dict(prompts=[p for p in prompts for _ in range(group_size)],
                completion_ids=[row[:n] for row, n in zip(ids, lengths)], trainer_state=state)


def trainer_state(step: int, max_steps: int, optimizer_steps_per_step: int, epoch: float):
    """A transformers TrainerState as TRL passes it (`trainer_state=`): `global_step` counts the optimizer
    steps done before this rollout, `max_steps` the run's, so `global_step / max_steps` is the progress."""
    from transformers import TrainerState

    return TrainerState(global_step=(step - 1) * optimizer_steps_per_step, epoch=epoch,
                        max_steps=max_steps * optimizer_steps_per_step)
