"""PostgreSQL adapter of the worker: one transaction per micro-batch, retried until it commits.

Every statement is an idempotent upsert keyed by what the event carries, so a batch that Kafka redelivers
after a crash changes nothing. The agents acknowledge a batch's offsets only after :meth:`Store.transaction`
has returned, so no offset is committed past a row that is not yet in PostgreSQL. While the database is
unreachable the batch is retried with exponential back-off (the consumer keeps heart-beating, the partition
simply stops advancing) and :attr:`Store.healthy` turns false for the readiness probe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, bindparam, make_url, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

from streamscore.db.connection import make_engine
from streamscore.db.tables import (
    LIKED_KEPT,
    RECENT_KEPT,
    Alert,
    ClickEvent,
    DeadLetter,
    EntityAlertState,
    Item,
    ModelVersion,
    NewsSentiment,
    RecommendationHistory,
    RecommendationLatest,
    UserHistory,
)
from streamscore.events import AlertEvent, DeadLetterEvent
from worker.errors import OutputUnavailable, StoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")


def retriable(exc: Exception) -> bool:
    """Connection loss, a server shutting down, deadlocks, serialisation failures, an unreachable Kafka — and
    a schema or privilege problem (ProgrammingError: a migration not applied, a revoked grant), which no
    event causes: the batch waits for an operator instead of being dead-lettered."""
    if isinstance(exc, (OperationalError, InterfaceError, ProgrammingError, OutputUnavailable)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Store:
    """Runs units of work in transactions, retrying the transient failures."""

    def __init__(self, url: str, retry_max_s: float = 30.0, on_retry: Callable[[Exception], None] | None = None):
        # psycopg2 sends an executemany that SQLAlchemy cannot fold into one multi-row INSERT (ON CONFLICT
        # without RETURNING, UPDATE) row by row, a round trip each; execute_batch pages them instead
        options = {"executemany_mode": "values_plus_batch"} if make_url(url).get_driver_name() == "psycopg2" else {}
        self.engine = make_engine(url, pool_size=2, max_overflow=2, pool_recycle=600, **options)
        self.retry_max_s = retry_max_s
        self.on_retry = on_retry
        self.stopping = threading.Event()
        self.healthy = True

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` inside one transaction; on a transient failure the whole unit runs again."""
        delay = 0.2
        while True:
            try:
                with self.engine.begin() as conn:
                    result = work(conn)
                self.healthy = True
                return result
            except Exception as exc:
                if not retriable(exc):
                    raise
                self.healthy = False
                if self.on_retry:
                    self.on_retry(exc)
                logger.warning(
                    "batch not stored; retrying",
                    extra={"retry_in_s": round(delay, 2), "error": str(exc).splitlines()[0][:200]},
                )
                if self.stopping.wait(delay):
                    raise StoreUnavailable(
                        "stopping while PostgreSQL is unreachable; the batch stays unacknowledged"
                    ) from exc
                delay = min(delay * 2, self.retry_max_s)

    def dispose(self) -> None:
        self.engine.dispose()


# -- statements (each takes the open connection of the batch's transaction) -------------------------------
# Rows go to ``conn.execute(statement, rows)``, never ``statement.values(rows)``: the statement is then the
# same object shape for every batch, SQLAlchemy compiles it once and caches it, and its "insertmanyvalues"
# mode still sends one multi-row INSERT per 1 000 rows (statements with RETURNING; the others are paged by
# psycopg2's execute_batch, see Store). ``values(rows)`` built a new statement with a bound
# parameter per cell, compiled afresh for every batch: half of the click path's CPU in the profile.
def insert_new(conn: Connection, table, rows: Sequence[dict], key: str) -> set[str]:
    """Insert rows whose ``key`` is not stored yet; return the keys actually inserted."""
    if not rows:
        return set()
    stmt = insert(table.__table__).on_conflict_do_nothing(index_elements=[key]).returning(getattr(table, key))
    return {r[0] for r in conn.execute(stmt, list(rows))}


def stored_sources(conn: Connection, table, key: str, ids: Iterable[str]) -> dict[str, tuple[int | None, int | None]]:
    """``{id: (source_partition, source_offset)}`` of rows already stored: tells a redelivery (same record)
    from a duplicate id (another record)."""
    ids = list(ids)
    if not ids:
        return {}
    column = getattr(table, key)
    rows = conn.execute(select(column, table.source_partition, table.source_offset).where(column.in_(ids)))
    return {r[0]: (r[1], r[2]) for r in rows}


def insert_dead_letters(conn: Connection, letters: Sequence[DeadLetterEvent]) -> list[DeadLetterEvent]:
    """Store dead letters once per source record; return those not stored before."""
    if not letters:
        return []
    rows = [
        {
            "source_topic": d.source_topic,
            "source_partition": d.partition,
            "source_offset": d.offset,
            "error_code": d.error_code,
            "reason": d.reason,
            "payload": d.payload,
            "payload_encoding": d.payload_encoding,
            "created_at": d.ts,
        }
        for d in letters
    ]
    stmt = (
        insert(DeadLetter.__table__)
        .on_conflict_do_nothing(index_elements=["source_topic", "source_partition", "source_offset"])
        .returning(DeadLetter.source_topic, DeadLetter.source_partition, DeadLetter.source_offset)
    )
    new = {tuple(r) for r in conn.execute(stmt, rows)}
    return [d for d in letters if (d.source_topic, d.partition, d.offset) in new]


