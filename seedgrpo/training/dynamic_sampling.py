"""DAPO's dynamic sampling: draw more prompts until the batch holds enough groups whose rewards differ.

A group whose G rewards are all equal has advantages of exactly 0 and teaches nothing. With
`dynamic_sampling: true` the trainer keeps rolling out fresh prompts (at most `max_dynamic_sampling_rounds`
rollouts per step, the first included) until every rank holds `prompts_per_step / ranks` groups with a
signal, then trains on exactly that many groups per rank, as verl's `algorithm.filter_groups` does (its
`max_num_gen_batches`). Unlike verl, reaching the cap is not an error: the batch is filled up with groups
without signal (which `skip_zero_advantage` then leaves out of the update), and `dynamic_sampling_rounds`
in the metrics says how many rollouts the step took.

    (problems, batch, scores), rounds = resample_for_signal((problems, batch, scores), draw, group_size=G,
                                                            max_rounds=4, pad_id=pad_id)
    # draw(round_index) -> (problems, batch, scores) of a fresh rollout on this rank
"""
from __future__ import annotations

import dataclasses

import torch

from .. import dist
from ..rollout.base import RolloutBatch


def resample_for_signal(first, draw, *, group_size: int, max_rounds: int, pad_id: int):
    """((problems, batch, scores), rollouts made): `first` and as many `draw(round_index)` rollouts as it
    takes for every rank to hold len(problems) groups with a signal (at most `max_rounds` rollouts in all),
    reduced to that many groups, signal first. Every rank makes the same number of rollouts (a collective:
    generation under ZeRO-3 gathers parameters), decided with one all-reduce per round."""
    rollouts = [first]
    wanted = len(first[0])

    def short() -> bool:
        return sum(int(groups_with_signal(s["rewards"], group_size).sum()) for _, _, s in rollouts) < wanted

    while len(rollouts) < max_rounds and dist.any_rank(short()):
        rollouts.append(draw(len(rollouts)))
    if len(rollouts) == 1:
        return first, 1
    scores = [s for _, _, s in rollouts]
    groups = select_groups(groups_with_signal(torch.cat([s["rewards"] for s in scores]), group_size), wanted)
    rows = group_rows(groups, group_size)
    drawn = [p for problems, _, _ in rollouts for p in problems]
    batch = take_rows(concat_rollouts([b for _, b, _ in rollouts], pad_id), rows)
    return ([drawn[g] for g in groups.tolist()], batch, concat_and_take_scores(scores, rows)), len(rollouts)


def groups_with_signal(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[groups] bool: the groups whose rewards are not all equal (the rest have advantage 0 everywhere)."""
    grouped = rewards.view(-1, group_size)
    return grouped.max(1).values != grouped.min(1).values


def select_groups(has_signal: torch.Tensor, wanted: int) -> torch.Tensor:
    """`wanted` group indices: those with a signal in the order they were drawn, then (when there are too
    few) groups without one, in order."""
    if has_signal.numel() < wanted:
        raise ValueError(f"select_groups: {has_signal.numel()} groups drawn, {wanted} wanted")
    order = torch.cat([torch.nonzero(has_signal).flatten(), torch.nonzero(~has_signal).flatten()])
    return order[:wanted]


def group_rows(groups: torch.Tensor, group_size: int) -> torch.Tensor:
    """The row indices of whole groups (rows g*G .. g*G+G-1), in the order of `groups`."""
    return (groups[:, None] * group_size + torch.arange(group_size)).flatten()


# Padding side of each tensor field of a RolloutBatch: prompts are left-padded, completions right-padded.
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
_RIGHT_PADDED = ("completion_ids", "completion_mask", "logprobs", "hidden")


def concat_rollouts(batches: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """The rows of several rollouts in one batch; prompts and completions padded to the widest (masks 0)."""
    fields = {}
    for field in dataclasses.fields(RolloutBatch):
        values = [getattr(b, field.name) for b in batches]
        if field.name == "texts":
            fields["texts"] = [text for texts in values for text in texts]
        elif any(v is None for v in values):
            fields[field.name] = None
        elif field.name in _LEFT_PADDED + _RIGHT_PADDED:
            width = max(v.shape[1] for v in values)
            fill = pad_id if field.name.endswith("_ids") else 0
            padded = []
            for v in values:
                extra = torch.full((v.shape[0], width - v.shape[1], *v.shape[2:]), fill, dtype=v.dtype,
                                   device=v.device)
                padded.append(torch.cat([extra, v] if field.name in _LEFT_PADDED else [v, extra], 1))
            fields[field.name] = torch.cat(padded)
        else:
            fields[field.name] = torch.cat(values)
    return RolloutBatch(**fields)


def take_rows(batch: RolloutBatch, rows: torch.Tensor) -> RolloutBatch:
    """The given rows of a rollout (tensors indexed, the texts picked)."""
    fields = {}
    for field in dataclasses.fields(RolloutBatch):
        value = getattr(batch, field.name)
        if value is None:
            fields[field.name] = None
        elif isinstance(value, list):
            fields[field.name] = [value[i] for i in rows.tolist()]
        else:
            fields[field.name] = value[rows.to(value.device)]
    return RolloutBatch(**fields)


def concat_and_take_scores(scores: list[dict], rows: torch.Tensor) -> dict:
    """The trainer's per-row scores (tensors or lists, or None) of several rollouts, restricted to `rows`."""
    out = {}
    for key in scores[0]:
        values = [s[key] for s in scores]
        if any(v is None for v in values):
            out[key] = None
        elif isinstance(values[0], list):
            joined = [x for v in values for x in v]
            out[key] = [joined[i] for i in rows.tolist()]
        else:
            out[key] = torch.cat(values)[rows]
    return out
