"""The hybrid user–item head: cold items and new users still get scores, seen items are never recommended."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trainer.baselines import BiasBaseline, FunkSVD, popularity_scores
from trainer.recommender import (
    EncodedInteractions,
    IdIndex,
    RecommenderConfig,
    RecommenderData,
    evaluate_ranking,
    fit_recommender,
    rank_top_k,
    user_profiles,
)


def test_id_index_maps_unknown_to_zero() -> None:
    index = IdIndex(["a", "b"])
    assert index.lookup(["b", "zz", "a"]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError):
        IdIndex(["a", "a"])


def test_user_profiles_are_means_of_history_embeddings() -> None:
    emb = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    profiles = user_profiles(np.array([1, 1, 2]), np.array([1, 2, 3]), emb, n_users=3)
    assert profiles.tolist() == [[0, 0], [0.5, 0.5], [1, 1], [0, 0]]


def test_rank_top_k_excludes_history_and_unknown_row() -> None:
    scores = np.array([[9.0, 5.0, 4.0, 3.0, 2.0], [9.0, 1.0, 2.0, 3.0, 4.0]])
    history = EncodedInteractions(np.array([7, 7, 8]), np.array([1, 2, 4]), np.ones(3, np.float32))
    tops = rank_top_k(scores, np.array([7, 8]), history, k=2)
    assert tops[0].tolist() == [3, 4]
    assert tops[1].tolist() == [3, 2]


def _synthetic(seed: int = 0, n_users: int = 60, n_items: int = 80, dim: int = 16):
    """Ratings driven by item text embeddings and user tastes, so the text path carries real signal."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n_items, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    taste = rng.normal(size=(n_users, dim)).astype(np.float32)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items - 10, 25, replace=False):  # the last 10 items are never rated (cold)
            rating = float(np.clip(3.5 + 1.5 * emb[i] @ taste[u] / np.sqrt(dim) * 3 + rng.normal(0, 0.3), 1, 5))
            rows.append((f"u{u}", f"i{i}", rating, float(len(rows))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return frame, emb


def test_fitted_head_beats_bias_and_scores_cold_items() -> None:
    frame, emb = _synthetic()
    users, items = IdIndex(sorted(frame["user_id"].unique())), IdIndex([f"i{k}" for k in range(len(emb))])
    from trainer.data.splits import temporal_split

    tr, dv, te = (EncodedInteractions.from_frame(f, users, items) for f in temporal_split(frame))
    table = np.vstack([np.zeros((1, emb.shape[1]), np.float32), emb])
    n = len(users)
    fit, dev = RecommenderData(tr, tr, table, n), RecommenderData(tr, dv, table, n)
    refit, test = RecommenderData(tr.concat(dv), dv, table, n), RecommenderData(tr.concat(dv), te, table, n)
    config = RecommenderConfig(
        n_users=n, n_items=len(items), embedding_dim=emb.shape[1], dim=8, global_mean=float(tr.ratings.mean())
    )
    model, log = fit_recommender(
        config, fit, dev, refit, epochs=30, lr=1e-2, l2=0.01, batch_size=128, negatives=32, patience=4, seed=0
    )
    profiles = test.profiles()
    with torch.no_grad():
        pred = model.predict_rating(
            torch.from_numpy(te.users),
            torch.from_numpy(profiles[te.users]),
            torch.from_numpy(te.items),
            torch.from_numpy(table[te.items]),
        ).numpy()
    bias = BiasBaseline(n, len(items)).fit(tr.concat(dv))
    model_rmse = np.sqrt(np.mean((pred - te.ratings) ** 2))
    bias_rmse = np.sqrt(np.mean((bias.predict(te.users, te.items) - te.ratings) ** 2))
    assert model_rmse < bias_rmse
    assert log["rating_epochs"] >= 1 and log["ranking_epochs"] >= 1

    cold = torch.arange(len(items) - 9, len(items) + 1)  # never-rated items
    new_user = torch.zeros(len(cold), dtype=torch.long)
    out = model(
        new_user, torch.from_numpy(profiles[1:2]).repeat(len(cold), 1), cold, torch.from_numpy(table[cold.numpy()])
    )
    assert torch.isfinite(out["predicted_rating"]).all() and torch.isfinite(out["score"]).all()
    assert out["predicted_rating"].std() > 0  # text alone differentiates cold items
    ranking = evaluate_ranking(model, test, profiles)
    assert 0.0 <= ranking["ndcg@10"] <= 1.0 and ranking["users"] > 0


def test_funk_svd_learns_low_rank_structure() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(41, 3)), rng.normal(size=(31, 3))
    users, items = (
        np.repeat(np.arange(1, 41), 20),
        np.concatenate([rng.choice(np.arange(1, 31), 20, replace=False) for _ in range(40)]),
    )
    ratings = (3 + 0.5 * np.einsum("nd,nd->n", p[users], q[items])).astype(np.float32)
    data = EncodedInteractions(users, items, ratings)
    mf = FunkSVD(40, 30, factors=3, lr=0.02, reg=0.001, epochs=60, init_std=0.1).fit(data)
    mse = np.mean((mf.predict(users, items) - ratings) ** 2)
    assert mse < 0.25 * np.var(ratings)
    assert mf.score_all(np.array([1, 2])).shape == (2, 31)


def test_bias_baseline_and_popularity() -> None:
    users = np.array([1, 1, 2, 2, 3])
    items = np.array([1, 2, 1, 2, 1])
    ratings = np.array([5, 3, 4, 2, 4.5], dtype=np.float32)
    bias = BiasBaseline(3, 2, reg_user=0, reg_item=0).fit(EncodedInteractions(users, items, ratings))
    assert bias.item_bias[1] > bias.item_bias[2]
    assert popularity_scores(EncodedInteractions(users, items, ratings), 3).tolist() == [0, 3, 2, 0]
