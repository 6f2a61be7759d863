"""A per-class offset on the sentiment head's log-probabilities, chosen on dev.

Cross-entropy training leaves each class's decision threshold where the training mix put it; the product,
which alerts on the negative class and is scored on macro-F1, may want it elsewhere. Adding a constant to a
class's logit moves that threshold and costs nothing at serving time (one add on three numbers). With two free
offsets (neutral is the reference, fixed at 0) fitted on 954 dev headlines, the fitted dev score is optimistic,
so :func:`cross_fitted` says what the offset gains on dev headlines it was not fitted on, which is the figure
that decides whether to adopt it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.eval_metrics import classification_report

GRID = tuple(round(float(x), 2) for x in np.arange(-1.0, 1.0001, 0.05))
"""The offsets searched for each non-reference class (log-probability units)."""


def predict_with_bias(probabilities: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The class each row picks once ``bias`` is added to its log-probabilities."""
    return (np.log(np.clip(probabilities, 1e-12, None)) + np.asarray(bias)[None, :]).argmax(axis=1)


def macro_f1(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    return classification_report(labels, predicted, tuple(map(str, range(n_classes))))["macro_f1"]


def choose_bias(
    probabilities: np.ndarray, labels: np.ndarray, reference: int = 1, grid: tuple[float, ...] = GRID
) -> np.ndarray:
    """The offsets (``reference`` fixed at 0) with the highest macro-F1 on these rows; among equals, the one
    closest to no offset, so that a flat optimum leaves the model as trained."""
    n_classes = probabilities.shape[1]
    free = [c for c in range(n_classes) if c != reference]
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    best: tuple[float, float] | None = None
    chosen = np.zeros(n_classes)
    for offsets in np.array(np.meshgrid(*[grid] * len(free))).T.reshape(-1, len(free)):
        bias = np.zeros(n_classes)
        bias[free] = offsets
        score = macro_f1(labels, (log_p + bias).argmax(axis=1), n_classes)
        key = (score, -float(np.abs(offsets).sum()))
        if best is None or key > best:
            best, chosen = key, bias
    return chosen


@dataclass(frozen=True)
class CrossFitted:
    """Macro-F1 on dev headlines the offset was not chosen on, with and without it, over ``folds`` folds."""

    with_bias: float
    without_bias: float
    folds: int

    @property
    def gain(self) -> float:
        return self.with_bias - self.without_bias


def cross_fitted(probabilities: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0) -> CrossFitted:
    """Choose the offset on all folds but one and score the one left out, for each fold in turn; the
    predictions of every held-out fold are pooled into one macro-F1 (a fold of 477 rows holds ~70 negatives)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    parts = np.array_split(order, folds)
    predicted = np.empty(len(labels), dtype=np.int64)
    for k, held_out in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        predicted[held_out] = predict_with_bias(probabilities[held_out], choose_bias(probabilities[fit], labels[fit]))
    n_classes = probabilities.shape[1]
    return CrossFitted(
        with_bias=macro_f1(labels, predicted, n_classes),
        without_bias=macro_f1(labels, probabilities.argmax(axis=1), n_classes),
        folds=folds,
    )


def biased_report(probabilities: np.ndarray, labels: np.ndarray, bias: np.ndarray, names: tuple[str, ...]) -> dict:
    """:func:`classification_report` of the predictions with ``bias`` added."""
    return classification_report(labels, predict_with_bias(probabilities, bias), names)
