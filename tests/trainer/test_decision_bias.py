"""The dev-chosen offset on the sentiment logits: pure functions over probabilities and labels."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.decision_bias import choose_bias, cross_fitted, macro_f1, predict_with_bias

pytestmark = pytest.mark.unit


def shy_negatives(n: int = 900, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model that knows the negatives but under-calls them: their probability mass sits just below neutral's."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.15, 0.65, 0.20])
    logits = rng.normal(0, 0.3, size=(n, 3))
    logits[np.arange(n), labels] += 1.5
    logits[labels == 0, 0] -= 1.7  # negatives lose to neutral unless their logit is lifted
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels


def test_an_offset_moves_the_decision_and_zero_leaves_argmax() -> None:
    p = np.array([[0.30, 0.40, 0.30], [0.10, 0.80, 0.10]])
    assert predict_with_bias(p, np.zeros(3)).tolist() == [1, 1]
    assert predict_with_bias(p, np.array([0.5, 0.0, 0.0])).tolist() == [0, 1]


def test_the_chosen_offset_lifts_an_under_called_class_and_gains_on_held_out_rows() -> None:
    p, y = shy_negatives()
    bias = choose_bias(p, y)
    assert bias[1] == 0.0 and bias[0] > 0.5
    assert macro_f1(y, predict_with_bias(p, bias), 3) > macro_f1(y, p.argmax(1), 3) + 0.05
    held_out = cross_fitted(p, y)
    assert held_out.folds == 2 and held_out.gain > 0.05


def test_a_well_placed_model_keeps_no_offset() -> None:
    """Where no offset beats none, the tie goes to none: the model stays as trained."""
    y = np.array([0, 1, 2] * 50)
    p = np.full((150, 3), 0.1)
    p[np.arange(150), y] = 0.8
    assert choose_bias(p, y).tolist() == [0.0, 0.0, 0.0]
    assert cross_fitted(p, y).gain == 0.0
