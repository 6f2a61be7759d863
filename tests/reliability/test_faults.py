"""Fault injection against the real stack; every case ends with a reconciliation in PostgreSQL: each valid
input event has exactly one result row, each invalid one exactly one dead letter, each surge one `raised`.

Figures (events, dead letters, redeliveries, recovery time) are appended to ``.stack/reliability.jsonl`` so
that docs/reliability.md can quote a real run. The replicated cluster's broker loss is in test_broker_loss.py.
"""

from __future__ import annotations

import time

import pytest

from ops.replay import Scenario
from streamscore.settings import Settings
from tests.reliability.conftest import Deployment
from tests.reliability.reconcile import produce_in_background, reconcile, record, redelivered, start, wait_fraction


def test_kill_9_one_of_two_workers_mid_stream(deployment: Deployment) -> None:
    scenario = Scenario(news=1500, clicks=2500, surge_ticker="ACME", surge_size=30, bad=True, run="kill9")
    start(deployment, scenario, workers=2)
    assert all((w.ready() or {}).get("news_store_overlap") is True for w in deployment.workers)  # the suite's mode
    producer = produce_in_background(deployment, scenario)
    at_kill = wait_fraction(deployment, scenario.expected_accounted(), 0.3)
    victim = deployment.workers[0]
    victim.process.kill()  # SIGKILL: no shutdown, no commit
    assert victim.process.wait() == -9 and at_kill < scenario.expected_accounted(), "the kill must land mid-stream"
    killed_at = time.monotonic()
    deployment.start_worker()
    producer.join()
    figures = reconcile(deployment, scenario)
    assert figures["news_rows"] + figures["click_rows"] + figures["dead_letters"] == figures["events"]
    record(
        "kill -9 one of two workers",
        **figures,
        accounted_at_kill=at_kill,
        recovery_s=round(time.monotonic() - killed_at, 1),
        redelivered=redelivered(deployment),
    )


def test_postgres_outage_is_retried_without_committing_offsets(deployment: Deployment, stack: Settings) -> None:
    if stack.database_url:
        pytest.skip("PostgreSQL comes from DATABASE_URL: this test stops only a cluster that `stack up` started")
    from ops.stack.postgres import LocalPostgres

    scenario = Scenario(news=800, clicks=1200, surge_ticker="ACME", surge_size=30, bad=True, run="pgdown")
    start(deployment, scenario, workers=1)
    worker = deployment.workers[0]
    producer = produce_in_background(deployment, scenario)
    wait_fraction(deployment, scenario.expected_accounted(), 0.2)
    postgres = LocalPostgres(stack)
    assert postgres.stop(), "the local cluster was not started by `stack up`"
    try:
        time.sleep(10)
        ready_during = deployment.ready(worker)
    finally:
        assert postgres.start() == "started"
    restarted = time.monotonic()
    producer.join()
    figures = reconcile(deployment, scenario)
    retries = deployment.metrics(worker)["streamscore_db_retries_total"]
    assert retries > 0 and ready_during["database_ok"] is False
    record(
        "PostgreSQL down for 10 s",
        **figures,
        db_retries=int(retries),
        catch_up_s=round(time.monotonic() - restarted, 1),
        redelivered=redelivered(deployment),
    )


def test_kafka_broker_restart_mid_stream(deployment: Deployment, stack: Settings) -> None:
    from ops.stack.kafka import KafkaCluster

    scenario = Scenario(news=600, clicks=1200, surge_ticker="ACME", surge_size=30, bad=True, run="kafkarestart")
    start(deployment, scenario, workers=2)
    half = len(scenario.stream()) // 2
    stream = scenario.stream()
    deployment.produce(stream[:half])
    wait_fraction(deployment, scenario.expected_accounted(), 0.25)
    broker = KafkaCluster(stack)
    assert broker.stop(), "the broker was not started by `stack up`"
    try:
        time.sleep(3)
    finally:
        assert broker.start() == "started"
    restarted = time.monotonic()
    deployment.produce(stream[half:])
    figures = reconcile(deployment, scenario)
    assert all(w.process.poll() is None for w in deployment.workers), "a worker died with the broker"
    record(
        "Kafka broker restart",
        **figures,
        catch_up_s=round(time.monotonic() - restarted, 1),
        redelivered=redelivered(deployment),
    )


def test_third_worker_joins_and_leaves(deployment: Deployment) -> None:
    scenario = Scenario(
        news=1000, clicks=3000, cold_users=3, surge_ticker="ACME", surge_size=30, bad=True, run="rebalance"
    )
    start(deployment, scenario, workers=2)
    producer = produce_in_background(deployment, scenario)
    wait_fraction(deployment, scenario.expected_accounted(), 0.2)
    third = deployment.start_worker()
    wait_fraction(deployment, scenario.expected_accounted(), 0.6)
    third.stop()  # SIGTERM: a clean leave, partitions move back
    producer.join()
    figures = reconcile(deployment, scenario)
    # profiles stayed right: each user's latest recommendation was triggered by their last click
    latest = dict(deployment.rows("SELECT user_id, trigger_event_id FROM recommendations_latest"))
    last_click = dict(
        deployment.rows(
            "SELECT DISTINCT ON (user_id) user_id, event_id FROM click_events ORDER BY user_id, event_ts DESC, "
            "event_id DESC"
        )
    )
    assert latest == last_click
    record("third worker joins and leaves", **figures, redelivered=redelivered(deployment))
