"""The served recommender on small synthetic data: each part does what its formula says, every score is
explained by the history item behind it, a text-only item is ranked from its embedding, the work per user
is bounded, and the evaluation protocol counts what it claims to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from streamscore.neighbour_ranker import NeighbourRanker, RankerParams, SparseRows, mmr
from trainer.neighbour_fit import (
    FitParams,
    Histories,
    choose_text_weight,
    fit_ease,
    fit_next_item,
    fit_ranker,
    liked_matrix,
)
from trainer.ranking_eval import RankingTask, accuracy, beyond_accuracy

ITEMS = [f"i{n}" for n in range(8)]


def _frame(rows: list[tuple[str, str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _two_communities() -> pd.DataFrame:
    """Users 0–5 like i0..i2 (in that order), users 6–11 like i3..i5; i6 is disliked once; i7 is never seen."""
    rows = []
    for u in range(12):
        block = [0, 1, 2] if u < 6 else [3, 4, 5]
        for t, item in enumerate(block if u % 3 else block[:2]):
            rows.append((f"u{u}", f"i{item}", 5.0, 100 * u + t))
    rows.append(("u0", "i6", 1.0, 99))
    return _frame(rows)


def _embeddings() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 16))
    e = np.stack([base[0 if i < 3 else 1] + 0.1 * rng.normal(size=16) for i in range(6)] + [rng.normal(size=16)] * 2)
    e[7] = base[0] + 0.05 * rng.normal(size=16)  # the unseen item reads like the first community's
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def test_sparse_rows_keep_the_k_largest_positive_entries_and_gather_them() -> None:
    m = np.array([[0.0, 3.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 4.0, 0.5]], dtype=np.float32)
    rows = SparseRows.top_k(m, 2)
    assert rows.indptr.tolist() == [0, 2, 2, 4]
    cols, vals, src = rows.gather(np.array([0, 2]), np.array([1.0, 10.0], np.float32))
    got = sorted(zip(cols.tolist(), vals.tolist(), src.tolist()))
    assert got == [(0, 50.0, 2), (1, 3.0, 0), (2, 40.0, 2), (3, 2.0, 0)]


def test_ease_prefers_the_community_of_the_history() -> None:
    index = {item: i for i, item in enumerate(ITEMS)}
    histories = Histories.from_frame(_two_communities(), index, 4.0)
    assert histories.liked["u0"] == [0, 1] and histories.all["u0"] == [0, 1, 6]  # the dislike is seen, not liked
    b = fit_ease(liked_matrix(histories, len(ITEMS)), lam=1.0)
    assert np.allclose(np.diag(b), 0) and b[0, 1] > 0 and b[0, 4] <= 0


def test_next_item_weights_point_to_what_follows() -> None:
    index = {item: i for i, item in enumerate(ITEMS)}
    histories = Histories.from_frame(_two_communities(), index, 4.0)
    w = fit_next_item(histories, len(ITEMS), recent=2, decay=0.7, lam=0.1)
    assert w[1].argmax() == 2 and w[4].argmax() == 5 and w[2, 1] < w[1, 2]


def test_scores_are_explained_by_the_history_item_behind_them(tmp_path: Path) -> None:
    ranker = fit_ranker(
        _two_communities(), ITEMS, _embeddings(), FitParams(ease_lambda=1.0, next_item_lambda=0.1, ridge=0.1)
    )
    scores = ranker.user_scores(liked=["i3"], recent=["i3"])
    assert scores.total[[4, 5]].min() > scores.total[[0, 1, 2]].max()
    reason = ranker.explain(scores, 4)
    assert reason.kind in ("liked", "next_item") and reason.item_id == "i3"
    assert reason.text({"i3": "Heat"}) in ("because you liked Heat", "often watched right after Heat")
    # a user with no usable history is cold: popular items, said so
    cold = ranker.user_scores(liked=["unknown"], recent=[])
    assert cold.cold and ranker.explain(cold, 0).kind == "popular_now"
    # save → load gives the same scores
    ranker.save(tmp_path)
    again = NeighbourRanker.load(tmp_path).user_scores(liked=["i3"], recent=["i3"])
    assert np.allclose(again.total, scores.total)


def test_a_text_only_item_is_ranked_through_the_text_bridge() -> None:
    emb = _embeddings()
    ranker = fit_ranker(_two_communities(), ITEMS, emb, FitParams(ease_lambda=1.0, ridge=0.1))
    assert not ranker.warm[7] and ranker.warm[:6].all()
    scores = ranker.user_scores(liked=["i0", "i1"], recent=[])
    # i7 reads like the first community: it scores above the other community's items
    assert scores.total[7] > scores.total[[3, 4, 5]].max()
    reason = ranker.explain(scores, 7)
    assert reason.kind == "similar_text" and reason.item_id in ("i0", "i1")
    # an item the ranker has never seen at all is scored from its embedding the same way
    assert np.isclose(ranker.score_embedded(scores, emb[[7]])[0], scores.total[7], rtol=1e-4)
    ranker.params = RankerParams(text_weight=0.0)
    assert ranker.user_scores(liked=["i0", "i1"], recent=[]).total[7] == 0.0


def test_only_the_last_window_of_liked_items_counts() -> None:
    ranker = fit_ranker(_two_communities(), ITEMS, _embeddings(), FitParams(ease_lambda=1.0), RankerParams(window=1))
    long = ranker.user_scores(liked=["i3", "i4", "i0"], recent=[])
    short = ranker.user_scores(liked=["i0"], recent=[])
    assert np.allclose(long.total, short.total)


def test_mmr_trades_score_for_variety() -> None:
    emb = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.98, 0.2]], dtype=np.float32)
    scores = np.array([1.0, 0.95, 0.5, 0.9])
    candidates = np.arange(4)
    assert mmr(candidates, scores, emb, 3, relevance=1.0).tolist() == [0, 1, 3]
    assert mmr(candidates, scores, emb, 2, relevance=0.5).tolist() == [0, 2]


def test_protocol_counts_hits_cold_positives_and_beyond_accuracy() -> None:
    history = _frame([("a", "i0", 5, 1), ("b", "i1", 5, 1), ("b", "i2", 5, 2)])
    test = _frame([("a", "i1", 5, 3), ("a", "i7", 5, 4), ("b", "i3", 2, 3), ("b", "i0", 4, 4)])
    task = RankingTask.from_frames(history, test, ITEMS)
    assert task.users == ["a", "b"] and task.relevant == {"a": {1, 7}, "b": {0}}
    assert task.cold_items[7] and not task.cold_items[1]
    lists = {"a": np.array([7, 3]), "b": np.array([5, 6])}
    result = accuracy(task, lists, k=2)
    assert result["hr@2"] == 0.5 and result["cold_hr@2"] == 1.0 and result["users_with_cold_positives"] == 1
    assert np.isclose(result["ndcg@2"], (1 / (1 + 1 / np.log2(3))) / 2, atol=1e-4)
    extra = beyond_accuracy(task, lists, _embeddings())
    assert extra["coverage@10"] == 0.5 and 0 <= extra["popularity_percentile"] <= 1


def test_a_catalog_over_the_dense_limit_keeps_the_collaborative_part_on_its_most_liked_items() -> None:
    emb = _embeddings()
    full = fit_ranker(_two_communities(), ITEMS, emb, FitParams(ease_lambda=1.0, ridge=0.1))
    head = fit_ranker(_two_communities(), ITEMS, emb, FitParams(ease_lambda=1.0, ridge=0.1, dense_items=3))
    liked = _two_communities().query("rating >= 4")["item_id"].value_counts()
    kept = {ITEMS.index(i) for i in liked.index[:3]}
    rows = np.repeat(np.arange(len(ITEMS)), np.diff(head.collaborative.indptr))
    assert set(rows.tolist()) <= kept and set(head.collaborative.indices.tolist()) <= kept
    assert set(np.flatnonzero(head.warm).tolist()) <= kept and full.warm[:6].all()
    # the items left out are still ranked, through the text bridge
    scores = head.user_scores(liked=[ITEMS[min(kept)]], recent=[])
    assert np.count_nonzero(scores.total[[i for i in range(len(ITEMS)) if i not in kept]]) > 0


def test_explaining_many_items_at_once_gives_each_item_its_own_reason() -> None:
    ranker = fit_ranker(_two_communities(), ITEMS, _embeddings(), FitParams(ease_lambda=1.0, ridge=0.1))
    scores = ranker.user_scores(liked=["i0", "i3"], recent=["i3", "i0"])
    items = [1, 2, 4, 5, 7]
    assert ranker.explain_many(scores, items) == [ranker.explain(scores, i) for i in items]


def test_the_text_weight_pays_a_bounded_price_for_reaching_new_items() -> None:
    def fig(ndcg: float, cold: float) -> dict:
        return {"ndcg@10": ndcg, "hr@10": 0.4, "cold_hr@10": cold}

    dev = {0.0: fig(0.1151, 0.0), 1.0: fig(0.1151, 0.0), 2.0: fig(0.1125, 0.013), 4.0: fig(0.0915, 0.025)}
    assert choose_text_weight(dev) == 2.0  # 2.3 % below the best, and it reaches new items
    assert choose_text_weight(dev, tolerance=0.01) == 0.0  # too dear: ties go to the smaller weight
    assert choose_text_weight({w: fig(r["ndcg@10"], 0.0) for w, r in dev.items()}) == 0.0
    assert choose_text_weight({0.0: fig(0.10, 0.0), 1.0: fig(0.11, 0.01)}) == 1.0


def test_the_window_is_the_shortest_within_a_percent_of_the_best() -> None:
    from trainer.neighbour_fit import choose_window

    dev = {100: {"ndcg@10": 0.100}, 200: {"ndcg@10": 0.1145}, 500: {"ndcg@10": 0.1150}, 1000: {"ndcg@10": 0.1151}}
    assert choose_window(dev) == 200
    assert choose_window(dev, tolerance=0.0) == 1000
    assert choose_window(dev, tolerance=0.2) == 100
