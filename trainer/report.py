"""Write an evaluation as ``metrics.json``, ``report.md`` and PNG plots a person can read at a glance."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trainer.evaluation import Evaluation  # noqa: E402

PLOTS = ("loss_curves.png", "sentiment_confusion.png", "rating_errors.png", "recommender.png")


def write_report(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(evaluation.metrics, indent=2))
    _plot_losses(evaluation.history, out_dir / PLOTS[0])
    _plot_confusion(evaluation.sentiment_confusion, evaluation.metrics["sentiment"]["labels"], out_dir / PLOTS[1])
    _plot_errors(evaluation.review_errors, evaluation.movielens_errors, out_dir / PLOTS[2])
    _plot_recommender(evaluation.metrics["recommender"], out_dir / PLOTS[3])
    (out_dir / "report.md").write_text(render_markdown(evaluation.metrics, evaluation.history))
    return [out_dir / "metrics.json", out_dir / "report.md", *(out_dir / p for p in PLOTS)]


def _plot_losses(history: dict, path: Path) -> None:
    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(11, 4))
    steps = history.get("steps", [])
    for task, colour in (("sentiment", "tab:blue"), ("review", "tab:orange")):
        points = [(s["step"], s[f"{task}_loss"]) for s in steps if f"{task}_loss" in s]
        if points:
            x, y = zip(*points)
            ax_loss.plot(x, y, label=f"{task} (running mean)", color=colour)
    ax_loss.set(title="Training loss", xlabel="step", ylabel="cross-entropy")
    ax_loss.legend()
    epochs = history.get("epochs", [])
    if epochs:
        x = [e["epoch"] for e in epochs]
        ax_dev.plot(x, [e["sentiment_macro_f1"] for e in epochs], "o-", label="sentiment macro-F1")
        ax_dev.plot(x, [e["sentiment_accuracy"] for e in epochs], "o-", label="sentiment accuracy")
        ax_mae = ax_dev.twinx()
        ax_mae.plot(x, [e["review_mae"] for e in epochs], "s--", color="tab:red", label="review MAE")
        ax_mae.set_ylabel("review MAE (stars)")
        ax_mae.legend(loc="lower right")
        ax_dev.set_xticks(x)
    ax_dev.set(title="Dev metrics per epoch", xlabel="epoch")
    ax_dev.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_confusion(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.4))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (t, p), count in np.ndenumerate(matrix):
        ax.text(
            p, t, f"{count}\n{norm[t, p]:.0%}", ha="center", va="center", color="white" if norm[t, p] > 0.5 else "black"
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="Sentiment confusion (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_errors(review_errors: np.ndarray, movielens_errors: np.ndarray, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, errors, title in (
        (axes[0], review_errors, "Review rating error (stars)"),
        (axes[1], movielens_errors, "MovieLens rating error"),
    ):
        ax.hist(errors, bins=np.arange(-4.5, 4.75, 0.25), color="tab:purple", alpha=0.8)
        ax.axvline(0, color="black", lw=1)
        ax.set(title=f"{title}: MAE {np.mean(np.abs(errors)):.3f}", xlabel="predicted − true", ylabel="count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_recommender(rec: dict, path: Path) -> None:
    """Test nDCG@10 / HR@10 of the served ranker beside every baseline, and its MMR trade-off."""
    rows = [("served ranker", rec["model"])] + list(rec.get("baselines", {}).items())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [name for name, _ in rows]
    y = np.arange(len(rows))
    axes[0].barh(y - 0.2, [r["ndcg@10"] for _, r in rows], 0.4, label="nDCG@10", color="tab:blue")
    axes[0].barh(y + 0.2, [r["hr@10"] / 4 for _, r in rows], 0.4, label="HR@10 ÷ 4", color="tab:orange")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].set(title="MovieLens top-10, full ranking (test)", xlabel="score")
    axes[0].legend(loc="lower right")
    mmr = rec.get("mmr", [])
    axes[1].plot([m["intra_list_diversity"] for m in mmr], [m["ndcg@10"] for m in mmr], "o-", color="tab:green")
    for m in mmr:
        axes[1].annotate(f"λ={m['relevance']}", (m["intra_list_diversity"], m["ndcg@10"]), fontsize=8)
    axes[1].set(title="MMR re-ranking: accuracy vs diversity", xlabel="intra-list diversity", ylabel="nDCG@10")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _recommender_lines(rec: dict) -> list[str]:
    cols = ("hr@10", "ndcg@10", "cold_hr@10", "coverage@10", "intra_list_diversity", "novelty_bits")
    header = [
        "| model | HR@10 | nDCG@10 | cold-positive HR@10 | coverage@10 | diversity | novelty (bits) | popularity pct |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, r: dict) -> str:
        return _row(name, [float(r[c]) for c in cols] + [float(r["popularity_percentile"])])

    model = rec["model"]
    lines = [
        "## The served recommender (EASE + next-item + text bridge)",
        "",
        "Same split and protocol as above; every model fit on train, hyper-parameters chosen on dev (nDCG@10), "
        "refit on train + dev, scored once on test. Cold-positive HR@10: users whose test positives include "
        f"items nobody had before the test period ({model['users_with_cold_positives']} of {model['users']} "
        f"users; {rec['cold_positive_share']:.1%} of test positives).",
        f"Chosen on dev: {model['fit']}, {model['params']} (dev nDCG@10 {model['dev']['ndcg@10']:.4f}).",
        "",
        *header,
        row("**served ranker**", model),
        *(row(name, r) + "" for name, r in rec.get("baselines", {}).items()),
        "",
        "Baselines' chosen hyper-parameters: "
        + "; ".join(f"{n} {r['params']}" for n, r in rec.get("baselines", {}).items())
        + ".",
        "",
        "### What each part adds (test)",
        "",
        *header,
        *(row(name, r) for name, r in rec["ablation"].items()),
        "",
        "### MMR re-ranking of the top 100 (λ = weight of the score; 1.0 = no re-ranking)",
        "",
        *header,
        *(row(f"λ = {m['relevance']}", m) for m in rec["mmr"]),
        "",
        "![recommender](recommender.png)",
        "",
    ]
    return lines


def _row(name: str, values: list[float | str]) -> str:
    cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values]
    return f"| {name} | " + " | ".join(cells) + " |"


def chosen_epochs(best: object) -> str:
    """The chosen epoch, or a soup's, one per copy."""
    return ", ".join(str(e) for e in best) if isinstance(best, list) else str(best)


