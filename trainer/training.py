"""Fine-tuning: the text tasks on the encoder, then the user–item head on cached item embeddings.

The text loop interleaves sentiment and review batches (one task per step, in a seeded random order) so
that both heads shape the shared encoder; AdamW with linear warm-up and decay, gradient clipping, bf16
autocast where the CPU or GPU supports it, dev evaluation after every epoch with early stopping, and a
resumable state folder written after every epoch.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from streamscore.errors import ConfigurationError
from streamscore.settings import REPO_ROOT, Settings
from trainer.baselines import GlobalMean
from trainer.checkpoint import save_checkpoint
from trainer.data.formats import SENTIMENT_LABELS
from trainer.datasets import DataSources, InteractionSplits, TextSplits, load_interaction_splits, load_text_splits
from trainer.distillation import aligned_teacher_logits, distillation_loss, load_teacher_logits
from trainer.encoder import pretrained_encoder_dir
from trainer.eval_metrics import classification_report, regression_report
from trainer.inference import predict_texts
from trainer.model import REVIEW_STARS, MultiTaskTextModel
from trainer.profiles import Profile
from trainer.rec_evaluation import fit_checkpoint_ranker, save_ranker
from trainer.recommender import EncodedInteractions, IdIndex, RecommenderConfig, RecommenderData, fit_recommender
from trainer.sentiment_loss import class_weights, rdrop_consistency
from trainer.text_batches import TokenizedTexts, collate, length_grouped_batches, tokenize
from trainer.tokenizer import load_tokenizer
from trainer.weight_soup import average_weights

logger = logging.getLogger(__name__)

TASKS = ("sentiment", "review")
STATE_DIR = "state"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays off only with native support: Ampere+ GPUs, or CPUs with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class TextTrainingData:
    sentiment: TokenizedTexts
    review: TokenizedTexts


def evaluate_text_dev(
    model: MultiTaskTextModel,
    tokenizer,
    splits: TextSplits,
    device: torch.device,
    baseline_mae: float,
    sentiment_only: bool = False,
) -> dict:
    """Dev metrics of the text tasks and the early-stopping score: mean of sentiment macro-F1 and the review
    head's relative MAE gain over predicting the mean (sentiment macro-F1 alone in a sentiment-only run)."""
    cfg = model.config
    sent = predict_texts(model, tokenizer, splits.sentiment_dev.texts, cfg.max_length_sentiment, device=device)
    s = classification_report(splits.sentiment_dev.labels, sent["sentiment_logits"].argmax(-1), SENTIMENT_LABELS)
    metrics = {
        "sentiment_accuracy": s["accuracy"],
        "sentiment_macro_f1": s["macro_f1"],
        "sentiment_negative_f1": s["per_class"]["negative"]["f1"],
    }
    if sentiment_only:
        return {**metrics, "score": s["macro_f1"]}
    rev = predict_texts(model, tokenizer, splits.review_dev.texts, cfg.max_length_review, device=device)
    r = regression_report(splits.review_dev.ratings, rev["review_rating"], (1, 5))
    score = 0.5 * s["macro_f1"] + 0.5 * (1.0 - r["mae"] / baseline_mae)
    return {**metrics, "review_mae": r["mae"], "review_rmse": r["rmse"], "score": score}


