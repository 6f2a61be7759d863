"""``streamscore score``: score a CSV or JSONL file (or stdin) with a bundle, row by row, never aborting.

Each input row gives exactly one output row, in input order: the scores with the model version, or an
``error`` with the reason (invalid JSON, a missing or non-string text, a ragged CSV row). Rows are scored in
micro-batches, so a file of any size streams in constant memory.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from streamscore.scorer import Scorer

TASKS = ("sentiment", "review-rating", "embed")


@dataclass
class InputRow:
    row: int
    record: dict[str, Any] | None
    error: str | None = None


def file_format(path: str) -> str:
    if path == "-":
        return "jsonl"
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"{path}: use a .csv or .jsonl file, or - for JSON lines on stdin/stdout")


def read_rows(handle: IO[str], fmt: str) -> Iterator[InputRow]:
    """Yield every data row (1-based), with a parse error instead of a record where the row is malformed."""
    if fmt == "csv":
        reader = csv.reader(handle)
        header = next(reader, None) or []
        for number, cells in enumerate(reader, start=1):
            if len(cells) != len(header):
                yield InputRow(number, None, f"expected {len(header)} fields like the header, got {len(cells)}")
            else:
                yield InputRow(number, dict(zip(header, cells)))
        return
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputRow(number, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            yield InputRow(number, None, f"expected a JSON object, got {type(record).__name__}")
        else:
            yield InputRow(number, record)


def _text_of(row: InputRow, text_column: str) -> tuple[str | None, str | None]:
    if row.error is not None:
        return None, row.error
    value = row.record.get(text_column) if row.record else None
    if value is None:
        return None, f"missing field {text_column!r}"
    if not isinstance(value, str):
        return None, f"field {text_column!r} must be a string, got {type(value).__name__}"
    if not value.strip():
        return None, f"field {text_column!r} is empty"
    return value, None


def score_rows(scorer: Scorer, task: str, rows: list[InputRow], text_column: str, id_column: str) -> list[dict]:
    """Output rows for a micro-batch of input rows, in order."""
    texts: list[str] = []
    slots: list[int] = []
    out: list[dict] = []
    for row in rows:
        base = {"row": row.row, "id": (row.record or {}).get(id_column), "model_version": scorer.version}
        text, error = _text_of(row, text_column)
        if error is not None:
            out.append({**base, "error": error})
        else:
            slots.append(len(out))
            texts.append(text)
            out.append(base)
    if texts:
        if task == "sentiment":
            results = scorer.sentiment(texts)
        elif task == "review-rating":
            results = scorer.review_rating(texts)
        else:
            results = [{"embedding": [round(float(x), 6) for x in v]} for v in scorer.embed(texts)]
        for slot, result in zip(slots, results):
            out[slot].update(result)
    return out


def score_file(
    scorer: Scorer,
    task: str,
    source: str,
    target: str,
    text_column: str = "text",
    id_column: str = "id",
    batch_size: int = 256,
) -> dict:
    """Score ``source`` into ``target`` (paths or ``-``); returns counts of scored and error rows."""
    in_fmt, out_fmt = file_format(source), file_format(target)
    counts = {"rows": 0, "scored": 0, "errors": 0}
    in_handle = sys.stdin if source == "-" else open(source, encoding="utf-8", errors="replace", newline="")
    out_handle = sys.stdout if target == "-" else open(target, "w", encoding="utf-8", newline="")
    writer: csv.DictWriter | None = None
    try:
        batch: list[InputRow] = []

        def flush() -> None:
            nonlocal writer
            for record in score_rows(scorer, task, batch, text_column, id_column):
                counts["rows"] += 1
                counts["errors" if "error" in record else "scored"] += 1
                if out_fmt == "jsonl":
                    out_handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    flat = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in record.items()}
                    if writer is None:
                        writer = csv.DictWriter(out_handle, fieldnames=_csv_fields(task), extrasaction="ignore")
                        writer.writeheader()
                    writer.writerow(flat)
            batch.clear()

        for row in read_rows(in_handle, in_fmt):
            batch.append(row)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        if in_handle is not sys.stdin:
            in_handle.close()
        if out_handle is not sys.stdout:
            out_handle.close()
    return counts


def _csv_fields(task: str) -> list[str]:
    common = ["row", "id", "model_version"]
    specific = {
        "sentiment": ["label", "p_negative", "p_neutral", "p_positive", "truncated"],
        "review-rating": ["rating", "stars", "truncated"],
        "embed": ["embedding"],
    }[task]
    return common + specific + ["error"]
