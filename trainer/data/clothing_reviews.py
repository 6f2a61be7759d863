"""Women's E-Commerce Clothing Reviews (CC0): review title + text with a 1–5 star rating."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamscore.errors import ConfigurationError
from trainer.data.formats import RatedTexts, iter_records, parse_number

logger = logging.getLogger(__name__)

FILE = Path("womens_clothing_reviews") / "womens_clothing_reviews.csv.gz"


def review_text(title: str, body: str) -> str:
    """The model's input for a review: the title, when there is one, then the body."""
    title, body = title.strip(), body.strip()
    if title and body:
        return f"{title}. {body}"
    return title or body


def load_clothing_reviews(data_dir: Path) -> RatedTexts:
    """All reviews that have a title or a text; the rest (no text at all) are skipped with a logged count."""
    path = Path(data_dir) / FILE
    if not path.is_file():
        raise ConfigurationError(f"dataset file not found: {path} (set STREAMSCORE_DATA_DIR)")
    texts: list[str] = []
    ratings: list[float] = []
    skipped = 0
    for row, record in iter_records(path, ("Title", "Review Text", "Rating")):
        text = review_text(record["Title"], record["Review Text"])
        if not text:
            skipped += 1
            continue
        texts.append(text)
        ratings.append(parse_number(path, row, "Rating", record["Rating"], 1, 5))
    if skipped:
        logger.info("skipped rows", extra={"file": str(path), "rows": skipped, "reason": "no title and no text"})
    return RatedTexts(texts, np.asarray(ratings, dtype=np.float32))