def lock_entity_states(conn: Connection, entities: Sequence[str]) -> dict[str, int]:
    """Row-lock the entities' states (created empty when missing), in sorted order so two workers never
    deadlock; the ``write_id`` each is stored under (0: never written), so the caller reads only the states
    it does not hold already (:func:`read_entity_states`)."""
    ordered = sorted(set(entities))
    if not ordered:
        return {}
    conn.execute(
        insert(EntityAlertState.__table__).on_conflict_do_nothing(index_elements=["entity"]),
        [{"entity": e, "state": {}} for e in ordered],
    )
    rows = conn.execute(
        select(EntityAlertState.entity, EntityAlertState.write_id)
        .where(EntityAlertState.entity.in_(ordered))
        .order_by(EntityAlertState.entity)
        .with_for_update()
    )
    return {entity: write_id for entity, write_id in rows}


def read_entity_states(conn: Connection, entities: Sequence[str]) -> dict[str, dict | None]:
    """The stored states (JSON) of entities this transaction has locked; ``None`` for one never written."""
    if not entities:
        return {}
    rows = conn.execute(
        select(EntityAlertState.entity, EntityAlertState.state).where(EntityAlertState.entity.in_(sorted(entities)))
    )
    return {entity: (state or None) for entity, state in rows}


def save_entity_states(conn: Connection, states: dict[str, dict], write_id: int) -> None:
    """Write the locked entities' states, tagged with this transaction's ``write_id``."""
    if not states:
        return
    stmt = insert(EntityAlertState.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["entity"],
        set_={"state": stmt.excluded.state, "write_id": stmt.excluded.write_id, "updated_at": text("now()")},
    )
    conn.execute(stmt, [{"entity": e, "state": s, "write_id": write_id} for e, s in states.items()])


def insert_alerts(conn: Connection, alerts: Sequence[AlertEvent]) -> None:
    if not alerts:
        return
    rows = [{**a.model_dump(exclude={"ts"}), "event_ts": a.ts} for a in alerts]
    conn.execute(insert(Alert.__table__).on_conflict_do_nothing(index_elements=["alert_id", "status", "seq"]), rows)


def upsert_items(conn: Connection, rows: Sequence[dict]) -> set[str]:
    """Insert or replace catalog items; an older event never overwrites a newer one. Returns ids written."""
    if not rows:
        return set()
    stmt = insert(Item.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c != "item_id"} | {"updated_at": text("now()")},
        where=Item.event_ts <= stmt.excluded.event_ts,
    ).returning(Item.item_id)
    return {r[0] for r in conn.execute(stmt, list(rows))}


@dataclass
class UserState:
    """What the ranker needs of a user: every distinct item (seen, never recommended again), the most recent
    liked items and the most recent items of any kind (both bounded, oldest first)."""

    items: list[str]
    liked: list[str]
    recent: list[str]
    clicks: int


def extend_histories(conn: Connection, clicks: Sequence[tuple[str, str, bool]]) -> dict[str, UserState]:
    """Add ``(user_id, item_id, liked)`` clicks (newly stored ones only, in event-time order) to the users'
    state, row-locked in user order; returns every clicking user's updated state."""
    users = sorted({u for u, _, _ in clicks})
    if not users:
        return {}
    conn.execute(
        insert(UserHistory.__table__).on_conflict_do_nothing(index_elements=["user_id"]),
        [{"user_id": u} for u in users],
    )
    rows = conn.execute(
        select(UserHistory.user_id, UserHistory.items, UserHistory.liked, UserHistory.recent, UserHistory.clicks)
        .where(UserHistory.user_id.in_(users))
        .order_by(UserHistory.user_id)
        .with_for_update()
    )
    state = {
        u: UserState(list(items or []), list(liked or []), list(recent or []), n) for u, items, liked, recent, n in rows
    }
    for user, item, liked in clicks:
        s = state[user]
        if item not in s.items:
            s.items.append(item)
        if liked:
            s.liked.append(item)
        s.recent.append(item)
        s.clicks += 1
    for s in state.values():
        del s.liked[:-LIKED_KEPT], s.recent[:-RECENT_KEPT]
    # the rows are locked and exist: one upsert writes them all (an UPDATE per user was a statement per row)
    stmt = insert(UserHistory.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={c: stmt.excluded[c] for c in ("items", "liked", "recent", "clicks")} | {"updated_at": text("now()")},
    )
    conn.execute(
        stmt,
        [
            {
                "user_id": u,
                "items": state[u].items,
                "liked": state[u].liked,
                "recent": state[u].recent,
                "clicks": state[u].clicks,
            }
            for u in users
        ],
    )
    return state


