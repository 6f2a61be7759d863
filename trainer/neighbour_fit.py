"""Fitting the serving recommender (:class:`streamscore.neighbour_ranker.NeighbourRanker`) in closed form.

Three parts, each a few seconds to a minute on MovieLens-small with two cores:

* **EASE** (Steck 2019) on the liked interactions: ``P = (XᵀX + λI)⁻¹``, ``B = I − P·diag(1/diag P)`` with a
  zero diagonal; each row keeps its ``k`` largest weights so scoring is sparse. ``O(n³)`` time and ``O(n²)``
  memory in the number of items with interactions: the limit at ~30 k items (see docs/recommender.md).
* **Next-item weights** (SLIST's transition part): a ridge regression from the last few items, recency
  weighted, to the next one; sparsified like ``B``.
* **Text bridge**: ``G = B·E_w·(E_wᵀE_w + μI)⁻¹`` over the items with a collaborative column (ridge from the
  text embeddings to ``B``'s columns), so ``G·e_j`` scores an item with no interactions.

Hyper-parameters (λ, transition weight, text weight) are chosen on dev with a model fit on train, then the
model is refit on train + dev: the protocol every baseline follows too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse
from tqdm.auto import tqdm

from streamscore.neighbour_ranker import NeighbourRanker, RankerParams, SparseRows
from trainer.ranking_eval import RankingTask, evaluate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitParams:
    ease_lambda: float = 200.0
    next_item_lambda: float = 50.0
    neighbours: int = 200
    """Entries kept per row of ``B`` and ``W``: the per-click cost is ``window · neighbours``."""
    ridge: float = 1.0
    dense_items: int = 10_000
    """EASE and the next-item weights are dense inversions over at most this many items (the most liked):
    ``O(n²)`` memory and ``O(n³)`` time. Items beyond it keep no collaborative row or column and are scored
    through the text bridge, like new items (see docs/benchmarks/recommender.md for the measurements)."""


@dataclass
class Histories:
    """Per user, time-ordered catalog indices: every interaction, and the liked ones."""

    all: dict[str, list[int]]
    liked: dict[str, list[int]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, index: dict[str, int], positive_rating: float) -> Histories:
        ordered = frame.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
        items = ordered["item_id"].astype(str).map(index)
        ordered = ordered[items.notna()].assign(idx=items[items.notna()].astype(np.int64))
        every: dict[str, list[int]] = {}
        liked: dict[str, list[int]] = {}
        for user, group in ordered.groupby(ordered["user_id"].astype(str), sort=False):
            idx = group["idx"].to_numpy()
            every[user] = idx.tolist()
            liked[user] = idx[group["rating"].to_numpy() >= positive_rating].tolist()
        return cls(every, liked)


def liked_matrix(histories: Histories, n_items: int) -> np.ndarray:
    """``(users, items)`` 0/1 matrix of liked interactions, float32."""
    users = sorted(histories.liked)
    x = np.zeros((len(users), n_items), dtype=np.float32)
    for row, user in enumerate(users):
        x[row, histories.liked[user]] = 1.0
    return x


def fit_ease(x: np.ndarray, lam: float) -> np.ndarray:
    """Dense EASE weights ``B`` (zero diagonal) for the liked-interaction matrix ``x``."""
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def fit_next_item(histories: Histories, n_items: int, recent: int, decay: float, lam: float) -> np.ndarray:
    """Next-item weights ``W`` in closed form (the transition part of SLIST, Choi et al. 2021): every
    interaction is a target whose input is the ``recent`` items before it, the t-th most recent weighted
    ``decay**t``; ``W = (XᵀX + λI)⁻¹XᵀY`` with a zero diagonal. Unlike raw "watched after" counts, the
    regression discounts items that follow everything (the popular ones) and shares evidence between
    items that precede the same things."""
    rows, cols, vals, targets = [], [], [], []
    r = 0
    for seq in histories.all.values():
        s = np.asarray(seq, dtype=np.int64)
        for g in range(1, recent + 1):
            if len(s) > g:
                positions = np.arange(g, len(s))
                rows.append(r + positions - 1)
                cols.append(s[positions - g])
                vals.append(np.full(len(positions), decay ** (g - 1)))
        if len(s) > 1:
            targets.append(s[1:])
            r += len(s) - 1
    if r == 0:
        return np.zeros((n_items, n_items), np.float32)
    x = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, n_items))
    y_cols = np.concatenate(targets)
    y = sparse.csr_matrix((np.ones(r), (np.arange(r), y_cols)), shape=(r, n_items))
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += lam
    inverse = np.linalg.inv(gram)
    del gram
    xty = (x.T @ y).tocsr()  # sparse: at most one entry per (input, target) pair
    w = np.asarray((xty.T @ inverse.T).T, dtype=np.float32)  # = inverse · XᵀY without a dense XᵀY
    np.fill_diagonal(w, 0.0)
    return w


def text_bridge(collaborative: SparseRows, embeddings: np.ndarray, ridge: float) -> np.ndarray:
    """``G`` (n × d): ridge regression of each item's collaborative column on its text embedding,
    ``G = B·E_w·(E_wᵀE_w + μI)⁻¹`` over the items ``w`` that have a column; ``B`` stays sparse."""
    n, d = embeddings.shape
    warm = np.bincount(collaborative.indices, minlength=n) > 0
    if not warm.any():
        return np.zeros((n, d), np.float32)
    e = embeddings.astype(np.float64)
    b = sparse.csr_matrix((collaborative.data, collaborative.indices, collaborative.indptr), shape=(n, n))
    e_warm = e * warm[:, None]  # rows of items without a column contribute nothing
    solve = np.linalg.inv(e_warm.T @ e_warm + ridge * np.eye(d))
    return np.asarray((b @ e_warm) @ solve, dtype=np.float32)


def popularity(histories: Histories, n_items: int, recent_share: float = 0.1) -> np.ndarray:
    """How many users interacted with each item in the most recent ``recent_share`` of each history."""
    counts = np.zeros(n_items, np.float32)
    for seq in histories.all.values():
        tail = seq[-max(1, int(len(seq) * recent_share)) :]
        counts[np.unique(tail)] += 1.0
    return counts


def dense_head(histories: Histories, n_items: int, limit: int) -> np.ndarray | None:
    """The ``limit`` most liked items (sorted indices) when more items than that have likes, else None."""
    liked = [np.asarray(v, np.int64) for v in histories.liked.values()]
    counts = np.bincount(np.concatenate(liked) if liked else np.zeros(0, np.int64), minlength=n_items)
    if int((counts > 0).sum()) <= limit:
        return None
    return np.sort(np.argsort(-counts, kind="stable")[:limit])


def fit_ranker(
    history: pd.DataFrame,
    item_ids: list[str],
    item_embeddings: np.ndarray,
    fit: FitParams = FitParams(),
    params: RankerParams = RankerParams(),
    ease: np.ndarray | None = None,
    next_item: np.ndarray | None = None,
) -> NeighbourRanker:
    """Fit every part on ``history`` (user_id, item_id, rating, timestamp); ``ease`` and ``next_item`` reuse
    dense weights already fit with ``fit``'s lambdas on the same history."""
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    histories = Histories.from_frame(history, index, params.positive_rating)
    head = dense_head(histories, n, fit.dense_items)
    if head is not None:  # a catalog too large to invert: the collaborative parts over the most liked items
        sub = {int(i): pos for pos, i in enumerate(head)}
        local = Histories(
            {u: [sub[i] for i in s if i in sub] for u, s in histories.all.items()},
            {u: [sub[i] for i in s if i in sub] for u, s in histories.liked.items()},
        )
        b_head = fit_ease(liked_matrix(local, len(head)), fit.ease_lambda)
        w_head = fit_next_item(local, len(head), params.recent, params.decay, fit.next_item_lambda)
        collaborative = SparseRows.top_k(b_head, fit.neighbours).remap(head, n)
        transitions = SparseRows.top_k(w_head, fit.neighbours).remap(head, n)
    else:
        b = ease if ease is not None else fit_ease(liked_matrix(histories, n), fit.ease_lambda)
        w = next_item
        if w is None:
            w = fit_next_item(histories, n, params.recent, params.decay, fit.next_item_lambda)
        collaborative = SparseRows.top_k(b, fit.neighbours)
        transitions = SparseRows.top_k(w, fit.neighbours)
    bridge = text_bridge(collaborative, item_embeddings, fit.ridge)
    return NeighbourRanker(
        item_ids, collaborative, transitions, bridge, item_embeddings, popularity(histories, n), params
    )


