"""The sweep's report from saved variant results (no training): alert quality from each variant's saved test
probabilities, the choice on dev, and the table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ops.bench.alert_quality import plan_tickers
from ops.sentiment_sweep import VARIANTS_DIR, choose, run_sweep
from streamscore.settings import Settings
from trainer.distillation import text_key


def _report(accuracy: float, macro_f1: float) -> dict:
    per_class = {
        c: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 1} for c in ("negative", "neutral", "positive")
    }
    return {"accuracy": accuracy, "macro_f1": macro_f1, "per_class": per_class}


def _save(out: Path, name: str, dev_f1: float, negative_of: dict[str, bool]) -> None:
    folder = out / VARIANTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    keys = [text_key(t.strip()) for t in negative_of]  # the loader strips, as the sweep's test texts are
    probabilities = np.array([[0.9, 0.05, 0.05] if neg else [0.05, 0.9, 0.05] for neg in negative_of.values()])
    np.savez_compressed(folder / f"{name}.npz", text_sha1=np.array(keys), probabilities=probabilities)
    record = {
        "variant": name,
        "about": name,
        "changes": {},
        "best_epoch": 1,
        "precision": "bf16",
        "epochs": [],
        "dev": _report(0.8, dev_f1),
        "test": _report(0.8, 0.7),
        "seconds": 60.0,
    }
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_report_scores_saved_predictions_and_chooses_on_dev(settings: Settings, tmp_path: Path) -> None:
    plans = plan_tickers(settings.data_dir)
    truth = {text: negative for plan in plans for text, negative in plan.headlines}
    _save(tmp_path, "hard-labels", 0.70, truth)
    _save(tmp_path, "distil-a0.5-T2", 0.75, dict.fromkeys(truth, False))
    report = run_sweep(settings, tmp_path, ["hard-labels", "distil-a0.5-T2"])
    by_name = {r["variant"]: r for r in report["variants"]}
    assert by_name["hard-labels"]["alerts"]["recall"] == 1.0 and by_name["hard-labels"]["alerts"]["precision"] == 1.0
    assert by_name["distil-a0.5-T2"]["alerts"]["recall"] == 0.0
    assert report["chosen"] == "distil-a0.5-T2" == choose(report["variants"])["variant"]  # dev decides, not test
    table = (tmp_path / "sweep.md").read_text()
    assert "**distil-a0.5-T2** (chosen)" in table and "teacher" in table
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_a_variant_saved_with_dev_probabilities_gets_an_offset_chosen_on_dev(
    settings: Settings, tmp_path: Path
) -> None:
    """Negatives scored just under neutral on dev and test: the offset dev picks lifts the negative class, test is
    rescored with it (every surge alerts again), and the table shows the row and the held-out gain."""
    plans = plan_tickers(settings.data_dir)
    truth = {text: negative for plan in plans for text, negative in plan.headlines}
    _save(tmp_path, "distil-a0.5-T2", 0.75, dict.fromkeys(truth, False))
    shy = [0.45, 0.50, 0.05]
    calm = [0.05, 0.90, 0.05]
    test_p = np.array([shy if neg else calm for neg in truth.values()])
    dev_y = np.array([0, 1] * 200)
    dev_p = np.array([shy if y == 0 else calm for y in dev_y])
    npz = tmp_path / VARIANTS_DIR / "distil-a0.5-T2.npz"
    with np.load(npz) as saved:
        keys = saved["text_sha1"]
    np.savez_compressed(
        npz,
        text_sha1=keys,
        probabilities=test_p,
        test_labels=np.array([0 if neg else 1 for neg in truth.values()]),
        dev_probabilities=dev_p,
        dev_labels=dev_y,
    )
    report = run_sweep(settings, tmp_path, ["distil-a0.5-T2"])
    offset = report["variants"][0]["decision_bias"]
    assert offset["bias"][0] > 0 and offset["bias"][1] == 0
    assert offset["test"]["per_class"]["negative"]["recall"] == 1.0 and offset["alerts"]["recall"] == 1.0
    assert offset["dev_macro_f1_held_out"]["with"] > offset["dev_macro_f1_held_out"]["without"]
    table = (tmp_path / "sweep.md").read_text()
    assert "distil-a0.5-T2 + offset (+" in table and "held out" in table


def test_a_soup_is_reported_with_each_copy_beside_the_mean_of_their_weights(settings: Settings, tmp_path: Path) -> None:
    plans = plan_tickers(settings.data_dir)
    truth = {text: negative for plan in plans for text, negative in plan.headlines}
    _save(tmp_path, "distil-soup-4", 0.76, truth)
    saved = tmp_path / VARIANTS_DIR / "distil-soup-4.json"
    record = json.loads(saved.read_text())
    copy = {"accuracy": 0.871, "macro_f1": 0.832, "negative_f1": 0.771}
    record |= {
        "best_epoch": [3, 2],
        "ingredients": [
            {"training_seed": 13, "best_epoch": 3, "dev": copy, "test": copy},
            {"training_seed": 14, "best_epoch": 2, "dev": copy, "test": copy},
        ],
    }
    saved.write_text(json.dumps(record))
    report = run_sweep(settings, tmp_path, ["distil-soup-4"])
    assert [c["training_seed"] for c in report["variants"][0]["ingredients"]] == [13, 14]
    table = (tmp_path / "sweep.md").read_text()
    assert "| 14 | 2 | 0.871 | 0.832 | 0.771 | 0.871 | 0.832 | 0.771 |" in table
    assert "| **mean of the weights** | | 0.800 | 0.760 | 0.800 | 0.800 | 0.700 | 0.800 |" in table
    assert "| 3, 2 | bf16 |" in table
