"""Export validation: ONNX against PyTorch on held-out texts, and the task metrics of every variant.

Both checks raise with a message that says what broke by how much; the exporter turns that into a
non-zero exit and leaves no bundle behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from export.errors import ToleranceExceeded
from streamscore.scorer import Scorer
from trainer.checkpoint import Checkpoint
from trainer.eval_metrics import classification_report, regression_report
from trainer.inference import predict_texts
from trainer.recommender import RecommenderData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOut:
    """Held-out inputs of every task, as used by the evaluation report."""

    sentiment_texts: list[str]
    sentiment_labels: np.ndarray
    review_texts: list[str]
    review_ratings: np.ndarray
    item_texts: list[str]
    rec_test: RecommenderData
    """MovieLens test view (history = train + dev); its item embeddings are replaced per variant."""


def check_text_parity(ckpt: Checkpoint, scorer: Scorer, held_out: HeldOut, atol: float, per_task: int = 256) -> dict:
    """Max absolute difference between PyTorch and ONNX Runtime outputs on real held-out texts of every task."""
    cfg = ckpt.text_model.config
    tasks = {
        "sentiment": (held_out.sentiment_texts[:per_task], cfg.max_length_sentiment),
        "review-rating": (held_out.review_texts[:per_task], cfg.max_length_review),
        "embed": (held_out.item_texts[:per_task], cfg.max_length_item),
    }
    report: dict = {"atol": atol}
    worst = 0.0
    for task, (texts, max_length) in tasks.items():
        reference = predict_texts(ckpt.text_model, ckpt.tokenizer, texts, max_length)
        onnx = scorer.score_texts(texts, task).outputs
        diffs = {name: float(np.max(np.abs(reference[name] - onnx[name]))) for name in onnx}
        report[task] = {"texts": len(texts), "max_abs_diff": diffs}
        worst = max(worst, *diffs.values())
    report["max_abs_diff"] = worst
    if worst > atol:
        per_task = ", ".join(f"{task} {max(report[task]['max_abs_diff'].values()):.2e}" for task in tasks)
        raise ToleranceExceeded("fp32 ONNX vs PyTorch max |difference|", worst, atol, per_task)
    return report


def check_recommender_parity(
    ckpt: Checkpoint, scorer: Scorer, held_out: HeldOut, atol: float, users: int = 64, items: int = 512
) -> dict:
    data = held_out.rec_test
    rng = np.random.default_rng(0)
    user_idx = rng.choice(np.arange(0, data.n_users + 1), size=min(users, data.n_users + 1), replace=False)
    item_idx = rng.choice(
        np.arange(0, data.item_embeddings.shape[0]), size=min(items, data.item_embeddings.shape[0]), replace=False
    )
    profiles = data.profiles()[user_idx]
    with torch.no_grad():
        ref_rating = ckpt.recommender.score_all_items(
            torch.from_numpy(user_idx), torch.from_numpy(profiles), torch.from_numpy(data.item_embeddings), "rating"
        )
        ref_score = ckpt.recommender.score_all_items(
            torch.from_numpy(user_idx), torch.from_numpy(profiles), torch.from_numpy(data.item_embeddings), "ranking"
        )
    score, rating = scorer.score_items(user_idx, profiles, item_idx, data.item_embeddings[item_idx])
    diff = max(
        float(np.max(np.abs(score - ref_score.numpy()[:, item_idx]))),
        float(np.max(np.abs(rating - ref_rating.clamp(0.5, 5.0).numpy()[:, item_idx]))),
    )
    if diff > atol:
        raise ToleranceExceeded("recommender ONNX vs PyTorch max |difference|", diff, atol)
    return {"users": len(user_idx), "items": len(item_idx), "max_abs_diff": diff}


def task_metrics(scorer: Scorer, held_out: HeldOut) -> dict:
    """The headline test metrics recomputed through ONNX Runtime with this scorer's variant."""
    sent = scorer.score_texts(held_out.sentiment_texts, "sentiment").outputs["sentiment_logits"].argmax(-1)
    sentiment = classification_report(held_out.sentiment_labels, sent, ("negative", "neutral", "positive"))
    review = regression_report(
        held_out.review_ratings,
        scorer.score_texts(held_out.review_texts, "review-rating").outputs["review_rating"],
        (1, 5),
    )
    embeddings = scorer.embed(held_out.item_texts)
    table = np.vstack([np.zeros((1, embeddings.shape[1]), np.float32), embeddings])
    data = held_out.rec_test
    view = RecommenderData(data.history, data.targets, table, data.n_users)
    profiles = view.profiles()
    t = view.targets
    # Score each test user once against the catalog (users × items), not once per test row.
    users, row_of_user = np.unique(t.users, return_inverse=True)
    _, rating = scorer.score_items(users, profiles[users], np.arange(table.shape[0]), table)
    predicted = rating[row_of_user, t.items]
    movielens = regression_report(t.ratings, predicted)
    return {
        "sentiment_accuracy": sentiment["accuracy"],
        "sentiment_macro_f1": sentiment["macro_f1"],
        "review_rmse": review["rmse"],
        "review_mae": review["mae"],
        "movielens_rmse": movielens["rmse"],
        "texts": {
            "sentiment": len(held_out.sentiment_texts),
            "review": len(held_out.review_texts),
            "items": len(held_out.item_texts),
        },
    }


def check_int8(fp32: dict, int8: dict, max_accuracy_drop: float, max_rmse_increase: float) -> dict:
    """Refuse an int8 graph that loses more than the allowed accuracy or gains more than the allowed RMSE."""
    drop = fp32["sentiment_accuracy"] - int8["sentiment_accuracy"]
    review_rise = int8["review_rmse"] - fp32["review_rmse"]
    rating_rise = int8["movielens_rmse"] - fp32["movielens_rmse"]
    if drop > max_accuracy_drop:
        raise ToleranceExceeded("int8 sentiment accuracy drop", drop, max_accuracy_drop)
    if review_rise > max_rmse_increase:
        raise ToleranceExceeded("int8 review-rating RMSE increase", review_rise, max_rmse_increase)
    if rating_rise > max_rmse_increase:
        raise ToleranceExceeded("int8 MovieLens rating RMSE increase", rating_rise, max_rmse_increase)
    return {
        "sentiment_accuracy_drop": drop,
        "review_rmse_increase": review_rise,
        "movielens_rmse_increase": rating_rise,
        "limits": {"max_accuracy_drop": max_accuracy_drop, "max_rmse_increase": max_rmse_increase},
    }
