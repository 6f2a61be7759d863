"""The steps every path shares: decode and de-duplicate, cut texts into inference calls, sort what a
redelivery brought back, store the dead letters, produce the outputs, and account for the batch.

Each path (:mod:`worker.paths.news`, :mod:`worker.paths.items`, :mod:`worker.paths.clicks`) runs one
micro-batch as one PostgreSQL transaction (retried on transient failures) in which the results, the dead
letters and the state they move (alert state, user histories) are written together; outputs are produced to
Kafka and their delivery awaited *before* that transaction commits, and the agent acknowledges the records
only after it has. So:

* a crash before the commit redelivers the batch; it is scored again and outputs may be emitted again
  (at-least-once on the output topics, every output carrying a key to deduplicate on);
* a crash after the commit but before the offsets are committed redelivers records whose rows exist: they
  are recognised by their source partition and offset and absorbed, so PostgreSQL holds each result once;
* a record with an id already stored from *another* record is a ``duplicate_id`` dead letter.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection

from streamscore.events import DeadLetterEvent, Event
from streamscore.scorer import CallUsage, Scorer
from streamscore.topics import Topics
from worker.adapters import prometheus as m
from worker.adapters import results_store as sql
from worker.adapters.model_holder import ModelHolder
from worker.adapters.results_store import Store
from worker.domain.alerts import AlertRule
from worker.domain.batch_policy import BatchPolicy, MicroBatcher, estimate_tokens
from worker.domain.intake import Accepted, Record, dead_letter, decode

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Output:
    """A record to produce: topic, key and JSON value."""

    topic: str
    key: str
    value: bytes


Emit = Callable[[list[Output]], None]
"""Produces the outputs and returns once the broker has acknowledged all of them (raises otherwise)."""


@dataclass
class BatchReport:
    """What one batch did; ``received == processed + dead_lettered + redelivered`` always holds."""

    topic: str
    received: int = 0
    processed: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    outputs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    model_version: str = ""

    def merge(self, other: BatchReport) -> None:
        """Add another report of the same topic into this one (a batch retried record by record)."""
        self.received += other.received
        self.processed += other.processed
        self.dead_lettered += other.dead_lettered
        self.redelivered += other.redelivered
        for topic, n in other.outputs.items():
            self.outputs[topic] += n


@dataclass(frozen=True)
class PipelineConfig:
    batch: BatchPolicy = BatchPolicy()
    rule: AlertRule = AlertRule()
    max_future_skew_s: float = 86400.0
    recommend_k: int = 10
    cold_start_min_history: int = 1
    catalog_refresh_s: float = 2.0
    popular_window_s: float = 3600.0
    alert_states_kept: int = 10_000


def to_json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def report_line(report: BatchReport) -> str:
    return json.dumps(
        {
            "topic": report.topic,
            "in": report.received,
            "ok": report.processed,
            "dead": report.dead_lettered,
            "again": report.redelivered,
        }
    )


def split_duplicates(
    accepted: list[Accepted[E]], key: Callable[[E], str]
) -> tuple[list[Accepted[E]], list[DeadLetterEvent]]:
    """Within one batch the first record of an id wins; later ones are duplicates of it."""
    first: dict[str, Accepted[E]] = {}
    dead: list[DeadLetterEvent] = []
    for acc in accepted:
        ident = key(acc.event)
        if ident in first:
            orig = first[ident].record
            dead.append(
                dead_letter(
                    acc.record,
                    "duplicate_id",
                    f"id {ident!r} already used by {orig.topic}/{orig.partition}/{orig.offset}",
                )
            )
        else:
            first[ident] = acc
    return list(first.values()), dead


class BatchCore:
    """What the paths share: the model holder, the store, the topic names, the producer and the config."""

    def __init__(self, models: ModelHolder, store: Store, topics: Topics, emit: Emit, config: PipelineConfig):
        self.models = models
        self.store = store
        self.topics = topics
        self.emit = emit
        self.config = config

    def begin(
        self, topic: str, records: Sequence[Record], model: type[E], ident: Callable[[E], str] | None = None
    ) -> tuple[Scorer, BatchReport, list[Accepted[E]], list[DeadLetterEvent]]:
        """The scorer for the whole batch (a hot reload swaps between batches), the report, and the records
        split into valid events (first of each id) and dead letters."""
        scorer = self.models.scorer
        report = BatchReport(topic, received=len(records), model_version=scorer.version)
        accepted: list[Accepted[E]] = []
        dead: list[DeadLetterEvent] = []
        for record in records:
            out = decode(record, model, self.config.max_future_skew_s)
            if isinstance(out, Accepted):
                accepted.append(out)
            else:
                dead.append(out)
        if ident is not None:
            accepted, dupes = split_duplicates(accepted, ident)
            dead += dupes
        return scorer, report, accepted, dead

    def token_batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Positions of ``texts`` cut into inference calls under the token budget (the batch policy's third limit)."""
        batcher: MicroBatcher[int] = MicroBatcher(self.config.batch)
        batches: list[list[int]] = []
        for i, text in enumerate(texts):
            ready = batcher.add(i, estimate_tokens(text), now_ms=0.0)
            if ready:
                batches.append(ready)
        if len(batcher):
            batches.append(batcher.take())
        return batches

    def count_inference(self, topic: str, usage: CallUsage, seconds: float) -> None:
        """Account one batch's text-model calls: their time, their number, and their tokens (real and padded)."""
        if usage.calls:
            m.INFERENCE_SECONDS.labels(topic).observe(seconds)
            m.MODEL_CALLS.labels(topic).inc(usage.calls)
            m.MODEL_TOKENS.labels(topic, "real").inc(usage.real_tokens)
            m.MODEL_TOKENS.labels(topic, "padded").inc(usage.padded_tokens)

    def sort_redeliveries(
        self,
        conn: Connection,
        table: type,
        key: str,
        accepted: list[Accepted[E]],
        inserted: set[str],
        ident: Callable[[E], str],
    ) -> tuple[list[Accepted[E]], int, list[DeadLetterEvent]]:
        """Split what was not inserted into redeliveries (same source record) and duplicates (another record)."""
        missing = [a for a in accepted if ident(a.event) not in inserted]
        sources = sql.stored_sources(conn, table, key, [ident(a.event) for a in missing])
        redelivered, dead = 0, []
        for acc in missing:
            where = sources.get(ident(acc.event))
            if where == (acc.record.partition, acc.record.offset):
                redelivered += 1
            else:
                dead.append(
                    dead_letter(
                        acc.record,
                        "duplicate_id",
                        f"id {ident(acc.event)!r} already stored from partition {where[0] if where else '?'} "
                        f"offset {where[1] if where else '?'}",
                    )
                )
        return [a for a in accepted if ident(a.event) in inserted], redelivered, dead

    def finish(self, conn: Connection, report: BatchReport, dead: list[DeadLetterEvent], outputs: list[Output]) -> None:
        """Store the dead letters, produce every output (dead letters included) and wait for the broker."""
        new_dead = sql.insert_dead_letters(conn, dead)
        outputs = outputs + [
            Output(self.topics.dead_letter, f"{d.source_topic}/{d.partition}/{d.offset}", to_json(d)) for d in new_dead
        ]
        report.dead_lettered = len(dead)
        if outputs:
            self.emit(outputs)
        for out in outputs:
            report.outputs[out.topic] += 1

    def account(
        self, report: BatchReport, records: Sequence[Record], dead: list[DeadLetterEvent], started: float
    ) -> BatchReport:
        m.EVENTS_IN.labels(report.topic).inc(report.received)
        m.EVENTS_SCORED.labels(report.topic).inc(report.processed)
        m.REDELIVERED.labels(report.topic).inc(report.redelivered)
        for d in dead:
            m.DEAD_LETTERS.labels(report.topic, d.error_code).inc()
        for topic, n in report.outputs.items():
            m.EVENTS_OUT.labels(topic).inc(n)
        m.BATCH_SIZE.labels(report.topic).observe(len(records))
        m.BATCH_SECONDS.labels(report.topic).observe(time.perf_counter() - started)
        now_ms = time.time() * 1000
        for record in records:
            if record.timestamp_ms:
                m.LAG_SECONDS.labels(report.topic).observe(max(0.0, (now_ms - record.timestamp_ms) / 1000))
        return report
