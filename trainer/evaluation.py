"""Evaluate a checkpoint on the held-out test sets, against baselines trained on the same splits in this run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from streamscore.settings import Settings
from trainer.baselines import BiasBaseline, GlobalMean, popularity_scores, tuned_funk_svd
from trainer.checkpoint import Checkpoint, load_checkpoint
from trainer.data.formats import SENTIMENT_LABELS
from trainer.datasets import SplitRecipe
from trainer.encoder import pretrained_encoder_dir
from trainer.eval_metrics import classification_report, regression_report
from trainer.inference import predict_texts
from trainer.model import MultiTaskTextModel
from trainer.rec_evaluation import evaluate_recommender, ranker_for
from trainer.recommender import evaluate_ranking, evaluate_ranking_scores, evaluate_rating
from trainer.tokenizer import collapses_links
from trainer.training import choose_device, recommender_data

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Metrics (JSON-ready) plus the raw arrays the plots need."""

    metrics: dict
    sentiment_confusion: np.ndarray
    review_errors: np.ndarray
    movielens_errors: np.ndarray
    history: dict = field(default_factory=dict)


def pretrained_item_embeddings(ckpt: Checkpoint, settings: Settings, device: str) -> np.ndarray:
    """The catalog's item vectors from the encoder before fine-tuning (what the language model's fine-tuning
    adds to the recommender is the difference)."""
    model = MultiTaskTextModel.from_pretrained_encoder(
        pretrained_encoder_dir(settings.encoder_dir), embedding_layer=ckpt.text_model.config.embedding_layer
    ).to(device)
    out = predict_texts(
        model,
        ckpt.tokenizer,
        ckpt.item_texts,
        ckpt.text_model.config.max_length_item,
        device=device,
        desc="items, pretrained encoder",
    )
    return out["embedding"].astype(np.float32)


def evaluate_checkpoint(checkpoint: Path | Checkpoint, settings: Settings, data_dir: Path | None = None) -> Evaluation:
    """Recompute every metric of the report from the checkpoint alone (splits are rebuilt from its config)."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    started = time.perf_counter()
    recipe = SplitRecipe.from_checkpoint_config(ckpt.config, data_dir)
    profile = recipe.profile
    device = choose_device(settings.device)
    model = ckpt.text_model.to(device)
    tok = ckpt.tokenizer

    text = recipe.text_splits()
    sent_out = predict_texts(
        model, tok, text.sentiment_test.texts, model.config.max_length_sentiment, device=device, desc="sentiment test"
    )
    sentiment = classification_report(
        text.sentiment_test.labels, sent_out["sentiment_logits"].argmax(-1), SENTIMENT_LABELS
    )
    majority = np.bincount(text.sentiment_train.labels, minlength=3).argmax()
    sentiment["majority_class_accuracy"] = float(np.mean(text.sentiment_test.labels == majority))
    sentiment["n"] = len(text.sentiment_test)

    rev_out = predict_texts(
        model, tok, text.review_test.texts, model.config.max_length_review, device=device, desc="review test"
    )
    truth = text.review_test.ratings
    expected = rev_out["review_rating"]
    probs = torch.from_numpy(rev_out["review_logits"]).softmax(-1).numpy()
    median_star = 1 + (probs.cumsum(-1) < 0.5).sum(-1)
    review = {
        "model": regression_report(truth, expected, (1, 5)),
        "model_median_star": regression_report(truth, median_star.astype(np.float32), (1, 5)),
        "baseline_mean": regression_report(truth, np.full(len(truth), text.review_train.ratings.mean()), (1, 5)),
    }
    model.cpu()

    ml = recipe.interaction_splits()
    fit, dev, _, test = recommender_data(ml, ckpt.users, ckpt.items, ckpt.item_embeddings[1:])
    seen = test.history
    n_users, n_items = len(ckpt.users), len(ckpt.items)
    profiles = test.profiles()
    rec = ckpt.recommender
    global_mean = GlobalMean().fit(seen)
    bias = BiasBaseline(n_users, n_items).fit(seen)
    mf, mf_params = tuned_funk_svd(n_users, n_items, fit.history, dev.targets, recipe.seed)
    t = test.targets
    model_rating = evaluate_rating(rec, test, profiles)
    with torch.no_grad():
        predicted = (
            rec.predict_rating(
                torch.from_numpy(t.users),
                torch.from_numpy(profiles[t.users]),
                torch.from_numpy(t.items),
                torch.from_numpy(test.item_embeddings[t.items]),
            )
            .clamp(0.5, 5.0)
            .numpy()
        )
    cold = ~np.isin(t.items, seen.items)
    rating = {
        "model": model_rating,
        "global_mean": regression_report(t.ratings, global_mean.predict(t.users, t.items)),
        "user_item_bias": regression_report(t.ratings, bias.predict(t.users, t.items)),
        "matrix_factorisation": {**regression_report(t.ratings, mf.predict(t.users, t.items)), "params": mf_params},
        "cold_items": {
            "rows": int(cold.sum()),
            "model": regression_report(t.ratings[cold], predicted[cold]) if cold.any() else None,
            "user_item_bias": regression_report(t.ratings[cold], bias.predict(t.users[cold], t.items[cold]))
            if cold.any()
            else None,
        },
    }
    pop = popularity_scores(seen, n_items)
    ranking = {
        "protocol": "full ranking over every catalog item the user had not rated before the test period; "
        "relevant = test items rated >= 4; users with at least one relevant test item",
        "model": evaluate_ranking(rec, test, profiles, "ranking"),
        "model_rating_tower": evaluate_ranking(rec, test, profiles, "rating"),
        "popularity": evaluate_ranking_scores(lambda chunk: np.tile(pop, (len(chunk), 1)), test),
        "matrix_factorisation": evaluate_ranking_scores(mf.score_all, test),
        "cold_positive_share": float(np.mean(cold[t.ratings >= 4])) if (t.ratings >= 4).any() else 0.0,
    }
    ranker, record = ranker_for(ckpt.path, ml.train, ml.dev, list(ckpt.items.ids), ckpt.item_embeddings[1:])
    recommender = evaluate_recommender(
        ranker,
        record,
        ml.train,
        ml.dev,
        ml.test,
        ckpt.item_embeddings[1:],
        recipe.seed,
        pretrained_embeddings=pretrained_item_embeddings(ckpt, settings, device),
    )
    ranking["served_ranker"] = {k: recommender["model"][k] for k in ("hr@10", "ndcg@10", "cold_hr@10")}
    metrics = {
        "checkpoint": str(ckpt.path),
        "profile": profile.name,
        "lora": profile.lora,
        "collapses_links": collapses_links(ckpt.tokenizer.backend_tokenizer),
        "sentiment": sentiment,
        "review_rating": review,
        "movielens_rating": rating,
        "movielens_ranking": ranking,
        "recommender": recommender,
        "data": {**text.sizes(), **{f"interactions_{k}": v for k, v in ml.sizes().items()}},
        "training_seconds": ckpt.history.get("seconds", {}),
        "evaluation_seconds": round(time.perf_counter() - started, 1),
    }
    return Evaluation(
        metrics=metrics,
        sentiment_confusion=np.asarray(sentiment["confusion_matrix"]),
        review_errors=expected - truth,
        movielens_errors=predicted - t.ratings,
        history=ckpt.history,
    )
