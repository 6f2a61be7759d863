"""What every fault case ends with: the stream replayed, the faults injected, then a reconciliation in
PostgreSQL (each valid input event exactly one result row, each invalid one exactly one dead letter, each surge
one ``raised``), and the figures appended to ``.stack/reliability.jsonl`` for docs/reliability.md."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

from ops.replay import Scenario
from tests.streaming.conftest import Deployment

FIGURES = Path(".stack") / "reliability.jsonl"


def record(case: str, **figures: object) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as handle:
        handle.write(json.dumps({"case": case, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}) + "\n")


def reconcile(deployment: Deployment, scenario: Scenario) -> dict:
    """Exactly one row per valid event, one dead letter per invalid one, one raised alert per surge."""
    snap = deployment.wait_accounted(scenario.expected_accounted(), timeout_s=300)
    ok = Counter(r.topic for r in scenario.stream() if r.expect == "ok")
    news_rows = deployment.scalar("SELECT count(*) FROM news_sentiment")
    click_rows = deployment.scalar("SELECT count(*) FROM click_events")
    assert news_rows == ok[deployment.topics.news], "news: lost or doubled"
    assert click_rows == ok[deployment.topics.clicks], "clicks: lost or doubled"
    expected_dead = Counter(r.expect for r in scenario.stream() if r.expect != "ok")
    assert snap.dead_letters == dict(expected_dead)
    raised = [a["entity"] for a in snap.alerts if a["status"] == "raised"]
    if scenario.surge_ticker:
        assert raised == [scenario.surge_ticker]
    seen = set(deployment.rows("SELECT user_id, item_id FROM click_events"))
    for user, items in deployment.rows("SELECT user_id, items FROM recommendations_latest"):
        assert not {(user, it["item_id"]) for it in items} & seen
    return {
        "events": len(scenario.stream()),
        "news_rows": news_rows,
        "click_rows": click_rows,
        "dead_letters": sum(expected_dead.values()),
        "raised": len(raised),
    }


def redelivered(deployment: Deployment) -> int:
    total = 0
    for worker in deployment.workers:
        if worker.process.poll() is None:
            total += int(
                sum(
                    v
                    for k, v in deployment.metrics(worker).items()
                    if k.startswith("streamscore_events_redelivered_total")
                )
            )
    return total


def start(deployment: Deployment, scenario: Scenario, workers: int) -> None:
    scenario.build(deployment.settings.data_dir, deployment.topics)
    procs = [deployment.start_worker(wait=False) for _ in range(workers)]
    for proc in procs:
        proc.wait_ready()
    deployment.produce(scenario.catalog())
    deployment.wait_items(len(scenario.catalog()))


def produce_in_background(deployment: Deployment, scenario: Scenario) -> threading.Thread:
    thread = threading.Thread(target=deployment.produce, args=(scenario.stream(),), daemon=True)
    thread.start()
    return thread


def wait_fraction(deployment: Deployment, total: int, fraction: float, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while (done := deployment.snapshot().accounted) < total * fraction and time.monotonic() < deadline:
        time.sleep(0.2)
    return done
