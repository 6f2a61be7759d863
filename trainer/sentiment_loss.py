"""The sentiment head's training loss beyond the teacher's term: class weights and R-Drop. Pure functions,
tested without a model; both cost nothing at serving time.

* Class weights scale each class's share of the hard cross-entropy. The class the product alerts on
  (negative, 15 % of the news set) is the one a weight would lift.
* R-Drop (Liang et al., 2021) runs each batch through the model twice, so that dropout draws two different
  sub-networks, and adds the symmetric KL between the two predictions: a consistency penalty that acts
  like an ensemble of the sub-networks being distilled into one. It doubles the cost of a sentiment step.
"""

from __future__ import annotations

import torch
from torch import nn

NEGATIVE_CLASS = 0
"""Index of ``negative`` in :data:`trainer.data.formats.SENTIMENT_LABELS`."""


def class_weights(n_classes: int, negative_weight: float) -> torch.Tensor | None:
    """Cross-entropy weights with the negative class at ``negative_weight`` (None when it is 1: plain CE)."""
    if negative_weight <= 0:
        raise ValueError(f"the negative class weight must be positive, got {negative_weight}")
    if negative_weight == 1.0:
        return None
    weights = torch.ones(n_classes)
    weights[NEGATIVE_CLASS] = negative_weight
    return weights


def rdrop_consistency(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between two dropout draws' predictions, averaged over the batch."""
    log_a = nn.functional.log_softmax(logits_a, dim=-1)
    log_b = nn.functional.log_softmax(logits_b, dim=-1)
    forward = nn.functional.kl_div(log_b, log_a, log_target=True, reduction="batchmean")
    backward = nn.functional.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return 0.5 * (forward + backward)