def use_bf16(profile: Profile, device: torch.device) -> bool:
    if profile.precision not in ("auto", "bf16", "fp32"):
        raise ConfigurationError(f"precision must be auto, bf16 or fp32, got {profile.precision!r}")
    if profile.precision == "bf16" and not bf16_supported(device):
        raise ConfigurationError(f"precision bf16 asked for, but this {device.type} has no bf16 support")
    return profile.precision == "bf16" or (profile.precision == "auto" and bf16_supported(device))


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups: no weight decay on biases and norms, and with ``layer_decay`` < 1 a lower rate the deeper
    a parameter sits (layer-wise decay, as in ELECTRA and BEiT): the pretrained lower layers move least."""
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm")
    n_layers = int(getattr(getattr(model, "config", None), "encoder", {}).get("num_hidden_layers", 0))
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = re.search(r"\.layer\.(\d+)\.", name)
        if layer is not None:
            depth = int(layer.group(1)) + 1
        elif ".embeddings." in f".{name}":
            depth = 0
        else:
            depth = n_layers + 1
        decayed = not any(k in name for k in no_decay)
        group = groups.setdefault(
            (depth, decayed),
            {
                "params": [],
                "weight_decay": weight_decay if decayed else 0.0,
                "lr": lr * layer_decay ** (n_layers + 1 - depth),
            },
        )
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def _epoch_schedule(data: TextTrainingData, profile: Profile, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    steps: list[tuple[str, np.ndarray]] = [
        ("sentiment", b) for b in length_grouped_batches(data.sentiment.lengths, profile.batch_size, rng)
    ]
    if profile.sentiment_only:
        return steps
    review_lengths = data.review.lengths
    pool = np.arange(len(review_lengths))
    if profile.reviews_per_epoch is not None and profile.reviews_per_epoch < len(pool):
        pool = np.sort(rng.choice(pool, profile.reviews_per_epoch, replace=False))
    steps += [("review", pool[b]) for b in length_grouped_batches(review_lengths[pool], profile.batch_size, rng)]
    order = rng.permutation(len(steps))
    return [steps[i] for i in order]


def _steps_per_epoch(data: TextTrainingData, profile: Profile) -> int:
    if profile.sentiment_only:
        return -(-len(data.sentiment) // profile.batch_size)
    n_review = (
        len(data.review) if profile.reviews_per_epoch is None else min(profile.reviews_per_epoch, len(data.review))
    )
    return -(-len(data.sentiment) // profile.batch_size) + -(-n_review // profile.batch_size)


def _wrap_lora(model: MultiTaskTextModel, profile: Profile) -> None:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=profile.lora_rank,
        lora_alpha=2 * profile.lora_rank,
        lora_dropout=0.05,
        target_modules=["query", "key", "value", "dense"],
    )
    model.encoder = get_peft_model(model.encoder, config)


def teacher_targets(splits: TextSplits, profile: Profile) -> torch.Tensor | None:
    """The teacher's logits for each sentiment training text, when the profile distils (else None)."""
    if profile.distill_alpha <= 0:
        return None
    path = Path(profile.teacher_logits)
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.is_file():
        raise ConfigurationError(f"distillation needs the teacher's logits at {path}: run `streamscore teacher`")
    aligned = aligned_teacher_logits(splits.sentiment_train.texts, load_teacher_logits(path), path)
    return torch.as_tensor(aligned)


