"""Training recipes for the sentiment head, compared on dev: what the served MiniLM-L6 can gain at no serving
cost (the same graph, the same speed), and the teacher's soft labels against hard ones.

Each variant fine-tunes the pretrained encoder on the sentiment task alone (``Profile.sentiment_only``), with
the default profile's data, seed, splits, batch size and learning rate, and only the named fields changed.
The review task is left out of every variant alike: it shares the encoder in the default run, but it is 45 %
of that run's steps and would not change which recipe wins by much it could show here. Epochs are picked on
dev by the trainer's own rule, the variant on dev; test is reported for every variant, but chosen by none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from streamscore.settings import Settings
from trainer.data.formats import SENTIMENT_LABELS
from trainer.datasets import DataSources, load_text_splits
from trainer.encoder import pretrained_encoder_dir
from trainer.eval_metrics import classification_report
from trainer.inference import predict_texts
from trainer.model import MultiTaskTextModel
from trainer.profiles import Profile, get_profile
from trainer.tokenizer import load_tokenizer
from trainer.training import choose_device, fine_tune_soup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One recipe: a name, what it changes in words, and the profile fields it sets."""

    name: str
    about: str
    changes: dict = field(default_factory=dict)


DISTILLED = {"distill_alpha": 0.5, "distill_temperature": 2.0}

VARIANTS: tuple[Variant, ...] = (
    Variant("hard-labels", "hard labels only (the recipe before distillation)", {"distill_alpha": 0.0}),
    Variant("distil-a0.5-T2", "teacher's soft labels, α 0.5, T 2 (today's default)", DISTILLED),
    Variant("distil-a0.8-T2", "α 0.8, T 2", {"distill_alpha": 0.8, "distill_temperature": 2.0}),
    Variant("distil-a0.5-T4", "α 0.5, T 4", {"distill_alpha": 0.5, "distill_temperature": 4.0}),
    Variant("distil-a0.5-T1", "α 0.5, T 1", {"distill_alpha": 0.5, "distill_temperature": 1.0}),
    Variant("distil-6-epochs", "α 0.5, T 2, 6 epochs instead of 4", {**DISTILLED, "epochs": 6}),
    Variant("distil-llrd-0.8", "α 0.5, T 2, layer-wise lr decay 0.8", {**DISTILLED, "layer_lr_decay": 0.8}),
    Variant("distil-negw-1.5", "α 0.5, T 2, negative class weight 1.5", {**DISTILLED, "negative_class_weight": 1.5}),
    Variant("distil-rdrop-1", "α 0.5, T 2, R-Drop α 1", {**DISTILLED, "rdrop_alpha": 1.0}),
    Variant("distil-fp32", "α 0.5, T 2, fp32 instead of bf16 autocast", {**DISTILLED, "precision": "fp32"}),
    Variant(
        "hard-labels-soup-4",
        "hard labels only, mean of the weights of 4 copies (training seeds seed … seed + 3)",
        {"distill_alpha": 0.0, "soup": 4},
    ),
    Variant(
        "distil-soup-4",
        "α 0.5, T 2, mean of the weights of 4 copies (training seeds seed … seed + 3)",
        {**DISTILLED, "soup": 4},
    ),
)


def variant_named(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise KeyError(f"unknown variant {name!r}; choose from {', '.join(v.name for v in VARIANTS)}")


def variant_profile(variant: Variant, base: Profile | None = None) -> Profile:
    """The default profile, on the sentiment task alone, with the variant's changes."""
    base = base if base is not None else get_profile("default")
    unknown = set(variant.changes) - set(base.to_dict())
    if unknown:
        raise KeyError(f"variant {variant.name} changes fields no profile has: {', '.join(sorted(unknown))}")
    return base.with_overrides(**{**variant.changes, "sentiment_only": True})


@dataclass
class VariantResult:
    variant: Variant
    history: dict
    dev: dict
    test: dict
    test_probabilities: np.ndarray
    """Softmax over (negative, neutral, positive) for each test headline, in the test file's order."""
    seconds: float
    dev_probabilities: np.ndarray
    dev_labels: np.ndarray
    """Dev's softmax and labels, which a decision offset (:mod:`trainer.decision_bias`) is chosen on."""
    test_labels: np.ndarray
    ingredients: list[dict] = field(default_factory=list)
    """A soup's copies, each scored alone: its training seed, chosen epoch, dev and test accuracy and macro-F1,
    and negative-class F1 (what the seeds alone spread over, beside what their mean weights give)."""

    def to_dict(self) -> dict:
        return {
            "variant": self.variant.name,
            "about": self.variant.about,
            "changes": self.variant.changes,
            "best_epoch": self.history["best_epoch"],
            "precision": self.history["precision"],
            "epochs": self.history["epochs"],
            "dev": self.dev,
            "test": self.test,
            "seconds": round(self.seconds, 1),
            **({"ingredients": self.ingredients} if self.ingredients else {}),
        }


def _scores(model: MultiTaskTextModel, tokenizer, splits, device) -> tuple[dict, dict]:
    """Dev and test reports, and the softmax on each, of the model's sentiment head."""
    limit = model.config.max_length_sentiment
    reports, probabilities = {}, {}
    for name, part in (("dev", splits.sentiment_dev), ("test", splits.sentiment_test)):
        logits = predict_texts(model, tokenizer, part.texts, limit, device=device)["sentiment_logits"]
        probabilities[name] = torch.softmax(torch.as_tensor(logits), dim=-1).numpy()
        reports[name] = classification_report(part.labels, logits.argmax(-1), SENTIMENT_LABELS)
    return reports, probabilities


def _summary(report: dict) -> dict:
    return {
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "negative_f1": round(report["per_class"]["negative"]["f1"], 4),
    }


def train_variant(settings: Settings, variant: Variant, state_dir: Path) -> tuple[VariantResult, list[str]]:
    """Fine-tune one variant (every copy of a soup); its dev and test reports and test probabilities, and the
    test texts."""
    profile = variant_profile(variant)
    seed = settings.seed
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = choose_device(settings.device)
    encoder_dir = pretrained_encoder_dir(settings.encoder_dir)
    splits = load_text_splits(DataSources(settings.data_dir), profile, seed)
    tokenizer = load_tokenizer(encoder_dir, collapse_links=profile.collapse_links)
    started = time.perf_counter()
    ingredients: list[dict] = []

    def score_copy(copy: int, model: MultiTaskTextModel, history: dict) -> None:
        if profile.soup == 1:
            return
        reports, _ = _scores(model, tokenizer, splits, device)
        ingredients.append(
            {
                "training_seed": seed + copy,
                "best_epoch": history["best_epoch"],
                "dev": _summary(reports["dev"]),
                "test": _summary(reports["test"]),
            }
        )

    model, history = fine_tune_soup(
        encoder_dir, tokenizer, splits, profile, device, state_dir, seed, on_copy=score_copy
    )
    seconds = time.perf_counter() - started
    reports, probabilities = _scores(model, tokenizer, splits, device)
    logger.info(
        "variant done",
        extra={
            "variant": variant.name,
            "dev_accuracy": round(reports["dev"]["accuracy"], 4),
            "dev_macro_f1": round(reports["dev"]["macro_f1"], 4),
            "seconds": round(seconds, 1),
        },
    )
    result = VariantResult(
        variant,
        history,
        reports["dev"],
        reports["test"],
        probabilities["test"],
        seconds,
        probabilities["dev"],
        np.asarray(splits.sentiment_dev.labels),
        np.asarray(splits.sentiment_test.labels),
        ingredients,
    )
    return result, list(splits.sentiment_test.texts)
