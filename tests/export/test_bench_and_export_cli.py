"""Smoke tests: `bench model` runs and writes well-formed results; `export` fails loudly on a parity breach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.bench.model_bench import fixed_shape_batches, label_agreement, op_shares, run_model_bench
from ops.cli import app


def test_fixed_shape_batches_frame_real_tokens() -> None:
    batch = fixed_shape_batches([[101, 5, 6, 102], [101, 7, 102]], cls_id=101, sep_id=102, batch=3, length=5)
    assert batch.shape == (3, 5)
    assert (batch[:, 0] == 101).all() and (batch[:, -1] == 102).all()
    assert batch[0, 1:4].tolist() == [5, 6, 7]


def test_model_bench_writes_json_markdown_and_plot(quick_run: Path, models_dir: Path, tmp_path: Path) -> None:
    texts = ["Stocks slump as yields rise", "Apple beats estimates", "Oil steady ahead of OPEC"] * 20
    report = run_model_bench(
        quick_run / "checkpoint", models_dir, 2, texts, tmp_path, batch_sizes=(1, 8), seq_lengths=(64,)
    )
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved == json.loads(json.dumps(report))
    ort_engines = {"ort-fp32", "ort-int8", "ort-int8-all-fusions", "ort-int8-attention-int8"}
    engines = {r["engine"] for r in saved["results"]}
    assert engines == {"pytorch-eager-fp32", "pytorch-bf16", *ort_engines}
    assert all(r["seq_per_s"] > 0 for r in saved["results"])
    assert {s["engine"] for s in saved["speedup_vs_eager"]} == {"pytorch-bf16", *ort_engines}
    assert "| 64 | 8 |" in (tmp_path / "model.md").read_text()
    assert "pytorch-bf16 ÷ eager" in (tmp_path / "model.md").read_text()
    assert saved["onednn_bf16_linear"] and saved["onednn_bf16_linear"] != "oneDNN logged nothing"
    # the int8 variants and the bf16 path label almost every text as fp32 does
    agreement = saved["label_agreement_with_fp32"]
    assert agreement["texts"] == len(texts)
    assert set(agreement) - {"texts"} == (ort_engines - {"ort-fp32"}) | {"pytorch-bf16"}
    assert all(0.9 <= share <= 1 for name, share in agreement.items() if name != "texts")
    assert "Sentiment labels equal to ORT fp32's on the 60 news texts" in (tmp_path / "model.md").read_text()
    # ORT's profiler sees the fusion where every fusion runs, and none of it in the scorer's session
    fused, ours = saved["op_profile"]["all_fusions"], saved["op_profile"]["scorer"]
    assert (
        fused["op_shares"].get("SkipLayerNormalization", 0) > 0.02 and "SkipLayerNormalization" not in ours["op_shares"]
    )
    assert ours["op_shares"]["LayerNormalization"] > 0 and ours["skipped_fusions"] == ["SkipLayerNormFusion"]
    assert all(abs(sum(p["op_shares"].values()) - 1) < 0.01 and p["ms_per_call"] > 0 for p in (fused, ours))
    assert "Where the int8 model's time goes" in (tmp_path / "model.md").read_text()
    assert (tmp_path / "model.png").read_bytes()[:4] == b"\x89PNG"


def test_label_agreement_is_the_share_of_texts_labelled_as_the_reference_does() -> None:
    labels = {
        "ort-fp32": ["negative", "neutral", "positive", "neutral"],
        "a": ["negative", "neutral", "positive", "positive"],
    }
    assert label_agreement(labels) == {"a": 0.75}
    with pytest.raises(ValueError):
        label_agreement({"ort-fp32": ["neutral"], "short": []})


def test_op_shares_sum_kernel_time_by_op_type() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "dur": 900},
        {"cat": "Node", "name": "a_kernel_time", "dur": 300, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "b_kernel_time", "dur": 100, "args": {"op_name": "Softmax"}},
        {"cat": "Node", "name": "c_kernel_time", "dur": 100, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "c_fence_before", "dur": 500, "args": {"op_name": "MatMul"}},
    ]
    assert op_shares(events) == {"MatMul": 0.8, "Softmax": 0.2}
    assert op_shares([]) == {}


def test_export_refuses_on_parity_breach_and_leaves_nothing(quick_run: Path, settings, tmp_path: Path) -> None:
    out = tmp_path / "models"
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(
        app, ["export", str(quick_run / "checkpoint"), "--out", str(out), "--atol", "1e-12"], env=env
    )
    assert result.exit_code == 3, result.output  # ExitCode.REFUSED: the model failed a gate
    assert "fp32 ONNX vs PyTorch max |difference|" in result.stderr and "exceeds the limit 1e-12" in result.stderr
    assert list(out.iterdir()) == [], "a failed export leaves no bundle and no staging folder"


def test_roofline_bench_places_the_int8_model_against_the_measured_gemm(models_dir: Path, tmp_path: Path) -> None:
    from ops.bench.int8_roofline import cpu_units, int8_gemm_macs_per_token, int8_unit, run_roofline_bench

    # six MiniLM layers of four 384×384 projections and a 384↔1536 feed-forward pair, plus the small heads
    macs = int8_gemm_macs_per_token(models_dir / "current" / "model.int8.onnx")
    layers = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert layers <= macs < layers * 1.01
    texts = ["Stocks slump as yields rise", "Apple beats estimates", "Oil steady ahead of OPEC"] * 20
    report = run_roofline_bench(models_dir / "current", 2, texts, tmp_path, quick=True)
    saved = json.loads((tmp_path / "roofline.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["cpu_units"] == cpu_units() and set(saved["cpu_units"]) >= {"avx512_vnni", "amx_int8"}
    assert saved["int8_roofline_gops"] == max(r["ort-int8-gemm"] for r in saved["gemm_gops"]) > 0
    # bf16 with oneDNN held below AMX, measured beside bf16 as oneDNN dispatches it
    assert all(r["torch-bf16-no-amx"] > 0 for r in saved["gemm_gops"])
    assert saved["int8_unit"] == int8_unit(saved["int8_ops_per_cycle_per_core"], saved["cpu_units"])
    model = saved["model"]
    assert model["int8_macs_per_token"] == macs and 0 < model["int8_gemm_share_of_time"] < 1
    assert 0 < model["share_of_roofline_whole_call"] < model["share_of_roofline_inside_int8_ops"]
    assert [r["level"] for r in saved["opt_levels"]][-1] == "ORT_ENABLE_ALL" and saved["opt_levels"][-1][
        "vs_enable_all"
    ] == 1
    assert "int8 roofline" in (tmp_path / "roofline.md").read_text()
    assert (tmp_path / "roofline.png").read_bytes()[:4] == b"\x89PNG"


def test_int8_unit_credits_a_unit_only_beyond_what_the_slower_one_gives() -> None:
    from ops.bench.int8_roofline import int8_unit

    amx = {"amx_int8": True}
    assert int8_unit(1100.0, amx).startswith("AMX")
    # two 512-bit VNNI instructions a cycle, even at 1.5x the nominal clock, stay VNNI
    assert (
        int8_unit(380.0, amx)
        == "AVX-512 VNNI (beyond 256-bit AVX-VNNI or AVX-512 without VNNI); AMX is there but not used"
    )
    assert int8_unit(280.0, {"amx_int8": False}) == "AVX-512 VNNI (beyond 256-bit AVX-VNNI or AVX-512 without VNNI)"
    assert int8_unit(150.0, {}).startswith("AVX-512 VNNI or narrower")
    assert int8_unit(None, amx).startswith("unknown")
