"""The news path's two steps (score, then store) against the real PostgreSQL and the real ONNX bundle, without
Kafka: a batch the database refuses in part is stored record by record from the scores it already has, and
the record that is refused becomes a ``processing_error`` dead letter; nothing is lost and nothing is
scored twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from streamscore.db.connection import make_engine
from streamscore.settings import Settings
from streamscore.topics import Topics
from tests.conftest import Schema
from worker.adapters.model_holder import ModelHolder
from worker.adapters.results_store import Store
from worker.domain.intake import Record
from worker.paths.core import Output
from worker.pipeline import Pipeline

HEADLINES = [
    "ACME shares slump after profit warning",
    "ACME raises its full-year guidance",
    "POISON: a headline the database is told to refuse",
    "ACME to hold its annual meeting in May",
    "ACME wins a large defence contract",
]


def news(i: int, headline: str) -> Record:
    value = json.dumps({"id": f"n{i}", "ts": datetime.now(UTC).isoformat(), "headline": headline, "tickers": ["ACME"]})
    return Record("news", 0, 100 + i, value.encode(), None)


@pytest.fixture
def pipeline(pg_schema: Schema, models_dir: Path) -> Iterator[tuple[Pipeline, list[Output]]]:
    engine = make_engine(pg_schema.admin)
    with engine.begin() as conn:  # a real refusal: PostgreSQL rejects the row, not a stub
        conn.execute(text("ALTER TABLE news_sentiment ADD CONSTRAINT no_poison CHECK (headline NOT LIKE 'POISON%')"))
    engine.dispose()
    store = Store(pg_schema.writer, retry_max_s=1.0)
    emitted: list[Output] = []
    topics = Topics.from_settings(Settings(_env_file=None))
    yield Pipeline(ModelHolder(models_dir), store, topics, emitted.extend), emitted
    store.dispose()


def stored(pg_schema: Schema) -> tuple[list[str], list[tuple[int, str]]]:
    engine = make_engine(pg_schema.admin)
    with engine.begin() as conn:
        scored = [r[0] for r in conn.execute(text("SELECT news_id FROM news_sentiment ORDER BY news_id"))]
        dead = [(r[0], r[1]) for r in conn.execute(text("SELECT source_offset, error_code FROM dead_letters"))]
    engine.dispose()
    return scored, dead


def test_a_refused_record_is_dead_lettered_and_the_rest_stored_from_one_scoring(
    pipeline: tuple[Pipeline, list[Output]], pg_schema: Schema
) -> None:
    pipe, emitted = pipeline
    records = [news(i, h) for i, h in enumerate(HEADLINES)] + [Record("news", 0, 200, b"{not json", None)]
    usage = pipe.models.scorer.usage
    calls_before = usage.calls

    store = pipe.score_ahead(records)
    calls_scoring = usage.calls - calls_before
    assert calls_scoring >= 1 and stored(pg_schema) == ([], [])  # scored, nothing written yet

    report = store()
    assert usage.calls - calls_before == calls_scoring  # the fallback stored the scores it had
    assert (report.received, report.processed, report.dead_lettered, report.redelivered) == (6, 4, 2, 0)
    scored, dead = stored(pg_schema)
    assert scored == ["n0", "n1", "n3", "n4"]
    assert sorted(dead) == [(102, "processing_error"), (200, "invalid_json")]
    assert sum(o.topic.endswith("dead-letter") for o in emitted) == 2


def test_storing_again_absorbs_the_redelivery(pipeline: tuple[Pipeline, list[Output]], pg_schema: Schema) -> None:
    pipe, _ = pipeline
    records = [news(i, h) for i, h in enumerate(HEADLINES) if not h.startswith("POISON")]
    first = pipe.process_batch("news", records)
    again = pipe.process_batch("news", records)
    assert (first.processed, first.redelivered) == (4, 0)
    assert (again.processed, again.redelivered, again.dead_lettered) == (0, 4, 0)
    assert stored(pg_schema)[0] == ["n0", "n1", "n3", "n4"]
