"""The exported bundle: parity, int8 limits, manifest checksums, tampering, the current pointer."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from export.errors import ToleranceExceeded
from export.validation import check_int8
from streamscore.bundle import Bundle, BundleError, content_version, current_version, point_current


def test_bundle_files_and_manifest(bundle: Bundle) -> None:
    m = bundle.manifest
    for name in ("model.onnx", "model.int8.onnx", "recommender.onnx", "recommender.json", "tokenizer.json"):
        assert name in m["files"] and (bundle.path / name).is_file(), name
    assert not [p for p in bundle.path.iterdir() if p.suffix in (".pt", ".pkl", ".bin")], "no pickles in a bundle"
    assert m["version"] == bundle.path.name == content_version(m["files"])
    assert set(m["text_model"]["outputs"]) == {"embedding", "sentiment_logits", "review_logits", "review_rating"}
    assert m["text_model"]["inputs"]["input_ids"]["shape"] == ["batch_size", "sequence_length"]
    assert m["source_checkpoint"].endswith("checkpoint")
    assert m["checkpoint_metrics"]["sentiment_accuracy"] > 0
    assert m["files"]["model.int8.onnx"]["bytes"] < 0.5 * m["files"]["model.onnx"]["bytes"]


def test_fp32_parity_and_int8_metrics_are_recorded(bundle: Bundle) -> None:
    validation = bundle.manifest["validation"]
    parity = validation["parity"]["text"]
    assert parity["max_abs_diff"] <= 1e-4
    for task in ("sentiment", "review-rating", "embed"):
        assert parity[task]["texts"] > 0 and max(parity[task]["max_abs_diff"].values()) <= 1e-4
    assert validation["parity"]["recommender"]["max_abs_diff"] <= 1e-4
    fp32, int8 = validation["metrics"]["fp32"], validation["metrics"]["int8"]
    assert fp32["sentiment_accuracy"] - int8["sentiment_accuracy"] <= 0.01
    # the gate reads the whole sentiment test set, not the quick profile's 400-headline sample
    assert fp32["texts"]["sentiment"] == int8["texts"]["sentiment"] == 2388
    assert int8["review_rmse"] - fp32["review_rmse"] <= 0.02
    assert validation["providers"] == ["CPUExecutionProvider"]


def test_int8_limits_refuse_a_degraded_model() -> None:
    fp32 = {"sentiment_accuracy": 0.87, "review_rmse": 0.70, "movielens_rmse": 0.85}
    assert check_int8(fp32, {"sentiment_accuracy": 0.865, "review_rmse": 0.71, "movielens_rmse": 0.86}, 0.01, 0.02)
    with pytest.raises(ToleranceExceeded, match="int8 sentiment accuracy drop: 0.02 exceeds the limit 0.01"):
        check_int8(fp32, {"sentiment_accuracy": 0.85, "review_rmse": 0.70, "movielens_rmse": 0.85}, 0.01, 0.02)
    with pytest.raises(ToleranceExceeded, match="MovieLens rating RMSE"):
        check_int8(fp32, {"sentiment_accuracy": 0.87, "review_rmse": 0.70, "movielens_rmse": 0.90}, 0.01, 0.02)


@pytest.fixture
def bundle_copy(bundle: Bundle, tmp_path: Path) -> Path:
    target = tmp_path / bundle.version
    shutil.copytree(bundle.path, target)
    return target


def test_tampered_file_is_refused(bundle_copy: Path) -> None:
    with (bundle_copy / "recommender.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(BundleError, match="checksum mismatch for recommender.json"):
        Bundle.load(bundle_copy)


def test_incomplete_bundle_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "model.int8.onnx").unlink()
    with pytest.raises(BundleError, match="model.int8.onnx listed in the manifest is missing"):
        Bundle.load(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.load(bundle_copy)


def test_edited_manifest_is_refused(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["sha256"] = "0" * 64
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="checksum mismatch for model.onnx"):
        Bundle.load(bundle_copy)


def test_current_pointer_switches_atomically(bundle: Bundle, bundle_copy: Path, tmp_path: Path) -> None:
    models = bundle_copy.parent
    point_current(models, bundle_copy.name)
    assert current_version(models) == bundle.version
    assert Bundle.load(models).version == bundle.version  # a models folder resolves through `current`
    other = models / "other"
    other.mkdir()
    with pytest.raises(BundleError, match="without manifest.json"):
        point_current(models, "other")
    assert current_version(models) == bundle.version, "a refused switch leaves the old pointer"
    assert not [p for p in models.iterdir() if p.name.startswith(".current")], "no temporary pointer left behind"


def test_attention_products_are_quantized_only_when_asked(bundle: Bundle, tmp_path: Path) -> None:
    """The served int8 graph keeps the 12 attention products (query × key, attention × value) in fp32; the
    variant `bench model` measures beside it quantizes both operands of each on the fly."""
    import onnx

    from export.quantize import quantize_int8

    def op_counts(path: Path) -> Counter[str]:
        return Counter(node.op_type for node in onnx.load(str(path)).graph.node)

    served = op_counts(quantize_int8(bundle.file("model.onnx"), tmp_path / "served.onnx"))
    assert served == op_counts(bundle.file("model.int8.onnx"))
    assert served["MatMul"] == 12
    variant = op_counts(quantize_int8(bundle.file("model.onnx"), tmp_path / "attention.onnx", attention_products=True))
    assert variant["MatMul"] == 0
    assert variant["MatMulInteger"] == served["MatMulInteger"] + 12
    assert variant["DynamicQuantizeLinear"] == served["DynamicQuantizeLinear"] + 24
