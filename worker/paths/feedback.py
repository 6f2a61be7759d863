"""The feedback path: people's sentiment corrections and alert verdicts, validated and stored once each.

Nothing is scored here; the retrainer (``streamscore retrain``) reads the corrections, and the views
``v_sentiment_corrections`` and ``v_alert_precision`` show them. A correction may name an article that is
still in flight on ``news`` (Kafka orders nothing across topics): it is stored all the same and joined when
the retrainer reads it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection

from streamscore.db.tables import Feedback
from streamscore.events import DeadLetterEvent, FeedbackEvent
from worker.adapters import results_store as sql
from worker.domain.intake import Record
from worker.paths.core import BatchCore, BatchReport


class FeedbackPath:
    def __init__(self, core: BatchCore):
        self.core = core

    def process(self, records: Sequence[Record]) -> BatchReport:
        core = self.core
        started = time.perf_counter()
        _, report, accepted, dead = core.begin(core.topics.feedback, records, FeedbackEvent, lambda e: e.feedback_id)
        rows = [
            {
                "feedback_id": a.event.feedback_id,
                "kind": a.event.kind,
                "news_id": a.event.news_id,
                "label": a.event.label,
                "alert_id": a.event.alert_id,
                "verdict": a.event.verdict,
                "given_by": a.event.by,
                "event_ts": a.event.ts,
                "source_partition": a.record.partition,
                "source_offset": a.record.offset,
                "ingested_at": a.record.ingested_at,
            }
            for a in sorted(accepted, key=lambda a: a.event.feedback_id)
        ]

        def work(conn: Connection) -> list[DeadLetterEvent]:
            inserted = sql.insert_new(conn, Feedback, rows, "feedback_id")
            new, report.redelivered, dupes = core.sort_redeliveries(
                conn, Feedback, "feedback_id", accepted, inserted, lambda e: e.feedback_id
            )
            report.processed = len(new)
            core.finish(conn, report, dead + dupes, [])
            return dead + dupes

        all_dead = core.store.transaction(work)
        return core.account(report, records, all_dead, started)
