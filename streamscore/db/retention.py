"""Retention: delete stored history older than a cutoff, table by table, in small batches.

What is pruned is history that grows with traffic (results, clicks, served lists, alert state changes, dead
letters, feedback, alert deliveries), each by the time it was stored. What is kept is state that does not grow
with time: the item catalog, each user's latest list and bounded history, each entity's alert state, and model lineage.
Deleting in batches (one short transaction each) keeps locks and WAL bursts small on a busy database, so the
job can run while workers write. It needs ``DELETE``, which only the schema owner has (``DATABASE_URL``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class RetainedTable:
    table: str
    stored_at: str
    """The column saying when a row was stored (indexed, so each batch finds its rows through the index)."""


HISTORY: tuple[RetainedTable, ...] = (
    RetainedTable("news_sentiment", "scored_at"),
    RetainedTable("click_events", "processed_at"),
    RetainedTable("recommendation_history", "created_at"),
    RetainedTable("alerts", "created_at"),
    RetainedTable("dead_letters", "created_at"),
    RetainedTable("feedback", "received_at"),
    RetainedTable("alert_deliveries", "delivered_at"),
)


def count_older(engine: Engine, cutoff: datetime) -> dict[str, int]:
    """Rows each history table holds from before ``cutoff`` (what a prune would delete)."""
    with engine.connect() as conn:
        return {
            t.table: conn.execute(
                text(f"SELECT count(*) FROM {t.table} WHERE {t.stored_at} < :cutoff"), {"cutoff": cutoff}
            ).scalar_one()
            for t in HISTORY
        }


def prune(
    engine: Engine, cutoff: datetime, batch: int = 10_000, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Delete every history row stored before ``cutoff``; returns the rows deleted per table."""
    deleted: dict[str, int] = {}
    for t in HISTORY:
        statement = text(
            f"DELETE FROM {t.table} WHERE ctid IN "
            f"(SELECT ctid FROM {t.table} WHERE {t.stored_at} < :cutoff LIMIT :batch)"
        )
        total = 0
        while True:
            with engine.begin() as conn:
                n = conn.execute(statement, {"cutoff": cutoff, "batch": batch}).rowcount
            total += n
            if progress:
                progress(t.table, n)
            if n < batch:
                break
        deleted[t.table] = total
    return deleted
