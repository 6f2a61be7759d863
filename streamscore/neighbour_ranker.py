"""The recommender that serves: item-to-item neighbour scores from behaviour, a next-item term, and a text
bridge for items nobody has interacted with yet. Numpy only, so the worker, the offline evaluation and the
benchmarks run the very same code.

For a user with recent liked items ``P`` (at most ``window`` of them) and recent items ``R`` (most recent
first, any action), the score of item ``j`` is

    score(j) = Σ_{i∈P} B[i, j]                      collaborative: EASE weights, top-k per row
             + β · Σ_t ρ^t · W[R_t, j]              next item: ridge regression from the last items to the next
             + γ · (Σ_{i∈P} G[i]) · e_j   if j has no collaborative column (a text-only item)

``G = B·E·(EᵀE + μI)⁻¹`` is a ridge map from the fine-tuned text embeddings ``E`` into the item–item space:
``G·e_j`` predicts the column of ``B`` that a new item ``j`` would have, so text-only items are ranked on the
same scale as the others (collective EASE, in closed form). Each term is a sum over at most ``window`` sparse
rows of ``k`` entries, so a click costs ``O(window · k + catalog)`` whatever the user's history length.

Every score decomposes into contributions of single history items, and the largest one is the reason given:
"because you liked X" (B), "often watched right after X" (T), "similar to X" (text bridge); a user with no
usable history gets recent popularity ("popular now").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RANKER_FILE = "ranker.npz"
RANKER_PARAMS_FILE = "ranker.json"
REASON_KINDS = ("liked", "next_item", "similar_text", "popular_now")


@dataclass(frozen=True)
class RankerParams:
    """Hyper-parameters of scoring (chosen on dev by the trainer, carried by the bundle)."""

    window: int = 1000
    """At most this many recent liked items count (bounded work per click)."""
    recent: int = 3
    """The next-item term looks at this many most recent items."""
    decay: float = 0.7
    """Weight of the t-th most recent item in the next-item term: decay**t."""
    transition_weight: float = 8.0
    text_weight: float = 1.0
    positive_rating: float = 4.0
    """An interaction with an explicit rating below this is seen, but not liked."""


@dataclass(frozen=True)
class SparseRows:
    """Rows of an ``n × n`` matrix kept as CSR arrays (only each row's largest entries)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @classmethod
    def top_k(cls, matrix: np.ndarray, k: int) -> SparseRows:
        """Keep the ``k`` largest positive entries of every row (zero rows stay empty)."""
        n, m = matrix.shape
        k = min(k, m)
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for start in range(0, n, 1024):
            block = matrix[start : start + 1024]
            top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (len(block), 1))
            values = np.take_along_axis(block, top, axis=1)
            for row_top, row_values in zip(top, values):
                keep = row_values > 0
                indices.append(row_top[keep].astype(np.int32))
                data.append(row_values[keep].astype(np.float32))
                indptr.append(indptr[-1] + int(keep.sum()))
        return cls(
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.concatenate(data) if data else np.zeros(0, np.float32),
        )

    def remap(self, rows: np.ndarray, n: int) -> SparseRows:
        """These rows and columns are ``rows`` of an ``n × n`` matrix; every other row is empty."""
        lengths = np.zeros(n, np.int64)
        lengths[rows] = np.diff(self.indptr)
        order = np.argsort(rows, kind="stable")
        starts, ends = self.indptr[:-1][order], self.indptr[1:][order]
        positions = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)] or [np.zeros(0, np.int64)])
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return SparseRows(indptr, rows[self.indices[positions]].astype(np.int32), self.data[positions])

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def gather(self, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns, weighted values and source row of every stored entry of ``rows`` (vectorised: one
        ``arange`` over all entries, no Python loop over rows)."""
        if len(rows) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        before = np.cumsum(lengths) - lengths
        positions = np.arange(total) + np.repeat(starts - before, lengths)
        return self.indices[positions], self.data[positions] * np.repeat(weights, lengths), np.repeat(rows, lengths)


@dataclass(frozen=True)
class Reason:
    kind: str
    """One of :data:`REASON_KINDS`."""
    item_id: str | None
    """The history item that contributed most (None for ``popular_now``)."""
    contribution: float

    def text(self, titles: dict[str, str] | None = None) -> str:
        name = (titles or {}).get(self.item_id or "", self.item_id)
        return {
            "liked": f"because you liked {name}",
            "next_item": f"often watched right after {name}",
            "similar_text": f"similar to {name}",
            "popular_now": "popular now",
        }[self.kind]


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    reason: Reason


@dataclass
class UserScores:
    """One user's scores over the ranker's items, with what is needed to explain them."""

    total: np.ndarray
    """``(n,)`` collaborative + next-item + text-bridge score of every known item."""
    collaborative: tuple[np.ndarray, np.ndarray, np.ndarray]
    transitions: tuple[np.ndarray, np.ndarray, np.ndarray]
    text_state: np.ndarray
    """``Σ_{i∈P} G[i]``: the user's vector in text space (scores any embedded item)."""
    liked: np.ndarray
    cold: bool
    """No usable history: rank by popularity instead."""


class NeighbourRanker:
    """Scores and explains recommendations; built by ``trainer.neighbour_fit``, carried by the bundle."""

    def __init__(
        self,
        item_ids: Sequence[str],
        collaborative: SparseRows,
        transitions: SparseRows,
        text_map: np.ndarray,
        item_embeddings: np.ndarray,
        popularity: np.ndarray,
        params: RankerParams = RankerParams(),
    ):
        self.item_ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        if len(self.index) != len(self.item_ids):
            raise ValueError("item ids must be unique")
        n = len(self.item_ids)
        if collaborative.n_rows != n or transitions.n_rows != n or len(text_map) != n or len(item_embeddings) != n:
            raise ValueError("every ranker array needs one row per item")
        self.collaborative = collaborative
        self.transitions = transitions
        self.text_map = np.ascontiguousarray(text_map, dtype=np.float32)
        self.item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.params = params
        counts = np.bincount(collaborative.indices, minlength=n)
        self.warm = counts > 0
        """Items with a collaborative column; the others are scored through the text bridge."""
        self._cold_items = np.flatnonzero(~self.warm)
        self._cold_embeddings = np.ascontiguousarray(self.item_embeddings[self._cold_items])
        self._popular_order = np.argsort(-self.popularity, kind="stable")

    def __len__(self) -> int:
        return len(self.item_ids)

    # -- scoring ---------------------------------------------------------------------------------------
    def user_scores(self, liked: Sequence[str], recent: Sequence[str]) -> UserScores:
        """One user's scores; see :meth:`score_users`."""
        return self.score_users([liked], [recent])[0]

    def score_users(self, liked: Sequence[Sequence[str]], recent: Sequence[Sequence[str]]) -> list[UserScores]:
        """Scores for a batch of users. ``liked``: each user's liked items, oldest first; ``recent``: their
        latest items, oldest first. Items the ranker does not know are skipped (they still count as seen for
        the caller). The sparse terms cost ``window · k`` per user; the text bridge is one matrix product
        for the whole batch over the text-only items."""
        p = self.params
        n = len(self.item_ids)
        out: list[UserScores] = []
        recency = (p.decay ** np.arange(p.recent)).astype(np.float32) * p.transition_weight
        for user_liked, user_recent in zip(liked, recent):
            liked_idx = np.array([self.index[i] for i in user_liked if i in self.index][-p.window :], dtype=np.int64)
            known_recent = [self.index[i] for i in user_recent if i in self.index][-p.recent :]
            recent_idx = np.array(known_recent[::-1], dtype=np.int64)
            collab = self.collaborative.gather(liked_idx, np.ones(len(liked_idx), np.float32))
            trans = self.transitions.gather(recent_idx, recency[: len(recent_idx)])
            total = np.bincount(collab[0], collab[1], minlength=n).astype(np.float32)
            total += np.bincount(trans[0], trans[1], minlength=n).astype(np.float32)
            text_state = self.text_map[liked_idx].sum(axis=0, dtype=np.float32)
            cold = len(liked_idx) == 0 and len(recent_idx) == 0
            out.append(UserScores(total, collab, trans, text_state, liked_idx, cold=cold))
        if out and self._cold_items.size:
            states = np.stack([u.text_state for u in out])
            bridge = p.text_weight * (states @ self._cold_embeddings.T)
            for user, row in zip(out, bridge):
                if len(user.liked):
                    user.total[self._cold_items] += row
        return out

    def score_embedded(self, scores: UserScores, embeddings: np.ndarray) -> np.ndarray:
        """Scores of items the ranker has never seen, from their text embeddings alone."""
        return self.params.text_weight * (np.asarray(embeddings, np.float32) @ scores.text_state)

    # -- explaining ------------------------------------------------------------------------------------
    def explain_many(self, scores: UserScores, items: Sequence[int]) -> list[Reason]:
        """:meth:`explain` for several of the ranker's items at once: the sparse terms are filtered to those
        items in one pass, so a top-K costs one scan of the user's entries, not K."""
        if scores.cold:
            return [Reason("popular_now", None, 0.0) for _ in items]
        wanted = np.asarray(items, dtype=np.int64)
        slot = np.full(len(self.item_ids), -1, dtype=np.int64)
        slot[wanted] = np.arange(len(wanted))
        best_val = np.full(len(wanted), -np.inf, dtype=np.float64)
        best: list[Reason | None] = [None] * len(wanted)
        for kind, (cols, vals, src) in (("liked", scores.collaborative), ("next_item", scores.transitions)):
            if not len(cols):
                continue
            where = slot[cols]
            hit = np.flatnonzero(where >= 0)
            if not len(hit):
                continue
            # per wanted item, its largest entry: sort the hits by (item, -value) and keep each item's first
            order = hit[np.lexsort((-vals[hit], where[hit]))]
            first = order[np.r_[True, where[order][1:] != where[order][:-1]]]
            for pos in first:
                j = int(where[pos])
                if vals[pos] > best_val[j]:
                    best_val[j] = float(vals[pos])
                    best[j] = Reason(kind, self.item_ids[int(src[pos])], float(vals[pos]))
        return [b if b is not None else self.explain(scores, int(i)) for b, i in zip(best, wanted)]

    def explain(self, scores: UserScores, item: int | None, embedding: np.ndarray | None = None) -> Reason:
        """The largest single contribution to ``item``'s score (an index of the ranker, or None for an item
        known only by its ``embedding``)."""
        if scores.cold:
            return Reason("popular_now", None, 0.0)
        best = Reason("popular_now", None, 0.0)
        if item is not None:
            for kind, (cols, vals, src) in (("liked", scores.collaborative), ("next_item", scores.transitions)):
                hit = np.flatnonzero(cols == item)
                if len(hit):
                    top = hit[np.argmax(vals[hit])]
                    if vals[top] > best.contribution:
                        best = Reason(kind, self.item_ids[int(src[top])], float(vals[top]))
        text_only = item is None or not self.warm[item]
        if best.kind == "popular_now" and text_only and len(scores.liked):
            vector = self.item_embeddings[item] if embedding is None and item is not None else embedding
            if vector is not None:
                parts = self.params.text_weight * (self.text_map[scores.liked] @ np.asarray(vector, np.float32))
                top = int(np.argmax(parts))
                best = Reason("similar_text", self.item_ids[int(scores.liked[top])], float(parts[top]))
        return best

    def popular(self, exclude: set[str], k: int) -> list[str]:
        """The ``k`` most popular items (training popularity) not in ``exclude``; stops as soon as it has them."""
        out: list[str] = []
        for i in self._popular_order:
            item = self.item_ids[i]
            if item not in exclude:
                out.append(item)
                if len(out) == k:
                    break
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = folder / RANKER_FILE
        np.savez(
            arrays,
            collaborative_indptr=self.collaborative.indptr,
            collaborative_indices=self.collaborative.indices,
            collaborative_data=self.collaborative.data,
            transitions_indptr=self.transitions.indptr,
            transitions_indices=self.transitions.indices,
            transitions_data=self.transitions.data,
            text_map=self.text_map,
            item_embeddings=self.item_embeddings,
            popularity=self.popularity,
        )
        meta = folder / RANKER_PARAMS_FILE
        meta.write_text(json.dumps({"item_ids": self.item_ids, "params": asdict(self.params)}) + "\n")
        return [arrays, meta]

    @classmethod
    def load(cls, folder: Path) -> NeighbourRanker:
        meta = json.loads((folder / RANKER_PARAMS_FILE).read_text())
        with np.load(folder / RANKER_FILE) as z:
            return cls(
                meta["item_ids"],
                SparseRows(z["collaborative_indptr"], z["collaborative_indices"], z["collaborative_data"]),
                SparseRows(z["transitions_indptr"], z["transitions_indices"], z["transitions_data"]),
                z["text_map"],
                z["item_embeddings"],
                z["popularity"],
                RankerParams(**meta["params"]),
            )


def mmr(candidates: np.ndarray, scores: np.ndarray, embeddings: np.ndarray, k: int, relevance: float) -> np.ndarray:
    """Maximal marginal relevance: pick ``k`` of ``candidates`` (best first) trading score for variety.

    ``relevance`` 1.0 keeps the score order; lower values penalise an item by its highest cosine similarity
    to those already picked. Scores are rescaled to [0, 1] within the candidates so the two terms compare.
    """
    if relevance >= 1.0 or len(candidates) <= 1:
        return candidates[np.argsort(-scores, kind="stable")][:k]
    span = float(scores.max() - scores.min()) or 1.0
    rel = (scores - scores.min()) / span
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-9)
    chosen: list[int] = []
    max_sim = np.full(len(candidates), -np.inf)
    available = np.ones(len(candidates), bool)
    for _ in range(min(k, len(candidates))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = np.where(available, relevance * rel - (1 - relevance) * penalty, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        available[pick] = False
        max_sim = np.maximum(max_sim, unit @ unit[pick])
    return candidates[np.array(chosen, dtype=np.int64)]
