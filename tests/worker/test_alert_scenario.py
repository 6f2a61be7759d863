"""The labelled surge scenario of ``bench alerts`` and its scoring, without Kafka: the labels are what the
headlines say, every run replays the same headlines at the same times, precision/recall count right, and the
worker's own rule folded offline over it gives the ceiling (true labels) and the two ways a model fails."""

from __future__ import annotations

import json
from pathlib import Path

from ops.bench.alert_quality import alert_scores, labelled_stream, offline_alert_scores, plan_tickers, scenario_events
from streamscore.settings import Settings
from streamscore.topics import Topics
from worker.domain.alerts import AlertRule


def test_plans_hold_the_labelled_share_of_negatives_and_never_reuse_a_headline(data_dir: Path) -> None:
    plans = plan_tickers(data_dir, tickers=5, per_ticker=16, surge_negatives=8, calm_negatives=4)
    assert [p.surge for p in plans] == [True] * 5 + [False] * 5
    for plan in plans:
        assert len(plan.headlines) == 16
        assert sum(neg for _, neg in plan.headlines) == (8 if plan.surge else 4)
    texts = [t for p in plans for t, _ in p.headlines]
    assert len(texts) == len(set(texts))


def test_every_run_replays_the_same_headlines_at_the_same_times(data_dir: Path) -> None:
    plans = plan_tickers(data_dir, tickers=3)
    topics = Topics.from_settings(Settings(_env_file=None))
    a, labels_a = labelled_stream(plans, topics, "AA", now_ms=1_800_000_000_000)
    b, labels_b = labelled_stream(plans, topics, "BB", now_ms=1_800_000_000_000)
    strip = [(json.loads(r.value)["headline"], json.loads(r.value)["ts"]) for r in a]
    assert strip == [(json.loads(r.value)["headline"], json.loads(r.value)["ts"]) for r in b]
    assert sorted(labels_a.values()) == sorted(labels_b.values()) and not set(labels_a) & set(labels_b)
    stamps = [ts for _, ts in strip]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] <= 1_200_000


def test_a_tickers_headlines_share_its_key_so_the_worker_folds_them_in_order(data_dir: Path) -> None:
    plans = plan_tickers(data_dir, tickers=3)
    records, labels = labelled_stream(plans, Topics.from_settings(Settings(_env_file=None)), "AA", 1_800_000_000_000)
    assert {r.key for r in records} == set(labels)
    assert all(json.loads(r.value)["tickers"] == [r.key] for r in records)


def test_precision_and_recall_over_labelled_tickers_only() -> None:
    labels = {"S1": True, "S2": True, "S3": True, "C1": False, "C2": False}
    scores = alert_scores({"S1", "S2", "C1", "SPY"}, labels)
    assert (scores["alerted_surges"], scores["false_alarms"]) == (2, 1)
    assert scores["precision"] == round(2 / 3, 4) and scores["recall"] == round(2 / 3, 4)
    assert alert_scores(set(), labels)["precision"] == 0.0


def test_true_labels_raise_every_surge_and_no_calm_ticker(data_dir: Path) -> None:
    plans = plan_tickers(data_dir)
    truth = {text: negative for plan in plans for text, negative in plan.headlines}
    scores = offline_alert_scores(plans, truth.__getitem__, AlertRule())
    assert scores["surges"] == scores["calm"] == 20
    assert scores["alerted_surges"] == 20 and scores["false_alarms"] == 0


def test_a_blind_model_raises_nothing_and_an_alarmist_one_raises_everything(data_dir: Path) -> None:
    plans = plan_tickers(data_dir)
    blind = offline_alert_scores(plans, lambda _: False, AlertRule())
    assert blind["alerted_surges"] == 0 and blind["recall"] == 0.0
    alarmist = offline_alert_scores(plans, lambda _: True, AlertRule())
    assert alarmist["alerted_surges"] == 20 and alarmist["false_alarms"] == 20 and alarmist["precision"] == 0.5


def test_the_scenario_order_is_the_same_for_every_tag(data_dir: Path) -> None:
    plans = plan_tickers(data_dir)
    a, _ = scenario_events(plans, "A", 1_000_000)
    b, _ = scenario_events(plans, "B", 1_000_000)
    assert [e.headline for e in a] == [e.headline for e in b]
    assert [e.ts_ms for e in a] == sorted(e.ts_ms for e in a)
