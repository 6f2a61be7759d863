"""Distillation of the sentiment head, without a model: the loss, and matching the teacher's logits to texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamscore.errors import ConfigurationError
from trainer.distillation import aligned_teacher_logits, distillation_loss, load_teacher_logits, text_key


def test_alpha_zero_is_plain_cross_entropy() -> None:
    student = torch.tensor([[2.0, 0.1, -1.0], [0.0, 1.0, 0.5]])
    targets = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(student, targets)
    assert torch.isclose(distillation_loss(student, torch.randn(2, 3), targets, 0.0, 2.0), expected)


def test_soft_term_vanishes_when_student_matches_teacher_and_pulls_towards_it() -> None:
    teacher = torch.tensor([[3.0, 0.0, -1.0]])
    targets = torch.tensor([0])
    same = distillation_loss(teacher.clone(), teacher, targets, 1.0, 2.0)
    assert torch.isclose(same, torch.tensor(0.0), atol=1e-6)
    student = torch.zeros(1, 3, requires_grad=True)
    distillation_loss(student, teacher, targets, 1.0, 2.0).backward()
    assert student.grad is not None and student.grad[0, 0] < 0 < student.grad[0, 2]  # descent raises class 0


def test_temperature_squared_keeps_the_soft_gradient_scale() -> None:
    teacher = torch.tensor([[1.0, 0.0, -1.0]])
    grads = []
    for temperature in (1.0, 4.0):
        student = torch.zeros(1, 3, requires_grad=True)
        distillation_loss(student, teacher, torch.tensor([0]), 1.0, temperature).backward()
        grads.append(student.grad.abs().sum().item())
    assert 0.2 < grads[1] / grads[0] < 1.5  # without T² the ratio would be about 1/16


def test_teacher_logits_are_matched_by_text_and_cover_every_headline(tmp_path: Path) -> None:
    texts = ["$ACME falls 10%", "Markets flat", "$XYZ beats estimates"]
    logits = np.arange(9, dtype=np.float16).reshape(3, 3)
    path = tmp_path / "teacher_logits.npz"
    np.savez_compressed(path, logits=logits, text_sha1=np.asarray([text_key(t) for t in texts]))
    by_key = load_teacher_logits(path)
    aligned = aligned_teacher_logits([texts[2], texts[0]], by_key, path)
    assert aligned.dtype == np.float32 and aligned.tolist() == [[6, 7, 8], [0, 1, 2]]
    with pytest.raises(ConfigurationError, match="do not cover 1 of the 2"):
        aligned_teacher_logits([texts[0], "unseen headline"], by_key, path)
