"""Replay generation is pure: the records, their keys and what the worker must make of each."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ops.replay import LATE_ITEM, Produced, Scenario, _interleave
from streamscore.settings import Settings
from streamscore.topics import Topics

TOPICS = Topics.from_settings(Settings(_env_file=None, topic_prefix="x."))


def test_scenario_orders_keys_and_expectations(data_dir: Path) -> None:
    scenario = Scenario(news=50, clicks=80, cold_users=2, surge_ticker="ACME", surge_size=12, bad=True, run="t")
    records = scenario.build(data_dir, TOPICS, now_ms=1_800_000_000_000)
    catalog, stream = scenario.catalog(), scenario.stream()
    assert records == catalog + stream and all(r.topic == TOPICS.items for r in catalog)
    clicks = [json.loads(r.value) for r in stream if r.topic == TOPICS.clicks and r.expect == "ok"]
    assert len(clicks) == 80 + 2 * 2 + 1
    # every valid click has its item, but the one whose catalog event is still in flight
    assert {c["item_id"] for c in clicks} - {r.key for r in catalog} == {LATE_ITEM}
    ml = [c for c in clicks if c["event_id"].startswith("ml-")]
    assert [c["ts"] for c in ml] == sorted(c["ts"] for c in ml)  # MovieLens clicks in time order
    assert all(r.key == json.loads(r.value)["user_id"] for r in stream if r.topic == TOPICS.clicks and r.expect == "ok")
    news = [json.loads(r.value) for r in stream if r.topic == TOPICS.news and r.expect == "ok"]
    assert len(news) == 50 + 12 and sum(n["tickers"] == ["ACME"] for n in news) == 12
    codes = Counter(r.expect for r in stream if r.expect != "ok")
    assert codes["duplicate_id"] == 1 and "unknown_item" not in codes and codes["schema"] == 4
    assert scenario.expected_accounted() == len(stream)


def test_a_second_run_gives_new_ids(data_dir: Path) -> None:
    a = Scenario(news=5, clicks=5, run="a").build(data_dir, TOPICS)
    b = Scenario(news=5, clicks=5, run="b").build(data_dir, TOPICS)

    def ids(rs: list) -> set:
        return {
            json.loads(r.value).get("id") or json.loads(r.value).get("event_id") for r in rs if r.topic != TOPICS.items
        }

    assert not ids(a) & ids(b)


def test_interleave_keeps_each_order() -> None:
    a = [Produced("a", str(i), b"") for i in range(7)]
    b = [Produced("b", str(i), b"") for i in range(3)]
    merged = _interleave(a, b)
    assert [r for r in merged if r.topic == "a"] == a and [r for r in merged if r.topic == "b"] == b
    assert merged[0].topic == "a" and merged[-1].topic == "a"
