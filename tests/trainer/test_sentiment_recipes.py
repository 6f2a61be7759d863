"""The sentiment recipes the sweep compares: class weights, R-Drop, layer-wise learning-rate decay, the
precision switch, the variants' profiles, and one real sentiment-only fine-tuning step through every option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamscore.errors import ConfigurationError
from trainer.datasets import DataSources, load_text_splits
from trainer.encoder import pretrained_encoder_dir
from trainer.model import MultiTaskTextModel
from trainer.profiles import get_profile
from trainer.sentiment_loss import NEGATIVE_CLASS, class_weights, rdrop_consistency
from trainer.sentiment_recipes import VARIANTS, Variant, variant_named, variant_profile
from trainer.tokenizer import load_tokenizer
from trainer.training import fine_tune_soup, fine_tune_text, parameter_groups, use_bf16


def test_class_weight_one_is_plain_cross_entropy_and_more_lifts_the_negative_share() -> None:
    assert class_weights(3, 1.0) is None
    weights = class_weights(3, 2.0)
    assert weights is not None and weights[NEGATIVE_CLASS] == 2.0 and weights.sum() == 4.0
    with pytest.raises(ValueError, match="positive"):
        class_weights(3, 0.0)
    logits = torch.zeros(2, 3, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), weight=weights).backward()
    assert logits.grad is not None and abs(logits.grad[0, 0]) > abs(logits.grad[1, 1])


def test_rdrop_consistency_is_zero_for_equal_draws_symmetric_and_positive_otherwise() -> None:
    a = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    assert torch.isclose(rdrop_consistency(a, a.clone()), torch.tensor(0.0), atol=1e-7)
    assert torch.isclose(rdrop_consistency(a, b), rdrop_consistency(b, a))
    assert rdrop_consistency(a, b) > 0.1


def _model() -> MultiTaskTextModel:
    return MultiTaskTextModel.from_pretrained_encoder(pretrained_encoder_dir())


@pytest.mark.integration
def test_layer_decay_lowers_the_rate_with_depth_and_covers_every_parameter_once() -> None:
    model = _model()
    groups = parameter_groups(model, 1e-4, 0.01, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)

    def lr_of(param: torch.nn.Parameter) -> float:
        return next(g["lr"] for g in groups if any(p is param for p in g["params"]))

    assert lr_of(model.sentiment_head.weight) == pytest.approx(1e-4)
    assert lr_of(model.encoder.encoder.layer[5].output.dense.weight) == pytest.approx(0.5e-4)
    assert lr_of(model.encoder.encoder.layer[0].output.dense.weight) == pytest.approx(1e-4 * 0.5**6)
    assert lr_of(model.encoder.embeddings.word_embeddings.weight) == pytest.approx(1e-4 * 0.5**7)
    no_decay = [g for g in groups if g["weight_decay"] == 0.0]
    assert any(any(p is model.sentiment_head.bias for p in g["params"]) for g in no_decay)
    flat = parameter_groups(model, 1e-4, 0.01)
    assert {g["lr"] for g in flat} == {1e-4}


def test_precision_switch_refuses_what_it_cannot_do() -> None:
    cpu = torch.device("cpu")
    assert use_bf16(get_profile("quick").with_overrides(precision="fp32"), cpu) is False
    with pytest.raises(ConfigurationError, match="precision"):
        use_bf16(get_profile("quick").with_overrides(precision="fp16"), cpu)


def test_every_variant_is_the_default_profile_on_the_sentiment_task_with_only_its_changes() -> None:
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
    default = get_profile("default")
    for variant in VARIANTS:
        profile = variant_profile(variant)
        assert profile.sentiment_only
        for name, value in default.to_dict().items():
            if name != "sentiment_only":
                assert getattr(profile, name) == variant.changes.get(name, value), (variant.name, name)
    with pytest.raises(KeyError, match="no profile has"):
        variant_profile(Variant("typo", "", {"distill_alpah": 0.5}))
    with pytest.raises(KeyError, match="unknown variant"):
        variant_named("nope")


@pytest.mark.integration
def test_sentiment_only_fine_tuning_runs_every_option_and_selects_on_sentiment(data_dir: Path, tmp_path: Path) -> None:
    profile = get_profile("quick").with_overrides(
        sentiment_only=True,
        sentiment_train_limit=160,
        eval_limit=48,
        batch_size=16,
        distill_alpha=0.5,
        layer_lr_decay=0.8,
        negative_class_weight=1.5,
        rdrop_alpha=1.0,
        precision="fp32",
    )
    splits = load_text_splits(DataSources(data_dir), profile, 13)
    encoder_dir = pretrained_encoder_dir()
    model = _model()
    before = model.sentiment_head.weight.detach().clone()
    history = fine_tune_text(
        model, load_tokenizer(encoder_dir), splits, profile, torch.device("cpu"), tmp_path / "state", 13
    )
    assert history["precision"] == "fp32" and history["distillation"]["alpha"] == 0.5
    assert history["steps"] and all("review_loss" not in s for s in history["steps"])
    (epoch,) = history["epochs"]
    assert "review_mae" not in epoch and epoch["score"] == epoch["sentiment_macro_f1"]
    assert np.isfinite(history["steps"][-1]["sentiment_loss"])
    assert not torch.equal(model.sentiment_head.weight, before)


@pytest.mark.integration
def test_a_soup_fine_tunes_copies_that_differ_only_in_training_seed_and_keeps_their_mean(
    data_dir: Path, tmp_path: Path
) -> None:
    profile = get_profile("quick").with_overrides(
        sentiment_only=True, sentiment_train_limit=96, eval_limit=32, batch_size=16, precision="fp32", soup=2
    )
    splits = load_text_splits(DataSources(data_dir), profile, 13)
    encoder_dir = pretrained_encoder_dir()
    copies: list[dict] = []
    model, history = fine_tune_soup(
        encoder_dir,
        load_tokenizer(encoder_dir),
        splits,
        profile,
        torch.device("cpu"),
        tmp_path / "state",
        13,
        on_copy=lambda i, m, h: copies.append({k: v.clone() for k, v in m.state_dict().items()}),
    )
    assert len(copies) == 2 and history["best_epoch"] == [1, 1] and len(history["soup_copies"]) == 2
    head = "sentiment_head.weight"
    # the same initial heads, different batch order and dropout: the copies end apart, the soup between them
    assert not torch.equal(copies[0][head], copies[1][head])
    assert torch.allclose(model.state_dict()[head], (copies[0][head] + copies[1][head]) / 2, atol=1e-6)
    assert (tmp_path / "state" / "trainer_state.pt").is_file() and (tmp_path / "state" / "copy-1").is_dir()
    with pytest.raises(ConfigurationError, match="soup must be at least 1"):
        fine_tune_soup(
            encoder_dir, None, splits, profile.with_overrides(soup=0), torch.device("cpu"), tmp_path / "x", 13
        )
