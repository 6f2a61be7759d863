"""Twitter Financial News Sentiment (MIT): finance tweets labelled Bearish / Bullish / Neutral.

``sent_valid.csv`` is the held-out test set; the dev set is carved out of ``sent_train.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamscore.errors import ConfigurationError
from trainer.data.formats import SENTIMENT_LABELS, LabelledTexts, iter_records
from trainer.errors import DataFormatError

FOLDER = "twitter_financial_news_sentiment"
_SOURCE_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}  # Bearish, Bullish, Neutral


def _load(path: Path) -> LabelledTexts:
    texts: list[str] = []
    labels: list[int] = []
    for row, record in iter_records(path, ("text", "label")):
        source = str(record["label"]).strip()
        if source not in _SOURCE_LABELS:
            raise DataFormatError(path, row, "label", "0 (Bearish), 1 (Bullish) or 2 (Neutral)", source)
        texts.append(record["text"].strip())
        labels.append(SENTIMENT_LABELS.index(_SOURCE_LABELS[source]))
    return LabelledTexts(texts, np.asarray(labels, dtype=np.int64))


def load_financial_news(data_dir: Path) -> tuple[LabelledTexts, LabelledTexts]:
    """Return ``(train, test)``: the published train and validation files, labels in canonical order."""
    folder = Path(data_dir) / FOLDER
    if not folder.is_dir():
        raise ConfigurationError(f"dataset folder not found: {folder} (set STREAMSCORE_DATA_DIR)")
    return _load(folder / "sent_train.csv"), _load(folder / "sent_valid.csv")