def fine_tune_text(
    model: MultiTaskTextModel,
    tokenizer,
    splits: TextSplits,
    profile: Profile,
    device: torch.device,
    state_dir: Path,
    seed: int,
    resume: bool = False,
) -> dict:
    """Train both text heads and the encoder; leaves the best dev epoch's weights in ``model``.

    Returns the history: running losses every few steps and the dev metrics of each epoch.
    """
    cfg = model.config
    data = TextTrainingData(
        sentiment=tokenize(
            tokenizer, splits.sentiment_train.texts, splits.sentiment_train.labels, cfg.max_length_sentiment
        ),
        review=tokenize(tokenizer, splits.review_train.texts, splits.review_train.ratings, cfg.max_length_review),
    )
    baseline_mae = regression_report(
        splits.review_dev.ratings, np.full(len(splits.review_dev), splits.review_train.ratings.mean())
    )["mae"]
    if profile.lora:
        _wrap_lora(model, profile)
    model.to(device)
    lr = profile.lora_lr if profile.lora else profile.lr
    optimizer = torch.optim.AdamW(parameter_groups(model, lr, profile.weight_decay, profile.layer_lr_decay), lr=lr)
    total_steps = _steps_per_epoch(data, profile) * profile.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(profile.warmup_fraction * total_steps), total_steps)
    bf16 = use_bf16(profile, device)
    history: dict = {
        "steps": [],
        "epochs": [],
        "precision": "bf16" if bf16 else "fp32",
        "device": device.type,
        "lora": profile.lora,
    }
    start_epoch, best_score, best_epoch, best_state = 1, -np.inf, 0, None
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / "trainer_state.pt"
    if resume and state_file.is_file():
        saved = torch.load(state_file, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        history, best_score, best_epoch = saved["history"], saved["best_score"], saved["best_epoch"]
        best_state = saved["best_model"]
        start_epoch = saved["epoch"] + 1
        logger.info("resumed training", extra={"from_epoch": start_epoch, "state": str(state_file)})
    weight = class_weights(cfg.n_sentiment, profile.negative_class_weight)
    weight = weight.to(device) if weight is not None else None
    losses = {"sentiment": nn.CrossEntropyLoss(weight=weight), "review": nn.CrossEntropyLoss()}
    teacher = teacher_targets(splits, profile)
    if teacher is not None:
        history["distillation"] = {"alpha": profile.distill_alpha, "temperature": profile.distill_temperature}
    star_offset = REVIEW_STARS[0]
    step = (start_epoch - 1) * _steps_per_epoch(data, profile)
    running = {task: None for task in TASKS}
    for epoch in range(start_epoch, profile.epochs + 1):
        if epoch - best_epoch > profile.patience and best_epoch > 0:
            logger.info("early stop", extra={"epoch": epoch, "best_epoch": best_epoch})
            break
        rng = np.random.default_rng(seed + epoch)
        schedule = _epoch_schedule(data, profile, rng)
        model.train()
        started = time.perf_counter()
        bar = tqdm(schedule, desc=f"epoch {epoch}/{profile.epochs}", unit="batch", dynamic_ncols=True)
        for task, batch in bar:
            source = data.sentiment if task == "sentiment" else data.review
            ids, mask = collate([source.input_ids[i] for i in batch], tokenizer.pad_token_id)
            targets = torch.as_tensor(source.targets[batch])
            if task == "review":
                targets = torch.round(targets).long() - star_offset
            head = "sentiment_logits" if task == "sentiment" else "review_logits"
            draws = 2 if task == "sentiment" and profile.rdrop_alpha > 0 else 1
            draw_logits, draw_losses = [], []
            for _ in range(draws):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(ids.to(device), mask.to(device))[head].float()
                if task == "sentiment" and teacher is not None:
                    draw_loss = distillation_loss(
                        logits,
                        teacher[torch.as_tensor(batch)].to(device),
                        targets.to(device),
                        profile.distill_alpha,
                        profile.distill_temperature,
                        weight,
                    )
                else:
                    draw_loss = losses[task](logits, targets.to(device))
                draw_logits.append(logits)
                draw_losses.append(draw_loss)
            loss = sum(draw_losses) / draws
            if draws == 2:
                loss = loss + profile.rdrop_alpha * rdrop_consistency(*draw_logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            value = loss.item()
            running[task] = value if running[task] is None else 0.95 * running[task] + 0.05 * value
            if step % 10 == 0:
                history["steps"].append(
                    {"step": step, "epoch": epoch, **{f"{t}_loss": running[t] for t in TASKS if running[t] is not None}}
                )
                bar.set_postfix({f"{t}": f"{running[t]:.3f}" for t in TASKS if running[t] is not None})
        bar.close()
        dev = evaluate_text_dev(model, tokenizer, splits, device, baseline_mae, profile.sentiment_only)
        dev.update(
            {"epoch": epoch, "seconds": round(time.perf_counter() - started, 1), "lr": scheduler.get_last_lr()[0]}
        )
        history["epochs"].append(dev)
        logger.info("epoch done", extra={k: round(v, 4) if isinstance(v, float) else v for k, v in dev.items()})
        if dev["score"] > best_score:
            best_score, best_epoch = dev["score"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "best_model": best_state,
            },
            state_file,
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    history["best_epoch"] = best_epoch
    if profile.lora:
        model.encoder = model.encoder.merge_and_unload()
    return history


def fine_tune_soup(
    encoder_dir: Path,
    tokenizer,
    splits: TextSplits,
    profile: Profile,
    device: torch.device,
    state_dir: Path,
    seed: int,
    resume: bool = False,
    on_copy: Callable[[int, MultiTaskTextModel, dict], None] | None = None,
) -> tuple[MultiTaskTextModel, dict]:
    """Fine-tune ``profile.soup`` copies of the text model from the pretrained encoder and return one model with
    the mean of their weights, and the history (copy 0's, with every copy's chosen epoch when there are more).

    Every copy starts from the same heads (drawn from ``seed``); copy i trains with ``seed + i``, and keeps its
    resume state in ``state_dir/copy-i`` (copy 0 in ``state_dir`` itself, where a run without a soup keeps it).
    ``on_copy(i, model, history)`` sees each copy before the average (the sweep scores them one by one)."""
    if profile.soup < 1:
        raise ConfigurationError(f"profile {profile.name}: soup must be at least 1, got {profile.soup}")
    states, histories = [], []
    for copy in range(profile.soup):
        seed_everything(seed)
        model = MultiTaskTextModel.from_pretrained_encoder(encoder_dir)
        if copy:
            torch.manual_seed(seed + copy)
        copy_state = state_dir / f"copy-{copy}" if copy else state_dir
        history = fine_tune_text(model, tokenizer, splits, profile, device, copy_state, seed + copy, resume)
        histories.append(history)
        if on_copy is not None:
            on_copy(copy, model, history)
        if profile.soup > 1:
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            logger.info("soup copy done", extra={"copy": copy, "best_epoch": history["best_epoch"]})
    if profile.soup == 1:
        return model, histories[0]
    model.load_state_dict(average_weights(states))
    return model, {
        **histories[0],
        "best_epoch": [h["best_epoch"] for h in histories],
        "soup_copies": [{"best_epoch": h["best_epoch"], "epochs": h["epochs"]} for h in histories],
    }


def recommender_data(
    splits: InteractionSplits, users: IdIndex, items: IdIndex, item_embeddings: np.ndarray
) -> tuple[RecommenderData, RecommenderData, RecommenderData, RecommenderData]:
    """The four views the head needs: fit (train→train), dev (train→dev), refit (train+dev→dev) and
    test (train+dev→test). Profiles are always built from the history alone: no future leaks in."""
    table = np.vstack([np.zeros((1, item_embeddings.shape[1]), np.float32), item_embeddings]).astype(np.float32)
    train, dev, test = (
        EncodedInteractions.from_frame(f, users, items) for f in (splits.train, splits.dev, splits.test)
    )
    seen = train.concat(dev)
    n = len(users)
    return (
        RecommenderData(train, train, table, n),
        RecommenderData(train, dev, table, n),
        RecommenderData(seen, dev, table, n),
        RecommenderData(seen, test, table, n),
    )


def popular_items(seen: EncodedInteractions, items: IdIndex, top: int = 100) -> list[str]:
    """The most interacted-with item ids: what a user with no history is shown (cold start)."""
    counts = np.bincount(seen.items, minlength=len(items) + 1)
    counts[0] = 0
    order = np.argsort(-counts, kind="stable")[:top]
    return [items.ids[i - 1] for i in order if counts[i] > 0]


def interaction_indices(splits: InteractionSplits) -> tuple[IdIndex, IdIndex]:
    users = sorted(set(splits.train["user_id"]) | set(splits.dev["user_id"]) | set(splits.test["user_id"]))
    return IdIndex(users), IdIndex(splits.items["item_id"].tolist())


def run_training(
    settings: Settings, profile: Profile, sources: DataSources, run_dir: Path, resume: bool = False
) -> Path:
    """Train the whole model and write ``run_dir/checkpoint``; returns that path."""
    seed = settings.seed
    seed_everything(seed)
    if sources.sentiment_file is not None and profile.distill_alpha > 0:
        # the teacher labelled the shipped news set only; a user's own file trains on its hard labels
        logger.warning("own sentiment file: training without the teacher's soft labels")
        profile = profile.with_overrides(distill_alpha=0.0)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = choose_device(settings.device)
    encoder_dir = pretrained_encoder_dir(settings.encoder_dir)
    started = time.perf_counter()
    text_splits = load_text_splits(sources, profile, seed)
    ml_splits = load_interaction_splits(sources, profile, seed)
    logger.info(
        "data loaded", extra={**text_splits.sizes(), **{f"interactions_{k}": v for k, v in ml_splits.sizes().items()}}
    )
    tokenizer = load_tokenizer(encoder_dir, collapse_links=profile.collapse_links)
    setup_seconds = time.perf_counter() - started
    model, history = fine_tune_soup(
        encoder_dir, tokenizer, text_splits, profile, device, run_dir / STATE_DIR, seed, resume
    )
    text_seconds = time.perf_counter() - started

    item_embeddings = predict_texts(
        model,
        tokenizer,
        ml_splits.items["text"].tolist(),
        model.config.max_length_item,
        batch_size=128,
        device=device,
        desc="embedding items",
    )["embedding"]
    model.cpu()
    users, items = interaction_indices(ml_splits)
    fit, dev, refit, _ = recommender_data(ml_splits, users, items, item_embeddings)
    rec_config = RecommenderConfig(
        n_users=len(users),
        n_items=len(items),
        embedding_dim=item_embeddings.shape[1],
        dim=profile.rec_dim,
        global_mean=GlobalMean().fit(fit.history).mean,
    )
    recommender, rec_log = fit_recommender(
        rec_config,
        fit,
        dev,
        refit,
        epochs=profile.rec_epochs,
        lr=profile.rec_lr,
        l2=profile.rec_l2,
        batch_size=profile.rec_batch_size,
        negatives=profile.rec_negatives,
        patience=profile.rec_patience,
        seed=seed,
    )
    history["recommender"] = rec_log
    # Epoch times come from the history so that a resumed run still reports the whole training time.
    copies = history.get("soup_copies") or [history]
    text_total = sum(e["seconds"] for copy in copies for e in copy["epochs"])
    after_text = time.perf_counter() - started - text_seconds
    history["seconds"] = {
        "setup": round(setup_seconds, 1),
        "text": round(text_total, 1),
        "items_and_recommender": round(after_text, 1),
        "total": round(setup_seconds + text_total + after_text, 1),
    }
    checkpoint = save_checkpoint(
        run_dir / "checkpoint",
        text_model=model,
        tokenizer=tokenizer,
        recommender=recommender,
        users=users,
        items=items,
        item_texts=ml_splits.items["text"].tolist(),
        popular_items=popular_items(fit.history.concat(dev.targets), items),
        item_embeddings=np.vstack([np.zeros((1, item_embeddings.shape[1]), np.float32), item_embeddings]),
        history=history,
        extra_config={"profile": profile.to_dict(), "sources": sources.to_dict(), "seed": seed},
    )
    # The served recommender: closed-form, chosen on dev and refit on train + dev (seconds to minutes).
    ranker, record = fit_checkpoint_ranker(
        ml_splits.train, ml_splits.dev, items.ids, item_embeddings.astype(np.float32)
    )
    save_ranker(checkpoint, ranker, record)
    return checkpoint
