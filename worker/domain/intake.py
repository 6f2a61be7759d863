"""The edge of the worker: raw Kafka record values in, validated events or dead letters out.

Pure (no Kafka, no database): the agents hand over ``(topic, partition, offset, value)`` and get back either
the typed event or a :class:`~streamscore.events.DeadLetterEvent` with a stable ``error_code``:

=================  ===============================================================================
``invalid_utf8``   the value is not UTF-8 (the payload is kept as base64)
``invalid_json``   not JSON, or JSON with NaN/Infinity (which JSON does not allow)
``not_an_object``  valid JSON that is not an object
``text_too_long``  a text field over ``MAX_TEXT_CHARS``: rejected, never silently cut
``schema``         missing fields, wrong types, bad ids or timestamps (pydantic's first errors), NUL characters
``future_ts``      stamped more than ``max_future_skew_s`` ahead of the worker's clock
=================  ===============================================================================

Later stages add ``duplicate_id`` (an id already stored from a different Kafka record). A dead letter keeps
at most 64 KiB of the payload; the original stays addressable by topic, partition and offset.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from pydantic import ValidationError

from streamscore.events import DeadLetterEvent, Event

E = TypeVar("E", bound=Event)
PAYLOAD_KEEP_BYTES = 64 * 1024


@dataclass(frozen=True)
class Record:
    """One Kafka record as the worker received it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: float | None = None
    """Broker/producer timestamp: when the event entered Kafka (lag is measured from it)."""

    @property
    def ingested_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC) if self.timestamp_ms else None


@dataclass(frozen=True)
class Accepted(Generic[E]):
    record: Record
    event: E


def dead_letter(record: Record, code: str, reason: str, now: datetime | None = None) -> DeadLetterEvent:
    """A dead letter for ``record``; the payload as UTF-8 text when it is (and has no NUL), else base64."""
    raw = record.value or b""
    kept = raw[:PAYLOAD_KEEP_BYTES]
    try:
        readable = "\x00" not in raw.decode("utf-8")
    except UnicodeDecodeError:
        readable = False
    if readable:  # "ignore" only drops a character cut in half at the 64 KiB mark
        text, encoding = kept.decode("utf-8", errors="ignore"), "utf-8"
    else:  # PostgreSQL text cannot hold NUL, and invalid UTF-8 must survive byte for byte
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return DeadLetterEvent(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error_code=code,
        reason=reason[:2000],
        payload=text,
        payload_encoding=encoding,
        payload_bytes=len(raw),
        ts=now or datetime.now(UTC),
    )


def _describe(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=False)
    code = (
        "text_too_long"
        if any(e["type"] == "string_too_long" and e["loc"][-1] in TEXT_FIELDS for e in errors)
        else "schema"
    )
    parts = [f"{'.'.join(str(x) for x in e['loc']) or '<event>'}: {e['msg']}" for e in errors[:5]]
    if len(errors) > 5:
        parts.append(f"... {len(errors) - 5} more")
    return code, "; ".join(parts)


TEXT_FIELDS = frozenset({"headline", "body", "text", "title"})


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
"""One decoder for every record (``json.loads`` with an argument builds a new one per call)."""
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: the only way a decoded record can hold one (JSON escapes spell ``u`` in
lower case, and UTF-8 input cannot encode a surrogate), so only records with one pay for the full check."""


def decode(
    record: Record, model: type[E], max_future_skew_s: float, now: datetime | None = None
) -> Accepted[E] | DeadLetterEvent:
    """Validate one record against ``model``; never raises for bad input."""
    now = now or datetime.now(UTC)
    if record.value is None:
        return dead_letter(record, "schema", "empty record (a tombstone); the input topics take no deletions", now)
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dead_letter(record, "invalid_utf8", f"not UTF-8 at byte {exc.start}", now)
    if "\\u0000" in text:  # valid JSON, but PostgreSQL text cannot hold NUL: refuse it here, with a reason
        return dead_letter(record, "schema", "NUL characters (\\u0000) are not allowed in any field", now)
    try:
        raw = JSON_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        return dead_letter(record, "invalid_json", f"not JSON: {exc}"[:500], now)
    if not isinstance(raw, dict):
        return dead_letter(record, "not_an_object", f"a JSON object is required, got {type(raw).__name__}", now)
    if SURROGATE_ESCAPE.search(text):  # such escapes decode to lone surrogates, which no UTF-8 store can hold
        try:  # a pair of them is one character and fine
            json.dumps(raw, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return dead_letter(record, "schema", "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)", now)
    try:
        event = model.model_validate(raw)
    except ValidationError as exc:
        code, reason = _describe(exc)
        return dead_letter(record, code, reason, now)
    ts = getattr(event, "ts", None)
    if ts is not None and ts > now + timedelta(seconds=max_future_skew_s):
        return dead_letter(
            record,
            "future_ts",
            f"ts {ts.isoformat()} is more than {max_future_skew_s:.0f} s ahead of the worker clock",
            now,
        )
    return Accepted(record, event)
