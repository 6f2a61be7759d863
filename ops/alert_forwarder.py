"""``streamscore alerts forward``: consume the ``alerts`` topic in its own consumer group and deliver every alert
state change to a webhook (Alertmanager or Slack, :mod:`streamscore.alert_webhooks`).

At least once, deduplicated: for each record, in partition order, the forwarder skips a state change already in
``alert_deliveries``, else posts it (retrying network errors, 429 and 5xx with jittered exponential back-off),
records the delivery, and only then commits the record's offset. A crash after the post and before the record
can deliver that one state change again; nothing is ever skipped. A record that is not an alert goes to the
dead-letter topic and table with the reason. When a delivery cannot succeed (a 4xx, or retries past
``alert_forward_give_up_s``) the forwarder stops with an error and leaves the offset where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from streamscore.alert_webhooks import WebhookFormat, delivery_key, is_retryable, retry_delays, webhook_body
from streamscore.db.connection import writer_url
from streamscore.db.tables import AlertDelivery
from streamscore.errors import StreamscoreError
from streamscore.events import AlertEvent
from streamscore.security import kafka_python_options
from streamscore.settings import Settings
from streamscore.topics import Topics
from worker.adapters.results_store import Store, insert_dead_letters
from worker.domain.intake import Record, dead_letter

logger = logging.getLogger(__name__)
EVIDENCE_HEADLINES = 3


class DeliveryFailed(StreamscoreError):
    """An alert could not be delivered; its offset stays uncommitted so the next start tries again."""


@dataclass
class ForwardReport:
    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    attempts: int = 0

    def to_dict(self) -> dict:
        return {
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "attempts": self.attempts,
        }


Post = Callable[[bytes], int | None]
"""Send one body; the HTTP status, or None when no response came (connection refused, timeout)."""


def http_post(url: str, timeout_s: float) -> Post:
    def post(body: bytes) -> int | None:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    return post


def target_digest(fmt: WebhookFormat, url: str) -> str:
    """Who an alert went to, without storing the URL (a Slack URL is a credential)."""
    return f"{fmt.value}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


class AlertForwarder:
    def __init__(self, settings: Settings, post: Post | None = None, sleep: Callable[[float], None] = time.sleep):
        if settings.alert_webhook_url is None:
            raise StreamscoreError("set STREAMSCORE_ALERT_WEBHOOK_URL: where should alerts be delivered?")
        url = settings.alert_webhook_url.get_secret_value()
        self.settings = settings
        self.format = WebhookFormat(settings.alert_webhook_format)
        self.target = target_digest(self.format, url)
        self.post = post or http_post(url, settings.alert_forward_timeout_s)
        self.sleep = sleep
        self.topics = Topics.from_settings(settings)
        self.store = Store(writer_url(settings), settings.db_retry_max_s)

    # -- one record -------------------------------------------------------------------------------------------
    def handle(self, record: Record, report: ForwardReport, send_dead_letter: Callable[[bytes, bytes], None]) -> None:
        try:
            alert = AlertEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            letter = dead_letter(record, "invalid_alert", f"not an alert event: {exc.errors()[0]['msg']}")
            if self.store.transaction(lambda conn: insert_dead_letters(conn, [letter])):
                send_dead_letter(
                    f"{letter.source_topic}/{letter.partition}/{letter.offset}".encode(),
                    letter.model_dump_json().encode(),
                )
            report.dead_lettered += 1
            return
        if self.delivered(alert):
            report.duplicates += 1
            return
        status, attempts = self.deliver(alert)
        report.attempts += attempts
        self.store.transaction(lambda conn: self._record(conn, alert, attempts, status))
        report.delivered += 1
        logger.info(
            "alert delivered",
            extra={"alert_id": alert.alert_id, "status": alert.status, "attempts": attempts, "http": status},
        )

    def delivered(self, alert: AlertEvent) -> bool:
        alert_id, status, seq = delivery_key(alert)
        query = select(AlertDelivery.alert_id).where(
            AlertDelivery.alert_id == alert_id,
            AlertDelivery.status == status,
            AlertDelivery.seq == seq,
            AlertDelivery.target == self.target,
        )
        return self.store.transaction(lambda conn: conn.execute(query).first() is not None)

    def deliver(self, alert: AlertEvent) -> tuple[int, int]:
        """Post until a 2xx; returns (status, attempts). Raises :class:`DeliveryFailed` when it cannot succeed."""
        headlines = self.store.transaction(lambda conn: _headlines(conn, alert.evidence[:EVIDENCE_HEADLINES]))
        body = json.dumps(webhook_body(self.format, alert, headlines, self.settings.alert_dashboard_url)).encode()
        s = self.settings
        started = time.monotonic()
        delays = retry_delays(s.alert_forward_backoff_s, s.alert_forward_backoff_max_s)
        attempts = 0
        while True:
            attempts += 1
            status = self.post(body)
            if status is not None and 200 <= status < 300:
                return status, attempts
            if not is_retryable(status):
                raise DeliveryFailed(
                    f"alert {alert.alert_id} ({alert.status}): the webhook answered {status}; fix the URL or "
                    "format, the alert is retried on the next start"
                )
            delay = next(delays)
            if time.monotonic() - started + delay > s.alert_forward_give_up_s:
                raise DeliveryFailed(
                    f"alert {alert.alert_id} ({alert.status}): still failing after {attempts} attempts "
                    f"(last: {status or 'no response'}); retried on the next start"
                )
            logger.warning(
                "alert delivery failed; retrying",
                extra={"alert_id": alert.alert_id, "http": status, "retry_in_s": round(delay, 2)},
            )
            self.sleep(delay)

    def _record(self, conn, alert: AlertEvent, attempts: int, status: int) -> None:
        alert_id, state, seq = delivery_key(alert)
        row = {
            "alert_id": alert_id,
            "status": state,
            "seq": seq,
            "target": self.target,
            "attempts": attempts,
            "http_status": status,
            "delivered_at": datetime.now(UTC),
        }
        conn.execute(insert(AlertDelivery.__table__).on_conflict_do_nothing(), [row])

    # -- the consumer loop ------------------------------------------------------------------------------------
    def run(self, once: bool = False, poll_s: float = 1.0) -> ForwardReport:
        """Forward until stopped (or, with ``once``, until every assigned partition is caught up)."""
        from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata

        s = self.settings
        security = kafka_python_options(s)
        consumer = KafkaConsumer(
            self.topics.alerts,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.alert_forward_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=20,
            # a record may be retried for give_up_s before the next poll
            max_poll_interval_ms=int((s.alert_forward_give_up_s + 120) * 1000),
            **security,
        )
        producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", **security)
        report = ForwardReport()

        def send_dead_letter(key: bytes, value: bytes) -> None:
            producer.send(self.topics.dead_letter, key=key, value=value).get(timeout=30)

        try:
            while True:
                batches = consumer.poll(timeout_ms=int(poll_s * 1000))
                for tp, messages in batches.items():
                    for message in messages:
                        record = Record(tp.topic, tp.partition, message.offset, message.value, message.timestamp)
                        self.handle(record, report, send_dead_letter)
                        consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "", -1)})
                if once and not batches and self._caught_up(consumer):
                    return report
        finally:
            consumer.close(autocommit=False)
            producer.close()
            self.store.dispose()

    @staticmethod
    def _caught_up(consumer) -> bool:
        assignment = consumer.assignment()
        if not assignment:
            return False
        ends = consumer.end_offsets(list(assignment))
        return all(consumer.position(tp) >= ends[tp] for tp in assignment)


def _headlines(conn, news_ids: list[str]) -> list[str]:
    if not news_ids:
        return []
    rows = conn.execute(
        text("SELECT news_id, headline FROM news_sentiment WHERE news_id = ANY(:ids)"), {"ids": list(news_ids)}
    )
    found = dict(rows.all())
    return [found[i] for i in news_ids if i in found]
