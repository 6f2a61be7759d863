"""The clicks path: click events → the user's state (distinct items, recent liked items, recent items),
and one top-K recommendation per clicking user with a reason for every item, ranked over the candidate
cache the items path keeps.

A click on an item whose ``items`` event has not been embedded yet (Kafka orders nothing across topics) is
stored and counted in the user's state like any other; the item becomes a candidate as soon as its text is
embedded. The ranker (:class:`streamscore.neighbour_ranker.NeighbourRanker`) costs a bounded amount per user
whatever the history length; items it has never seen are scored from their text embedding alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection

from streamscore.events import ClickEvent, DeadLetterEvent, RecommendationEvent, RecommendedItem
from streamscore.neighbour_ranker import NeighbourRanker, Reason, UserScores
from streamscore.scorer import Scorer
from worker.adapters import prometheus as m
from worker.adapters import results_store as sql
from worker.adapters.results_store import UserState
from worker.domain.intake import Accepted, Record
from worker.domain.ranking import popular_fallback, top_k
from worker.paths.core import BatchCore, BatchReport, Output, to_json
from worker.paths.items import ItemsPath

POPULAR_REFRESH_S = 10.0
"""How often "popular now" is recomputed from the stored clicks (it moves on a scale of minutes)."""
POPULAR_SAMPLE = 20_000
"""The most recent clicks "popular now" is counted over: a bounded read, however busy the stream."""


def liked(event: ClickEvent, positive_rating: float) -> bool:
    """A click, view or purchase is liked unless it carries a rating below the positive threshold."""
    return event.rating is None or event.rating >= positive_rating


class ClicksPath:
    def __init__(self, core: BatchCore, items: ItemsPath):
        self.core = core
        self.items = items
        self._ranker_rows: tuple[int, NeighbourRanker | None, np.ndarray] = (-1, None, np.zeros(0, np.int64))
        self._popular: tuple[float, list[str]] = (0.0, [])

    def process(self, records: Sequence[Record]) -> BatchReport:
        core, catalog = self.core, self.items.catalog
        started = time.perf_counter()
        scorer, report, accepted, dead = core.begin(core.topics.clicks, records, ClickEvent, lambda e: e.event_id)
        self.items.refresh_catalog(force=any(a.event.item_id not in catalog for a in accepted))
        positive = scorer.ranker.params.positive_rating

        def work(conn: Connection) -> list[DeadLetterEvent]:
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
                for a in sorted(accepted, key=lambda a: a.event.event_id)
            ]
            inserted = sql.insert_new(conn, sql.ClickEvent, rows, "event_id")
            new, report.redelivered, dupes_stored = core.sort_redeliveries(
                conn, sql.ClickEvent, "event_id", accepted, inserted, lambda e: e.event_id
            )
            batch_dead = dead + dupes_stored
            report.processed = len(new)
            ordered = sorted(new, key=lambda a: (a.event.ts, a.event.event_id))
            states = sql.extend_histories(
                conn, [(a.event.user_id, a.event.item_id, liked(a.event, positive)) for a in ordered]
            )
            recs = self._recommend(conn, new, states, scorer)
            core.finish(
                conn, report, batch_dead, [Output(core.topics.recommendations, r.user_id, to_json(r)) for r in recs]
            )
            for r in recs:
                m.RECOMMENDATIONS.labels(str(r.cold_start).lower()).inc()
            return batch_dead

        all_dead = core.store.transaction(work)
        return core.account(report, records, all_dead, started)

    def _catalog_rows(self, ranker: NeighbourRanker) -> np.ndarray:
        """For every cached candidate, its row in the ranker (-1 for items the ranker never saw); extended
        as the cache grows, rebuilt when the model (and so the ranker) changes."""
        catalog = self.items.catalog
        size, known, rows = self._ranker_rows
        if known is not ranker or size > len(catalog):
            size, rows = 0, np.zeros(0, np.int64)
        if size < len(catalog):
            extra = np.array([ranker.index.get(i, -1) for i in catalog.ids[size:]], dtype=np.int64)
            rows = np.concatenate([rows, extra])
            self._ranker_rows = (len(catalog), ranker, rows)
        return rows

    def _popular_now(self, conn: Connection, ranker: NeighbourRanker, k: int) -> list[str]:
        """Recent popularity from the stored clicks (refreshed every ``POPULAR_REFRESH_S``), then the ranker's
        popularity from training, so a thin stream still fills a whole list."""
        at, items = self._popular
        if time.monotonic() - at >= POPULAR_REFRESH_S:
            items = sql.recent_popular(
                conn, self.core.config.popular_window_s, limit=max(100, 3 * k), sample=POPULAR_SAMPLE
            )
            self._popular = (time.monotonic(), items)
        return list(dict.fromkeys([*items, *ranker.popular(set(), max(300, 10 * k))]))

    def _recommend(
        self, conn: Connection, clicks: list[Accepted[ClickEvent]], states: dict[str, UserState], scorer: Scorer
    ) -> list[RecommendationEvent]:
        """One recommendation per user clicking in this batch, triggered by their latest click."""
        catalog, ranker, k = self.items.catalog, scorer.ranker, self.core.config.recommend_k
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
        t0 = time.perf_counter()
        rows = self._catalog_rows(ranker)
        known = rows >= 0
        unknown_rows = np.flatnonzero(~known)
        scores = ranker.score_users([states[u].liked for u in users], [states[u].recent for u in users])
        min_history = self.core.config.cold_start_min_history
        picks: list[tuple[str, list[tuple[int, float, Reason]], bool]] = []
        popular: list[str] | None = None
        for user, user_scores in zip(users, scores):
            seen = set(states[user].items)
            cold = user_scores.cold or len(user_scores.liked) < min_history and not len(user_scores.transitions[0])
            chosen = [] if cold else self._rank(user_scores, ranker, rows, known, unknown_rows, seen, k)
            # slots no personal term reached are filled with what is popular now, and said so
            chosen = [c for c in chosen if c[1] > 0 and c[2].kind != "popular_now"]
            if len(chosen) < k:
                taken = seen | {catalog.ids[row] for row, _, _ in chosen}
                if popular is None:  # once per batch
                    popular = [p for p in self._popular_now(conn, ranker, k) if p in catalog]
                now = Reason("popular_now", None, 0.0)
                chosen += [(catalog.row[p], 0.0, now) for p in popular_fallback(popular, taken, k - len(chosen))]
            picks.append((user, chosen, not any(reason.kind != "popular_now" for _, _, reason in chosen)))
        m.RANKING_SECONDS.observe(time.perf_counter() - t0)
        ratings = self._predicted_ratings(users, states, picks, scorer)
        now = datetime.now(UTC)
        recs: list[RecommendationEvent] = []
        saved: list[dict] = []
        titles = self.items.titles
        for (user, chosen, cold), user_ratings in zip(picks, ratings):
            ranked = [
                RecommendedItem(
                    item_id=catalog.ids[row],
                    score=round(score, 6),
                    predicted_rating=round(float(rating), 4),
                    reason_kind=reason.kind,  # type: ignore[arg-type]
                    because_item_id=reason.item_id,
                    reason=reason.text(titles),
                )
                for (row, score, reason), rating in zip(chosen, user_ratings)
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
            saved.append(
                {
                    "trigger_event_id": event.trigger_event_id,
                    "user_id": user,
                    "items": [r.model_dump() for r in ranked],
                    "cold_start": event.cold_start,
                    "model_version": scorer.version,
                    "event_ts": trigger[user].ts,
                }
            )
        sql.save_recommendations(conn, saved)
        return recs

    def _rank(
        self,
        scores: UserScores,
        ranker: NeighbourRanker,
        rows: np.ndarray,
        known: np.ndarray,
        unknown_rows: np.ndarray,
        seen: set[str],
        k: int,
    ) -> list[tuple[int, float, Reason]]:
        """Top ``k`` catalog rows for one user with the reason of each: known items from the ranker's scores,
        items it never saw from their text embeddings."""
        catalog = self.items.catalog
        candidate = np.full(len(catalog), -np.inf, dtype=np.float32)
        candidate[known] = scores.total[rows[known]]
        if len(unknown_rows) and len(scores.liked):
            candidate[unknown_rows] = ranker.score_embedded(scores, catalog.embeddings[unknown_rows])
        # only a positive score is a personal reason (the rest of the list is "popular now"), and leaving the
        # zeros out keeps the top-K's tie-break from sorting most of the catalog for a short history
        candidate[~(candidate > 0)] = -np.inf
        top = [(catalog.row[r.item_id], r.score) for r in top_k(catalog.ids, candidate, seen, k, row_of=catalog.row)]
        known_top = [int(rows[row]) for row, _ in top if rows[row] >= 0]
        reasons = dict(zip(known_top, ranker.explain_many(scores, known_top)))
        return [
            (
                row,
                score,
                reasons[int(rows[row])]
                if rows[row] >= 0
                else ranker.explain(scores, None, embedding=catalog.embeddings[row]),
            )
            for row, score in top
        ]

    def _predicted_ratings(
        self,
        users: list[str],
        states: dict[str, UserState],
        picks: list[tuple[str, list[tuple[int, float, Reason]], bool]],
        scorer: Scorer,
    ) -> list[np.ndarray]:
        """The rating tower's prediction for the chosen items only (one call for the batch)."""
        catalog = self.items.catalog
        union = sorted({row for _, chosen, _ in picks for row, _, _ in chosen})
        if not union:
            return [np.zeros(0) for _ in picks]
        col = {row: c for c, row in enumerate(union)}
        profiles = np.zeros((len(users), catalog.dim), dtype=np.float32)
        for i, user in enumerate(users):
            profiles[i], _ = catalog.profile(states[user].items)
        user_idx = np.array([scorer.user_index(u) for u in users], dtype=np.int64)
        item_rows = np.array(union, dtype=np.int64)
        _, ratings = scorer.score_items(user_idx, profiles, catalog.indices[item_rows], catalog.embeddings[item_rows])
        return [ratings[i, [col[row] for row, _, _ in chosen]] for i, (_, chosen, _) in enumerate(picks)]
