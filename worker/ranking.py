"""Turning candidate scores into a top-K recommendation: exclusions, ties, cold start."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    predicted_rating: float


def top_k(
    item_ids: Sequence[str], scores: np.ndarray, predicted: np.ndarray, exclude: Collection[str], k: int
) -> list[Ranked]:
    """The ``k`` best-scored items not in ``exclude``, best first; ties broken by item id (stable output)."""
    if len(item_ids) != len(scores) or len(scores) != len(predicted):
        raise ValueError("item_ids, scores and predicted must have the same length")
    excluded = set(exclude)
    keep = [i for i, item in enumerate(item_ids) if item not in excluded]
    if not keep:
        return []
    keep_arr = np.asarray(keep)
    s = np.asarray(scores, dtype=np.float64)[keep_arr]
    order = sorted(range(len(keep_arr)), key=lambda j: (-s[j], item_ids[keep_arr[j]]))[:k]
    return [Ranked(item_ids[keep_arr[j]], float(s[j]), float(predicted[keep_arr[j]])) for j in order]


def popular_fallback(popular: Sequence[str], exclude: Collection[str], k: int) -> list[str]:
    """For a user with no history: the most popular items they have not seen, in popularity order."""
    excluded = set(exclude)
    return [item for item in popular if item not in excluded][:k]
