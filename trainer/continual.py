"""Continual learning from what the workers stored: the pieces ``streamscore retrain`` builds a challenger from.

* **Recommender**: refit in closed form on the public history plus every stored interaction before the
  held-out slice, with the champion's hyper-parameters (chosen on dev when it was trained; re-searching them
  would cost ten minutes and needs a dev split the stream does not have). Items that reached the system only
  through the ``items`` topic join the catalog with the embeddings the workers stored, so they get
  collaborative rows and columns once people interact with them; new users need nothing: the ranker is
  item-to-item and a user is their history.
* **Sentiment**: a head-only update. The encoder stays frozen, so the item embeddings, the review head and
  the recommender keep their meaning (nothing downstream needs re-embedding), and the update is a convex
  problem on 384-dimensional features: seconds on CPU where fine-tuning the encoder takes the better part of
  an hour. The head is fit on the public training headlines (so it does not forget) plus the corrections,
  weighted, with an L2 pull towards the champion's head.
* **Held-out slice**: the most recent share of the stored interactions in time, never trained on; both
  models rank it from the same histories.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from streamscore.events import SENTIMENT_LABELS
from streamscore.neighbour_ranker import NeighbourRanker
from trainer.model import MultiTaskTextModel, mean_pool
from trainer.neighbour_fit import FitParams, Histories, fit_ranker
from trainer.ranking_eval import RankingTask, evaluate

INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
EPOCH = pd.Timestamp(0, unit="s", tz="UTC")


def latest_corrections(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One correction per article, the latest by event time (then feedback id), and how many articles were
    given more than one distinct label (people disagreed, or changed their mind).

    ``rows``: ``news_id, label, event_ts, feedback_id`` (and whatever else rides along)."""
    if rows.empty:
        return rows, 0
    ordered = rows.sort_values(["news_id", "event_ts", "feedback_id"], kind="mergesort")
    contradicted = int((ordered.groupby("news_id")["label"].nunique() > 1).sum())
    return ordered.groupby("news_id", sort=True).tail(1).reset_index(drop=True), contradicted


def recent_cut(event_ts: pd.Series, share: float, min_rows: int = 1) -> pd.Timestamp | None:
    """The time from which the most recent ``share`` of the rows lie (at least ``min_rows`` of them); None
    when there are too few rows to hold any out."""
    if len(event_ts) < 2 * min_rows:
        return None
    ordered = event_ts.sort_values(kind="mergesort").reset_index(drop=True)
    start = min(len(ordered) - min_rows, int(np.floor(len(ordered) * (1.0 - share))))
    return ordered.iloc[max(start, 1)]


def stored_interactions(clicks: pd.DataFrame, positive_rating: float) -> pd.DataFrame:
    """Stored clicks as training interactions: a click without a rating counts as liked, as it does in the
    worker's ranker state."""
    if clicks.empty:
        return pd.DataFrame(columns=INTERACTION_COLUMNS)
    return pd.DataFrame(
        {
            "user_id": clicks["user_id"].astype(str),
            "item_id": clicks["item_id"].astype(str),
            "rating": clicks["rating"].astype(float).fillna(positive_rating),
            "timestamp": (pd.to_datetime(clicks["event_ts"], utc=True) - EPOCH) // pd.Timedelta(seconds=1),
        }
    )


def extended_catalog(
    champion: NeighbourRanker, new_items: dict[str, np.ndarray]
) -> tuple[list[str], np.ndarray, list[str]]:
    """The champion's items, then the stored items it does not know (sorted), with their embeddings."""
    known = set(champion.item_ids)
    added = sorted(i for i in new_items if i not in known)
    ids = list(champion.item_ids) + added
    rows = [champion.item_embeddings] + ([np.stack([new_items[i] for i in added])] if added else [])
    return ids, np.vstack(rows).astype(np.float32), added


def refit_recommender(
    champion: NeighbourRanker, history: pd.DataFrame, new_items: dict[str, np.ndarray], fit: FitParams
) -> tuple[NeighbourRanker, list[str]]:
    """The challenger's ranker: the champion's hyper-parameters, refit on ``history`` over the extended
    catalog; returns it and the item ids it added."""
    ids, embeddings, added = extended_catalog(champion, new_items)
    ranker = fit_ranker(history, ids, embeddings, fit, champion.params)
    return ranker, added