def _best_epochs(best: object) -> str:
    soup = " (one per copy; the model is the mean of their weights)" if isinstance(best, list) else ""
    return chosen_epochs(best) + soup


def render_markdown(m: dict, history: dict) -> str:
    s, r, mr, rk = m["sentiment"], m["review_rating"], m["movielens_rating"], m["movielens_ranking"]
    lines = [
        f"# Evaluation report — profile `{m['profile']}`{' (LoRA)' if m.get('lora') else ''}",
        "",
        f"Checkpoint: `{m['checkpoint']}`. Training time: {m.get('training_seconds', {})} s; evaluation "
        f"{m['evaluation_seconds']} s.",
        f"Data sizes: {m['data']}.",
        "",
        "## Sentiment (financial news, test = `sent_valid.csv`)",
        "",
        "| model | accuracy | macro-F1 |",
        "|---|---|---|",
        _row("fine-tuned MiniLM (this run)", [s["accuracy"], s["macro_f1"]]),
        _row("majority class", [s["majority_class_accuracy"], "—"]),
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(_row(name, [c["precision"], c["recall"], c["f1"], c["support"]]) for name, c in s["per_class"].items()),
        "",
        "![confusion](sentiment_confusion.png)",
        "",
        "## Review rating (women's clothing reviews, 1–5 stars, held-out test split)",
        "",
        "| model | RMSE | MAE | exact-star accuracy |",
        "|---|---|---|---|",
        _row(
            "fine-tuned MiniLM, expected stars", [r["model"]["rmse"], r["model"]["mae"], r["model"]["exact_accuracy"]]
        ),
        _row(
            "fine-tuned MiniLM, median star",
            [r["model_median_star"]["rmse"], r["model_median_star"]["mae"], r["model_median_star"]["exact_accuracy"]],
        ),
        _row(
            "predict the training mean",
            [r["baseline_mean"]["rmse"], r["baseline_mean"]["mae"], r["baseline_mean"]["exact_accuracy"]],
        ),
        "",
        "## MovieLens rating prediction (temporal per-user split: last 10 % test, 10 % before dev)",
        "",
        "All models are fitted on train + dev (hyper-parameters and epochs chosen on dev) and scored on the same "
        "test rows.",
        "",
        "| model | RMSE | MAE |",
        "|---|---|---|",
        _row("hybrid head (text + collaborative)", [mr["model"]["rmse"], mr["model"]["mae"]]),
        _row(
            "biased MF (Funk SVD, tuned on dev)",
            [mr["matrix_factorisation"]["rmse"], mr["matrix_factorisation"]["mae"]],
        ),
        _row("user + item bias", [mr["user_item_bias"]["rmse"], mr["user_item_bias"]["mae"]]),
        _row("global mean", [mr["global_mean"]["rmse"], mr["global_mean"]["mae"]]),
        "",
    ]
    cold = mr["cold_items"]
    if cold["rows"]:
        lines += [
            f"Cold items (no rating before the test period): {cold['rows']} test rows; hybrid RMSE "
            f"{cold['model']['rmse']:.4f} "
            f"vs user+item bias {cold['user_item_bias']['rmse']:.4f} (which can only use the user's bias there).",
            "",
        ]
    lines += [
        "## MovieLens top-10 recommendation",
        "",
        f"Protocol: {rk['protocol']}. Share of test positives that are cold items: {rk['cold_positive_share']:.1%}.",
        "",
        "| model | HR@10 | nDCG@10 |",
        "|---|---|---|",
        _row("hybrid head, ranking tower", [rk["model"]["hr@10"], rk["model"]["ndcg@10"]]),
        _row(
            "hybrid head, ranked by predicted rating",
            [rk["model_rating_tower"]["hr@10"], rk["model_rating_tower"]["ndcg@10"]],
        ),
        _row("popularity", [rk["popularity"]["hr@10"], rk["popularity"]["ndcg@10"]]),
        _row(
            "MF ranked by predicted rating",
            [rk["matrix_factorisation"]["hr@10"], rk["matrix_factorisation"]["ndcg@10"]],
        ),
        "",
        "![errors](rating_errors.png)",
        "",
        *_recommender_lines(m["recommender"]),
        "## Training",
        "",
        f"Precision {history.get('precision', '?')} on {history.get('device', '?')}; best epoch "
        f"{_best_epochs(history.get('best_epoch', '?'))}; "
        f"recommender epochs: rating {history.get('recommender', {}).get('rating_epochs', '?')}, ranking "
        f"{history.get('recommender', {}).get('ranking_epochs', '?')}; "
        "links "
        + (
            "collapsed to one placeholder word by the tokenizer."
            if m.get("collapses_links")
            else "tokenized as they are."
        ),
        "",
        "| epoch | dev accuracy | dev macro-F1 | dev review MAE | seconds |",
        "|---|---|---|---|---|",
        *(
            _row(str(e["epoch"]), [e["sentiment_accuracy"], e["sentiment_macro_f1"], e["review_mae"], e["seconds"]])
            for e in history.get("epochs", [])
        ),
        "",
        "![losses](loss_curves.png)",
        "",
    ]
    return "\n".join(lines)
