"""The top-N protocol every recommender is judged by, and the figures beyond accuracy.

Full ranking: each user with at least one test item rated ≥ 4 ranks every catalog item they had not
interacted with before the test period; HR@10 and nDCG@10 count the relevant test items in the top 10.
Cold positives are relevant test items nobody interacted with before the test period: only a model that
reads text can rank them, and ``cold_hr@10`` is the share of users with such a positive who get one in
their top 10. Beyond accuracy: catalog coverage, intra-list diversity (mean pairwise cosine distance of the
items' text embeddings), novelty (mean self-information −log2 of the share of users who had the item) and
popularity bias (mean popularity percentile of recommended items, 1.0 = the most popular).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

RELEVANT_RATING = 4.0


@dataclass
class RankingTask:
    """One history/target pair of interaction frames, over a fixed catalog."""

    item_ids: list[str]
    users: list[str]
    """Users with at least one relevant target item, in a fixed order."""
    seen: dict[str, np.ndarray]
    """Catalog indices each user interacted with in the history (excluded from ranking)."""
    relevant: dict[str, set[int]]
    cold_items: np.ndarray
    """``(n,)`` True for items with no interaction in the history."""
    user_counts: np.ndarray
    """``(n,)`` how many history users interacted with each item (novelty, popularity bias)."""

    @classmethod
    def from_frames(cls, history: pd.DataFrame, targets: pd.DataFrame, item_ids: Sequence[str]) -> RankingTask:
        index = {item: i for i, item in enumerate(item_ids)}
        h_items = history["item_id"].astype(str).map(index)
        h = pd.DataFrame({"user": history["user_id"].astype(str), "item": h_items}).dropna()
        h["item"] = h["item"].astype(np.int64)
        seen = {u: np.unique(g.to_numpy()) for u, g in h.groupby("user")["item"]}
        t_items = targets["item_id"].astype(str).map(index)
        rel = targets[(targets["rating"] >= RELEVANT_RATING) & t_items.notna()]
        relevant: dict[str, set[int]] = {}
        for user, item in zip(rel["user_id"].astype(str), rel["item_id"].astype(str).map(index).astype(np.int64)):
            relevant.setdefault(user, set()).add(int(item))
        n = len(item_ids)
        user_counts = np.bincount(h.drop_duplicates()["item"].to_numpy(), minlength=n).astype(np.float64)
        return cls(list(item_ids), sorted(relevant), seen, relevant, user_counts == 0, user_counts)


Scorer = Callable[[list[str]], np.ndarray]
"""Scores of every catalog item for a chunk of users: ``(len(users), n)``."""


def top_lists(task: RankingTask, score: Scorer, k: int = 10, chunk: int = 128) -> dict[str, np.ndarray]:
    """Each user's top ``k`` catalog indices, their history excluded."""
    lists: dict[str, np.ndarray] = {}
    for start in range(0, len(task.users), chunk):
        users = task.users[start : start + chunk]
        scores = np.array(score(users), dtype=np.float64, copy=True)
        for row, user in enumerate(users):
            scores[row, task.seen.get(user, np.zeros(0, np.int64))] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        for row, user in enumerate(users):
            lists[user] = top[row][order[row]]
    return lists


def accuracy(task: RankingTask, lists: dict[str, np.ndarray], k: int = 10) -> dict:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits, ndcgs, cold_hits = [], [], []
    for user in task.users:
        rel = task.relevant[user]
        gains = np.array([i in rel for i in lists[user][:k]], dtype=float)
        hits.append(float(gains.any()))
        ndcgs.append(float(gains @ discounts[: len(gains)] / discounts[: min(len(rel), k)].sum()))
        cold_rel = {i for i in rel if task.cold_items[i]}
        if cold_rel:
            cold_hits.append(float(any(i in cold_rel for i in lists[user][:k])))
    return {
        f"hr@{k}": round(float(np.mean(hits)), 4),
        f"ndcg@{k}": round(float(np.mean(ndcgs)), 4),
        f"cold_hr@{k}": round(float(np.mean(cold_hits)), 4) if cold_hits else 0.0,
        "users": len(task.users),
        "users_with_cold_positives": len(cold_hits),
    }


def beyond_accuracy(task: RankingTask, lists: dict[str, np.ndarray], embeddings: np.ndarray) -> dict:
    """Coverage, intra-list diversity, novelty and popularity bias of the lists."""
    n = len(task.item_ids)
    recommended = np.concatenate([lists[u] for u in task.users])
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-9)
    ild = []
    for user in task.users:
        vectors = unit[lists[user]]
        sims = vectors @ vectors.T
        m = len(vectors)
        ild.append(float((m * m - sims.sum()) / max(m * (m - 1), 1)))
    n_users = max(len(task.seen), 1)
    share = np.maximum(task.user_counts, 1.0) / n_users
    percentile = np.argsort(np.argsort(task.user_counts, kind="stable"), kind="stable") / max(n - 1, 1)
    return {
        "coverage@10": round(len(np.unique(recommended)) / n, 4),
        "intra_list_diversity": round(float(np.mean(ild)), 4),
        "novelty_bits": round(float(np.mean(-np.log2(share[recommended]))), 3),
        "popularity_percentile": round(float(np.mean(percentile[recommended])), 4),
    }


def evaluate(task: RankingTask, score: Scorer, embeddings: np.ndarray, k: int = 10) -> dict:
    lists = top_lists(task, score, k)
    return {**accuracy(task, lists, k), **beyond_accuracy(task, lists, embeddings)}
