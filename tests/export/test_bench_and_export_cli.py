"""Smoke tests: `bench model` runs and writes well-formed results; `export` fails loudly on a parity breach."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from streamscore.bench.model_bench import fixed_shape_batches, run_model_bench
from streamscore.cli import app


def test_fixed_shape_batches_frame_real_tokens() -> None:
    batch = fixed_shape_batches([[101, 5, 6, 102], [101, 7, 102]], cls_id=101, sep_id=102, batch=3, length=5)
    assert batch.shape == (3, 5)
    assert (batch[:, 0] == 101).all() and (batch[:, -1] == 102).all()
    assert batch[0, 1:4].tolist() == [5, 6, 7]


def test_model_bench_writes_json_markdown_and_plot(quick_run: Path, models_dir: Path, tmp_path: Path) -> None:
    texts = ["Stocks slump as yields rise", "Apple beats estimates", "Oil steady ahead of OPEC"] * 20
    report = run_model_bench(quick_run / "checkpoint", models_dir, 2, texts, tmp_path, batch_sizes=(1, 8), seq_lengths=(64,))
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved == json.loads(json.dumps(report))
    engines = {r["engine"] for r in saved["results"]}
    assert engines == {"pytorch-eager-fp32", "ort-fp32", "ort-int8"}
    assert all(r["seq_per_s"] > 0 for r in saved["results"])
    assert {s["engine"] for s in saved["speedup_vs_eager"]} == {"ort-fp32", "ort-int8"}
    assert "| 64 | 8 |" in (tmp_path / "model.md").read_text()
    assert (tmp_path / "model.png").read_bytes()[:4] == b"\x89PNG"


def test_export_refuses_on_parity_breach_and_leaves_nothing(quick_run: Path, settings, tmp_path: Path) -> None:
    out = tmp_path / "models"
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(app, ["export", str(quick_run / "checkpoint"), "--out", str(out), "--atol", "1e-12"], env=env)
    assert result.exit_code == 2, result.output
    assert "fp32 ONNX vs PyTorch max |difference|" in result.output and "exceeds the limit 1e-12" in result.output
    assert list(out.iterdir()) == [], "a failed export leaves no bundle and no staging folder"