def recent_popular(conn: Connection, window_s: float, limit: int = 100, sample: int = 20_000) -> list[str]:
    """The items clicked by the most users among the most recent ``sample`` clicks stored in the last
    ``window_s`` seconds (what "popular now" means for a user with no history). The sample bounds the cost:
    an index range scan of at most ``sample`` rows, however busy the last hour was (a whole hour of a busy
    stream took a second per refresh, inside a batch's transaction)."""
    rows = conn.execute(
        text(
            "SELECT item_id FROM (SELECT item_id, user_id FROM click_events "
            "WHERE processed_at > now() - make_interval(secs => :window) ORDER BY processed_at DESC LIMIT :sample) "
            "AS recent GROUP BY item_id ORDER BY count(DISTINCT user_id) DESC, item_id LIMIT :limit"
        ),
        {"window": window_s, "limit": limit, "sample": sample},
    )
    return [r[0] for r in rows]


def known_items(conn: Connection, ids: Iterable[str]) -> set[str]:
    ids = list(set(ids))
    if not ids:
        return set()
    return {r[0] for r in conn.execute(select(Item.item_id).where(Item.item_id.in_(ids)))}


def save_recommendations(conn: Connection, rows: Sequence[dict]) -> None:
    """History keyed by the triggering event; latest per user replaced only by a newer event."""
    if not rows:
        return
    conn.execute(
        insert(RecommendationHistory.__table__).on_conflict_do_nothing(index_elements=["trigger_event_id"]), list(rows)
    )
    latest: dict[str, dict] = {}
    for row in rows:
        if row["user_id"] not in latest or (row["event_ts"], row["trigger_event_id"]) >= (
            latest[row["user_id"]]["event_ts"],
            latest[row["user_id"]]["trigger_event_id"],
        ):
            latest[row["user_id"]] = row
    stmt = insert(RecommendationLatest.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={c: stmt.excluded[c] for c in ("trigger_event_id", "items", "cold_start", "model_version", "event_ts")}
        | {"updated_at": text("now()")},
        where=tuple_(RecommendationLatest.event_ts, RecommendationLatest.trigger_event_id)
        <= tuple_(stmt.excluded.event_ts, stmt.excluded.trigger_event_id),
    )
    conn.execute(stmt, list(latest.values()))


def register_model(conn: Connection, version: str, created_at: datetime, source: str | None, manifest: dict) -> None:
    conn.execute(
        insert(ModelVersion.__table__)
        .values(version=version, created_at=created_at, source_checkpoint=source, manifest=manifest)
        .on_conflict_do_nothing(index_elements=["version"])
    )


def catalog_embeddings(
    conn: Connection, version: str, since: datetime | None
) -> list[tuple[str, list[float], datetime, str]]:
    """Items embedded by ``version`` (changed after ``since``): the candidates every worker ranks, with
    their titles (the words of a recommendation's reason)."""
    query = select(Item.item_id, Item.embedding, Item.updated_at, Item.title).where(
        Item.embedding_model_version == version
    )
    if since is not None:
        query = query.where(Item.updated_at > since)
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def claim_stale_items(
    conn: Connection, version: str, limit: int
) -> list[tuple[str, str, str | None, list[str], list[str]]]:
    """Items embedded by another model version, locked so concurrent workers re-embed disjoint sets."""
    rows = conn.execute(
        select(Item.item_id, Item.title, Item.body, Item.genres, Item.tags)
        .where((Item.embedding_model_version.is_(None)) | (Item.embedding_model_version != version))
        .order_by(Item.item_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(r[0], r[1], r[2], list(r[3] or []), list(r[4] or [])) for r in rows]


def set_embeddings(conn: Connection, version: str, embeddings: dict[str, list[float]]) -> None:
    if not embeddings:
        return
    stmt = (
        Item.__table__.update()
        .where(Item.item_id == bindparam("target_id"))
        .values(embedding=bindparam("vector"), embedding_model_version=version, updated_at=text("now()"))
    )
    conn.execute(stmt, [{"target_id": i, "vector": v} for i, v in embeddings.items()])


__all__ = ["ClickEvent", "NewsSentiment", "Store", "StoreUnavailable"]  # the pipeline names tables through this module


def served_outcomes(conn: Connection, recent_lists: int) -> list[tuple[str, int, float, float]]:
    """``(model_version, lists, hit ratio, nDCG of the first hit)`` over the most recently served lists."""
    rows = conn.execute(
        text(
            "SELECT model_version, count(*), avg((hit_position IS NOT NULL)::int)::float8, "
            "avg(coalesce(1.0 / log(2, 1 + hit_position), 0))::float8 FROM v_served_list_outcomes "
            "WHERE trigger_event_id IN (SELECT trigger_event_id FROM recommendation_history "
            "ORDER BY created_at DESC LIMIT :n) GROUP BY model_version"
        ),
        {"n": recent_lists},
    )
    return [(r[0], int(r[1]), float(r[2]), float(r[3])) for r in rows]
