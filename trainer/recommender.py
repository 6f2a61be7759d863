"""The user–item head: a hybrid of collaborative factors and text, cheap to score at stream time.

For user ``u`` and item ``i`` with cached text embedding ``e_i`` (from the fine-tuned encoder):

    profile h_u = mean of e_j over the items u interacted with before now
    p_u = B·h_u + w_u          q_i = A·e_i + v_i          b_i = c·e_i + β_i
    rating(u, i) = μ + b_u + b_i + p_u·q_i               (the *rating* tower, trained on squared error)
    score(u, i)  = p'_u·q'_i + b'_i                      (the *ranking* tower, sampled softmax over items)

``w_u, b_u, v_i, β_i`` are learned per known user / item and are zero for a new user or a cold item, whose
scores then come from text alone. At stream time ``q_i, b_i`` are cached per item and ``h_u`` is a running
mean, so a click costs one small matrix–vector product over the candidates, never a transformer call.
The two towers exist because a predicted rating ranks poorly: it favours obscure items with a few
high ratings, while the ranking tower learns what users actually pick.

Index 0 of every id table is "unknown" and stays zero.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from trainer.eval_metrics import ranking_report, regression_report

logger = logging.getLogger(__name__)

RELEVANT_RATING = 4.0
"""A held-out item counts as relevant for HR/nDCG when rated at least this."""


@dataclass
class RecommenderConfig:
    n_users: int
    n_items: int
    embedding_dim: int
    dim: int = 64
    use_text: bool = True
    global_mean: float = 3.5

    def to_dict(self) -> dict:
        return asdict(self)


class IdIndex:
    """Stable mapping from external ids (strings) to 1-based row indices; 0 means unknown."""

    def __init__(self, ids: list[str]):
        self.ids = list(ids)
        self._index = {key: pos + 1 for pos, key in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, keys) -> np.ndarray:
        return np.fromiter((self._index.get(str(k), 0) for k in keys), dtype=np.int64)


class Tower(nn.Module):
    """One factorisation tower: ``p_u·q_i + b_u + b_i`` with text projections and per-id corrections."""

    def __init__(self, config: RecommenderConfig):
        super().__init__()
        d, e = config.dim, config.embedding_dim
        self.use_text = config.use_text
        self.user_factor = nn.Embedding(config.n_users + 1, d, padding_idx=0)
        self.item_factor = nn.Embedding(config.n_items + 1, d, padding_idx=0)
        self.user_bias = nn.Embedding(config.n_users + 1, 1, padding_idx=0)
        self.item_bias = nn.Embedding(config.n_items + 1, 1, padding_idx=0)
        for table in (self.user_factor, self.item_factor):
            nn.init.normal_(table.weight, std=0.01)
            with torch.no_grad():
                table.weight[0].zero_()
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.user_proj = nn.Linear(e, d, bias=False)
        self.item_proj = nn.Linear(e, d, bias=False)
        self.item_text_bias = nn.Linear(e, 1)
        for layer in (self.user_proj, self.item_proj, self.item_text_bias):
            nn.init.normal_(layer.weight, std=0.01)
        nn.init.zeros_(self.item_text_bias.bias)

    def user_side(self, users: torch.Tensor, profiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.user_factor(users)
        if self.use_text:
            p = p + self.user_proj(profiles)
        return p, self.user_bias(users).squeeze(-1)

    def item_side(self, items: torch.Tensor, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.item_factor(items)
        b = self.item_bias(items).squeeze(-1)
        if self.use_text:
            q = q + self.item_proj(embeddings)
            b = b + self.item_text_bias(embeddings).squeeze(-1)
        return q, b

    def l2(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Squared norm of the per-id parameters touched by a batch (classic MF regularisation)."""
        return (
            self.user_factor(users).pow(2).sum(-1)
            + self.item_factor(items).pow(2).sum(-1)
            + self.user_bias(users).squeeze(-1).pow(2)
            + self.item_bias(items).squeeze(-1).pow(2)
        ).mean()


class HybridRecommender(nn.Module):
    """Rating and ranking towers over the same inputs; see the module docstring."""

    def __init__(self, config: RecommenderConfig):
        super().__init__()
        self.config = config
        self.rating_tower = Tower(config)
        self.ranking_tower = Tower(config)
        self.register_buffer("global_mean", torch.tensor(float(config.global_mean)))

    def predict_rating(self, users, profiles, items, item_embeddings) -> torch.Tensor:
        p, bu = self.rating_tower.user_side(users, profiles)
        q, bi = self.rating_tower.item_side(items, item_embeddings)
        return self.global_mean + bu + bi + (p * q).sum(-1)

    def forward(self, users, profiles, items, item_embeddings) -> dict[str, torch.Tensor]:
        p, _ = self.ranking_tower.user_side(users, profiles)
        q, bi = self.ranking_tower.item_side(items, item_embeddings)
        return {
            "predicted_rating": self.predict_rating(users, profiles, items, item_embeddings),
            "score": (p * q).sum(-1) + bi,
        }

    @torch.no_grad()
    def score_all_items(
        self, users: torch.Tensor, profiles: torch.Tensor, item_embeddings: torch.Tensor, tower: str
    ) -> torch.Tensor:
        """``(len(users), n_items + 1)`` matrix of ranking scores (or predicted ratings) for the whole catalog."""
        items = torch.arange(item_embeddings.shape[0])
        net = self.ranking_tower if tower == "ranking" else self.rating_tower
        p, bu = net.user_side(users, profiles)
        q, bi = net.item_side(items, item_embeddings)
        scores = p @ q.T + bi.unsqueeze(0)
        if tower == "rating":
            scores = scores + bu.unsqueeze(1) + self.global_mean
        return scores


