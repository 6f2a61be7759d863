"""Evaluation metrics as plain functions over numpy arrays (tested against hand-computed values)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``m[t, p]`` counts examples of true class ``t`` predicted as ``p``."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support.

    A class never predicted has precision 0 (not NaN), so macro-F1 punishes a model that ignores a class.
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = matrix.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(actual[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
    }


def regression_report(y_true: np.ndarray, y_pred: np.ndarray, star_range: tuple[int, int] | None = None) -> dict:
    """RMSE and MAE; with ``star_range``, also the share of predictions that round to the exact star."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    error = y_pred - y_true
    report = {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "n": int(y_true.size)}
    if star_range is not None:
        stars = np.clip(np.rint(y_pred), *star_range)
        report["exact_accuracy"] = float(np.mean(stars == np.rint(y_true)))
    return report


def ranking_report(ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], k: int = 10) -> dict:
    """HR@k and nDCG@k with binary relevance, averaged over users that have at least one relevant item.

    HR@k is 1 for a user when any relevant item is in their top k. nDCG@k divides DCG by the ideal DCG of
    ``min(|relevant|, k)`` hits at the top.
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits, ndcgs = [], []
    for top, rel in zip(ranked, relevant):
        if not rel:
            continue
        gains = np.array([1.0 if item in rel else 0.0 for item in list(top)[:k]])
        dcg = float((gains * discounts[: gains.size]).sum())
        idcg = float(discounts[: min(len(rel), k)].sum())
        hits.append(1.0 if gains.any() else 0.0)
        ndcgs.append(dcg / idcg)
    return {
        f"hr@{k}": float(np.mean(hits)) if hits else 0.0,
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
        "users": len(hits),
    }
