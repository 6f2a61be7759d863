"""The recommender's part of the report: the served ranker against every baseline on one split, what each
of its parts adds (the language model in particular), and its accuracy/diversity trade-off under MMR.

The ranker lives with the checkpoint (``<checkpoint>/ranker/``, written by training); a checkpoint from
before the ranker existed gets one fit here, with the same dev-then-refit protocol, and saved beside it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from streamscore.neighbour_ranker import NeighbourRanker, mmr
from trainer.neighbour_fit import (
    FitParams,
    Histories,
    RankerChoice,
    choose_ranker,
    fit_ranker,
    ranker_scorer,
    text_bridge,
)
from trainer.ranking_eval import RankingTask, accuracy, beyond_accuracy, evaluate, top_lists
from trainer.rec_baselines import run_baselines

logger = logging.getLogger(__name__)
RANKER_DIR = "ranker"
CHOICE_FILE = "choice.json"


def fit_checkpoint_ranker(
    train: pd.DataFrame, dev: pd.DataFrame, item_ids: list[str], embeddings: np.ndarray
) -> tuple[NeighbourRanker, dict]:
    """Choose on dev with a train-only fit, then refit on train + dev: the ranker a bundle serves."""
    choice: RankerChoice = choose_ranker(train, dev, item_ids, embeddings)
    started = time.perf_counter()
    ranker = fit_ranker(pd.concat([train, dev], ignore_index=True), item_ids, embeddings, choice.fit, choice.params)
    record = {
        "fit": asdict(choice.fit),
        "params": asdict(choice.params),
        "dev": choice.dev,
        "grid": choice.grid,
        "choose_seconds": choice.seconds,
        "refit_seconds": round(time.perf_counter() - started, 1),
    }
    return ranker, record


def save_ranker(checkpoint: Path, ranker: NeighbourRanker, record: dict) -> None:
    folder = checkpoint / RANKER_DIR
    ranker.save(folder)
    (folder / CHOICE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def load_ranker(checkpoint: Path) -> tuple[NeighbourRanker, dict] | None:
    folder = checkpoint / RANKER_DIR
    if not (folder / CHOICE_FILE).is_file():
        return None
    return NeighbourRanker.load(folder), json.loads((folder / CHOICE_FILE).read_text())


def ranker_for(
    checkpoint: Path, train: pd.DataFrame, dev: pd.DataFrame, item_ids: list[str], embeddings: np.ndarray
) -> tuple[NeighbourRanker, dict]:
    """The checkpoint's ranker, fit and saved beside it if the checkpoint predates it. A saved ranker may
    extend the checkpoint's catalog (a retrain adds the items that arrived through the stream after it)."""
    loaded = load_ranker(checkpoint)
    if loaded is not None and loaded[0].item_ids[: len(item_ids)] == list(item_ids):
        return loaded
    logger.info("fitting the ranker for a checkpoint that has none", extra={"checkpoint": str(checkpoint)})
    ranker, record = fit_checkpoint_ranker(train, dev, item_ids, embeddings)
    save_ranker(checkpoint, ranker, record)
    return ranker, record


def evaluate_recommender(
    ranker: NeighbourRanker,
    record: dict,
    train: pd.DataFrame,
    dev: pd.DataFrame,
    test: pd.DataFrame,
    embeddings: np.ndarray,
    seed: int,
    pretrained_embeddings: np.ndarray | None = None,
    with_baselines: bool = True,
) -> dict:
    """Test figures of the ranker, its ablations and MMR settings, and of every baseline."""
    started = time.perf_counter()
    history = pd.concat([train, dev], ignore_index=True)
    item_ids = ranker.item_ids
    index = {item: i for i, item in enumerate(item_ids)}
    histories = Histories.from_frame(history, index, ranker.params.positive_rating)
    task = RankingTask.from_frames(history, test, item_ids)
    full = evaluate(task, ranker_scorer(ranker, histories), embeddings)

    params = ranker.params
    probe = text_probe_weight(record)
    ablation: dict[str, dict] = {}
    variants = [
        ("EASE part only (bounded window, top-k rows)", replace(params, transition_weight=0.0, text_weight=0.0)),
        ("+ next-item term", replace(params, text_weight=0.0)),
        (f"+ text bridge at γ = {params.text_weight} (the served model)", params),
    ]
    if probe != params.text_weight:
        variants.append((f"+ text bridge at γ = {probe}, fine-tuned MiniLM", replace(params, text_weight=probe)))
    for name, changed in variants:
        ranker.params = changed
        ablation[name] = evaluate(task, ranker_scorer(ranker, histories), embeddings)
    ranker.params = params
    if pretrained_embeddings is not None:
        variant = NeighbourRanker(
            item_ids,
            ranker.collaborative,
            ranker.transitions,
            text_bridge(ranker.collaborative, pretrained_embeddings, FitParams(**record["fit"]).ridge),
            pretrained_embeddings,
            ranker.popularity,
            replace(params, text_weight=probe),
        )
        ablation[f"+ text bridge at γ = {probe}, pretrained MiniLM (no fine-tuning)"] = evaluate(
            task, ranker_scorer(variant, histories), embeddings
        )

    diversity = mmr_sweep(ranker, histories, task, embeddings)
    result = {
        "model": {**full, "params": record["params"], "fit": record["fit"], "dev": record["dev"]},
        "ablation": ablation,
        "mmr": diversity,
        "fit_seconds": {"choose_on_dev": record.get("choose_seconds"), "refit": record.get("refit_seconds")},
        "cold_positive_share": round(
            float(np.mean([task.cold_items[i] for u in task.users for i in task.relevant[u]])), 4
        ),
    }
    if with_baselines:
        result["baselines"] = run_baselines(train, dev, test, item_ids, embeddings, seed, params.positive_rating)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def text_probe_weight(record: dict) -> float:
    """The served text weight when it is above zero, else the smallest that put a cold positive in a dev top
    10 (what the text bridge can do for items nobody has interacted with, shown even when dev chose none)."""
    if record["params"].get("text_weight", 0.0) > 0:
        return float(record["params"]["text_weight"])
    weights = [g["text_weight"] for g in record.get("grid", []) if g.get("cold_hr@10", 0) > 0 and g["text_weight"] > 0]
    return min(weights) if weights else 2.0


def mmr_sweep(
    ranker: NeighbourRanker,
    histories: Histories,
    task: RankingTask,
    embeddings: np.ndarray,
    relevances: tuple[float, ...] = (1.0, 0.9, 0.8, 0.6),
    pool: int = 100,
) -> list[dict]:
    """Accuracy and diversity when the top 10 are re-ranked by MMR from the ranker's top ``pool``."""
    pools = top_lists(task, ranker_scorer(ranker, histories), k=pool)
    score = ranker_scorer(ranker, histories)
    scores = {u: s for u, s in zip(task.users, score(task.users))}
    rows = []
    for relevance in relevances:
        lists = {u: mmr(pools[u], scores[u][pools[u]], embeddings[pools[u]], 10, relevance) for u in task.users}
        rows.append({"relevance": relevance, **accuracy(task, lists), **beyond_accuracy(task, lists, embeddings)})
    return rows
