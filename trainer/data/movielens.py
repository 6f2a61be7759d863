"""MovieLens ml-latest-small (GroupLens licence: research use only): ratings plus item text.

An item's text is what the encoder reads to represent it, so that a movie nobody has rated yet still gets a
representation: ``"Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun"``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from streamscore.errors import ConfigurationError
from streamscore.events import item_text
from trainer.data.formats import iter_records, parse_number, parse_timestamp

FOLDER = "movielens_latest_small"
MAX_TAGS = 8


def load_movielens(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(interactions, items)`` in the generic formats' shapes.

    ``interactions``: user_id, item_id (strings), rating (float32), timestamp (epoch seconds).
    ``items``: item_id, text — every movie in the catalog, rated or not.
    """
    folder = Path(data_dir) / FOLDER
    if not folder.is_dir():
        raise ConfigurationError(f"dataset folder not found: {folder} (set STREAMSCORE_DATA_DIR)")
    ratings_path = folder / "ratings.csv"
    rows = []
    for row, rec in iter_records(ratings_path, ("userId", "movieId", "rating", "timestamp")):
        rows.append(
            (
                rec["userId"].strip(),
                rec["movieId"].strip(),
                parse_number(ratings_path, row, "rating", rec["rating"], 0.5, 5.0),
                parse_timestamp(ratings_path, row, "timestamp", rec["timestamp"]),
            )
        )
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    interactions["rating"] = interactions["rating"].astype("float32")

    tag_counts: dict[str, Counter[str]] = {}
    for _, rec in iter_records(folder / "tags.csv", ("movieId", "tag")):
        tag = rec["tag"].strip().lower()
        if tag:
            tag_counts.setdefault(rec["movieId"].strip(), Counter())[tag] += 1
    items = []
    for _, rec in iter_records(folder / "movies.csv", ("movieId", "title", "genres")):
        movie = rec["movieId"].strip()
        tags = [t for t, _ in tag_counts.get(movie, Counter()).most_common(MAX_TAGS)]
        items.append((movie, item_text(rec["title"], rec["genres"].split("|"), tags)))
    return interactions, pd.DataFrame(items, columns=["item_id", "text"])