def user_profiles(users: np.ndarray, items: np.ndarray, item_embeddings: np.ndarray, n_users: int) -> np.ndarray:
    """Mean item embedding per user index (row 0 and users without history stay zero)."""
    dim = item_embeddings.shape[1]
    sums = np.zeros((n_users + 1, dim), dtype=np.float32)
    np.add.at(sums, users, item_embeddings[items])
    counts = np.bincount(users, minlength=n_users + 1).astype(np.float32)
    return sums / np.maximum(counts, 1.0)[:, None]


@dataclass
class EncodedInteractions:
    """Interactions as index arrays (users and items 1-based, 0 = unknown)."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, users: IdIndex, items: IdIndex) -> EncodedInteractions:
        return cls(
            users.lookup(frame["user_id"]),
            items.lookup(frame["item_id"]),
            frame["rating"].to_numpy(np.float32, copy=True),
        )

    def concat(self, other: EncodedInteractions) -> EncodedInteractions:
        return EncodedInteractions(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.items, other.items]),
            np.concatenate([self.ratings, other.ratings]),
        )

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class RecommenderData:
    """Everything the towers train and evaluate on, for one history/target pair of splits."""

    history: EncodedInteractions
    """Interactions known before the targets: fitted on, and the source of profiles and seen items."""
    targets: EncodedInteractions
    """Held-out interactions to score."""
    item_embeddings: np.ndarray
    """``(n_items + 1, E)``, row 0 zero."""
    n_users: int

    def profiles(self) -> np.ndarray:
        return user_profiles(self.history.users, self.history.items, self.item_embeddings, self.n_users)


def evaluate_rating(model: HybridRecommender, data: RecommenderData, profiles: np.ndarray) -> dict:
    model.eval()
    with torch.no_grad():
        pred = model.predict_rating(
            torch.from_numpy(data.targets.users),
            torch.from_numpy(profiles[data.targets.users]),
            torch.from_numpy(data.targets.items),
            torch.from_numpy(data.item_embeddings[data.targets.items]),
        ).numpy()
    return regression_report(data.targets.ratings, np.clip(pred, 0.5, 5.0))


def rank_top_k(scores: np.ndarray, users: np.ndarray, history: EncodedInteractions, k: int) -> list[np.ndarray]:
    """Top-k item indices per user from ``scores`` rows, excluding items in the user's history and row 0."""
    scores = scores.copy()
    scores[:, 0] = -np.inf
    row_of = {u: r for r, u in enumerate(users)}
    mask_rows = np.fromiter((row_of.get(u, -1) for u in history.users), dtype=np.int64)
    keep = mask_rows >= 0
    scores[mask_rows[keep], history.items[keep]] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return list(np.take_along_axis(top, order, axis=1))


def relevant_sets(targets: EncodedInteractions, users: np.ndarray) -> list[set[int]]:
    rel: dict[int, set[int]] = {}
    for u, i, r in zip(targets.users, targets.items, targets.ratings):
        if r >= RELEVANT_RATING:
            rel.setdefault(int(u), set()).add(int(i))
    return [rel.get(int(u), set()) for u in users]


def evaluate_ranking_scores(score_fn: Callable[[np.ndarray], np.ndarray], data: RecommenderData, k: int = 10) -> dict:
    """HR@k / nDCG@k with full ranking: every catalog item the user has not interacted with is a candidate."""
    users = np.unique(data.targets.users[data.targets.ratings >= RELEVANT_RATING])
    users = users[users > 0]
    tops: list[np.ndarray] = []
    for start in range(0, len(users), 256):
        chunk = users[start : start + 256]
        tops.extend(rank_top_k(score_fn(chunk), chunk, data.history, k))
    return ranking_report(tops, relevant_sets(data.targets, users), k)


def evaluate_ranking(
    model: HybridRecommender, data: RecommenderData, profiles: np.ndarray, tower: str = "ranking", k: int = 10
) -> dict:
    model.eval()
    emb = torch.from_numpy(data.item_embeddings)

    def score(chunk: np.ndarray) -> np.ndarray:
        return model.score_all_items(torch.from_numpy(chunk), torch.from_numpy(profiles[chunk]), emb, tower).numpy()

    return evaluate_ranking_scores(score, data, k)


