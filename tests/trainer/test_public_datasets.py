"""The public datasets load in place with the documented counts and label mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamscore.errors import ConfigurationError
from streamscore.events import item_text
from trainer.data.clothing_reviews import load_clothing_reviews, review_text
from trainer.data.financial_news import load_financial_news
from trainer.data.movielens import load_movielens


def test_financial_news_counts_and_label_mapping(data_dir: Path) -> None:
    train, test = load_financial_news(data_dir)
    assert (len(train), len(test)) == (9543, 2388)
    # Bearish (source 0) -> negative (0), Bullish (1) -> positive (2), Neutral (2) -> neutral (1); neutral dominates
    counts = np.bincount(train.labels, minlength=3)
    assert counts.argmax() == 1 and counts[0] < counts[2] < counts[1]
    assert train.texts[0].startswith("$BYND") and train.labels[0] == 0


def test_clothing_reviews_skip_only_rows_without_any_text(data_dir: Path) -> None:
    reviews = load_clothing_reviews(data_dir)
    assert len(reviews) == 23486 - 844
    assert set(np.unique(reviews.ratings)) == {1, 2, 3, 4, 5}
    assert review_text("Love it", "Fits well") == "Love it. Fits well" and review_text("", "Fits") == "Fits"


def test_movielens_items_cover_the_catalog_with_text(data_dir: Path) -> None:
    interactions, items = load_movielens(data_dir)
    assert len(interactions) == 100836 and interactions["user_id"].nunique() == 610
    assert len(items) == 9742 and items["item_id"].is_unique
    toy_story = items.loc[items["item_id"] == "1", "text"].item()
    assert toy_story.startswith("Toy Story (1995). Genres: Adventure, Animation")
    assert "Tags: " in toy_story
    assert item_text("X", ["(no genres listed)"], []) == "X"


def test_missing_dataset_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="STREAMSCORE_DATA_DIR"):
        load_financial_news(tmp_path)