def served_scorer(
    ranker: NeighbourRanker, histories: Histories, catalog_ids: list[str], catalog_embeddings: np.ndarray
) -> Callable[[list[str]], np.ndarray]:
    """Scores over ``catalog_ids`` (the ranker's items first, then items it never saw) as a worker serves
    them: the ranker's own items from its scores, the others through the text bridge from their embeddings,
    popularity for a user with no usable history. ``histories`` index into ``catalog_ids``."""
    n_known = len(ranker.item_ids)
    if catalog_ids[:n_known] != ranker.item_ids:
        raise ValueError("the catalog must start with the ranker's own items, in its order")
    extra = np.asarray(catalog_embeddings[n_known:], np.float32)

    def score(users: list[str]) -> np.ndarray:
        liked = [[catalog_ids[i] for i in histories.liked.get(user, [])] for user in users]
        recent = [[catalog_ids[i] for i in histories.all.get(user, [])[-ranker.params.recent :]] for user in users]
        rows = []
        for s in ranker.score_users(liked, recent):
            if s.cold:
                rows.append(np.r_[ranker.popularity, np.zeros(len(extra), np.float32)])
            else:
                rows.append(np.r_[s.total, ranker.score_embedded(s, extra) if len(extra) else []])
        return np.stack(rows)

    return score


def slice_ranking(
    ranker: NeighbourRanker,
    history: pd.DataFrame,
    recent: pd.DataFrame,
    catalog_ids: list[str],
    catalog_embeddings: np.ndarray,
) -> dict:
    """Full-ranking figures of ``ranker`` on the held-out slice over one catalog (so champion and challenger
    are judged on the same candidates and positives), each user ranked from ``history``."""
    index = {item: i for i, item in enumerate(catalog_ids)}
    histories = Histories.from_frame(history, index, ranker.params.positive_rating)
    task = RankingTask.from_frames(history, recent, catalog_ids)
    if not task.users:
        return {"users": 0}
    return evaluate(task, served_scorer(ranker, histories, catalog_ids, catalog_embeddings), catalog_embeddings)


@dataclass(frozen=True)
class HeadUpdate:
    steps: int
    seconds: float
    examples: int
    corrections: int
    corrections_fit: float
    """Share of the corrections the updated head labels as corrected (on the training features)."""
    public_train_accuracy: float


def sentence_features(
    model: MultiTaskTextModel, tokenizer, texts: list[str], max_length: int, batch_size: int = 64
) -> np.ndarray:
    """The frozen encoder's mean-pooled last layer: what the sentiment head reads."""
    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            out.append(mean_pool(hidden, enc["attention_mask"]).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.embedding_dim), np.float32)


def update_sentiment_head(
    head: nn.Linear,
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    is_correction: np.ndarray,
    anchor: float = 1e-3,
    steps: int = 300,
) -> HeadUpdate:
    """Weighted cross-entropy on fixed features plus ``anchor · ‖θ − θ_champion‖²``, full batch L-BFGS, in
    place on ``head``. Labels are indices into :data:`streamscore.events.SENTIMENT_LABELS`."""
    started = time.perf_counter()
    x = torch.from_numpy(np.asarray(features, np.float32))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    w = torch.from_numpy(np.asarray(weights, np.float32))
    w = w / w.sum()
    w0, b0 = head.weight.detach().clone(), head.bias.detach().clone()
    optimiser = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = (nn.functional.cross_entropy(head(x), y, reduction="none") * w).sum()
        loss = loss + anchor * (((head.weight - w0) ** 2).sum() + ((head.bias - b0) ** 2).sum())
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        predicted = head(x).argmax(-1).numpy()
    mask = np.asarray(is_correction, bool)
    state = optimiser.state[optimiser._params[0]]
    return HeadUpdate(
        steps=int(state.get("n_iter", steps)),
        seconds=round(time.perf_counter() - started, 2),
        examples=len(labels),
        corrections=int(mask.sum()),
        corrections_fit=float((predicted[mask] == labels[mask]).mean()) if mask.any() else 1.0,
        public_train_accuracy=float((predicted[~mask] == labels[~mask]).mean()) if (~mask).any() else 1.0,
    )


def label_index(labels: pd.Series) -> np.ndarray:
    return labels.map({name: i for i, name in enumerate(SENTIMENT_LABELS)}).to_numpy(np.int64)
