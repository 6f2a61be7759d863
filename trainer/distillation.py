"""Knowledge distillation of the sentiment head: the student learns the teacher's soft labels beside the hard
ones (Hinton et al., 2015). Pure functions, tested without a model.

``loss = (1 − α) · CE(student, label) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))``; the T² keeps
the soft term's gradients on the scale of the hard term's as T changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamscore.errors import ConfigurationError


def text_key(text: str) -> str:
    """How a headline is matched to the teacher's logits: its text (stripped, as the loader keeps it)."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_teacher_logits(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {str(k): v.astype(np.float32) for k, v in zip(saved["text_sha1"], saved["logits"], strict=True)}


def aligned_teacher_logits(texts: Sequence[str], by_key: dict[str, np.ndarray], source: Path) -> np.ndarray:
    """The teacher's logits for each training text, in order; every text must have them (the teacher saw the
    same file), else this is not the data the teacher labelled."""
    missing = [t for t in texts if text_key(t) not in by_key]
    if missing:
        raise ConfigurationError(
            f"the teacher's logits in {source} do not cover {len(missing)} of the {len(texts)} training headlines "
            f"(first: {missing[0]!r}); they were made for other data: rerun `streamscore teacher`, or train "
            "with --distill-alpha 0"
        )
    return np.stack([by_key[text_key(t)] for t in texts])


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    temperature: float,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The hard term may weight classes (:func:`trainer.sentiment_loss.class_weights`); the soft one never
    does: it is the teacher's whole distribution, which already says how likely each class is."""
    hard = nn.functional.cross_entropy(student, targets, weight=class_weight)
    if alpha == 0:
        return hard
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(student / temperature, dim=-1),
        nn.functional.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return (1 - alpha) * hard + alpha * temperature**2 * soft
