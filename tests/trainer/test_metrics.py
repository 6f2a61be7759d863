"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.eval_metrics import classification_report, confusion_matrix, ranking_report, regression_report


def test_classification_report_by_hand() -> None:
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 2, 0])
    report = classification_report(y_true, y_pred, ["neg", "neu", "pos"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    # neg: P = 1/2, R = 1/2 -> F1 1/2; neu: P = 1/2, R = 1 -> 2/3; pos: P = 1, R = 2/3 -> 4/5
    assert report["per_class"]["neg"]["precision"] == pytest.approx(0.5)
    assert report["per_class"]["neu"]["recall"] == pytest.approx(1.0)
    assert report["per_class"]["pos"]["f1"] == pytest.approx(0.8)
    assert report["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert report["per_class"]["pos"]["support"] == 3


def test_never_predicted_class_scores_zero_not_nan() -> None:
    report = classification_report(np.array([0, 1, 2]), np.array([0, 0, 0]), ["a", "b", "c"])
    assert report["per_class"]["b"]["precision"] == 0.0
    assert not math.isnan(report["macro_f1"])
    assert report["macro_f1"] == pytest.approx((0.5) / 3)


def test_confusion_matrix_counts() -> None:
    assert confusion_matrix(np.array([1, 1, 0]), np.array([1, 0, 0]), 2).tolist() == [[1, 0], [1, 1]]


def test_regression_report_by_hand() -> None:
    report = regression_report(np.array([1.0, 3.0, 5.0, 4.0]), np.array([2.0, 3.0, 4.4, 4.6]), (1, 5))
    assert report["mae"] == pytest.approx((1 + 0 + 0.6 + 0.6) / 4)
    assert report["rmse"] == pytest.approx(math.sqrt((1 + 0 + 0.36 + 0.36) / 4))
    # rounded predictions 2, 3, 4, 5 -> only the 3 is exact
    assert report["exact_accuracy"] == pytest.approx(0.25)


def test_ranking_report_by_hand() -> None:
    ranked = [[5, 1, 7], [2, 3, 4], [9, 8, 6]]
    relevant = [{1, 4}, {9}, set()]
    report = ranking_report(ranked, relevant, k=3)
    # user 1: hit at rank 2 -> DCG 1/log2(3); IDCG for 2 relevant = 1 + 1/log2(3). user 2: no hit. user 3 skipped.
    ndcg_1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert report["users"] == 2
    assert report["hr@3"] == pytest.approx(0.5)
    assert report["ndcg@3"] == pytest.approx(ndcg_1 / 2)


def test_ranking_perfect_list_scores_one() -> None:
    assert ranking_report([[3, 2, 1]], [{3, 2}], k=10)["ndcg@10"] == pytest.approx(1.0)
