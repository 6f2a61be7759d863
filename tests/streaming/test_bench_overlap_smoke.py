"""`streamscore bench overlap` drains the same backlog with the agent waiting for each batch and gathering
while the model scores, each with the store overlap off and on, beside the scorer alone configured the same
way, and writes well-formed results (the figures to quote come from docs/benchmarks/store_overlap.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import text

from ops.bench.store_overlap import BEFORE, DEFAULT, run_overlap_bench
from streamscore.db.connection import make_engine
from streamscore.settings import Settings
from tests.conftest import Schema


def test_overlap_bench_writes_json_markdown_and_plot(
    stack: Settings, pg_schema: Schema, models_dir: Path, tmp_path: Path
) -> None:
    settings = stack.model_copy(
        update={"models_dir": models_dir, "database_url": pg_schema.admin, "writer_database_url": pg_schema.writer}
    )
    report = run_overlap_bench(settings, tmp_path, rounds=1, size=300)
    saved = json.loads((tmp_path / "store_overlap.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert set(saved["modes"]) == {
        f"{handover}, store overlap {switch}"
        for handover in ("agent waits for each batch", "agent gathers while the model scores")
        for switch in ("off", "on")
    }
    assert {BEFORE, DEFAULT} <= set(saved["modes"])
    assert saved["default_over_before"] == round(
        saved["modes"][DEFAULT]["events_per_s"] / saved["modes"][BEFORE]["events_per_s"], 3
    )
    assert saved["best"] in saved["modes"]
    pipelined, one_by_one = saved["model_only"], saved["model_only_batch_by_batch"]
    assert len(pipelined["rounds"]) == len(one_by_one["rounds"]) == 1
    ceiling = saved["ceiling_events_per_s"]
    assert ceiling == max(pipelined["events_per_s"], one_by_one["events_per_s"]) > 0
    for row in saved["modes"].values():
        assert row["events_per_s"] > 0 and len(row["drains_events_per_s"]) == 1
        assert 1 <= row["mean_batch_events"] <= settings.batch_max_events
        assert row["cpu_s_per_1000"] > 0 and row["stack_cpu_s_per_1000"] > 0  # PostgreSQL and Kafka run here
        assert row["share_of_model_only"] == round(row["events_per_s"] / ceiling, 3)
    markdown = (tmp_path / "store_overlap.md").read_text()
    assert "Gathering while the model scores ÷ the agent waiting" in markdown and "(default)" in markdown
    assert "| model only, batch after batch |" in markdown
    assert (tmp_path / "store_overlap.png").read_bytes()[:4] == b"\x89PNG"
    # Each deployment wrote into a schema of its own, dropped at its end: the database's own tables (which
    # dashboards and the alert forwarder read) never see a benchmark's synthetic headlines or alerts.
    engine = make_engine(pg_schema.admin)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM news_sentiment")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar_one() == 0
        leftover = conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench\\_%'")).scalar_one()
        assert leftover == 0
    engine.dispose()


def test_stack_cpu_keeps_what_an_exited_backend_used(stack: Settings, pg_schema: Schema) -> None:
    """A PostgreSQL backend that exits during a drain takes its CPU out of the live processes; the server's
    reaped-children time keeps it, so the stack's CPU over a drain is never negative."""
    from ops.bench.pipeline_bench import stack_cpu_seconds

    engine = make_engine(pg_schema.admin)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM generate_series(1, 3000000) g WHERE g % 7 = 0")).scalar_one()
        during = stack_cpu_seconds()
    engine.dispose()  # the backend that did the work exits
    deadline = time.monotonic() + 5
    after = stack_cpu_seconds()
    while after < during and time.monotonic() < deadline:
        time.sleep(0.1)  # the server has not reaped it yet
        after = stack_cpu_seconds()
    assert after >= during > 0
