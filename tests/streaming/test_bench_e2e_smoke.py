"""`streamscore bench e2e --quick` runs end to end and writes well-formed results (figures to quote come from
the full run in docs/benchmarks/e2e.md; timing is not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from ops.bench.pipeline_bench import run_e2e_bench
from streamscore.settings import Settings
from tests.conftest import Schema


def test_e2e_bench_quick_writes_json_markdown_and_plot(
    stack: Settings, pg_schema: Schema, models_dir: Path, quick_run: Path, tmp_path: Path
) -> None:
    settings = stack.model_copy(
        update={"models_dir": models_dir, "database_url": pg_schema.admin, "writer_database_url": pg_schema.writer}
    )
    report = run_e2e_bench(settings, tmp_path, quick_run / "checkpoint", quick=True)
    saved = json.loads((tmp_path / "e2e.json").read_text())
    assert saved["paths"].keys() == {"news", "clicks"}
    for path in saved["paths"].values():
        assert path["capacity"]["events_per_s"] > 0 and len(path["ladder"]) == 5 and len(path["latency"]) == 3
        assert all(0 < lat["p50_ms"] <= lat["p99_ms"] for lat in path["latency"])
    assert 0 < saved["efficiency"]["share_of_model_only"] and saved["naive_baseline"]["events_per_s"] > 0
    # the quick bundle collapses links (about 20 real tokens per held-out headline, 28 without)
    # and skips the slow fusion
    eff = saved["efficiency"]
    assert (
        eff["collapses_links"] is True
        and 10 < eff["tokens_per_headline"] < 25
        and eff["skipped_fusions"] == ["SkipLayerNormFusion"]
    )
    # ... and the side-by-side rows with the rewrite taken out again feed the same headlines' links whole
    assert eff["model_only_links_kept"]["tokens_per_event"] > eff["tokens_per_headline"] * 1.2
    assert (
        saved["naive_baseline"]["keep_links"] is False and saved["naive_baseline"]["links_kept"]["keep_links"] is True
    )
    assert saved["naive_baseline"]["links_kept"]["events_per_s"] > 0
    plans = saved["efficiency"]["model_only_by_call_plan"]
    assert len(plans) == 6 and all(0 < r["padding_efficiency"] <= 1 and r["events_per_s"] > 0 for r in plans)
    for fill, least in zip(plans[::2], plans[1::2]):  # least-cost never pads more than filling calls to the budget
        assert (fill["call_plan"], least["call_plan"]) == ("fill", "least-cost") and least[
            "padding_efficiency"
        ] >= fill["padding_efficiency"]
    assert {"news", "clicks"} == saved["scaling"].keys() and len(saved["batch_sweep"]["points"]) == 2
    assert report["naive_baseline"]["pipeline_ratio"] == saved["naive_baseline"]["pipeline_ratio"]
    assert (tmp_path / "e2e.png").stat().st_size > 10_000 and all(
        s in (tmp_path / "e2e.md").read_text() for s in ("naive consumer", "least-cost")
    )
