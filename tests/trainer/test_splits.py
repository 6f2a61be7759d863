"""Splits are deterministic partitions, and the interaction split never lets the future leak into training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.data.splits import random_split, temporal_split


def test_random_split_is_a_seeded_partition() -> None:
    a = random_split(1000, (0.8, 0.1, 0.1), seed=3)
    b = random_split(1000, (0.8, 0.1, 0.1), seed=3)
    c = random_split(1000, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert [len(x) for x in a] == [800, 100, 100]
    with pytest.raises(ValueError):
        random_split(10, (0.5, 0.5, 0.5), seed=0)


def _interactions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(30):
        n = int(rng.integers(2, 60))
        for ts in rng.permutation(n):
            rows.append((f"u{user}", f"i{rng.integers(0, 200)}", float(rng.integers(1, 6)), float(ts * 100 + user)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_temporal_split_has_no_leakage_per_user() -> None:
    frame = _interactions()
    train, dev, test = temporal_split(frame)
    assert len(train) + len(dev) + len(test) == len(frame)
    for user, rows in frame.groupby("user_id"):
        tr, dv, te = (part[part["user_id"] == user]["timestamp"] for part in (train, dev, test))
        if len(rows) >= 3:
            assert len(dv) >= 1 and len(te) >= 1
            assert tr.max() <= dv.min() and dv.max() <= te.min()
        else:
            assert len(dv) == 0 and len(te) == 0


def test_temporal_split_sizes_follow_fractions() -> None:
    frame = pd.DataFrame(
        {"user_id": ["u"] * 50, "item_id": [f"i{k}" for k in range(50)], "rating": 3.0, "timestamp": np.arange(50.0)}
    )
    train, dev, test = temporal_split(frame, dev_fraction=0.1, test_fraction=0.2)
    assert (len(train), len(dev), len(test)) == (35, 5, 10)
    assert test["timestamp"].min() == 40.0 and dev["timestamp"].tolist() == [35.0, 36.0, 37.0, 38.0, 39.0]
