"""The news path: headlines → sentiment per article, stored, folded into each entity's surge state, and the
alerts that state raises or resolves emitted to the alerts topic, all in the batch's one transaction."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from streamscore.events import AlertEvent, DeadLetterEvent, NewsEvent
from streamscore.scorer import CallUsage, TextJob, sentiment_labels
from worker.adapters import prometheus as m
from worker.adapters import results_store as sql
from worker.domain.alert_states import KnownStates, new_write_id
from worker.domain.alerts import AlertDecision, EntityState, observe
from worker.domain.entities import extract_entities
from worker.domain.intake import Accepted, Record
from worker.paths.core import BatchCore, BatchReport, Output, to_json, utc


@dataclass
class StartedNews:
    """A news batch validated, its entities found and its model calls started: what the model thread hands on
    before the calls end."""

    records: Sequence[Record]
    report: BatchReport
    accepted: list[Accepted[NewsEvent]]
    dead: list[DeadLetterEvent]
    jobs: list[tuple[list[int], TextJob]]
    """Per inference chunk, the positions in ``accepted`` it scores and its started calls."""
    entities: dict[str, list[str]]
    version: str
    started: float
    calls_from: float
    """When its first model call was queued (``time.perf_counter``): the model time runs from here."""

    def wait_for_room(self) -> None:
        """Until the batch's calls have nearly all started: then the next batch is prepared and queued behind
        them."""
        for _, job in self.jobs:
            job.wait_for_room()


@dataclass
class ScoredNews:
    """A news batch validated and scored, not yet stored: what the store step writes."""

    records: Sequence[Record]
    report: BatchReport
    accepted: list[Accepted[NewsEvent]]
    dead: list[DeadLetterEvent]
    predictions: dict[str, dict]
    entities: dict[str, list[str]]
    version: str
    started: float

    def split(self) -> list[ScoredNews]:
        """One part per record, scores kept: how a batch the database refused is stored record by record
        without scoring anything again."""
        parts = []
        for record in self.records:
            where = (record.partition, record.offset)
            accepted = [a for a in self.accepted if (a.record.partition, a.record.offset) == where]
            ids = {a.event.id for a in accepted}
            parts.append(
                ScoredNews(
                    records=[record],
                    report=BatchReport(self.report.topic, received=1, model_version=self.version),
                    accepted=accepted,
                    dead=[d for d in self.dead if (d.partition, d.offset) == where],
                    predictions={k: v for k, v in self.predictions.items() if k in ids},
                    entities={k: v for k, v in self.entities.items() if k in ids},
                    version=self.version,
                    started=time.perf_counter(),
                )
            )
        return parts


class NewsPath:
    def __init__(self, core: BatchCore):
        self.core = core
        self.known = KnownStates(core.config.alert_states_kept)
        """The surge states this worker wrote last; used by the one thread that stores news batches."""

    def start(self, records: Sequence[Record]) -> StartedNews:
        """Validate, find the entities, and start the model's calls; touches neither PostgreSQL nor Kafka, and
        returns without waiting for the calls, so the model thread can prepare batch N+1 while batch N's calls
        run and the store thread writes batch N-1."""
        core = self.core
        started = time.perf_counter()
        scorer, report, accepted, dead = core.begin(core.topics.news, records, NewsEvent, lambda e: e.id)
        texts = [a.event.text for a in accepted]
        calls_from = time.perf_counter()
        jobs = [
            (chunk, scorer.start_texts([texts[i] for i in chunk], "sentiment")) for chunk in core.token_batches(texts)
        ]
        entities = {a.event.id: extract_entities(a.event.tickers, a.event.headline, a.event.body) for a in accepted}
        return StartedNews(records, report, accepted, dead, jobs, entities, scorer.version, started, calls_from)

    def finish_scoring(self, batch: StartedNews) -> ScoredNews:
        """Collect the model's calls of a started batch: its sentiment per article."""
        predictions: dict[str, dict] = {}
        usage = CallUsage()
        for chunk, job in batch.jobs:
            scores = job.result()
            usage = usage + scores.usage
            for i, pred in zip(chunk, sentiment_labels(scores)):
                predictions[batch.accepted[i].event.id] = pred
        self.core.count_inference(batch.report.topic, usage, time.perf_counter() - batch.calls_from)
        return ScoredNews(
            batch.records,
            batch.report,
            batch.accepted,
            batch.dead,
            predictions,
            batch.entities,
            batch.version,
            batch.started,
        )

    def score(self, records: Sequence[Record]) -> ScoredNews:
        """Validate and score, waiting for the model."""
        return self.finish_scoring(self.start(records))

    def store(self, scored: ScoredNews) -> BatchReport:
        """One transaction: the results, the entities' surge states, the alerts and dead letters; the alerts
        and dead letters are produced (and acknowledged by the broker) before it commits. The states it wrote
        are remembered only once it has committed."""
        core, report, by_id, entities = self.core, scored.report, scored.predictions, scored.entities
        write_id = new_write_id()
        written: dict[str, EntityState] = {}
        rows = [
            {
                "news_id": a.event.id,
                "event_ts": a.event.ts,
                "headline": a.event.headline,
                "source": a.event.source,
                "entities": entities[a.event.id],
                "label": by_id[a.event.id]["label"],
                "p_negative": by_id[a.event.id]["p_negative"],
                "p_neutral": by_id[a.event.id]["p_neutral"],
                "p_positive": by_id[a.event.id]["p_positive"],
                "model_version": scored.version,
                "source_partition": a.record.partition,
                "source_offset": a.record.offset,
                "ingested_at": a.record.ingested_at,
                "truncated": by_id[a.event.id]["truncated"],
            }
            for a in sorted(scored.accepted, key=lambda a: a.event.id)
        ]

        def work(conn: Connection) -> list[DeadLetterEvent]:
            inserted = sql.insert_new(conn, sql.NewsSentiment, rows, "news_id")
            new, report.redelivered, dupes_stored = core.sort_redeliveries(
                conn, sql.NewsSentiment, "news_id", scored.accepted, inserted, lambda e: e.id
            )
            alerts, states = self._observe(
                conn,
                [(a.event, by_id[a.event.id]["label"] == "negative", entities[a.event.id]) for a in new],
                scored.version,
                write_id,
            )
            written.clear()  # a retried transaction starts again from what is stored
            written.update(states)
            sql.insert_alerts(conn, alerts)
            all_dead = scored.dead + dupes_stored
            report.processed = len(new)
            core.finish(conn, report, all_dead, [Output(core.topics.alerts, a.entity, to_json(a)) for a in alerts])
            for a in alerts:
                m.ALERTS.labels(a.status).inc()
            return all_dead

        all_dead = core.store.transaction(work)
        self.known.remember(written, write_id)
        return core.account(report, scored.records, all_dead, scored.started)

    def _observe(
        self, conn: Connection, articles: list[tuple[NewsEvent, bool, list[str]]], version: str, write_id: int
    ) -> tuple[list[AlertEvent], dict[str, EntityState]]:
        """Fold new articles into their entities' locked states, in event-time order, and write the states
        under ``write_id``; the alerts to emit and the states written. Only the states this worker does not
        hold already (:class:`KnownStates`) are read."""
        per_entity: dict[str, list[tuple[float, str, bool]]] = defaultdict(list)
        for event, negative, ents in articles:
            for entity in ents:
                per_entity[entity].append((event.ts.timestamp(), event.id, negative))
        if not per_entity:
            return [], {}
        stored = sql.lock_entity_states(conn, list(per_entity))
        states = self.known.current(stored)
        unknown = [e for e in per_entity if e not in states]
        for entity, raw in sql.read_entity_states(conn, unknown).items():
            states[entity] = EntityState.from_dict(raw) if raw else EntityState()
        alerts: list[AlertEvent] = []
        now = datetime.now(UTC)
        for entity in sorted(per_entity):
            state = states[entity]
            for ts, news_id, negative in sorted(per_entity[entity]):
                decision = observe(state, self.core.config.rule, entity, news_id, ts, negative)
                if decision is not None:
                    alerts.append(alert_event(decision, version, now))
        sql.save_entity_states(conn, {e: s.to_dict() for e, s in states.items()}, write_id)
        return alerts, states


def alert_event(d: AlertDecision, version: str, now: datetime) -> AlertEvent:
    """The output event of one alert decision."""
    return AlertEvent(
        alert_id=d.alert_id,
        entity=d.entity,
        status=d.status,
        seq=d.seq,
        window_start=utc(d.window_start),
        window_end=utc(d.window_end),  # type: ignore[arg-type]
        negative_count=d.negative_count,
        total_count=d.total_count,
        negative_share=d.negative_share,
        baseline_share=d.baseline_share,
        score=d.score,
        evidence=list(d.evidence),
        model_version=version,
        ts=now,
    )
