"""Deterministic train/dev/test splits.

The interaction split is temporal per user: each user's latest ratings are the test set and the ones just
before them the dev set, so a model never sees a user's future when it is scored on their past.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_split(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into train/dev/test index arrays by ``fractions``."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_dev = int(round(fractions[1] * n))
    return np.sort(order[:n_train]), np.sort(order[n_train : n_train + n_dev]), np.sort(order[n_train + n_dev :])


def temporal_split(
    interactions: pd.DataFrame, dev_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split each user's interactions by time: oldest → train, then dev, newest → test.

    Each user with at least three interactions gets at least one dev and one test row; ties in time are
    broken by item id so that the split is reproducible. Users with fewer rows stay in train only.
    """
    frame = interactions.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)
    position = frame.groupby("user_id").cumcount().to_numpy()
    count = frame.groupby("user_id")["item_id"].transform("size").to_numpy()
    eligible = count >= 3
    n_test = np.where(eligible, np.maximum(1, np.round(count * test_fraction)), 0).astype(int)
    n_dev = np.where(eligible, np.maximum(1, np.round(count * dev_fraction)), 0).astype(int)
    from_end = count - position  # 1 for the newest row
    test_mask = from_end <= n_test
    dev_mask = ~test_mask & (from_end <= n_test + n_dev)
    train_mask = ~(test_mask | dev_mask)
    return (
        frame[train_mask].reset_index(drop=True),
        frame[dev_mask].reset_index(drop=True),
        frame[test_mask].reset_index(drop=True),
    )
