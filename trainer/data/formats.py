"""The documented generic input formats (CSV or JSONL, optionally gzipped), parsed strictly.

Formats (column names are exact; extra columns are ignored):

* sentiment ``text,label`` — label is ``negative|neutral|positive`` (any case) or ``0|1|2`` in that order;
* reviews ``text,rating`` — rating is a number within the configured range (default 1–5);
* interactions ``user_id,item_id,rating,timestamp`` — timestamp in epoch seconds or ISO-8601;
* items ``item_id,text``.

A malformed row raises :class:`DataFormatError` naming file, row, column and what was expected: a typo in
a user's file must stop training, not shift the labels silently. Rows whose text is empty are the one
documented exception; they are skipped and their count is logged at WARNING.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from trainer.errors import DataFormatError

logger = logging.getLogger(__name__)

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Canonical class order of the sentiment head."""


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with integer class labels (indices into :data:`SENTIMENT_LABELS`)."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> LabelledTexts:
        idx = np.asarray(index, dtype=np.int64)
        return LabelledTexts([self.texts[i] for i in idx], self.labels[idx])


@dataclass(frozen=True)
class RatedTexts:
    """Texts with a numeric rating each."""

    texts: list[str]
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> RatedTexts:
        idx = np.asarray(index, dtype=np.int64)
        return RatedTexts([self.texts[i] for i in idx], self.ratings[idx])


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson"):
        return "jsonl"
    if last in (".csv", ".tsv"):
        return last[1:]
    raise DataFormatError(path, None, None, "a .csv, .tsv or .jsonl file (optionally .gz)", path.name)


def iter_records(path: Path | str, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, record)`` for every data row, checking that ``required`` columns exist.

    Row numbers are 1-based data rows (the CSV header is not counted), the same in CSV and JSONL, so an
    error message can be matched to a line with ``sed -n``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, None, "an existing file")
    kind = _kind(path)
    try:
        with _open_text(path) as handle:
            if kind == "jsonl":
                yield from _iter_jsonl(path, handle, required)
            else:
                yield from _iter_csv(path, handle, required, delimiter="\t" if kind == "tsv" else ",")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, None, "UTF-8 text", f"undecodable byte at offset {exc.start}") from exc


