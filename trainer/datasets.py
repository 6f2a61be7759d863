"""Assemble the train/dev/test splits of every task from the public datasets or the user's own files.

The split is a pure function of the sources, the profile and the seed, so ``streamscore evaluate`` rebuilds
exactly the test sets that ``streamscore train`` held out.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from trainer.data.clothing_reviews import load_clothing_reviews
from trainer.data.financial_news import load_financial_news
from trainer.data.formats import (
    LabelledTexts,
    RatedTexts,
    load_interactions_file,
    load_items_file,
    load_review_file,
    load_sentiment_file,
)
from trainer.data.movielens import load_movielens
from trainer.data.splits import random_split, temporal_split
from trainer.profiles import Profile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSources:
    """Where each task's data comes from; ``None`` means the bundled public dataset."""

    data_dir: Path
    sentiment_file: Path | None = None
    reviews_file: Path | None = None
    interactions_file: Path | None = None
    items_file: Path | None = None

    def to_dict(self) -> dict:
        return {k: (str(v) if v is not None else None) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict) -> DataSources:
        return cls(**{k: (Path(v) if v is not None else None) for k, v in raw.items()})


@dataclass(frozen=True)
class SplitRecipe:
    """What rebuilds a run's exact splits: its sources, profile and seed (stored in the checkpoint config)."""

    sources: DataSources
    profile: Profile
    seed: int

    @classmethod
    def from_checkpoint_config(cls, config: dict, data_dir: Path | None = None) -> SplitRecipe:
        """``data_dir`` re-points the public datasets (the same data, found elsewhere on this machine)."""
        profile = Profile(**{**config["profile"], "review_split": tuple(config["profile"]["review_split"])})
        sources = DataSources.from_dict(config["sources"])
        if data_dir is not None:
            sources = replace(sources, data_dir=data_dir)
        return cls(sources, profile, int(config["seed"]))

    def text_splits(self) -> TextSplits:
        return load_text_splits(self.sources, self.profile, self.seed)

    def interaction_splits(self) -> InteractionSplits:
        return load_interaction_splits(self.sources, self.profile, self.seed)


@dataclass
class TextSplits:
    sentiment_train: LabelledTexts
    sentiment_dev: LabelledTexts
    sentiment_test: LabelledTexts
    review_train: RatedTexts
    review_dev: RatedTexts
    review_test: RatedTexts

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass
class InteractionSplits:
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test), "items": len(self.items)}


def _head(data, limit: int | None, seed: int):
    """A seeded random subset of at most ``limit`` examples (all when ``limit`` is None)."""
    if limit is None or len(data) <= limit:
        return data
    return data.subset(np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False)))


def load_text_splits(sources: DataSources, profile: Profile, seed: int) -> TextSplits:
    """Sentiment: the news set's train file minus a dev fraction, its validation file as test (a user's file is
    split 80/10/10). Reviews: a seeded 80/10/10 split."""
    if sources.sentiment_file is None:
        news_train, news_test = load_financial_news(sources.data_dir)
        dev_fraction = profile.sentiment_dev_fraction
        train_idx, dev_idx, _ = random_split(len(news_train), (1 - dev_fraction, dev_fraction, 0.0), seed)
        s_train, s_dev, s_test = news_train.subset(train_idx), news_train.subset(dev_idx), news_test
    else:
        own = load_sentiment_file(sources.sentiment_file)
        train_idx, dev_idx, test_idx = random_split(len(own), (0.8, 0.1, 0.1), seed)
        s_train, s_dev, s_test = own.subset(train_idx), own.subset(dev_idx), own.subset(test_idx)
    reviews: RatedTexts = (
        load_review_file(sources.reviews_file) if sources.reviews_file else load_clothing_reviews(sources.data_dir)
    )
    r_train, r_dev, r_test = (reviews.subset(idx) for idx in random_split(len(reviews), profile.review_split, seed + 1))
    return TextSplits(
        sentiment_train=_head(s_train, profile.sentiment_train_limit, seed),
        sentiment_dev=_head(s_dev, profile.eval_limit, seed),
        sentiment_test=_head(s_test, profile.eval_limit, seed),
        review_train=_head(r_train, profile.review_train_limit, seed),
        review_dev=_head(r_dev, profile.eval_limit, seed),
        review_test=_head(r_test, profile.eval_limit, seed),
    )


def load_interaction_splits(sources: DataSources, profile: Profile, seed: int) -> InteractionSplits:
    """Temporal per-user split of the interactions; quick profiles keep a seeded subset of users and only
    the catalog items those users touched (plus a few untouched ones, so cold items stay in play)."""
    if sources.interactions_file is None:
        interactions, items = load_movielens(sources.data_dir)
    else:
        if sources.items_file is None:
            raise ValueError("an interactions file needs an items file (item_id,text) beside it")
        interactions, items = load_interactions_file(sources.interactions_file), load_items_file(sources.items_file)
    known = interactions["item_id"].isin(items["item_id"])
    if not known.all():
        logger.warning(
            "dropped interactions", extra={"rows": int((~known).sum()), "reason": "item not in the items file"}
        )
        interactions = interactions[known]
    if profile.movielens_users is not None:
        users = np.sort(interactions["user_id"].unique())
        keep = np.random.default_rng(seed).choice(users, min(profile.movielens_users, len(users)), replace=False)
        interactions = interactions[interactions["user_id"].isin(keep)]
        touched = items["item_id"].isin(interactions["item_id"])
        cold = items[~touched].sample(n=min(200, int((~touched).sum())), random_state=seed)
        items = pd.concat([items[touched], cold]).sort_index()
    train, dev, test = temporal_split(interactions)
    return InteractionSplits(train, dev, test, items.reset_index(drop=True))
