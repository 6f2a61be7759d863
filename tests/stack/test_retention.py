"""Retention and schema operations on real PostgreSQL: ``db prune`` deletes only history older than the cutoff
and keeps state; ``db status`` / ``db rollback`` work over the shipped rollback files."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from streamscore.db.connection import make_engine
from streamscore.db.migrate import migrate, migration_status, rollback
from streamscore.db.retention import HISTORY, count_older, prune
from tests.conftest import Schema

OLD, NEW = "now() - interval '40 days'", "now() - interval '1 day'"


def seed(conn, when: str, suffix: str) -> None:
    conn.execute(
        text(
            "INSERT INTO news_sentiment (news_id, event_ts, headline, label, p_negative, p_neutral, p_positive, "
            f"model_version, scored_at) VALUES ('n{suffix}', {when}, 'h', 'neutral', 0.1, 0.8, 0.1, 'v', {when})"
        )
    )
    conn.execute(
        text(
            "INSERT INTO click_events (event_id, user_id, item_id, action, event_ts, processed_at) "
            f"VALUES ('c{suffix}', 'u', 'i', 'click', {when}, {when})"
        )
    )
    conn.execute(
        text(
            "INSERT INTO dead_letters (source_topic, source_partition, source_offset, error_code, reason, payload, "
            f"created_at) VALUES ('news', 0, {len(suffix)}, 'invalid_json', 'r', 'p', {when})"
        )
    )
    conn.execute(
        text(
            "INSERT INTO alert_deliveries (alert_id, status, seq, target, attempts, http_status, delivered_at) "
            f"VALUES ('a{suffix}', 'raised', 0, 't', 1, 200, {when})"
        )
    )


def test_prune_deletes_only_old_history_in_batches(pg_schema: Schema) -> None:
    engine = make_engine(pg_schema.admin)
    with engine.begin() as conn:
        seed(conn, OLD, "old")
        seed(conn, NEW, "new-one")
        conn.execute(text("INSERT INTO items (item_id, title, event_ts) VALUES ('i', 't', now() - interval '90 days')"))
    cutoff = datetime.now(UTC) - timedelta(days=30)
    would = count_older(engine, cutoff)
    assert would["news_sentiment"] == would["click_events"] == would["dead_letters"] == 1
    assert set(would) == {t.table for t in HISTORY}
    batches: list[tuple[str, int]] = []
    deleted = prune(engine, cutoff, batch=1, progress=lambda table, n: batches.append((table, n)))
    assert deleted == would
    assert ("news_sentiment", 1) in batches and ("news_sentiment", 0) in batches  # a batch of 1, then done
    with engine.connect() as conn:
        assert conn.execute(text("SELECT news_id FROM news_sentiment")).scalars().all() == ["nnew-one"]
        assert conn.execute(text("SELECT event_id FROM click_events")).scalars().all() == ["cnew-one"]
        assert conn.execute(text("SELECT alert_id FROM alert_deliveries")).scalars().all() == ["anew-one"]
        assert conn.execute(text("SELECT count(*) FROM items")).scalar() == 1  # the catalog is state, not history
    assert all(n == 0 for n in count_older(engine, cutoff).values())
    engine.dispose()


def test_prune_command_dry_run_then_delete(pg_schema: Schema) -> None:
    engine = make_engine(pg_schema.admin)
    with engine.begin() as conn:
        seed(conn, OLD, "old")
    env = {**os.environ, "DATABASE_URL": pg_schema.admin}
    command = [sys.executable, "-m", "ops", "db", "prune", "--older-than", "30d"]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and "news_sentiment 1" in dry.stdout
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM news_sentiment")).scalar() == 1
    real = subprocess.run(command, env=env, capture_output=True, text=True)
    assert real.returncode == 0 and "deleted" in real.stdout, real.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM news_sentiment")).scalar() == 0
    engine.dispose()


def test_status_and_rollback_over_the_shipped_files(pg_schema: Schema) -> None:
    status = migration_status(pg_schema.admin, pg_schema.name)
    assert [s["id"] for s in status] == sorted(s["id"] for s in status)
    assert all(s["applied"] and s["rollback"] for s in status)
    newest = status[-1]["id"]
    assert rollback(pg_schema.admin, 1, pg_schema.name) == [newest]
    assert migration_status(pg_schema.admin, pg_schema.name)[-1] == {"id": newest, "applied": False, "rollback": True}
    assert migrate(pg_schema.admin, pg_schema.name) == [newest]
    env = {**os.environ, "DATABASE_URL": pg_schema.admin}
    shown = subprocess.run(
        [sys.executable, "-m", "ops", "db", "status", "--schema", pg_schema.name],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and newest in shown.stdout and "pending" not in shown.stdout