def _iter_csv(
    path: Path, handle: IO[str], required: Sequence[str], delimiter: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(handle, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise DataFormatError(path, 0, None, f"a header row with columns {', '.join(required)}", "an empty file")
    header = [h.strip() for h in header]
    for column in required:
        if column not in header:
            raise DataFormatError(path, 0, column, f"a header with column {column!r}", header)
    width = len(header)
    for row_number, cells in enumerate(reader, start=1):
        if not cells:
            continue
        if len(cells) != width:
            raise DataFormatError(path, row_number, None, f"{width} fields like the header", f"{len(cells)} fields")
        yield row_number, dict(zip(header, cells))


def _iter_jsonl(path: Path, handle: IO[str], required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for row_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                path, row_number, None, "one JSON object per line", f"invalid JSON: {exc.msg}"
            ) from exc
        if not isinstance(record, dict):
            raise DataFormatError(path, row_number, None, "a JSON object", type(record).__name__)
        for column in required:
            if column not in record:
                raise DataFormatError(path, row_number, column, "the field to be present", sorted(record))
        yield row_number, record


def parse_text(path: Path, row: int, column: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(path, row, column, "a string", value)
    return value.strip()


def parse_number(
    path: Path, row: int, column: str, value: Any, lo: float | None = None, hi: float | None = None
) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(path, row, column, "a number", value) from None
    if not math.isfinite(number):
        raise DataFormatError(path, row, column, "a finite number", value)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise DataFormatError(path, row, column, f"a number in [{lo:g}, {hi:g}]", value)
    return number


def parse_sentiment_label(path: Path, row: int, value: Any) -> int:
    """Map ``negative|neutral|positive`` or ``0|1|2`` to a class index."""
    text = str(value).strip().lower()
    if text in SENTIMENT_LABELS:
        return SENTIMENT_LABELS.index(text)
    if text in {"0", "1", "2"}:
        return int(text)
    raise DataFormatError(path, row, "label", "one of negative, neutral, positive (or 0, 1, 2)", value)


def parse_timestamp(path: Path, row: int, column: str, value: Any) -> float:
    """Epoch seconds from a number (seconds; values above 1e11 are taken as milliseconds) or ISO-8601."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().replace(".", "", 1).isdigit()):
        seconds = parse_number(path, row, column, value, lo=0)
        return seconds / 1000.0 if seconds > 1e11 else seconds
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise DataFormatError(path, row, column, "epoch seconds or an ISO-8601 timestamp", value)


def _log_skipped(path: Path, skipped: int, why: str) -> None:
    if skipped:
        logger.warning("skipped rows", extra={"file": str(path), "rows": skipped, "reason": why})


def load_sentiment_file(path: Path | str) -> LabelledTexts:
    """Read a ``text,label`` file."""
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    skipped = 0
    for row, record in iter_records(path, ("text", "label")):
        text = parse_text(path, row, "text", record["text"])
        if not text:
            skipped += 1
            continue
        texts.append(text)
        labels.append(parse_sentiment_label(path, row, record["label"]))
    _log_skipped(path, skipped, "empty text")
    return LabelledTexts(texts, np.asarray(labels, dtype=np.int64))


def load_review_file(path: Path | str, rating_range: tuple[float, float] = (1.0, 5.0)) -> RatedTexts:
    """Read a ``text,rating`` file; ratings outside ``rating_range`` are errors."""
    path = Path(path)
    lo, hi = rating_range
    texts: list[str] = []
    ratings: list[float] = []
    skipped = 0
    for row, record in iter_records(path, ("text", "rating")):
        text = parse_text(path, row, "text", record["text"])
        if not text:
            skipped += 1
            continue
        texts.append(text)
        ratings.append(parse_number(path, row, "rating", record["rating"], lo, hi))
    _log_skipped(path, skipped, "empty text")
    return RatedTexts(texts, np.asarray(ratings, dtype=np.float32))


def load_interactions_file(path: Path | str) -> pd.DataFrame:
    """Read a ``user_id,item_id,rating,timestamp`` file into a frame with those columns.

    Ids are kept as strings so that numeric and textual ids both work and never collide after parsing.
    """
    path = Path(path)
    rows: list[tuple[str, str, float, float]] = []
    for row, record in iter_records(path, ("user_id", "item_id", "rating", "timestamp")):
        user = str(record["user_id"]).strip()
        item = str(record["item_id"]).strip()
        if not user or record["user_id"] is None:
            raise DataFormatError(path, row, "user_id", "a non-empty id", record["user_id"])
        if not item or record["item_id"] is None:
            raise DataFormatError(path, row, "item_id", "a non-empty id", record["item_id"])
        rating = parse_number(path, row, "rating", record["rating"])
        timestamp = parse_timestamp(path, row, "timestamp", record["timestamp"])
        rows.append((user, item, rating, timestamp))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    frame["rating"] = frame["rating"].astype(np.float32)
    return frame


def load_items_file(path: Path | str) -> pd.DataFrame:
    """Read an ``item_id,text`` file; a repeated item id is an error (which text would win?)."""
    path = Path(path)
    seen: dict[str, int] = {}
    rows: list[tuple[str, str]] = []
    for row, record in iter_records(path, ("item_id", "text")):
        item = str(record["item_id"]).strip()
        if not item or record["item_id"] is None:
            raise DataFormatError(path, row, "item_id", "a non-empty id", record["item_id"])
        if item in seen:
            raise DataFormatError(path, row, "item_id", f"a unique id (first seen on row {seen[item]})", item)
        seen[item] = row
        rows.append((item, parse_text(path, row, "text", record["text"])))
    return pd.DataFrame(rows, columns=["item_id", "text"])
