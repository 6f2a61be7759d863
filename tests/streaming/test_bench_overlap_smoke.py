"""`streamscore bench overlap` drains the same backlog with the store overlap off and on, one model call at a
time and two at once (and the default without its surge states kept in memory), beside the scorer alone
configured the same way, and writes well-formed results (the
figures to quote come from docs/benchmarks/store_overlap.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ops.bench.store_overlap import run_overlap_bench
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
        f"{calls}, overlap {switch}"
        for calls in ("1 call × 2 threads", "2 calls × 1 thread")
        for switch in ("off", "on")
    } | {"2 calls × 1 thread, overlap off, states read every batch"}
    kept = saved["modes"]["2 calls × 1 thread, overlap off"]["events_per_s"]
    read = saved["modes"]["2 calls × 1 thread, overlap off, states read every batch"]["events_per_s"]
    assert saved["kept_over_read"] == round(kept / read, 3)
    assert saved["best"] in saved["modes"]
    for row in saved["modes"].values():
        assert row["events_per_s"] > 0 and len(row["drains_events_per_s"]) == 1
        assert row["cpu_s_per_1000"] > 0 and row["stack_cpu_s_per_1000"] > 0  # PostgreSQL and Kafka run here
        ceiling = saved["model_only"][row["calls"]]["events_per_s"]
        assert ceiling > 0 and row["share_of_model_only"] == round(row["events_per_s"] / ceiling, 3)
    assert "Overlap on ÷ off" in (tmp_path / "store_overlap.md").read_text()
    assert "read every batch" in (tmp_path / "store_overlap.md").read_text()
    assert (tmp_path / "store_overlap.png").read_bytes()[:4] == b"\x89PNG"
