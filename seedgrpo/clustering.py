"""Semantic clusters of free-text answers: agglomerative clustering of embeddings, group by group.

Math answers cluster by hash (``seedgrpo.answers.cluster_ids``); open-ended answers ("Paris", "It's Paris.")
cannot. Here the rows of each group are merged bottom-up while the linkage similarity of the two most similar
clusters is at least ``threshold`` (cosine similarity of the embeddings):

- ``complete`` (default): the similarity of two clusters is their least similar pair, so every two answers in
  a cluster are at least ``threshold`` alike: no chaining from "Sydney" to "Melbourne" to "Perth".
- ``average``: the mean similarity over the pairs across the two clusters (UPGMA).
- ``single``: the most similar pair (chains; only for near-duplicate detection).

The result is deterministic and independent of the order of the rows (up to the names of the clusters):
rows are first put in a canonical order (identical embeddings collapse to one point, lexicographic order of
the float64 unit vectors), merges are made in that order (exact ties go to the pair first in it), and the
labels are then numbered by first appearance in the caller's row order. Identical embeddings always share a
cluster; an all-zero embedding (no answer) is a cluster of its own, like a row without an answer in
``answers.cluster_ids``.

The default threshold 0.87 was read off all-MiniLM-L6-v2 embeddings of the answer spans of the QA task
(``qa.answer_span``; measured 2026-11-23, ``python -m seedgrpo.tasks.qa``): the most similar two
different answers were "sydney"/"melbourne" at 0.852, the least similar aliases "da vinci"/"leonardo" at
0.723.
No threshold separates both: 0.87 merges no different answers there and keeps 5 of the 10 alias pairs apart.

    spans = [qa.answer_span(t, question) for t in completions]
    ids = semantic_cluster_ids(minilm_embeddings(spans), group_size=8)     # LongTensor[B], dense per group
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["semantic_cluster_ids", "LINKAGES", "DEFAULT_THRESHOLD"]

LINKAGES = ("complete", "average", "single")
DEFAULT_THRESHOLD = 0.87


def _canonical_points(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows in a canonical order (byte order of their float64 values) and, per row, its point index.

    The order depends only on the values, never on the rows' positions: that makes merges, and exact ties
    among them, independent of the caller's row order. (np.unique(axis=0) does the same but builds a
    structured dtype with D fields: ~15 ms per group at D = 4096.)
    """
    keys = [row.tobytes() for row in rows + 0.0]  # + 0.0 turns -0.0 into 0.0: equal values, equal bytes
    distinct = sorted(set(keys))
    index = {key: i for i, key in enumerate(distinct)}
    inverse = np.array([index[key] for key in keys], dtype=np.int64)
    points = np.stack([np.frombuffer(key, dtype=np.float64) for key in distinct]) if distinct \
        else np.zeros((0, rows.shape[1]))
    return points, inverse


def _cluster_group(unit: np.ndarray, threshold: float, linkage: str) -> np.ndarray:
    """Dense labels (by first appearance) of one group's rows; ``unit`` [G, D] float64, unit or zero rows."""
    num_rows = unit.shape[0]
    labels = np.full(num_rows, -1, dtype=np.int64)
    has_direction = np.any(unit != 0.0, axis=1)
    points, inverse = _canonical_points(unit[has_direction])
    sizes = np.bincount(inverse, minlength=len(points)).astype(np.float64)
    similarity = np.clip(points @ points.T, -1.0, 1.0)
    np.fill_diagonal(similarity, -np.inf)
    owner = np.arange(len(points))  # point -> representative (the smaller canonical index of a merge)
    alive = np.ones(len(points), dtype=bool)
    while alive.sum() > 1:
        flat = int(np.argmax(similarity))  # first maximum in row-major order: a tie goes to the lowest pair
        i, j = divmod(flat, len(points))
        if similarity[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)
        if linkage == "complete":
            merged = np.minimum(similarity[i], similarity[j])
        elif linkage == "single":
            merged = np.maximum(similarity[i], similarity[j])
        else:  # average over the member pairs across clusters: Lance-Williams with the cluster sizes
            merged = (sizes[i] * similarity[i] + sizes[j] * similarity[j]) / (sizes[i] + sizes[j])
        merged[~alive] = -np.inf
        merged[i] = merged[j] = -np.inf
        similarity[i, :] = merged
        similarity[:, i] = merged
        similarity[j, :] = -np.inf
        similarity[:, j] = -np.inf
        sizes[i] += sizes[j]
        alive[j] = False
        owner[owner == j] = i
    labels[has_direction] = owner[inverse]
    # Rows without a direction are singletons; then number the clusters by first appearance in row order.
    next_free = len(points)
    for row in np.flatnonzero(~has_direction):
        labels[row] = next_free
        next_free += 1
    _, first, dense = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[dense.reshape(-1)]


def semantic_cluster_ids(embeddings: torch.Tensor, group_size: int, *, threshold: float = DEFAULT_THRESHOLD,
                         linkage: str = "complete") -> torch.Tensor:
    """Cluster id of every row, dense within each group (0, 1, ... by first appearance): LongTensor [B].

    Args:
        embeddings: [B, D] float response embeddings (any norm; cosine similarity is used).
        group_size: G; rows g*G .. g*G+G-1 form group g and are clustered together.
        threshold: merge while the linkage cosine similarity is >= threshold, in [-1, 1].
        linkage: ``"complete"``, ``"average"`` or ``"single"`` (module docstring).
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or embeddings.shape[1] < 1 \
            or not embeddings.dtype.is_floating_point:
        raise ValueError(f"embeddings must be a [B, D] float tensor, got {type(embeddings).__name__} of "
                         f"shape {tuple(getattr(embeddings, 'shape', ()))} and dtype "
                         f"{getattr(embeddings, 'dtype', None)}")
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int (num_generations), got {group_size!r}")
    if embeddings.shape[0] % group_size:
        raise ValueError(f"group_size={group_size} does not divide the {embeddings.shape[0]} rows of "
                         "embeddings: pass all group_size answers of every prompt")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r} (default "
                         f"{DEFAULT_THRESHOLD})")
    if linkage not in LINKAGES:
        raise ValueError(f"linkage={linkage!r} is not one of {LINKAGES}")
    x = embeddings.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("embeddings has NaN or inf; embed the answers again")
    norms = x.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, x / norms.clamp(min=torch.finfo(torch.float64).tiny), 0.0).numpy()
    groups = unit.reshape(-1, group_size, unit.shape[1])
    labels = np.concatenate([_cluster_group(g, float(threshold), linkage) for g in groups]) if len(groups) \
        else np.zeros(0, dtype=np.int64)
    return torch.from_numpy(labels.astype(np.int64)).to(embeddings.device)
