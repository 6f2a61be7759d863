"""The labelled surge scenario folded through the worker's own alert rule, without Kafka: the ceiling (true
labels), and the two ways a model fails (missing negatives, calling everything negative)."""

from __future__ import annotations

from pathlib import Path

from ops.bench.alert_quality import offline_alert_scores, plan_tickers, scenario_events
from worker.domain.alerts import AlertRule


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
