"""The generic input formats: good files parse, malformed ones fail with file, row, column and expectation."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from trainer.data.formats import (
    load_interactions_file,
    load_items_file,
    load_review_file,
    load_sentiment_file,
    parse_timestamp,
)
from trainer.errors import DataFormatError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sentiment_csv_accepts_names_and_indices(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.csv", 'text,label,extra\n"Stocks fall, again",negative,x\nFlat day,1,y\nRally!,POSITIVE,z\n'
    )
    data = load_sentiment_file(path)
    assert data.texts == ["Stocks fall, again", "Flat day", "Rally!"]
    assert data.labels.tolist() == [0, 1, 2]


def test_sentiment_jsonl_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(
            json.dumps({"text": "up", "label": "positive"}) + "\n\n" + json.dumps({"text": "down", "label": 0}) + "\n"
        )
    data = load_sentiment_file(path)
    assert data.labels.tolist() == [2, 0]


def test_bad_label_names_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "text,label\nok,neutral\nbad,bullish\n")
    with pytest.raises(DataFormatError) as info:
        load_sentiment_file(path)
    err = info.value
    assert (err.row, err.column) == (2, "label")
    assert (
        "s.csv, row 2, column 'label'" in str(err)
        and "negative, neutral, positive" in str(err)
        and "'bullish'" in str(err)
    )


def test_missing_column_is_reported_on_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "text,stars\nnice,5\n")
    with pytest.raises(DataFormatError) as info:
        load_review_file(path)
    assert info.value.row == 0 and info.value.column == "rating"


def test_rating_must_be_a_number_in_range(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"row 1, column 'rating': expected a number, got 'five'"):
        load_review_file(write(tmp_path / "a.csv", "text,rating\nnice,five\n"))
    with pytest.raises(DataFormatError, match=r"row 2, column 'rating': expected a number in \[1, 5\]"):
        load_review_file(write(tmp_path / "b.csv", "text,rating\nnice,5\nawful,0\n"))
    with pytest.raises(DataFormatError, match="finite"):
        load_review_file(write(tmp_path / "c.csv", "text,rating\nnice,nan\n"))


def test_ragged_csv_row_and_invalid_json_line(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"row 2: expected 2 fields like the header, got '3 fields'"):
        load_review_file(write(tmp_path / "a.csv", "text,rating\nok,4\nnot,ok,3\n"))
    with pytest.raises(DataFormatError, match=r"row 2: expected one JSON object per line"):
        load_review_file(write(tmp_path / "b.jsonl", '{"text": "a", "rating": 3}\n{"text": \n'))
    with pytest.raises(DataFormatError, match=r"row 1, column 'rating': expected the field to be present"):
        load_review_file(write(tmp_path / "c.jsonl", '{"text": "a"}\n'))


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"\.csv, \.tsv or \.jsonl"):
        load_review_file(write(tmp_path / "data.xlsx", "x"))
    with pytest.raises(DataFormatError, match="an existing file"):
        load_review_file(tmp_path / "nope.csv")


def test_empty_texts_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "r.csv", "text,rating\nfine,4\n   ,2\n,3\ngreat,5\n")
    with caplog.at_level(logging.WARNING):
        data = load_review_file(path)
    assert data.texts == ["fine", "great"]
    assert np.allclose(data.ratings, [4, 5])
    record = next(r for r in caplog.records if r.getMessage() == "skipped rows")
    assert record.rows == 2 and record.reason == "empty text"


def test_interactions_parse_ids_ratings_and_both_timestamp_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path / "i.csv",
        "user_id,item_id,rating,timestamp\nu1,m1,4.5,964982703\nu1,m2,3,2000-07-30T18:45:03Z\nu2,m1,1,964982703000\n",
    )
    frame = load_interactions_file(path)
    assert frame["user_id"].tolist() == ["u1", "u1", "u2"]
    assert frame["rating"].tolist() == [4.5, 3.0, 1.0]
    assert frame["timestamp"].tolist() == [964982703.0, 964982703.0, 964982703.0]


def test_interactions_reject_bad_timestamp_and_empty_id(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"row 1, column 'timestamp': expected epoch seconds or an ISO-8601"):
        load_interactions_file(write(tmp_path / "a.csv", "user_id,item_id,rating,timestamp\nu,m,4,yesterday\n"))
    with pytest.raises(DataFormatError, match=r"row 1, column 'user_id'"):
        load_interactions_file(write(tmp_path / "b.csv", "user_id,item_id,rating,timestamp\n,m,4,1\n"))


def test_items_reject_duplicate_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "item_id,text\nm1,Toy Story\nm2,Heat\nm1,Toy Story 2\n")
    with pytest.raises(DataFormatError, match=r"row 3, column 'item_id': expected a unique id \(first seen on row 1\)"):
        load_items_file(path)
    assert load_items_file(write(tmp_path / "ok.csv", "item_id,text\nm1,Toy Story\n"))["text"].tolist() == ["Toy Story"]


def test_invalid_utf8_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\n\xff\xfe,0\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        load_sentiment_file(path)


def test_parse_timestamp_millisecond_heuristic() -> None:
    assert parse_timestamp(Path("x"), 1, "ts", "1700000000") == 1700000000.0
    assert parse_timestamp(Path("x"), 1, "ts", 1700000000123) == pytest.approx(1700000000.123)
