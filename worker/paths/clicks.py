"""The clicks path: click events → the user's history, and one top-K recommendation per clicking user,
ranked over the candidate cache the items path keeps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection

from streamscore.events import ClickEvent, DeadLetterEvent, RecommendationEvent, RecommendedItem
from streamscore.scorer import Scorer
from worker.adapters import prometheus as m
from worker.adapters import results_store as sql
from worker.domain.intake import Accepted, Record, dead_letter
from worker.domain.ranking import popular_fallback, top_k
from worker.paths.core import BatchCore, BatchReport, Output, to_json
from worker.paths.items import ItemsPath


class ClicksPath:
    def __init__(self, core: BatchCore, items: ItemsPath):
        self.core = core
        self.items = items

    def process(self, records: Sequence[Record]) -> BatchReport:
        core, catalog = self.core, self.items.catalog
        started = time.perf_counter()
        scorer, report, accepted, dead = core.begin(core.topics.clicks, records, ClickEvent, lambda e: e.event_id)
        self.items.refresh_catalog(force=any(a.event.item_id not in catalog for a in accepted))
        k = core.config.recommend_k

        def work(conn: Connection) -> list[DeadLetterEvent]:
            unknown_ids = {a.event.item_id for a in accepted if a.event.item_id not in catalog}
            unknown = unknown_ids - sql.known_items(conn, unknown_ids)
            valid = [a for a in accepted if a.event.item_id not in unknown]
            batch_dead = dead + [
                dead_letter(
                    a.record, "unknown_item", f"item {a.event.item_id!r} is not in the catalog (no items event for it)"
                )
                for a in accepted
                if a.event.item_id in unknown
            ]
            rows = [
                {
                    "event_id": a.event.event_id,
                    "user_id": a.event.user_id,
                    "item_id": a.event.item_id,
                    "action": a.event.action,
                    "rating": a.event.rating,
                    "event_ts": a.event.ts,
                    "source_partition": a.record.partition,
                    "source_offset": a.record.offset,
                    "ingested_at": a.record.ingested_at,
                }
                for a in sorted(valid, key=lambda a: a.event.event_id)
            ]
            inserted = sql.insert_new(conn, sql.ClickEvent, rows, "event_id")
            new, report.redelivered, dupes_stored = core.sort_redeliveries(
                conn, sql.ClickEvent, "event_id", valid, inserted, lambda e: e.event_id
            )
            batch_dead += dupes_stored
            report.processed = len(new)
            ordered = sorted(new, key=lambda a: (a.event.ts, a.event.event_id))
            history = sql.extend_histories(conn, [(a.event.user_id, a.event.item_id) for a in ordered])
            recs = self._recommend(conn, new, history, scorer, k)
            core.finish(
                conn, report, batch_dead, [Output(core.topics.recommendations, r.user_id, to_json(r)) for r in recs]
            )
            for r in recs:
                m.RECOMMENDATIONS.labels(str(r.cold_start).lower()).inc()
            return batch_dead

        all_dead = core.store.transaction(work)
        return core.account(report, records, all_dead, started)

    def _recommend(
        self,
        conn: Connection,
        clicks: list[Accepted[ClickEvent]],
        history: dict[str, list[str]],
        scorer: Scorer,
        k: int,
    ) -> list[RecommendationEvent]:
        """One recommendation per user clicking in this batch, triggered by their latest click; ``history``
        holds each user's distinct items including this batch's."""
        catalog = self.items.catalog
        if not clicks or not len(catalog):
            return []
        trigger: dict[str, ClickEvent] = {}
        for acc in clicks:
            ev = acc.event
            if ev.user_id not in trigger or (ev.ts, ev.event_id) >= (
                trigger[ev.user_id].ts,
                trigger[ev.user_id].event_id,
            ):
                trigger[ev.user_id] = ev
        users = sorted(trigger)
        profiles = np.zeros((len(users), catalog.dim), dtype=np.float32)
        counts = np.zeros(len(users), dtype=np.int64)
        for i, user in enumerate(users):
            profiles[i], counts[i] = catalog.profile(history[user])
        user_idx = np.array([scorer.user_index(u) for u in users], dtype=np.int64)
        t0 = time.perf_counter()
        scores, ratings = scorer.score_items(user_idx, profiles, catalog.indices, catalog.embeddings)
        m.INFERENCE_SECONDS.labels(self.core.topics.clicks).observe(time.perf_counter() - t0)
        now = datetime.now(UTC)
        recs: list[RecommendationEvent] = []
        rows: list[dict] = []
        for i, user in enumerate(users):
            seen = set(history[user])
            cold = user_idx[i] == 0 and counts[i] < self.core.config.cold_start_min_history
            if cold:
                picks = [p for p in popular_fallback(scorer.popular_items, seen, k * 3) if p in catalog][:k]
                ranked = [
                    RecommendedItem(
                        item_id=p,
                        score=float(scores[i, catalog.row[p]]),
                        predicted_rating=float(ratings[i, catalog.row[p]]),
                    )
                    for p in picks
                ]
            else:
                ranked = [
                    RecommendedItem(item_id=r.item_id, score=r.score, predicted_rating=r.predicted_rating)
                    for r in top_k(catalog.ids, scores[i], ratings[i], seen, k, row_of=catalog.row)
                ]
            event = RecommendationEvent(
                user_id=user,
                items=ranked,
                cold_start=bool(cold),
                model_version=scorer.version,
                ts=now,
                trigger_event_id=trigger[user].event_id,
            )
            recs.append(event)
            rows.append(
                {
                    "trigger_event_id": event.trigger_event_id,
                    "user_id": user,
                    "items": [r.model_dump() for r in ranked],
                    "cold_start": event.cold_start,
                    "model_version": scorer.version,
                    "event_ts": trigger[user].ts,
                }
            )
        sql.save_recommendations(conn, rows)
        return recs
