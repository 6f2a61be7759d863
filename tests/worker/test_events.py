"""Event contracts: what is accepted, normalised and rejected at the edge."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from streamscore.events import MAX_TEXT_CHARS, ClickEvent, ItemEvent, NewsEvent, parse_event_time


def test_news_accepts_iso_and_epoch_ms_and_ignores_extra_fields() -> None:
    a = NewsEvent.model_validate({"id": "n1", "ts": "2024-05-01T12:00:00Z", "headline": " $TSLA falls ", "tickers": ["TSLA"], "x": 1})
    b = NewsEvent.model_validate({"id": "n1", "ts": 1714564800000, "headline": "$TSLA falls"})
    assert a.ts == b.ts == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert a.headline == "$TSLA falls" and a.text == a.headline and not hasattr(a, "x")


@pytest.mark.parametrize(
    "payload",
    [
        {"ts": 1, "headline": "x"},
        {"id": "", "ts": 1, "headline": "x"},
        {"id": "n", "ts": "yesterday", "headline": "x"},
        {"id": "n", "ts": 1, "headline": ""},
        {"id": "n", "ts": 1, "headline": "x" * (MAX_TEXT_CHARS + 1)},
        {"id": "n", "ts": 1, "headline": "x", "tickers": "TSLA"},
        {"id": "n", "ts": 1, "headline": "x", "tickers": ["T"] * 51},
        {"id": "n\x00", "ts": 1, "headline": "x"},
        {"id": "n", "ts": float("nan"), "headline": "x"},
        {"id": "n", "ts": True, "headline": "x"},
        {"id": 5, "ts": 1, "headline": "x"},
    ],
)
def test_news_rejections(payload: dict) -> None:
    with pytest.raises(ValidationError):
        NewsEvent.model_validate(payload)


def test_click_rating_bounds_and_action() -> None:
    ok = ClickEvent.model_validate({"event_id": "e", "user_id": "u", "item_id": "1", "ts": 0, "rating": 4.5})
    assert ok.action == "click" and ok.rating == 4.5
    for bad in ({"rating": 7}, {"rating": float("inf")}, {"rating": True}, {"action": "hack"}):
        with pytest.raises(ValidationError):
            ClickEvent.model_validate({"event_id": "e", "user_id": "u", "item_id": "1", "ts": 0, **bad})


def test_item_requires_title() -> None:
    assert ItemEvent.model_validate({"item_id": "1", "title": "Heat (1995)", "ts": "2024-01-01"}).tags == []
    with pytest.raises(ValidationError):
        ItemEvent.model_validate({"item_id": "1", "ts": "2024-01-01"})


def test_naive_iso_is_utc_and_out_of_range_ms_is_rejected() -> None:
    assert parse_event_time("2024-01-01T00:00:00") == datetime(2024, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_event_time(10**20)
