"""The top-N baselines a specialist would run, under the protocol of :mod:`trainer.ranking_eval`.

Each is fit on train, its hyper-parameters chosen on dev (nDCG@10), then refit on train + dev and scored on
test: exactly what the model gets. EASE is the closed form with its full history (no window, no
sparsification); ALS and BPR come from the ``implicit`` library on the liked interactions; item-kNN is
cosine similarity on the same matrix; popularity counts users; content ranks by the cosine between an item's
text embedding and the mean embedding of the user's liked items.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from trainer.neighbour_fit import Histories, fit_ease
from trainer.ranking_eval import RankingTask, evaluate

logger = logging.getLogger(__name__)
Scorer = Callable[[list[str]], np.ndarray]


@dataclass
class UserItems:
    """The liked-interaction matrix of one history, with the user order of its rows."""

    users: dict[str, int]
    matrix: sparse.csr_matrix

    @classmethod
    def from_histories(cls, histories: Histories, n_items: int) -> UserItems:
        users = {u: r for r, u in enumerate(sorted(histories.liked))}
        rows = np.concatenate([np.full(len(v), users[u]) for u, v in histories.liked.items()] or [np.zeros(0, int)])
        cols = np.concatenate([np.asarray(v, dtype=np.int64) for v in histories.liked.values()] or [np.zeros(0, int)])
        matrix = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), n_items))
        matrix.data[:] = 1.0  # duplicates summed by the constructor
        return cls(users, matrix)

    def rows(self, users: list[str]) -> sparse.csr_matrix:
        empty = sparse.csr_matrix((1, self.matrix.shape[1]), dtype=np.float32)
        return sparse.vstack([self.matrix[self.users[u]] if u in self.users else empty for u in users]).tocsr()


def ease_scorer(data: UserItems, lam: float) -> Scorer:
    b = fit_ease(data.matrix.toarray(), lam)
    return lambda users: np.asarray(data.rows(users) @ b)


def knn_scorer(data: UserItems, neighbours: int) -> Scorer:
    x = data.matrix.astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel()
    sim = np.asarray((x.T @ x).todense()) / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[0]:
        cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
        sim[sim < cut] = 0.0
    sim = sim.astype(np.float32)
    return lambda users: np.asarray(data.rows(users) @ sim)


def popularity_scorer(data: UserItems) -> Scorer:
    counts = np.asarray(data.matrix.sum(axis=0)).ravel().astype(np.float32)
    return lambda users: np.tile(counts, (len(users), 1))


def content_scorer(data: UserItems, embeddings: np.ndarray) -> Scorer:
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-9)
    return lambda users: np.asarray(data.rows(users) @ unit) @ unit.T


def implicit_scorer(data: UserItems, kind: str, factors: int, regularization: float, seed: int, **extra) -> Scorer:
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    cls = AlternatingLeastSquares if kind == "als" else BayesianPersonalizedRanking
    with threadpool_limits(1, "blas"):  # implicit's own threads; a BLAS pool inside each would oversubscribe
        model = cls(factors=factors, regularization=regularization, random_state=seed, **extra)
        model.fit(data.matrix, show_progress=False)
    user_f, item_f = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: list[str]) -> np.ndarray:
        rows = np.array([data.users.get(u, -1) for u in users])
        vectors = np.where((rows >= 0)[:, None], user_f[np.maximum(rows, 0)], 0.0)
        return vectors @ item_f.T

    return score


GRIDS: dict[str, list[dict]] = {
    "EASE": [{"lam": lam} for lam in (50.0, 100.0, 200.0, 400.0, 800.0)],
    "ALS (implicit)": [
        {"kind": "als", "factors": f, "regularization": r, "iterations": 15, "alpha": a}
        for f in (64, 128)
        for r in (0.01, 0.1)
        for a in (1.0, 10.0)
    ],
    "BPR (implicit)": [
        {"kind": "bpr", "factors": f, "regularization": 0.01, "learning_rate": lr, "iterations": 100}
        for f in (64, 128)
        for lr in (0.01, 0.05)
    ],
    "item-kNN (cosine)": [{"neighbours": k} for k in (50, 200, 1000)],
    "popularity": [{}],
    "content (fine-tuned text embeddings)": [{}],
}


def build(name: str, data: UserItems, params: dict, embeddings: np.ndarray, seed: int) -> Scorer:
    if name == "EASE":
        return ease_scorer(data, params["lam"])
    if name.startswith(("ALS", "BPR")):
        return implicit_scorer(data, seed=seed, **params)
    if name.startswith("item-kNN"):
        return knn_scorer(data, params["neighbours"])
    if name == "popularity":
        return popularity_scorer(data)
    return content_scorer(data, embeddings)


def run_baselines(
    train: pd.DataFrame,
    dev: pd.DataFrame,
    test: pd.DataFrame,
    item_ids: list[str],
    embeddings: np.ndarray,
    seed: int,
    positive_rating: float = 4.0,
) -> dict[str, dict]:
    """Every baseline: grid on dev, refit on train + dev, one test evaluation."""
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    history = pd.concat([train, dev], ignore_index=True)
    fit_data = UserItems.from_histories(Histories.from_frame(train, index, positive_rating), n)
    refit_data = UserItems.from_histories(Histories.from_frame(history, index, positive_rating), n)
    dev_task = RankingTask.from_frames(train, dev, item_ids)
    test_task = RankingTask.from_frames(history, test, item_ids)
    results: dict[str, dict] = {}
    for name, grid in GRIDS.items():
        started = time.perf_counter()
        scored = [(evaluate(dev_task, build(name, fit_data, p, embeddings, seed), embeddings), p) for p in grid]
        dev_best, params = max(scored, key=lambda sp: (sp[0]["ndcg@10"], sp[0]["hr@10"]))
        test_result = evaluate(test_task, build(name, refit_data, params, embeddings, seed), embeddings)
        results[name] = {
            **test_result,
            "params": params,
            "dev_ndcg@10": dev_best["ndcg@10"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        logger.info("baseline done", extra={"baseline": name, **{k: v for k, v in test_result.items()}})
    return results
