"""``streamscore sweep``: train each sentiment recipe (:mod:`trainer.sentiment_recipes`), pick one on
dev, and report every variant's dev and test scores with the alert quality its predictions give on the labelled
surge scenario, in one table.

A variant's result is saved as it finishes (``variants/<name>.json``; its dev and test probabilities and labels in
``.npz``), so a stopped sweep resumes where it stopped and a finished one can be re-reported without training.
For a variant saved with dev probabilities the report adds a decision offset chosen on dev
(:mod:`trainer.decision_bias`), with what it gains on dev rows it was not fitted on.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ops.bench.alert_quality import offline_alert_scores, plan_tickers
from ops.bench.output import pyplot, write_json
from streamscore.settings import Settings
from trainer.data.formats import SENTIMENT_LABELS
from trainer.decision_bias import biased_report, choose_bias, cross_fitted, predict_with_bias
from trainer.distillation import text_key
from trainer.report import chosen_epochs
from trainer.sentiment_recipes import VARIANTS, Variant, train_variant, variant_named
from worker.runtime import alert_rule

logger = logging.getLogger(__name__)

VARIANTS_DIR = "variants"


def run_variant(settings: Settings, variant: Variant, out_dir: Path) -> dict:
    """Train one variant unless its result is saved already; the saved result."""
    folder = out_dir / VARIANTS_DIR
    saved = folder / f"{variant.name}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    # The trainer's per-epoch state (optimizer and two copies of the weights, 345 MB) only serves a resume
    # inside one run; a variant is retrained whole if stopped, so it lives in a temporary folder.
    with tempfile.TemporaryDirectory(prefix=f"streamscore-sweep-{variant.name}-") as state:
        result, texts = train_variant(settings, variant, Path(state))
    np.savez_compressed(
        folder / f"{variant.name}.npz",
        text_sha1=np.array([text_key(t) for t in texts]),
        probabilities=result.test_probabilities.astype(np.float16),
        test_labels=result.test_labels.astype(np.int8),
        dev_probabilities=result.dev_probabilities.astype(np.float32),
        dev_labels=result.dev_labels.astype(np.int8),
    )
    record = result.to_dict()
    saved.write_text(json.dumps(record, indent=2) + "\n")
    return record


def negatives_by_text(out_dir: Path, name: str) -> dict[str, bool]:
    """Which test headlines a variant calls negative (argmax, as the worker does), keyed by text hash."""
    with np.load(out_dir / VARIANTS_DIR / f"{name}.npz") as saved:
        return {str(k): bool(p.argmax() == 0) for k, p in zip(saved["text_sha1"], saved["probabilities"], strict=True)}


def decision_bias(out_dir: Path, name: str) -> dict | None:
    """The offset dev chooses for a variant's saved probabilities, what it gains on dev rows it was not fitted
    on (two folds), and the test report and alerts with it; none for a variant saved without dev probabilities."""
    with np.load(out_dir / VARIANTS_DIR / f"{name}.npz") as saved:
        if "dev_probabilities" not in saved.files:
            return None
        dev_p, dev_y = saved["dev_probabilities"].astype(np.float64), saved["dev_labels"].astype(np.int64)
        test_p, test_y = saved["probabilities"].astype(np.float64), saved["test_labels"].astype(np.int64)
        keys = [str(k) for k in saved["text_sha1"]]
    bias = choose_bias(dev_p, dev_y)
    held_out = cross_fitted(dev_p, dev_y)
    negative = predict_with_bias(test_p, bias) == 0
    return {
        "bias": [round(float(b), 2) for b in bias],
        "dev_fitted": biased_report(dev_p, dev_y, bias, SENTIMENT_LABELS),
        "dev_macro_f1_held_out": {
            "with": held_out.with_bias,
            "without": held_out.without_bias,
            "folds": held_out.folds,
        },
        "test": biased_report(test_p, test_y, bias, SENTIMENT_LABELS),
        "negatives": dict(zip(keys, negative.tolist(), strict=True)),
    }


def choose(records: list[dict]) -> dict:
    """The variant dev picks: highest dev macro-F1 (the trainer's own epoch rule), then dev accuracy."""
    return max(records, key=lambda r: (r["dev"]["macro_f1"], r["dev"]["accuracy"]))


def run_sweep(
    settings: Settings, out_dir: Path, names: list[str] | None = None, teacher_dir: Path | None = None
) -> dict:
    """Train (or load) each variant, score its predictions' alerts, choose on dev, write the report."""
    variants = [variant_named(n) for n in names] if names else list(VARIANTS)
    records = []
    for n, variant in enumerate(variants, 1):
        logger.info("sweep variant", extra={"variant": variant.name, "n": n, "of": len(variants)})
        records.append(run_variant(settings, variant, out_dir))
    plans = plan_tickers(settings.data_dir)
    rule = alert_rule(settings)
    for record in records:
        negatives = negatives_by_text(out_dir, record["variant"])
        record["alerts"] = offline_alert_scores(plans, lambda t, neg=negatives: neg[text_key(t.strip())], rule)
        offset = decision_bias(out_dir, record["variant"])
        if offset is not None:
            biased = offset.pop("negatives")
            offset["alerts"] = offline_alert_scores(plans, lambda t, neg=biased: neg[text_key(t.strip())], rule)
            record["decision_bias"] = offset
    truth = {text: negative for plan in plans for text, negative in plan.headlines}
    teacher_file = (teacher_dir or Path("trainer/teacher_labels")) / "teacher.json"
    teacher = json.loads(teacher_file.read_text()) if teacher_file.is_file() else None
    report = {
        "protocol": (
            "sentiment task alone, default profile (data, seed, splits, batch 32, lr 1e-4) with each variant's "
            "changes; epochs chosen on dev by macro-F1, the variant on dev (macro-F1, then accuracy); test "
            "reported for every variant, chosen by none"
        ),
        "chosen": choose(records)["variant"],
        "variants": records,
        "alerts_with_true_labels": offline_alert_scores(plans, truth.__getitem__, rule),
        "teacher": None
        if teacher is None
        else {
            "model": teacher["teacher"],
            "dev": teacher["dev"],
            "test": teacher["test"],
            "seconds": teacher["train_seconds"],
        },
    }
    write_sweep_report(report, out_dir)
    return report


def _row(name: str, dev: dict | None, test: dict, alerts: dict | None, minutes: float | None, bold: bool) -> str:
    neg = test["per_class"]["negative"]
    cells = [
        name,
        f"{dev['accuracy']:.3f}" if dev else "",
        f"{dev['macro_f1']:.3f}" if dev else "",
        f"{dev['per_class']['negative']['f1']:.3f}" if dev else "",
        f"{test['accuracy']:.3f}",
        f"{test['macro_f1']:.3f}",
        f"{neg['precision']:.3f} / {neg['recall']:.3f} / {neg['f1']:.3f}",
        f"{alerts['precision']:.2f} / {alerts['recall']:.2f}" if alerts else "",
        f"{minutes:.1f}" if minutes is not None else "",
    ]
    if bold:
        cells[0] = f"**{cells[0]}** (chosen)"
    return "| " + " | ".join(cells) + " |"


def write_sweep_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "sweep", report)
    truth = report["alerts_with_true_labels"]
    lines = [
        "# Sentiment recipes: dev chooses, test reported once per variant",
        "",
        f"`streamscore sweep`: {report['protocol']}. Alerts: the worker's surge rule over the labelled "
        "scenario of `streamscore bench alerts` (surge and calm tickers with the same volume of held-out "
        "headlines), fed each variant's test predictions; with the true labels it raises "
        f"precision {truth['precision']:.2f} / recall {truth['recall']:.2f}.",
        "",
        "| variant | dev acc | dev macro-F1 | dev neg F1 | test acc | test macro-F1 | test neg P / R / F1 "
        "| alerts P / R | train min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    teacher = report.get("teacher")
    if teacher:
        lines.append(
            _row(f"teacher ({teacher['model']})", teacher["dev"], teacher["test"], None, teacher["seconds"] / 60, False)
        )
    for r in report["variants"]:
        lines.append(
            _row(r["variant"], r["dev"], r["test"], r["alerts"], r["seconds"] / 60, r["variant"] == report["chosen"])
        )
        offset = r.get("decision_bias")
        if offset:
            b_neg, _, b_pos = offset["bias"]
            lines.append(
                _row(
                    f"{r['variant']} + offset ({b_neg:+.2f}, 0, {b_pos:+.2f})",
                    None,
                    offset["test"],
                    offset["alerts"],
                    None,
                    False,
                )
            )
    offsets = [r for r in report["variants"] if r.get("decision_bias")]
    if offsets:
        lines += [
            "",
            "*+ offset*: a constant added to the negative and positive log-probabilities (neutral fixed at 0), "
            "chosen on dev for macro-F1 (`trainer/decision_bias.py`); free at serving time. Its fitted dev score "
            "is optimistic, so the gain that decides is the one on dev headlines it was not fitted on (two folds, "
            "each chosen on the other):",
            "",
            "| variant | offset | dev macro-F1 fitted | dev macro-F1 held out: with / without "
            "| test acc | test neg F1 |",
            "|---|---|---|---|---|---|",
        ]
        for r in offsets:
            o = r["decision_bias"]
            h = o["dev_macro_f1_held_out"]
            lines.append(
                f"| {r['variant']} | {o['bias'][0]:+.2f}, 0, {o['bias'][2]:+.2f} | {o['dev_fitted']['macro_f1']:.3f} "
                f"| {h['with']:.3f} / {h['without']:.3f} | {o['test']['accuracy']:.3f} "
                f"| {o['test']['per_class']['negative']['f1']:.3f} |"
            )
    soups = [r for r in report["variants"] if r.get("ingredients")]
    for r in soups:
        lines += [
            "",
            f"*{r['variant']}*: each copy alone, beside the mean of their weights (one model, served at the same "
            "speed). The copies' spread is what the training seed alone moves:",
            "",
            "| copy (training seed) | best epoch | dev acc | dev macro-F1 | dev neg F1 | test acc | test macro-F1 "
            "| test neg F1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in r["ingredients"]:
            d, t = c["dev"], c["test"]
            lines.append(
                f"| {c['training_seed']} | {c['best_epoch']} | {d['accuracy']:.3f} | {d['macro_f1']:.3f} "
                f"| {d['negative_f1']:.3f} | {t['accuracy']:.3f} | {t['macro_f1']:.3f} | {t['negative_f1']:.3f} |"
            )
        d, t = r["dev"], r["test"]
        lines.append(
            f"| **mean of the weights** | | {d['accuracy']:.3f} | {d['macro_f1']:.3f} "
            f"| {d['per_class']['negative']['f1']:.3f} | {t['accuracy']:.3f} | {t['macro_f1']:.3f} "
            f"| {t['per_class']['negative']['f1']:.3f} |"
        )
    lines += ["", "| variant | what it changes | best epoch | precision |", "|---|---|---|---|"]
    lines += [
        f"| {r['variant']} | {r['about']} | {chosen_epochs(r['best_epoch'])} | {r['precision']} |"
        for r in report["variants"]
    ]
    (out_dir / "sweep.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4))
    names = [r["variant"] for r in report["variants"]]
    series = {
        "dev accuracy": [r["dev"]["accuracy"] for r in report["variants"]],
        "test accuracy": [r["test"]["accuracy"] for r in report["variants"]],
        "test negative F1": [r["test"]["per_class"]["negative"]["f1"] for r in report["variants"]],
    }
    width = 0.27
    for i, (label, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
    spans = [(x, [c["test"]["accuracy"] for c in r.get("ingredients", [])]) for x, r in enumerate(report["variants"])]
    for n, (x, copies) in enumerate((x, c) for x, c in spans if c):
        # a soup: the range its copies' test accuracy spans, the training seed's own noise
        label = "a soup's copies, test accuracy range" if n == 0 else None
        ax.vlines(x + width, min(copies), max(copies), color="black", linewidth=1.5, label=label)
    ax.axhline(0.885, color="black", linestyle="--", linewidth=0.8, label="accuracy target 0.885")
    ax.axhline(0.80, color="grey", linestyle=":", linewidth=0.8, label="negative F1 target 0.80")
    ax.set_xticks([x + width for x in range(len(names))], names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.7, 0.92)
    ax.set_title("Sentiment recipes for MiniLM-L6 (sentiment task alone)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(out_dir / "sweep.png", dpi=120)
    plt.close(fig)
