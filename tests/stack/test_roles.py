"""Least privilege: the writer writes rows but no DDL; the reader reads the views and nothing else."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from streamscore.db.connection import make_engine
from streamscore.db.tables import VIEWS
from tests.stack.conftest import Schema

NEWS = (
    "INSERT INTO news_sentiment (news_id, event_ts, headline, entities, label, p_negative, p_neutral, p_positive, "
    "model_version) "
    "VALUES ('n1', now(), 'TSLA falls', ARRAY['TSLA'], 'negative', 0.9, 0.05, 0.05, 'v1') "
    "ON CONFLICT (news_id) DO UPDATE SET label = EXCLUDED.label"
)


def test_writer_upserts_rows_idempotently(pg_schema: Schema) -> None:
    engine = make_engine(pg_schema.writer)
    with engine.begin() as conn:
        conn.execute(text(NEWS))
        conn.execute(text(NEWS))  # a redelivered event is the same row
        assert conn.execute(text("SELECT count(*) FROM news_sentiment")).scalar() == 1
        assert conn.execute(text("SELECT current_user")).scalar() == "streamscore_writer"


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE evil (x int)",
        "ALTER TABLE news_sentiment ADD COLUMN evil int",
        "DROP TABLE news_sentiment",
        "DROP VIEW v_alert_timeline",
        "TRUNCATE news_sentiment",
        "DELETE FROM news_sentiment",
        "UPDATE _yoyo_migration SET applied_at_utc = now()",
    ],
)
def test_writer_cannot_change_the_schema(pg_schema: Schema, statement: str) -> None:
    with make_engine(pg_schema.writer).connect() as conn:
        with pytest.raises(ProgrammingError, match="permission denied|must be owner|does not exist"):
            conn.execute(text(statement))


def test_reader_reads_every_view(pg_schema: Schema) -> None:
    with make_engine(pg_schema.writer).begin() as conn:
        conn.execute(text(NEWS))
    with make_engine(pg_schema.reader).connect() as conn:
        for view in VIEWS:
            conn.execute(text(f"SELECT * FROM {view}")).fetchall()
        row = conn.execute(text("SELECT entity, negative, articles FROM v_sentiment_entity_hourly")).one()
        assert tuple(row) == ("TSLA", 1, 1)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM news_sentiment",
        "SELECT * FROM dead_letters",
        "INSERT INTO alerts (alert_id, status, entity, window_start, window_end, negative_count, total_count, "
        "negative_share, "
        "baseline_share, score, model_version, event_ts) VALUES ('a', 'raised', 'X', now(), now(), 1, 1, 1, 0, 1, "
        "'v', now())",
        "CREATE TABLE evil (x int)",
    ],
)
def test_reader_cannot_touch_base_tables_or_write(pg_schema: Schema, statement: str) -> None:
    with make_engine(pg_schema.reader).connect() as conn:
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(statement))


def test_retrainer_reads_what_the_workers_stored_and_writes_only_lineage(pg_schema: Schema) -> None:
    with make_engine(pg_schema.writer).begin() as conn:
        conn.execute(text(NEWS))
    with make_engine(pg_schema.retrainer).begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "streamscore_retrainer"
        assert conn.execute(text("SELECT count(*) FROM news_sentiment")).scalar() == 1
        for table in ("click_events", "items", "feedback", "recommendation_history", "v_online_performance"):
            conn.execute(text(f"SELECT * FROM {table}")).fetchall()
        conn.execute(
            text(
                "INSERT INTO model_versions (version, created_at, parent_version, decision, reason) "
                "VALUES ('c1', now(), 'v1', 'refused', 'worse')"
            )
        )
    for statement in (
        "DELETE FROM news_sentiment",
        "INSERT INTO feedback (feedback_id, kind, news_id, label, event_ts) VALUES ('f', 'sentiment_correction', "
        "'n1', 'neutral', now())",
        "UPDATE click_events SET rating = 5",
        "CREATE TABLE evil (x int)",
    ):
        with make_engine(pg_schema.retrainer).connect() as conn:
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(statement))
