"""`streamscore bench alerts` replays the labelled surge scenario through a real worker, and the offline replay
the recipe sweep scores with raises the same alerts from the labels that worker stored."""

from __future__ import annotations

import json
from pathlib import Path

from ops.bench.alert_quality import run_alert_quality
from streamscore.bundle import Bundle
from streamscore.settings import Settings
from tests.conftest import Schema


def test_alert_bench_agrees_with_the_offline_rule(
    stack: Settings, pg_schema: Schema, bundle: Bundle, tmp_path: Path
) -> None:
    settings = stack.model_copy(update={"database_url": pg_schema.admin, "writer_database_url": pg_schema.writer})
    report = run_alert_quality(settings, {"quick": bundle.path}, tmp_path, tickers=5)
    result = report["results"]["quick"]
    assert result["model_version"] == bundle.version
    assert result["surges"] == result["calm"] == 5
    assert result["offline_rule_agrees"] is True
    assert len(result["raised_slots"]) == result["alerted_surges"] + result["false_alarms"]
    assert (
        json.loads((tmp_path / "alerts.json").read_text())["results"]["quick"]["raised_slots"] == result["raised_slots"]
    )
    assert "| quick |" in (tmp_path / "alerts.md").read_text()
    assert (tmp_path / "alerts.png").read_bytes()[:4] == b"\x89PNG"
