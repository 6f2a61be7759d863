"""One micro-batch of one input topic: validate → score → decide → store and emit.

The agents in :mod:`worker.app` are thin: they collect records with ``stream.take_events`` and run these
methods in the process's single model thread, off the event loop. Each method is one PostgreSQL transaction
(retried on transient failures) in which the results, the dead letters and the state they move (alert state,
user histories) are written together; outputs are produced to Kafka and their delivery awaited *before*
that transaction commits, and the agent acknowledges the records only after it has. So:

* a crash before the commit redelivers the batch; it is scored again and outputs may be emitted again
  (at-least-once on the output topics, every output carrying a key to deduplicate on);
* a crash after the commit but before the offsets are committed redelivers records whose rows exist: they
  are recognised by their source partition and offset and absorbed, so PostgreSQL holds each result once;
* a record with an id already stored from *another* record is a ``duplicate_id`` dead letter.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TypeVar

import numpy as np
from sqlalchemy import Connection

from streamscore.events import (
    AlertEvent,
    ClickEvent,
    DeadLetterEvent,
    Event,
    ItemEvent,
    NewsEvent,
    RecommendationEvent,
    RecommendedItem,
    item_text,
)
from streamscore.scorer import Scorer
from streamscore.topics import Topics
from worker import metrics as m
from worker import store as sql
from worker.alerts import AlertDecision, AlertRule, EntityState, observe
from worker.batching import BatchPolicy, MicroBatcher, estimate_tokens
from worker.catalog import CandidateCache
from worker.entities import extract_entities
from worker.intake import Accepted, Record, dead_letter, decode
from worker.models import ModelHolder
from worker.ranking import popular_fallback, top_k
from worker.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class PipelineConfig:
    batch: BatchPolicy = BatchPolicy()
    rule: AlertRule = AlertRule()
    max_future_skew_s: float = 86400.0
    recommend_k: int = 10
    cold_start_min_history: int = 3
    catalog_refresh_s: float = 2.0


def _json(model) -> bytes:
    return model.model_dump_json().encode()


def _split_duplicates(accepted: list[Accepted[E]], key: Callable[[E], str]) -> tuple[list[Accepted[E]], list[DeadLetterEvent]]:
    """Within one batch the first record of an id wins; later ones are duplicates of it."""
    first: dict[str, Accepted[E]] = {}
    dead: list[DeadLetterEvent] = []
    for acc in accepted:
        ident = key(acc.event)
        if ident in first:
            orig = first[ident].record
            dead.append(dead_letter(acc.record, "duplicate_id", f"id {ident!r} already used by {orig.topic}/{orig.partition}/{orig.offset}"))
        else:
            first[ident] = acc
    return list(first.values()), dead


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


class Pipeline:
    """Everything one worker process does with a batch, independent of Faust."""

    def __init__(self, models: ModelHolder, store: Store, topics: Topics, emit: Emit, config: PipelineConfig = PipelineConfig()):
        self.models = models
        self.store = store
        self.topics = topics
        self.emit = emit
        self.config = config
        self.catalog = CandidateCache(dim=int(models.scorer.bundle.manifest["text_model"]["outputs"]["embedding"]["shape"][1]))
        self.registered: set[str] = set()

    # -- shared steps -------------------------------------------------------------------------------
    def _decode(self, records: Sequence[Record], model: type[E]) -> tuple[list[Accepted[E]], list[DeadLetterEvent]]:
        accepted: list[Accepted[E]] = []
        dead: list[DeadLetterEvent] = []
        for record in records:
            out = decode(record, model, self.config.max_future_skew_s)
            (accepted if isinstance(out, Accepted) else dead).append(out)  # type: ignore[arg-type]
        return accepted, dead

    def _begin(
        self, topic: str, records: Sequence[Record], model: type[E], ident: Callable[[E], str] | None = None
    ) -> tuple[Scorer, BatchReport, list[Accepted[E]], list[DeadLetterEvent]]:
        """The scorer for the whole batch (a hot reload swaps between batches), the report, and the records
        split into valid events (first of each id) and dead letters."""
        scorer = self.models.scorer
        report = BatchReport(topic, received=len(records), model_version=scorer.version)
        accepted, dead = self._decode(records, model)
        if ident is not None:
            accepted, dupes = _split_duplicates(accepted, ident)
            dead += dupes
        return scorer, report, accepted, dead

    def _token_batches(self, texts: Sequence[str]) -> list[list[int]]:
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

    @contextmanager
    def _inference(self, topic: str, scorer: Scorer) -> Iterator[None]:
        """Time the text-model calls made inside, and count their calls and tokens (real and padded)."""
        before = replace(scorer.usage)
        t0 = time.perf_counter()
        yield
        calls = scorer.usage.calls - before.calls
        if calls:
            m.INFERENCE_SECONDS.labels(topic).observe(time.perf_counter() - t0)
            m.MODEL_CALLS.labels(topic).inc(calls)
            m.MODEL_TOKENS.labels(topic, "real").inc(scorer.usage.real_tokens - before.real_tokens)
            m.MODEL_TOKENS.labels(topic, "padded").inc(scorer.usage.padded_tokens - before.padded_tokens)

    def _sort_redeliveries(
        self, conn: Connection, table, key: str, accepted: list[Accepted[E]], inserted: set[str], ident: Callable[[E], str]
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
                dead.append(dead_letter(acc.record, "duplicate_id", f"id {ident(acc.event)!r} already stored from partition {where[0] if where else '?'} offset {where[1] if where else '?'}"))
        return [a for a in accepted if ident(a.event) in inserted], redelivered, dead

    def _finish(self, conn: Connection, report: BatchReport, dead: list[DeadLetterEvent], outputs: list[Output]) -> None:
        """Store the dead letters, produce every output (dead letters included) and wait for the broker."""
        new_dead = sql.insert_dead_letters(conn, dead)
        outputs = outputs + [Output(self.topics.dead_letter, f"{d.source_topic}/{d.partition}/{d.offset}", _json(d)) for d in new_dead]
        report.dead_lettered = len(dead)
        if outputs:
            self.emit(outputs)
        for out in outputs:
            report.outputs[out.topic] += 1

    def _account(self, report: BatchReport, records: Sequence[Record], dead: list[DeadLetterEvent], started: float) -> BatchReport:
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

    def register_model(self) -> None:
        """Record the serving bundle in ``model_versions`` (once per version and process)."""
        scorer = self.models.scorer
        if scorer.version in self.registered:
            return
        manifest = scorer.bundle.manifest
        created = datetime.fromisoformat(manifest["created_at"])
        self.store.transaction(lambda conn: sql.register_model(conn, scorer.version, created, manifest.get("source_checkpoint"), manifest))
        self.registered.add(scorer.version)

    def process_batch(self, kind: str, records: Sequence[Record]) -> BatchReport:
        """``process_<kind>`` with a last line of defence: if a batch fails for a reason that is not transient
        (a bug, or data the database refuses), its records are retried one by one and a record that still
        fails becomes a ``processing_error`` dead letter. The worker never crashes on input."""
        method = {"news": self.process_news, "items": self.process_items, "clicks": self.process_clicks}[kind]
        try:
            return method(records)
        except StoreUnavailable:
            raise
        except Exception as exc:
            logger.exception("batch failed; retrying its records one by one", extra={"kind": kind, "records": len(records)})
            if len(records) > 1:
                reports = [self.process_batch(kind, [r]) for r in records]
                merged = BatchReport(reports[0].topic, model_version=reports[0].model_version)
                for r in reports:
                    merged.received += r.received
                    merged.processed += r.processed
                    merged.dead_lettered += r.dead_lettered
                    merged.redelivered += r.redelivered
                    for topic, n in r.outputs.items():
                        merged.outputs[topic] += n
                return merged
            return self._reject(records[0], exc)

    def _reject(self, record: Record, exc: Exception) -> BatchReport:
        started = time.perf_counter()
        letter = dead_letter(record, "processing_error", f"{type(exc).__name__}: {exc}")
        report = BatchReport(record.topic, received=1, model_version=self.models.version)
        self.store.transaction(lambda conn: self._finish(conn, report, [letter], []))
        return self._account(report, [record], [letter], started)

    # -- news ----------------------------------------------------------------------------------------
    def process_news(self, records: Sequence[Record]) -> BatchReport:
        started = time.perf_counter()
        scorer, report, accepted, dead = self._begin(self.topics.news, records, NewsEvent, lambda e: e.id)
        texts = [a.event.text for a in accepted]
        by_id: dict[str, dict] = {}
        with self._inference(report.topic, scorer):
            for chunk in self._token_batches(texts):
                for i, pred in zip(chunk, scorer.sentiment([texts[i] for i in chunk])):
                    by_id[accepted[i].event.id] = pred
        entities = {a.event.id: extract_entities(a.event.tickers, a.event.headline, a.event.body) for a in accepted}
        rows = [
            {
                "news_id": a.event.id, "event_ts": a.event.ts, "headline": a.event.headline, "source": a.event.source,
                "entities": entities[a.event.id], "label": by_id[a.event.id]["label"], "p_negative": by_id[a.event.id]["p_negative"],
                "p_neutral": by_id[a.event.id]["p_neutral"], "p_positive": by_id[a.event.id]["p_positive"], "model_version": scorer.version,
                "source_partition": a.record.partition, "source_offset": a.record.offset, "ingested_at": a.record.ingested_at,
                "truncated": by_id[a.event.id]["truncated"],
            }
            for a in sorted(accepted, key=lambda a: a.event.id)
        ]

        def work(conn: Connection) -> list[DeadLetterEvent]:
            inserted = sql.insert_new(conn, sql.NewsSentiment, rows, "news_id")
            new, report.redelivered, dupes_stored = self._sort_redeliveries(conn, sql.NewsSentiment, "news_id", accepted, inserted, lambda e: e.id)
            alerts = self._observe(conn, [(a.event, by_id[a.event.id]["label"] == "negative", entities[a.event.id]) for a in new], scorer.version)
            sql.insert_alerts(conn, alerts)
            all_dead = dead + dupes_stored
            report.processed = len(new)
            self._finish(conn, report, all_dead, [Output(self.topics.alerts, a.entity, _json(a)) for a in alerts])
            for a in alerts:
                m.ALERTS.labels(a.status).inc()
            return all_dead

        all_dead = self.store.transaction(work)
        return self._account(report, records, all_dead, started)

    def _observe(self, conn: Connection, articles: list[tuple[NewsEvent, bool, list[str]]], version: str) -> list[AlertEvent]:
        """Fold new articles into their entities' locked states, in event-time order; the alerts to emit."""
        per_entity: dict[str, list[tuple[float, str, bool]]] = defaultdict(list)
        for event, negative, ents in articles:
            for entity in ents:
                per_entity[entity].append((event.ts.timestamp(), event.id, negative))
        if not per_entity:
            return []
        raw_states = sql.lock_entity_states(conn, list(per_entity))
        states: dict[str, dict] = {}
        alerts: list[AlertEvent] = []
        now = datetime.now(timezone.utc)
        for entity in sorted(per_entity):
            raw = raw_states.get(entity)
            state = EntityState.from_dict(raw) if raw else EntityState()
            for ts, news_id, negative in sorted(per_entity[entity]):
                decision = observe(state, self.config.rule, entity, news_id, ts, negative)
                if decision is not None:
                    alerts.append(self._alert(decision, version, now))
            states[entity] = state.to_dict()
        sql.save_entity_states(conn, states)
        return alerts

    @staticmethod
    def _alert(d: AlertDecision, version: str, now: datetime) -> AlertEvent:
        return AlertEvent(
            alert_id=d.alert_id, entity=d.entity, status=d.status, seq=d.seq, window_start=_dt(d.window_start), window_end=_dt(d.window_end),  # type: ignore[arg-type]
            negative_count=d.negative_count, total_count=d.total_count, negative_share=d.negative_share, baseline_share=d.baseline_share,
            score=d.score, evidence=list(d.evidence), model_version=version, ts=now,
        )

    # -- items ---------------------------------------------------------------------------------------
    def process_items(self, records: Sequence[Record]) -> BatchReport:
        started = time.perf_counter()
        scorer, report, accepted, dead = self._begin(self.topics.items, records, ItemEvent)
        latest: dict[str, Accepted[ItemEvent]] = {}
        for acc in accepted:  # a catalog: the newest version of an item in the batch is the one to embed
            prev = latest.get(acc.event.item_id)
            if prev is None or (acc.event.ts, acc.record.offset) >= (prev.event.ts, prev.record.offset):
                latest[acc.event.item_id] = acc
        items = [latest[k] for k in sorted(latest)]
        texts = [a.event.embedding_text for a in items]
        vectors = np.zeros((len(texts), self.catalog.dim), dtype=np.float32)
        with self._inference(report.topic, scorer):
            for chunk in self._token_batches(texts):
                vectors[chunk] = scorer.embed([texts[i] for i in chunk])
        rows = [
            {
                "item_id": a.event.item_id, "title": a.event.title, "body": a.event.text, "tags": list(a.event.tags), "genres": list(a.event.genres),
                "event_ts": a.event.ts, "embedding": vectors[i].tolist(), "embedding_model_version": scorer.version, "ingested_at": a.record.ingested_at,
            }
            for i, a in enumerate(items)
        ]

        def work(conn: Connection) -> set[str]:
            written = sql.upsert_items(conn, rows)
            report.processed = len(accepted)  # superseded versions are processed too: the catalog keeps the newest
            self._finish(conn, report, dead, [])
            return written

        written = self.store.transaction(work)
        if self.catalog.version == scorer.version:
            self.catalog.upsert(((r["item_id"], r["embedding"], None) for r in rows if r["item_id"] in written), scorer.item_index)
        return self._account(report, records, dead, started)

    def refresh_catalog(self, force: bool = False) -> int:
        """Load item embeddings other workers stored since the last refresh (all of them after a model swap)."""
        scorer = self.models.scorer
        if self.catalog.version != scorer.version:
            self.catalog.reset(scorer.version)
            force = True
        if not force and not self.catalog.due(self.config.catalog_refresh_s):
            return 0
        since = self.catalog.since()
        rows = self.store.transaction(lambda conn: sql.catalog_embeddings(conn, scorer.version, since))
        self.catalog.mark_refreshed()
        return self.catalog.upsert(rows, scorer.item_index)

    def reembed_stale(self, limit: int = 256) -> int:
        """Re-embed up to ``limit`` catalog items embedded by another model version (after a swap)."""
        scorer = self.models.scorer

        def work(conn: Connection) -> int:
            stale = sql.claim_stale_items(conn, scorer.version, limit)
            if not stale:
                return 0
            texts = [item_text(title, genres, tags, body) for _, title, body, genres, tags in stale]
            vectors = scorer.embed(texts)
            sql.set_embeddings(conn, scorer.version, {row[0]: vec.tolist() for row, vec in zip(stale, vectors)})
            return len(stale)

        return self.store.transaction(work)

    # -- clicks --------------------------------------------------------------------------------------
    def process_clicks(self, records: Sequence[Record]) -> BatchReport:
        started = time.perf_counter()
        scorer, report, accepted, dead = self._begin(self.topics.clicks, records, ClickEvent, lambda e: e.event_id)
        self.refresh_catalog(force=any(a.event.item_id not in self.catalog for a in accepted))
        k = self.config.recommend_k

        def work(conn: Connection) -> list[DeadLetterEvent]:
            unknown_ids = {a.event.item_id for a in accepted if a.event.item_id not in self.catalog}
            unknown = unknown_ids - sql.known_items(conn, unknown_ids)
            valid = [a for a in accepted if a.event.item_id not in unknown]
            batch_dead = dead + [
                dead_letter(a.record, "unknown_item", f"item {a.event.item_id!r} is not in the catalog (no items event for it)")
                for a in accepted if a.event.item_id in unknown
            ]
            rows = [
                {
                    "event_id": a.event.event_id, "user_id": a.event.user_id, "item_id": a.event.item_id, "action": a.event.action,
                    "rating": a.event.rating, "event_ts": a.event.ts, "source_partition": a.record.partition,
                    "source_offset": a.record.offset, "ingested_at": a.record.ingested_at,
                }
                for a in sorted(valid, key=lambda a: a.event.event_id)
            ]
            inserted = sql.insert_new(conn, sql.ClickEvent, rows, "event_id")
            new, report.redelivered, dupes_stored = self._sort_redeliveries(conn, sql.ClickEvent, "event_id", valid, inserted, lambda e: e.event_id)
            batch_dead += dupes_stored
            report.processed = len(new)
            ordered = sorted(new, key=lambda a: (a.event.ts, a.event.event_id))
            history = sql.extend_histories(conn, [(a.event.user_id, a.event.item_id) for a in ordered])
            recs = self._recommend(conn, new, history, scorer, k)
            self._finish(conn, report, batch_dead, [Output(self.topics.recommendations, r.user_id, _json(r)) for r in recs])
            for r in recs:
                m.RECOMMENDATIONS.labels(str(r.cold_start).lower()).inc()
            return batch_dead

        all_dead = self.store.transaction(work)
        return self._account(report, records, all_dead, started)

    def _recommend(
        self, conn: Connection, clicks: list[Accepted[ClickEvent]], history: dict[str, list[str]], scorer: Scorer, k: int
    ) -> list[RecommendationEvent]:
        """One recommendation per user clicking in this batch, triggered by their latest click; ``history``
        holds each user's distinct items including this batch's."""
        if not clicks or not len(self.catalog):
            return []
        trigger: dict[str, ClickEvent] = {}
        for acc in clicks:
            ev = acc.event
            if ev.user_id not in trigger or (ev.ts, ev.event_id) >= (trigger[ev.user_id].ts, trigger[ev.user_id].event_id):
                trigger[ev.user_id] = ev
        users = sorted(trigger)
        profiles = np.zeros((len(users), self.catalog.dim), dtype=np.float32)
        counts = np.zeros(len(users), dtype=np.int64)
        for i, user in enumerate(users):
            profiles[i], counts[i] = self.catalog.profile(history[user])
        user_idx = np.array([scorer.user_index(u) for u in users], dtype=np.int64)
        t0 = time.perf_counter()
        scores, ratings = scorer.score_items(user_idx, profiles, self.catalog.indices, self.catalog.embeddings)
        m.INFERENCE_SECONDS.labels(self.topics.clicks).observe(time.perf_counter() - t0)
        now = datetime.now(timezone.utc)
        recs: list[RecommendationEvent] = []
        rows: list[dict] = []
        for i, user in enumerate(users):
            seen = set(history[user])
            cold = user_idx[i] == 0 and counts[i] < self.config.cold_start_min_history
            if cold:
                picks = [p for p in popular_fallback(scorer.popular_items, seen, k * 3) if p in self.catalog][:k]
                ranked = [RecommendedItem(item_id=p, score=float(scores[i, self.catalog.row[p]]), predicted_rating=float(ratings[i, self.catalog.row[p]])) for p in picks]
            else:
                ranked = [
                    RecommendedItem(item_id=r.item_id, score=r.score, predicted_rating=r.predicted_rating)
                    for r in top_k(self.catalog.ids, scores[i], ratings[i], seen, k, row_of=self.catalog.row)
                ]
            event = RecommendationEvent(user_id=user, items=ranked, cold_start=bool(cold), model_version=scorer.version, ts=now, trigger_event_id=trigger[user].event_id)
            recs.append(event)
            rows.append(
                {
                    "trigger_event_id": event.trigger_event_id, "user_id": user, "items": [r.model_dump() for r in ranked],
                    "cold_start": event.cold_start, "model_version": scorer.version, "event_ts": trigger[user].ts,
                }
            )
        sql.save_recommendations(conn, rows)
        return recs


def report_line(report: BatchReport) -> str:
    return json.dumps({"topic": report.topic, "in": report.received, "ok": report.processed, "dead": report.dead_lettered, "again": report.redelivered})
