"""The worker's edge, without Kafka: every record becomes a typed event or a dead letter with a reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscore.events import ClickEvent, DeadLetterEvent, ItemEvent, NewsEvent
from worker.adapters.catalog import CandidateCache
from worker.domain.intake import PAYLOAD_KEEP_BYTES, Accepted, Record, dead_letter, decode
from worker.domain.ranking import top_k

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def rec(value: bytes | None, topic: str = "news") -> Record:
    return Record(topic, 3, 42, value, 1_700_000_000_000)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"\xff\xfe", "invalid_utf8"),
        (b"{oops", "invalid_json"),
        (b'{"id": "a", "ts": NaN, "headline": "x"}', "invalid_json"),
        (b'{"id": "a", "ts": Infinity, "headline": "x"}', "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b'{"id": "a", "ts": 1}', "schema"),
        (b'{"id": 7, "ts": 1, "headline": "x"}', "schema"),
        (b'{"id": "a", "ts": true, "headline": "x"}', "schema"),
        (b'{"id": "a", "ts": 1, "headline": "x", "tickers": "TSLA"}', "schema"),
        (json.dumps({"id": "a", "ts": 1, "headline": "x" * 20_001}).encode(), "text_too_long"),
        (json.dumps({"id": "a", "ts": 1, "headline": "x", "body": "y" * 20_001}).encode(), "text_too_long"),
        (json.dumps({"id": "a", "ts": (NOW + timedelta(days=2)).isoformat(), "headline": "x"}).encode(), "future_ts"),
        (None, "schema"),
        (b'{"id": "a", "ts": 1, "headline": "a\\u0000b"}', "schema"),
        (b'{"id": "a", "ts": 1, "headline": "\\ud800"}', "schema"),
        (b'{"id": "a", "ts": 1, "headline": "x \\uDC00 y"}', "schema"),
        (b'{"id": "a", "ts": 1, "headline": "\\ude00\\ud83d"}', "schema"),  # a pair in the wrong order
    ],
)
def test_bad_news_gets_its_error_code(value: bytes | None, code: str) -> None:
    out = decode(rec(value), NewsEvent, max_future_skew_s=86400, now=NOW)
    assert isinstance(out, DeadLetterEvent)
    assert out.error_code == code and out.reason
    assert (out.source_topic, out.partition, out.offset) == ("news", 3, 42)


def test_valid_events_pass_with_extra_fields_ignored_and_old_timestamps_kept() -> None:
    news = decode(
        rec(b'{"id": "n1", "ts": "2019-03-01T10:00:00", "headline": " $TSLA up ", "extra": 1}'), NewsEvent, 86400, NOW
    )
    assert isinstance(news, Accepted) and news.event.headline == "$TSLA up" and news.event.ts.year == 2019
    click = decode(
        rec(b'{"event_id": "c", "user_id": "u", "item_id": "i", "ts": 1, "rating": 4.5}', "clicks"),
        ClickEvent,
        86400,
        NOW,
    )
    assert isinstance(click, Accepted) and click.event.rating == 4.5
    item = decode(
        rec(b'{"item_id": "1", "title": "Heat (1995)", "genres": ["Action"], "tags": ["pacino"], "ts": 1}', "items"),
        ItemEvent,
        86400,
        NOW,
    )
    assert isinstance(item, Accepted) and item.event.embedding_text == "Heat (1995). Genres: Action. Tags: pacino"


def test_a_surrogate_pair_is_one_character_and_accepted() -> None:
    out = decode(rec(b'{"id": "a", "ts": 1, "headline": "up \\ud83d\\ude00 \\u00e9"}'), NewsEvent, 86400, NOW)
    assert isinstance(out, Accepted) and out.event.headline == "up \U0001f600 \u00e9"


def test_dead_letter_payloads_survive_byte_for_byte() -> None:
    raw = b"\x00\xffbinary"
    letter = dead_letter(rec(raw), "invalid_utf8", "r")
    assert letter.payload_encoding == "base64" and base64.b64decode(letter.payload) == raw
    text = "héllo ünïcode".encode()
    letter = dead_letter(rec(text), "schema", "r")
    assert letter.payload_encoding == "utf-8" and letter.payload.encode() == text
    big = ("é" * PAYLOAD_KEEP_BYTES).encode()
    letter = dead_letter(rec(big), "text_too_long", "r")
    assert (
        letter.payload_bytes == len(big)
        and len(letter.payload.encode()) <= PAYLOAD_KEEP_BYTES
        and letter.payload_encoding == "utf-8"
    )


def json_containers(children: st.SearchStrategy) -> st.SearchStrategy:
    """Lists and objects of ``children``: how a JSON value nests (a named function, so Hypothesis can see that
    it recurses: it misread the lambda beside another one)."""
    return st.lists(children) | st.dictionaries(st.text(), children)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
            json_containers,
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_bytes_become_an_event_or_a_dead_letter(value: bytes) -> None:
    for model in (NewsEvent, ItemEvent, ClickEvent):
        out = decode(rec(value), model, 86400, NOW)
        assert isinstance(out, (Accepted, DeadLetterEvent))
        if isinstance(out, DeadLetterEvent):
            assert out.error_code in {
                "invalid_utf8",
                "invalid_json",
                "not_an_object",
                "schema",
                "text_too_long",
                "future_ts",
            }


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=250),
            "ts": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
            "headline": st.text(max_size=50),
            "tickers": st.lists(st.text(max_size=20), max_size=60),
        }
    )
)
def test_hostile_news_fields_never_raise(payload: dict) -> None:
    out = decode(rec(json.dumps(payload).encode()), NewsEvent, 86400, NOW)
    if isinstance(out, Accepted):
        assert 1 <= len(out.event.id) <= 200 and len(out.event.tickers) <= 50


def test_top_k_excludes_seen_breaks_ties_by_id_and_copes_with_few_candidates() -> None:
    ids = ["d", "c", "b", "a", "e"]
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    ranked = top_k(ids, scores, exclude={"c"}, k=3)
    assert [r.item_id for r in ranked] == ["a", "b", "d"]
    assert [r.item_id for r in top_k(ids, scores, exclude=set(ids) - {"e"}, k=3)] == ["e"]
    assert top_k(ids, scores, exclude=set(ids), k=3) == []


def test_candidate_cache_profiles_and_updates() -> None:
    cache = CandidateCache(dim=2)
    cache.reset("v1")
    cache.upsert(
        [("a", [1.0, 0.0], None), ("b", [0.0, 1.0], None), ("bad", [1.0], None)], index_of=lambda i: {"a": 5}.get(i, 0)
    )
    assert cache.ids == ["a", "b"] and cache.indices.tolist() == [5, 0]
    profile, n = cache.profile(["a", "b", "unknown"])
    assert n == 2 and np.allclose(profile, [0.5, 0.5])
    cache.upsert([("a", [0.0, 0.0], None)], index_of=lambda i: 0)
    assert len(cache) == 2 and np.allclose(cache.embeddings[0], [0.0, 0.0])