def ranker_scorer(ranker: NeighbourRanker, histories: Histories) -> Callable[[list[str]], np.ndarray]:
    """Adapter to :func:`trainer.ranking_eval.top_lists`: the ranker's scores for a chunk of users."""
    ids = ranker.item_ids

    def score(users: list[str]) -> np.ndarray:
        liked = [[ids[i] for i in histories.liked.get(user, [])] for user in users]
        recent = [[ids[i] for i in histories.all.get(user, [])[-ranker.params.recent :]] for user in users]
        scores = ranker.score_users(liked, recent)
        return np.stack([s.total if not s.cold else ranker.popularity for s in scores])

    return score


TEXT_REACH_TOLERANCE = 0.05
"""Share of dev nDCG@10 the text weight may give up so that items nobody has interacted with reach top 10s."""


def choose_text_weight(results: dict[float, dict], tolerance: float = TEXT_REACH_TOLERANCE) -> float:
    """The text weight, from its dev figures (``{weight: {"ndcg@10", "hr@10", "cold_hr@10"}}``).

    Plain dev nDCG picks the weight that never shows a new item (a new item is a small share of any dev
    set's positives, and every slot it takes is a slot a proven item lost). A recommender that never shows
    new items never gets the clicks that would make them warm, so the rule is: the best weight, by dev nDCG
    then HR, among those that put a cold positive in a dev top 10, as long as it keeps ``1 − tolerance`` of the
    best dev nDCG of all; otherwise the best of all."""

    def key(weight: float) -> tuple[float, float, float]:
        r = results[weight]
        return (r["ndcg@10"], r["hr@10"], -weight)

    best = max(results, key=key)
    reaching = [w for w, r in results.items() if r.get("cold_hr@10", 0.0) > 0.0]
    if not reaching:
        return best
    best_reaching = max(reaching, key=key)
    floor = (1.0 - tolerance) * results[best]["ndcg@10"]
    return best_reaching if results[best_reaching]["ndcg@10"] >= floor else best


