"""The candidate items every worker ranks: item embeddings of the serving model version, cached in memory.

Items arrive on a partitioned topic, so each worker embeds only its share; PostgreSQL is the shared catalog.
Each worker keeps a matrix of every item embedded in the serving bundle's embedding space, refreshed
incrementally (rows changed since the last refresh), and fully when the embedding space changes (a bundle
whose encoder is unchanged, such as a retrained one, keeps the space and so the whole cache).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np

from worker.adapters.prometheus import CATALOG_ITEMS


class CandidateCache:
    """Item ids, their model-vocabulary indices and embeddings, in one row order."""

    def __init__(self, dim: int):
        self.dim = dim
        self.version: str | None = None
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.embeddings = np.zeros((0, dim), dtype=np.float32)
        self.indices = np.zeros(0, dtype=np.int64)
        self.seen_until: datetime | None = None
        self.refreshed_at = 0.0

    def reset(self, version: str) -> None:
        self.__init__(self.dim)  # type: ignore[misc]
        self.version = version

    def reindex(self, index_of) -> None:
        """New model-vocabulary indices for the same embeddings (a bundle in the same embedding space)."""
        self.indices = np.array([index_of(i) for i in self.ids], dtype=np.int64)

    def upsert(self, rows: Iterable[tuple[str, list[float] | np.ndarray, datetime | None]], index_of) -> int:
        """Add or replace items; ``index_of(item_id)`` gives the model's id index (0 for items it never saw)."""
        new_ids: list[str] = []
        new_vectors: list[np.ndarray] = []
        changed = 0
        for item_id, vector, updated in rows:
            vec = np.asarray(vector, dtype=np.float32)
            if vec.shape != (self.dim,):
                continue
            if updated is not None:
                self.seen_until = updated if self.seen_until is None else max(self.seen_until, updated)
            if item_id in self.row:
                self.embeddings[self.row[item_id]] = vec
            else:
                self.row[item_id] = len(self.ids) + len(new_ids)
                new_ids.append(item_id)
                new_vectors.append(vec)
            changed += 1
        if new_ids:
            self.ids.extend(new_ids)
            self.embeddings = np.vstack([self.embeddings, np.stack(new_vectors)])
            self.indices = np.concatenate([self.indices, np.array([index_of(i) for i in new_ids], dtype=np.int64)])
        CATALOG_ITEMS.set(len(self.ids))
        return changed

    def since(self) -> datetime | None:
        """Refresh from slightly before the newest row seen: concurrent commits may land out of order."""
        return None if self.seen_until is None else self.seen_until - timedelta(seconds=5)

    def due(self, every_s: float) -> bool:
        return time.monotonic() - self.refreshed_at >= every_s

    def mark_refreshed(self) -> None:
        self.refreshed_at = time.monotonic()

    def profile(self, history: Iterable[str]) -> tuple[np.ndarray, int]:
        """Mean embedding of the items in ``history`` that are cached (the model's user profile) and their count."""
        rows = [self.row[i] for i in history if i in self.row]
        if not rows:
            return np.zeros(self.dim, dtype=np.float32), 0
        return self.embeddings[rows].mean(axis=0), len(rows)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.row
