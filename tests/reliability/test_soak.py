"""A short soak run: the command works end to end and writes well-formed results (the real figures come
from `streamscore bench soak --minutes 10`, recorded in docs/benchmarks/soak.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ops.bench.soak import Sample, run_soak, summarise
from streamscore.settings import Settings


def test_summary_measures_growth_after_warm_up_and_backlog() -> None:
    samples = [
        Sample(t, 100.0 if t < 4 else 200.0 + t, produced=10 * t, processed=10 * t - (5 if t > 14 else 1))
        for t in range(20)
    ]
    summary = summarise(samples)
    assert summary["rss_after_warmup_mb"] == 206.0 and summary["rss_end_mb"] == 218.0
    assert abs(summary["memory_growth"] - 12 / 206) < 1e-3
    assert summary["max_backlog_first_half"] == 1 and summary["max_backlog_second_half"] == 5


def test_short_soak_writes_results(stack: Settings, models_dir: Path, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"models_dir": models_dir})
    report = run_soak(settings, minutes=0.5, rate=60, out_dir=tmp_path, sample_s=2.0, port=6091)
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["produced"] == report["produced"] > 0 and saved["processed"] >= saved["produced"]
    assert len(saved["samples"]) >= 10 and all(s["rss_mb"] > 50 for s in saved["samples"])
    assert (tmp_path / "soak.png").stat().st_size > 5000 and "memory growth" in (tmp_path / "soak.md").read_text()