WINDOW_TOLERANCE = 0.01
"""Share of dev nDCG@10 a shorter window may give up: each liked item in it costs ``neighbours`` multiply-adds on
every click of the user."""


def choose_window(results: dict[int, dict], tolerance: float = WINDOW_TOLERANCE) -> int:
    """The shortest window whose dev nDCG@10 is within ``tolerance`` (relative) of the best window's. The
    window is the per-click cost: a user's scores gather ``window × neighbours`` weights on every click, so a
    window five times shorter is five times less work for the heaviest users."""
    best = max(r["ndcg@10"] for r in results.values())
    return min(w for w, r in results.items() if r["ndcg@10"] >= (1.0 - tolerance) * best)


@dataclass(frozen=True)
class RankerChoice:
    fit: FitParams
    params: RankerParams
    dev: dict
    grid: list[dict]
    seconds: float


def choose_ranker(
    train: pd.DataFrame,
    dev: pd.DataFrame,
    item_ids: list[str],
    item_embeddings: np.ndarray,
    ease_lambdas: tuple[float, ...] = (100.0, 200.0, 400.0),
    next_item_lambdas: tuple[float, ...] = (10.0, 50.0, 200.0),
    transition_weights: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0),
    text_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0),
    reach_tolerance: float = TEXT_REACH_TOLERANCE,
    windows: tuple[int, ...] = (100, 200, 500, 1000),
    window_tolerance: float = WINDOW_TOLERANCE,
) -> RankerChoice:
    """Coordinate search on dev nDCG@10 (HR@10 breaks ties), one hyper-parameter at a time, each weight fit
    once and reused across the choices that do not change it: EASE's λ, the next-item λ, the next-item
    weight, the text weight (under the reach rule of :func:`choose_text_weight`), and the window of liked items
    a user is scored from (the cost rule of :func:`choose_window`). The model is fit on
    ``train`` only; the caller refits on train + dev."""
    started = time.perf_counter()
    n = len(item_ids)
    index = {item: i for i, item in enumerate(item_ids)}
    params = RankerParams()
    fit = FitParams()
    histories = Histories.from_frame(train, index, params.positive_rating)
    task = RankingTask.from_frames(train, dev, item_ids)
    grid: list[dict] = []

    def score(ranker: NeighbourRanker, fit: FitParams) -> dict:
        result = evaluate(task, ranker_scorer(ranker, histories), item_embeddings)
        grid.append({**asdict(fit), **asdict(ranker.params), **result})
        return result

    def better(a: dict, b: dict | None) -> bool:
        return b is None or (a["ndcg@10"], a["hr@10"]) > (b["ndcg@10"], b["hr@10"])

    x = liked_matrix(histories, n)
    w = fit_next_item(histories, n, params.recent, params.decay, fit.next_item_lambda)
    best: tuple[dict, FitParams, np.ndarray] | None = None
    for lam in tqdm(ease_lambdas, desc="ranker: EASE λ on dev", leave=False):
        b = fit_ease(x, lam)
        trial = replace(fit, ease_lambda=lam)
        result = score(fit_ranker(train, item_ids, item_embeddings, trial, params, ease=b, next_item=w), trial)
        if best is None or better(result, best[0]):
            best = (result, trial, b)
    assert best is not None
    _, fit, b = best
    best_w: tuple[dict, FitParams, np.ndarray] | None = None
    for lam in tqdm(next_item_lambdas, desc="ranker: next-item λ on dev", leave=False):
        w = fit_next_item(histories, n, params.recent, params.decay, lam)
        trial = replace(fit, next_item_lambda=lam)
        result = score(fit_ranker(train, item_ids, item_embeddings, trial, params, ease=b, next_item=w), trial)
        if best_w is None or better(result, best_w[0]):
            best_w = (result, trial, w)
    assert best_w is not None
    _, fit, w = best_w
    ranker = fit_ranker(train, item_ids, item_embeddings, fit, params, ease=b, next_item=w)
    for field, values in (
        ("window", windows),
        ("transition_weight", transition_weights),
        ("text_weight", text_weights),
    ):
        results = {}
        for value in values:
            ranker.params = replace(params, **{field: value})
            results[value] = score(ranker, fit)
        if field == "window":
            chosen = choose_window(results, window_tolerance)
        elif field == "text_weight":
            chosen = choose_text_weight(results, reach_tolerance)
        else:
            chosen = values[0]
            for value in values[1:]:
                if better(results[value], results[chosen]):
                    chosen = value
        params = replace(params, **{field: chosen})
    ranker.params = params
    dev_result = evaluate(task, ranker_scorer(ranker, histories), item_embeddings)
    logger.info("ranker chosen on dev", extra={**asdict(fit), **asdict(params), **dev_result})
    return RankerChoice(fit, params, dev_result, grid, round(time.perf_counter() - started, 1))
