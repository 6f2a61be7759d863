"""Pure worker logic: entities, the surge rule, the micro-batch policy and ranking — no Kafka needed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worker.domain.alert_states import KnownStates, new_write_id
from worker.domain.alerts import AlertRule, EntityState, baseline_share, observe, z_score
from worker.domain.batch_policy import BatchPolicy, MicroBatcher, estimate_tokens
from worker.domain.entities import extract_entities, normalise_ticker
from worker.domain.ranking import popular_fallback, top_k


# -- entities -------------------------------------------------------------------------------------------
def test_entities_from_field_and_cashtags() -> None:
    assert extract_entities(["tsla", " AAPL "], "Why $nvda and $BRK.B moved; $TSLA again", None) == [
        "AAPL",
        "BRK.B",
        "NVDA",
        "TSLA",
    ]


@pytest.mark.parametrize("text", ["costs $100 now", "US$5 fee", "a$b", "price: $ 20", ""])
def test_prices_and_noise_are_not_entities(text: str) -> None:
    assert extract_entities([], text) == []


def test_ticker_normalisation_rejects_junk() -> None:
    assert normalise_ticker("$msft") == "MSFT"
    assert (
        normalise_ticker("DROP TABLE") is None and normalise_ticker("X" * 11) is None and normalise_ticker("") is None
    )


# -- alert rule -------------------------------------------------------------------------------------------
RULE = AlertRule(
    window_s=600, min_count=6, ratio=2.0, min_share=0.4, z_threshold=2.5, cooldown_s=1200, update_interval_s=60
)


def feed(state: EntityState, items: list[tuple[float, str, bool]]) -> list:
    return [d for ts, nid, neg in items if (d := observe(state, RULE, "TSLA", nid, ts, neg)) is not None]


def calm(start: float, n: int, every: float = 60.0, negative_every: int = 8) -> list[tuple[float, str, bool]]:
    return [(start + i * every, f"c{start}-{i}", i % negative_every == 0) for i in range(n)]


def test_calm_stream_raises_nothing() -> None:
    state = EntityState()
    assert feed(state, calm(0, 300)) == []
    assert 0.08 < baseline_share(state, RULE) < 0.2


def test_surge_raises_once_then_updates_then_resolves() -> None:
    state = EntityState()
    assert feed(state, calm(0, 120)) == []
    surge = [(7200 + i * 10, f"s{i}", True) for i in range(12)]
    decisions = feed(state, surge)
    assert [d.status for d in decisions] == ["raised", "updated"]
    raised = decisions[0]
    assert raised.entity == "TSLA" and raised.negative_count >= 6 and raised.negative_share >= 0.4
    assert raised.score >= RULE.z_threshold and raised.negative_share >= 2 * raised.baseline_share
    assert {f"s{i}" for i in range(raised.negative_count - 2)} <= set(
        raised.evidence
    )  # the surge's articles are the evidence
    assert decisions[1].alert_id == raised.alert_id and decisions[1].seq == 1
    later = feed(state, calm(7200 + 700, 40, negative_every=50))
    assert [d.status for d in later] == ["resolved"]
    assert later[0].alert_id == raised.alert_id


def test_redelivered_articles_do_not_count_twice() -> None:
    state = EntityState()
    feed(state, calm(0, 120))
    once = feed(state, [(7200 + i, f"s{i % 3}", True) for i in range(30)])
    assert once == [], "three distinct articles are not a surge, however often they are redelivered"


def test_cooldown_blocks_an_immediate_second_alert() -> None:
    state = EntityState()
    feed(state, calm(0, 120))
    first = feed(state, [(7200 + i * 10, f"a{i}", True) for i in range(8)])
    assert [d.status for d in first] == ["raised"]
    resolved = None
    for item in calm(7200 + 700, 30, negative_every=50):  # calm news until the alert resolves, then stop
        if resolved := feed(state, [item]):
            break
    assert resolved and resolved[-1].status == "resolved"
    quiet_until = resolved[-1].window_end + RULE.cooldown_s
    again = feed(state, [(quiet_until - 300 + i, f"b{i}", True) for i in range(10)])
    assert "raised" not in [d.status for d in again], "within the cooldown"
    after = feed(state, [(quiet_until + 200 + i, f"d{i}", True) for i in range(10)])
    assert [d.status for d in after][:1] == ["raised"], "after the cooldown a new surge is a new alert"
    assert after[0].alert_id != first[0].alert_id


def test_state_survives_a_json_round_trip() -> None:
    state = EntityState()
    feed(state, calm(0, 50))
    feed(state, [(3000 + i, f"s{i}", True) for i in range(8)])
    restored = EntityState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    assert observe(restored, RULE, "TSLA", "s0", 3001, True) is None  # still knows what it has seen


def test_stored_state_keeps_the_format_earlier_workers_wrote() -> None:
    """States already in PostgreSQL were written with ``dataclasses.asdict``: the same JSON, both ways."""
    from dataclasses import asdict

    state = EntityState()
    feed(state, calm(0, 30))
    feed(state, [(3000 + i, f"s{i}", True) for i in range(8)])
    assert state.to_dict() == asdict(state)
    assert EntityState.from_dict(asdict(state)) == state
    assert EntityState.from_dict({"window": []}) == EntityState()  # fields missing from an old row: defaults


# -- the states a worker keeps between batches ------------------------------------------------------------
def test_a_kept_state_is_used_only_under_the_write_id_it_was_stored_with() -> None:
    known = KnownStates(capacity=10)
    state = EntityState()
    feed(state, calm(0, 5))
    known.remember({"TSLA": state}, write_id=7)
    assert known.current({"TSLA": 7}) == {"TSLA": state}
    assert known.current({"TSLA": 8}) == {}  # another writer since
    assert known.current({"AAPL": 0}) == {}  # never kept
    assert (known.hits, known.misses) == (1, 2)


def test_a_kept_state_is_handed_out_as_a_copy_until_a_commit_remembers_it() -> None:
    known = KnownStates(capacity=10)
    state = EntityState()
    feed(state, calm(0, 5))
    known.remember({"TSLA": state}, write_id=7)
    working = known.current({"TSLA": 7})["TSLA"]
    feed(working, [(400, "late", True)])  # the batch folds, then its transaction fails
    again = known.current({"TSLA": 7})["TSLA"]
    assert len(again.window) == 5 and again == state
    assert [o.news_id for o in working.window][-1] == "late"


def test_the_least_recently_used_state_is_dropped_first() -> None:
    known = KnownStates(capacity=2)
    known.remember({"A": EntityState(), "B": EntityState()}, write_id=1)
    known.current({"A": 1})  # A is used: B is now the oldest
    known.remember({"C": EntityState()}, write_id=2)
    assert set(known.entries) == {"A", "C"}
    nothing = KnownStates(capacity=0)
    nothing.remember({"A": EntityState()}, write_id=1)
    assert len(nothing) == 0
    with pytest.raises(ValueError, match="capacity"):
        KnownStates(capacity=-1)


def test_write_ids_are_never_the_never_written_mark() -> None:
    ids = {new_write_id() for _ in range(1000)}
    assert 0 not in ids and len(ids) == 1000 and max(ids) < 2**63


def test_z_score_by_hand() -> None:
    assert z_score(8, 10, 0.2) == pytest.approx((8 - 2) / np.sqrt(10 * 0.2 * 0.8))
    assert z_score(0, 0, 0.2) == 0.0


# -- batching ------------------------------------------------------------------------------------------------
def test_batch_flushes_at_max_events() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(BatchPolicy(max_events=3, max_wait_ms=1000, max_tokens=10_000))
    assert batcher.add(1, 5, 0) is None and batcher.add(2, 5, 1) is None
    assert batcher.add(3, 5, 2) == [1, 2, 3]
    assert len(batcher) == 0


def test_batch_is_due_after_max_wait_not_before() -> None:
    batcher: MicroBatcher[str] = MicroBatcher(BatchPolicy(max_events=100, max_wait_ms=50))
    batcher.add("a", 5, now_ms=1000)
    assert not batcher.due(1049) and batcher.due(1050)
    assert batcher.take() == ["a"] and not batcher.due(5000)


def test_token_budget_closes_the_batch_before_an_oversized_item() -> None:
    batcher: MicroBatcher[str] = MicroBatcher(BatchPolicy(max_events=100, max_wait_ms=50, max_tokens=100))
    assert batcher.add("a", 60, 0) is None
    assert batcher.add("b", 60, 1) == ["a"]
    assert batcher.items == ["b"] and batcher.tokens == 60


def test_invalid_policy_and_token_estimate() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(max_events=0)
    assert estimate_tokens("one two three") == 2 + 3 + 1


# -- ranking --------------------------------------------------------------------------------------------------
def test_top_k_excludes_seen_items_and_breaks_ties_by_id() -> None:
    ids = ["a", "b", "c", "d", "e"]
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7])
    ranked = top_k(ids, scores, exclude={"b"}, k=3)
    assert [r.item_id for r in ranked] == ["c", "e", "a"]
    assert ranked[0].score == 0.9
    assert top_k(ids, scores, exclude=set(ids), k=3) == []
    with pytest.raises(ValueError):
        top_k(ids, scores[:2], exclude=(), k=1)


def test_popular_fallback_skips_seen() -> None:
    assert popular_fallback(["x", "y", "z", "w"], exclude={"y"}, k=2) == ["x", "z"]