def _train_tower_epochs(
    model: HybridRecommender,
    train: RecommenderData,
    objective: str,
    epochs: int,
    lr: float,
    l2: float,
    batch_size: int,
    negatives: int,
    seed: int,
    after_epoch: Callable[[int], float] | None = None,
    patience: int = 0,
) -> tuple[int, list[dict]]:
    """Train one tower for up to ``epochs``; with ``after_epoch`` (a dev score, higher is better) stop early.

    Returns the best epoch (1-based) and the per-epoch history; the model ends with the best epoch's weights.
    """
    tower = model.rating_tower if objective == "rating" else model.ranking_tower
    optimizer = torch.optim.Adam(tower.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    profiles = torch.from_numpy(train.profiles())
    emb = torch.from_numpy(train.item_embeddings)
    h = train.history
    users_t, items_t, ratings_t = (torch.from_numpy(a) for a in (h.users, h.items, h.ratings))
    n_items = emb.shape[0] - 1
    best, best_epoch, best_state, history = -np.inf, 0, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(h)))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            u, i = users_t[idx], items_t[idx]
            if objective == "rating":
                pred = model.predict_rating(u, profiles[u], i, emb[i])
                loss = nn.functional.mse_loss(pred, ratings_t[idx]) + l2 * tower.l2(u, i)
            else:
                p, _ = tower.user_side(u, profiles[u])
                q_pos, b_pos = tower.item_side(i, emb[i])
                neg = torch.from_numpy(rng.integers(1, n_items + 1, size=negatives))
                q_neg, b_neg = tower.item_side(neg, emb[neg])
                # Uniform negatives shared by the batch: unlike in-batch negatives they do not push popular
                # items down, and popularity is a strong signal of what a user picks next.
                logits = torch.cat(
                    [(p * q_pos).sum(-1, keepdim=True) + b_pos.unsqueeze(1), p @ q_neg.T + b_neg.unsqueeze(0)], dim=1
                )
                logits[:, 1:] = logits[:, 1:].masked_fill(neg.unsqueeze(0) == i.unsqueeze(1), -1e9)
                loss = nn.functional.cross_entropy(logits, torch.zeros(len(i), dtype=torch.long)) + l2 * tower.l2(u, i)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        record = {"epoch": epoch, "train_loss": total / len(h)}
        if after_epoch is not None:
            dev = after_epoch(epoch)
            record["dev"] = dev
            if dev > best:
                best, best_epoch, best_state = dev, epoch, copy.deepcopy(tower.state_dict())
            elif epoch - best_epoch >= patience:
                history.append(record)
                break
        history.append(record)
    if best_state is not None:
        tower.load_state_dict(best_state)
    return (best_epoch or epochs), history


def fit_recommender(
    config: RecommenderConfig,
    train: RecommenderData,
    dev: RecommenderData,
    refit: RecommenderData,
    *,
    epochs: int,
    lr: float,
    l2: float,
    batch_size: int,
    negatives: int,
    patience: int,
    seed: int,
    ranking: bool = True,
) -> tuple[HybridRecommender, dict]:
    """Pick the epoch count of each tower on ``dev`` (fitting on ``train``), then refit on ``refit``'s history.

    ``train.history`` is the train split; ``dev`` has the same history with the dev split as targets;
    ``refit.history`` is train + dev, so the returned model has seen everything before the test period.
    """
    torch.manual_seed(seed)
    probe = HybridRecommender(config)
    dev_profiles = dev.profiles()
    log: dict = {}
    progress = tqdm(total=2 if ranking else 1, desc="recommender: choose epochs", leave=False)
    rating_epochs, log["rating"] = _train_tower_epochs(
        probe,
        train,
        "rating",
        epochs,
        lr,
        l2,
        batch_size,
        negatives,
        seed,
        after_epoch=lambda _: -evaluate_rating(probe, dev, dev_profiles)["rmse"],
        patience=patience,
    )
    progress.update()
    ranking_epochs = 0
    if ranking:
        ranking_epochs, log["ranking"] = _train_tower_epochs(
            probe,
            train,
            "ranking",
            epochs,
            lr,
            l2 * 0.1,
            batch_size,
            negatives,
            seed,
            after_epoch=lambda _: evaluate_ranking(probe, dev, dev_profiles)["ndcg@10"],
            patience=patience,
        )
        progress.update()
    progress.close()
    torch.manual_seed(seed)
    model = HybridRecommender(config)
    _train_tower_epochs(model, refit, "rating", rating_epochs, lr, l2, batch_size, negatives, seed)
    if ranking:
        _train_tower_epochs(model, refit, "ranking", ranking_epochs, lr, l2 * 0.1, batch_size, negatives, seed)
    log.update({"rating_epochs": rating_epochs, "ranking_epochs": ranking_epochs})
    logger.info("recommender fitted", extra={"rating_epochs": rating_epochs, "ranking_epochs": ranking_epochs})
    return model.eval(), log
