"""Turning candidate scores into a top-K recommendation: exclusions, ties, cold start (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float


def top_k(
    item_ids: Sequence[str],
    scores: np.ndarray,
    exclude: Collection[str],
    k: int,
    row_of: Mapping[str, int] | None = None,
) -> list[Ranked]:
    """The ``k`` best-scored items not in ``exclude``, best first; ties broken by item id (stable output).

    Linear in the number of candidates (a partition, not a sort); ``row_of`` (item id → position) saves
    building one per call when the caller has it.
    """
    if len(item_ids) != len(scores):
        raise ValueError("item_ids and scores must have the same length")
    if k <= 0 or len(item_ids) == 0:
        return []
    s = np.array(scores, dtype=np.float64)
    rows = row_of if row_of is not None else {item: i for i, item in enumerate(item_ids)}
    excluded = [rows[item] for item in exclude if item in rows]
    s[excluded] = -np.inf
    available = len(s) - len(set(excluded))
    if available <= 0:
        return []
    take = min(k, available)
    kth = np.partition(s, len(s) - take)[len(s) - take]
    candidates = np.flatnonzero(s >= kth) if np.isfinite(kth) else np.flatnonzero(np.isfinite(s))
    order = sorted(candidates.tolist(), key=lambda j: (-s[j], item_ids[j]))[:take]
    return [Ranked(item_ids[j], float(s[j])) for j in order]


def popular_fallback(popular: Sequence[str], exclude: Collection[str], k: int) -> list[str]:
    """For a user with no history: the most popular items they have not seen, in popularity order."""
    excluded = set(exclude)
    return [item for item in popular if item not in excluded][:k]
