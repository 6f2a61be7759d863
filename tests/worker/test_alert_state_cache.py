"""The surge states a worker keeps in memory between news batches (``worker.domain.alert_states``), against
the real PostgreSQL and the real ONNX bundle: whatever another worker, an emptied table or a failed write did
to a stored state, the state each batch folds into and writes is the one a single worker reading every state
from the database would have written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from streamscore.db.connection import make_engine
from streamscore.settings import Settings
from streamscore.topics import Topics
from tests.conftest import Schema
from worker.adapters.model_holder import ModelHolder
from worker.adapters.results_store import Store
from worker.domain.alerts import AlertRule, EntityState, observe
from worker.domain.intake import Record
from worker.paths.core import PipelineConfig
from worker.pipeline import Pipeline

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
WORDS = ["slump after profit warning", "raises guidance", "to hold its annual meeting", "wins a contract"]


def batch(first: int, count: int) -> list[Record]:
    """Headlines ``first`` … about ACME, a minute apart, on offsets of their own."""
    records = []
    for i in range(first, first + count):
        value = {
            "id": f"n{i:03d}",
            "ts": (START + timedelta(minutes=i)).isoformat(),
            "headline": f"ACME {WORDS[i % len(WORDS)]}",
            "tickers": ["ACME"],
        }
        records.append(Record("news", 0, 1000 + i, json.dumps(value).encode(), None))
    return records


class Database:
    def __init__(self, url: str):
        self.engine = make_engine(url)

    def run(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql))

    def stored_state(self) -> dict:
        with self.engine.begin() as conn:
            return conn.execute(text("SELECT state FROM entity_alert_state WHERE entity = 'ACME'")).scalar_one()

    def folded(self, since: str = "") -> dict:
        """ACME's state as one reader of every stored article would fold it: the stored articles (from
        ``since`` on) in event order."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT news_id, event_ts, label FROM news_sentiment "
                    "WHERE 'ACME' = ANY(entities) AND news_id >= :since ORDER BY event_ts, news_id"
                ),
                {"since": since},
            ).all()
        state = EntityState()
        for news_id, ts, label in rows:
            observe(state, AlertRule(), "ACME", news_id, ts.timestamp(), label == "negative")
        return state.to_dict()


@pytest.fixture
def database(pg_schema: Schema) -> Iterator[Database]:
    db = Database(pg_schema.admin)
    yield db
    db.engine.dispose()


@pytest.fixture
def two_workers(pg_schema: Schema, models_dir: Path) -> Iterator[tuple[Pipeline, Pipeline]]:
    """Two worker pipelines, each with its own connection pool and its own memory, on one database."""
    topics = Topics.from_settings(Settings(_env_file=None))
    stores = [Store(pg_schema.writer, retry_max_s=1.0) for _ in range(2)]
    models = ModelHolder(models_dir)
    yield tuple(Pipeline(models, store, topics, lambda outputs: None) for store in stores)  # type: ignore[misc]
    for store in stores:
        store.dispose()


def test_a_state_another_worker_moved_is_read_again_and_one_it_wrote_is_not(
    two_workers: tuple[Pipeline, Pipeline], database: Database
) -> None:
    a, b = two_workers
    a.process_batch("news", batch(0, 3))
    b.process_batch("news", batch(3, 3))  # B moves ACME's state: A's copy is now stale
    a.process_batch("news", batch(6, 3))
    assert database.stored_state() == database.folded()
    a.process_batch("news", batch(9, 3))  # nobody else wrote: A folds into its own copy
    assert database.stored_state() == database.folded()
    assert len(database.stored_state()["window"]) == 12
    assert (a.news.known.hits, a.news.known.misses) == (1, 2)
    assert (b.news.known.hits, b.news.known.misses) == (0, 1)


def test_a_table_emptied_and_refilled_is_never_mistaken_for_the_copy(
    two_workers: tuple[Pipeline, Pipeline], database: Database
) -> None:
    a, _ = two_workers
    a.process_batch("news", batch(0, 4))
    database.run("TRUNCATE entity_alert_state")  # the row comes back empty, with write_id 0
    a.process_batch("news", batch(4, 2))
    assert database.stored_state() == database.folded(since="n004")
    assert len(database.stored_state()["window"]) == 2


def test_a_write_that_failed_leaves_the_copy_as_it_was_committed(
    two_workers: tuple[Pipeline, Pipeline], database: Database
) -> None:
    a, _ = two_workers
    a.process_batch("news", batch(0, 3))
    # a real refusal after the articles were folded in: PostgreSQL rejects a window of 5 or more
    database.run(
        "ALTER TABLE entity_alert_state ADD CONSTRAINT short_window "
        "CHECK (coalesce(jsonb_array_length(state->'window'), 0) < 5)"
    )
    report = a.process_batch("news", batch(3, 3))  # refused as a batch; stored record by record: 1 fits
    assert (report.processed, report.dead_lettered) == (1, 2)
    database.run("ALTER TABLE entity_alert_state DROP CONSTRAINT short_window")
    a.process_batch("news", batch(6, 1))
    assert database.stored_state() == database.folded()
    assert [o["news_id"] for o in database.stored_state()["window"]] == ["n000", "n001", "n002", "n003", "n006"]


def test_keeping_no_state_reads_every_state_and_folds_the_same(
    pg_schema: Schema, models_dir: Path, database: Database
) -> None:
    store = Store(pg_schema.writer, retry_max_s=1.0)
    topics = Topics.from_settings(Settings(_env_file=None))
    pipe = Pipeline(ModelHolder(models_dir), store, topics, lambda outputs: None, PipelineConfig(alert_states_kept=0))
    try:
        for first in (0, 3, 6):
            pipe.process_batch("news", batch(first, 3))
        assert database.stored_state() == database.folded()
        assert (pipe.news.known.hits, len(pipe.news.known)) == (0, 0)
    finally:
        store.dispose()
