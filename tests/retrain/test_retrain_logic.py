"""The learning loop's pure parts: feedback contracts, the latest-correction rule, the held-out cut, the
gate, the catalog extension and the head-only update, each on small data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from ops.errors import IntervalError
from ops.time_windows import parse_interval, parse_since
from streamscore.events import FeedbackEvent
from streamscore.neighbour_ranker import NeighbourRanker, RankerParams, SparseRows
from trainer.continual import (
    extended_catalog,
    latest_corrections,
    recent_cut,
    stored_interactions,
    update_sentiment_head,
)
from trainer.retrain_gate import GateLimits, judge


def test_feedback_events_carry_exactly_the_fields_of_their_kind() -> None:
    ok = FeedbackEvent.model_validate(
        {"feedback_id": "f1", "kind": "sentiment_correction", "news_id": "n1", "label": "negative", "ts": 0}
    )
    assert ok.label == "negative" and ok.alert_id is None
    verdict = FeedbackEvent.model_validate(
        {"feedback_id": "f2", "kind": "alert_verdict", "alert_id": "a1", "verdict": "false_alarm", "ts": 0, "by": "ana"}
    )
    assert verdict.by == "ana"
    for bad, message in (
        ({"kind": "sentiment_correction", "news_id": "n1"}, "needs label"),
        ({"kind": "alert_verdict", "verdict": "useful"}, "needs alert_id"),
        ({"kind": "alert_verdict", "alert_id": "a", "verdict": "useful", "news_id": "n"}, "carries no news_id"),
        ({"kind": "sentiment_correction", "news_id": "n", "label": "bullish"}, "label"),
        ({"kind": "rating", "news_id": "n", "label": "neutral"}, "kind"),
    ):
        with pytest.raises(ValidationError, match=message):
            FeedbackEvent.model_validate({"feedback_id": "f", "ts": 0, **bad})


def test_the_latest_correction_of_an_article_wins_and_disagreements_are_counted() -> None:
    ts = pd.to_datetime([1, 3, 2, 5], unit="s", utc=True)
    rows = pd.DataFrame(
        {
            "feedback_id": ["a", "b", "c", "d"],
            "news_id": ["n1", "n1", "n1", "n2"],
            "label": ["negative", "neutral", "positive", "positive"],
            "event_ts": ts,
        }
    )
    latest, contradicted = latest_corrections(rows)
    assert dict(zip(latest["news_id"], latest["label"])) == {"n1": "neutral", "n2": "positive"}
    assert contradicted == 1
    same = rows.assign(label="negative")
    assert latest_corrections(same)[1] == 0


def test_the_held_out_slice_is_the_most_recent_share_in_time() -> None:
    ts = pd.Series(pd.to_datetime(np.arange(100)[::-1], unit="s", utc=True))
    cut = recent_cut(ts, 0.1)
    assert cut == pd.Timestamp(90, unit="s", tz="UTC")
    assert int((ts >= cut).sum()) == 10
    assert recent_cut(ts[:5], 0.1, min_rows=3) is None  # too few rows to hold any out
    assert int((ts >= recent_cut(ts, 0.01, min_rows=20)).sum()) == 20


def test_a_stored_click_without_a_rating_counts_as_liked() -> None:
    clicks = pd.DataFrame(
        {
            "user_id": ["u"] * 2,
            "item_id": ["a", "b"],
            "rating": [None, 2.0],
            "event_ts": pd.to_datetime([10, 20], unit="s", utc=True),
        }
    )
    frame = stored_interactions(clicks, 4.0)
    assert frame["rating"].tolist() == [4.0, 2.0] and frame["timestamp"].tolist() == [10, 20]


def test_the_gate_refuses_a_challenger_worse_beyond_any_tolerance() -> None:
    champion = {"sentiment_accuracy": 0.80, "sentiment_macro_f1": 0.75, "recent_ndcg@10": 0.10}
    assert judge(champion, {**champion, "sentiment_accuracy": 0.795}).publish  # within 0.01
    worse = judge(champion, {**champion, "sentiment_accuracy": 0.70})
    assert not worse.publish and "sentiment accuracy" in worse.reason
    ranking = judge(champion, {**champion, "recent_ndcg@10": 0.099})
    assert not ranking.publish and "nDCG@10" in ranking.reason
    assert judge(champion, {**champion, "recent_ndcg@10": 0.099}, GateLimits(max_ndcg_drop=0.01)).publish
    no_slice = judge({**champion, "recent_ndcg@10": None}, {**champion, "recent_ndcg@10": None})
    assert no_slice.publish and "not measured" in no_slice.checks[-1].limit
    rated = {**champion, "review_rmse": 0.60, "movielens_rmse": 0.86}
    assert judge(rated, {**rated, "review_rmse": 0.615}).publish
    worse_stars = judge(rated, {**rated, "review_rmse": 0.65})
    assert not worse_stars.publish and "review-star RMSE" in worse_stars.reason


def test_intervals_and_look_backs_parse_or_say_why_not() -> None:
    assert parse_interval("1h") == 3600 and parse_interval("90s") == 90 and parse_interval("15m") == 900
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_since("2026-11-01T00:00:00", now) == datetime(2026, 11, 1, tzinfo=UTC)
    for bad in ("soon", "0h", "-1m"):
        with pytest.raises(IntervalError):
            parse_interval(bad)
    with pytest.raises(IntervalError, match="ISO-8601"):
        parse_since("yesterday")


def test_the_catalog_grows_by_the_stream_items_the_champion_does_not_know() -> None:
    empty = SparseRows.top_k(np.zeros((2, 2), np.float32), 2)
    emb = np.eye(2, dtype=np.float32)
    champion = NeighbourRanker(["a", "b"], empty, empty, np.zeros((2, 2), np.float32), emb, np.ones(2), RankerParams())
    ids, vectors, added = extended_catalog(champion, {"b": np.ones(2), "z": np.array([0.6, 0.8]), "c": np.zeros(2)})
    assert ids == ["a", "b", "c", "z"] and added == ["c", "z"]
    assert vectors.shape == (4, 2) and np.allclose(vectors[1], [0, 1])  # a known item keeps its own vector


def test_the_head_update_honours_weighted_corrections_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3]], np.float32)
    labels = rng.integers(0, 3, 600)
    features = centres[labels] + rng.normal(0, 1, (600, 3)).astype(np.float32)
    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.zero_()
    # five headlines between classes 0 and 2, nearer 0 (the champion says 0), that people say are class 2
    corrections = np.array([[1.6, 0, 1.2]] * 5, np.float32) + rng.normal(0, 0.05, (5, 3)).astype(np.float32)
    x = np.vstack([features, corrections])
    y = np.r_[labels, [2] * 5]
    is_correction = np.r_[np.zeros(600, bool), np.ones(5, bool)]
    update = update_sentiment_head(head, x, y, np.where(is_correction, 0.1, 1.0), is_correction)
    assert update.corrections_fit < 1.0  # too light a weight: the public data wins
    update = update_sentiment_head(head, x, y, np.where(is_correction, 40.0, 1.0), is_correction)
    assert update.corrections_fit == 1.0 and update.public_train_accuracy > 0.8


def test_the_champion_is_judged_over_the_challengers_catalog_as_it_serves() -> None:
    from trainer.continual import served_scorer
    from trainer.neighbour_fit import Histories

    dense = np.array([[0, 2.0], [1.0, 0]], np.float32)
    rows = SparseRows.top_k(dense, 2)
    emb = np.array([[1, 0], [0, 1]], np.float32)
    text_map = np.array([[0.5, 0.5], [0.5, 0.5]], np.float32)
    champion = NeighbourRanker(["a", "b"], rows, SparseRows.top_k(np.zeros((2, 2), np.float32), 2), text_map, emb,
                               np.array([3.0, 1.0]), RankerParams(text_weight=1.0))  # fmt: skip
    catalog = ["a", "b", "new"]
    vectors = np.vstack([emb, [[1.0, 1.0]]]).astype(np.float32)
    histories = Histories(all={"u": [0], "cold": [2]}, liked={"u": [0], "cold": [2]})
    scores = served_scorer(champion, histories, catalog, vectors)(["u", "cold"])
    assert scores.shape == (2, 3)
    assert scores[0, 1] == pytest.approx(2.0)  # a → b from the neighbour weights
    assert scores[0, 2] == pytest.approx(1.0)  # the new item through the text bridge: γ · (G[a] · e_new)
    assert scores[1].tolist() == [3.0, 1.0, 0.0]  # only an unknown item in the history: popularity
    with pytest.raises(ValueError, match="start with the ranker's own items"):
        served_scorer(champion, histories, ["b", "a", "new"], vectors)
