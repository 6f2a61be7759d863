"""Event contracts of every topic, validated at the edge with pydantic.

Policies (documented in docs/events.md with the worker):

* timestamps: ISO-8601 (a missing zone means UTC) or epoch milliseconds; stored as aware UTC datetimes;
* ids: 1–200 characters, no control characters;
* text: at most ``MAX_TEXT_CHARS`` characters per field — longer input is rejected (dead-lettered with
  ``text_too_long``), never silently cut; text that fits but exceeds the model's token window is truncated
  by the scorer, which flags it;
* unknown extra fields are ignored (producers may add fields without breaking consumers).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

MAX_TEXT_CHARS = 20_000
MAX_LIST_ITEMS = 50


def parse_event_time(value: object) -> datetime:
    """Epoch milliseconds (int/float/numeric string) or ISO-8601 → aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("a timestamp, not a boolean")
    if isinstance(value, (int, float)) or (
        isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()
    ):
        millis = float(value)
        if not math.isfinite(millis) or millis < 0:
            raise ValueError("epoch milliseconds must be a finite, non-negative number")
        try:
            return datetime.fromtimestamp(millis / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError("epoch milliseconds out of range") from exc
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("an ISO-8601 timestamp or epoch milliseconds") from exc
    else:
        raise ValueError("an ISO-8601 timestamp or epoch milliseconds")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


EventTime = Annotated[datetime, BeforeValidator(parse_event_time)]
Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


class NewsEvent(Event):
    """``news`` (in): a financial news item to score for sentiment."""

    id: Id
    ts: EventTime
    headline: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    body: Text | None = None
    tickers: Annotated[list[Tag], Field(max_length=MAX_LIST_ITEMS)] = []
    source: Annotated[str, Field(max_length=200)] | None = None

    @property
    def text(self) -> str:
        """What the model reads: the headline (bodies are long; headlines carry the sentiment)."""
        return self.headline


def item_text(title: str, genres: list[str], tags: list[str], description: str | None = None) -> str:
    """The text the encoder embeds for an item: the same function for training and for catalog events,
    so a streamed item lands where the model learned it."""
    parts = [title.strip()]
    genres = [g for g in genres if g and g != "(no genres listed)"]
    if genres:
        parts.append("Genres: " + ", ".join(genres))
    if tags:
        parts.append("Tags: " + ", ".join(tags))
    if description and description.strip():
        parts.append(description.strip())
    return ". ".join(parts)


class ItemEvent(Event):
    """``items`` (in, compacted): a catalog item to embed; the latest event per ``item_id`` wins."""

    item_id: Id
    title: Annotated[str, Field(min_length=1, max_length=1000)]
    text: Text | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_LIST_ITEMS)] = []
    """Free-form tags (user tags in the MovieLens replay)."""
    genres: Annotated[list[Tag], Field(max_length=MAX_LIST_ITEMS)] = []
    ts: EventTime

    @property
    def embedding_text(self) -> str:
        return item_text(self.title, self.genres, self.tags, self.text)


class ClickEvent(Event):
    """``clicks`` (in): a user's interaction with an item; ``rating`` is optional explicit feedback."""

    event_id: Id
    user_id: Id
    item_id: Id
    ts: EventTime
    rating: Annotated[float, Field(ge=0.0, le=5.0, allow_inf_nan=False)] | None = None
    action: Literal["click", "view", "purchase", "rate"] = "click"

    @field_validator("rating", mode="before")
    @classmethod
    def _no_bool_rating(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a number, not a boolean")
        return value


SENTIMENT_LABELS = ("negative", "neutral", "positive")
FEEDBACK_FIELDS = {"sentiment_correction": ("news_id", "label"), "alert_verdict": ("alert_id", "verdict")}


class FeedbackEvent(Event):
    """``feedback`` (in): a person's judgement of what the workers produced. Two kinds:

    * ``sentiment_correction``: ``news_id`` should have been ``label`` (the retrainer learns from it);
    * ``alert_verdict``: alert ``alert_id`` was ``useful`` or a ``false_alarm`` (alert precision as people
      judge it).

    ``feedback_id`` is the producer's idempotency key. When one person says two things about one article or
    alert, the latest ``ts`` wins (retraining and the views read it that way)."""

    feedback_id: Id
    kind: Literal["sentiment_correction", "alert_verdict"]
    news_id: Id | None = None
    label: Literal["negative", "neutral", "positive"] | None = None
    alert_id: Id | None = None
    verdict: Literal["useful", "false_alarm"] | None = None
    by: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Who judged (an analyst's id); optional."""
    ts: EventTime

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> FeedbackEvent:
        missing = [name for name in FEEDBACK_FIELDS[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} needs {' and '.join(missing)}")
        foreign = [
            name
            for kind, names in FEEDBACK_FIELDS.items()
            if kind != self.kind
            for name in names
            if getattr(self, name) is not None
        ]
        if foreign:
            raise ValueError(f"a {self.kind} carries no {' or '.join(foreign)}")
        return self


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    predicted_rating: float
    reason_kind: Literal["liked", "next_item", "similar_text", "popular_now"]
    """What contributed most to the score: a liked item's neighbour weight, the next-item term after a
    recent item, text similarity (an item nobody has interacted with yet), or recent popularity."""
    because_item_id: str | None = None
    """The history item behind the reason (none for ``popular_now``)."""
    reason: str
    """The reason in words, e.g. "because you liked Heat (1995)"."""


class RecommendationEvent(BaseModel):
    """``recommendations`` (out): the user's new top-K after a click."""

    user_id: str
    items: list[RecommendedItem]
    cold_start: bool
    model_version: str
    ts: datetime
    trigger_event_id: str


class AlertEvent(BaseModel):
    """``alerts`` (out): a negative-sentiment surge for one entity changed state."""

    alert_id: str
    entity: str
    status: Literal["raised", "updated", "resolved"]
    seq: int
    window_start: datetime
    window_end: datetime
    negative_count: int
    total_count: int
    negative_share: float
    baseline_share: float
    score: float
    evidence: list[str]
    model_version: str
    ts: datetime


class DeadLetterEvent(BaseModel):
    """``dead-letter`` (out): an input record that could not be processed, with why and where from."""

    source_topic: str
    partition: int
    offset: int
    error_code: str
    reason: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int = Field(description="Size of the original record value; `payload` keeps at most 64 KiB of it.")
    ts: datetime


INPUT_EVENTS: dict[str, type[Event]] = {
    "news": NewsEvent,
    "items": ItemEvent,
    "clicks": ClickEvent,
    "feedback": FeedbackEvent,
}
OUTPUT_EVENTS: dict[str, type[BaseModel]] = {
    "recommendations": RecommendationEvent,
    "alerts": AlertEvent,
    "dead-letter": DeadLetterEvent,
}


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every topic's events, keyed by ``<topic>.<in|out>``, generated from the models above."""
    schemas = {f"{topic}.in": model.model_json_schema() for topic, model in INPUT_EVENTS.items()}
    schemas.update({f"{topic}.out": model.model_json_schema() for topic, model in OUTPUT_EVENTS.items()})
    return schemas
