"""``streamscore alerts forward`` against real Kafka and PostgreSQL and a local webhook on 127.0.0.1 that fails
its first attempts: every alert state change is delivered exactly once, duplicates and redeliveries are
skipped, bad records are dead-lettered, and an undeliverable alert leaves its offset uncommitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from ops.alert_forwarder import AlertForwarder
from streamscore.db.connection import make_engine
from streamscore.events import AlertEvent
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics
from tests.conftest import Schema


class Webhook:
    """A receiver that answers ``failures`` (status codes) before it starts accepting, and keeps every body."""

    def __init__(self, failures: list[int]):
        self.failures = list(failures)
        self.accepted: list[object] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                status = hook.failures.pop(0) if hook.failures else 200
                if status == 200:
                    hook.accepted.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v2/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook([503, 503, 429])
    yield hook
    hook.close()


def alert(alert_id: str, status: str, seq: int, evidence: list[str]) -> AlertEvent:
    now = datetime.now(UTC)
    return AlertEvent(
        alert_id=alert_id,
        entity="ACME",
        status=status,  # type: ignore[arg-type]
        seq=seq,
        window_start=now - timedelta(minutes=30),
        window_end=now,
        negative_count=12,
        total_count=15,
        negative_share=0.8,
        baseline_share=0.2,
        score=5.1,
        evidence=evidence,
        model_version="v1",
        ts=now,
    )


@pytest.fixture
def forwarding(stack: Settings, pg_schema: Schema, topic_prefix: str, webhook: Webhook) -> Settings:
    settings = stack.model_copy(
        update={
            "topic_prefix": topic_prefix,
            "writer_database_url": pg_schema.writer,
            "alert_webhook_url": SecretStr(webhook.url),
            "alert_forward_group": f"fwd-{uuid.uuid4().hex[:8]}",
            "alert_forward_backoff_s": 0.02,
            "alert_forward_backoff_max_s": 0.1,
            "alert_forward_give_up_s": 20.0,
        }
    )
    topics = Topics.from_settings(settings)
    create_topics(
        settings.kafka_bootstrap,
        [s for s in topics.specs_for(settings) if s.name in (topics.alerts, topics.dead_letter)],
    )
    with make_engine(pg_schema.admin).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO news_sentiment (news_id, event_ts, headline, entities, label, p_negative, p_neutral, "
                "p_positive, model_version) VALUES ('n1', now(), 'ACME recalls every widget', '{ACME}', 'negative', "
                "0.9, 0.05, 0.05, 'v1')"
            )
        )
    return settings


def produce(settings: Settings, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    topic = Topics.from_settings(settings).alerts
    for value in values:
        producer.send(topic, key=b"ACME", value=value)
    producer.flush()
    producer.close()


def test_every_state_change_is_delivered_once_through_failures(
    forwarding: Settings, webhook: Webhook, pg_schema: Schema
) -> None:
    a_raised, a_updated, a_resolved = (
        alert("A", "raised", 0, ["n1"]),
        alert("A", "updated", 1, ["n1"]),
        alert("A", "resolved", 2, ["n1"]),
    )
    b_raised = alert("B", "raised", 0, [])
    stream = [a_raised, a_updated, a_raised, b_raised, a_resolved]
    produce(forwarding, [a.model_dump_json().encode() for a in stream] + [b"not an alert"])

    report = AlertForwarder(forwarding).run(once=True)
    assert (report.delivered, report.duplicates, report.dead_lettered) == (4, 1, 1)
    assert webhook.attempts == 4 + 3  # three refused attempts (503, 503, 429), then every delivery succeeds once
    bodies = [body[0] for body in webhook.accepted]  # Alertmanager API v2: a list of alerts
    assert [(b["labels"]["alert_id"], b["annotations"]["status"]) for b in bodies] == [
        ("A", "raised"),
        ("A", "updated"),
        ("B", "raised"),
        ("A", "resolved"),
    ]
    assert bodies[0]["labels"]["alertname"] == "NegativeNewsSurge" and "endsAt" not in bodies[0]
    assert "endsAt" in bodies[3] and bodies[0]["annotations"]["evidence"] == "ACME recalls every widget"
    admin = make_engine(pg_schema.admin)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alert_deliveries")).scalar() == 4
        assert conn.execute(text("SELECT max(attempts) FROM alert_deliveries")).scalar() == 4
        dead = conn.execute(text("SELECT error_code, payload FROM dead_letters")).all()
    assert [tuple(d) for d in dead] == [("invalid_alert", "not an alert")]

    # the same group again: its offsets were committed, so nothing is read twice
    assert AlertForwarder(forwarding).run(once=True).to_dict() == {
        "delivered": 0,
        "duplicates": 0,
        "dead_lettered": 0,
        "attempts": 0,
    }
    # a new group rereads the topic (a lost offset): the delivery ledger still stops a second post
    regrouped = forwarding.model_copy(update={"alert_forward_group": forwarding.alert_forward_group + "-again"})
    again = AlertForwarder(regrouped).run(once=True)
    assert (again.delivered, again.duplicates) == (0, 5) and len(webhook.accepted) == 4

    # another format is another target: Slack gets its own messages
    slack = regrouped.model_copy(
        update={"alert_webhook_format": "slack", "alert_forward_group": "slack-" + uuid.uuid4().hex[:6]}
    )
    assert AlertForwarder(slack).run(once=True).delivered == 4
    assert webhook.accepted[-1]["text"].startswith(":large_green_circle: Negative-news surge resolved for *ACME*")
    admin.dispose()


def test_an_undeliverable_alert_exits_1_and_keeps_its_offset(
    forwarding: Settings, webhook: Webhook, pg_schema: Schema
) -> None:
    webhook.failures = [400]
    produce(forwarding, [alert("C", "raised", 0, []).model_dump_json().encode()])
    env = {
        **os.environ,
        "STREAMSCORE_KAFKA_BOOTSTRAP": forwarding.kafka_bootstrap,
        "STREAMSCORE_TOPIC_PREFIX": forwarding.topic_prefix,
        "STREAMSCORE_WRITER_DATABASE_URL": pg_schema.writer,
        "STREAMSCORE_ALERT_WEBHOOK_URL": webhook.url,
        "STREAMSCORE_ALERT_FORWARD_GROUP": forwarding.alert_forward_group,
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops", "alerts", "forward", "--once"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "answered 400" in result.stderr and result.stdout == ""
    # the next start delivers it: the offset had not moved past it
    report = AlertForwarder(forwarding).run(once=True)
    assert report.delivered == 1 and webhook.accepted[-1][0]["labels"]["alert_id"] == "C"
