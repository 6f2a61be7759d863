"""Hostile input through a real worker: a fixed corpus and seeded random mutations. Every record must end as
exactly what the pure edge (:func:`worker.domain.intake.decode`) says — a result row or a dead letter with its
code — and the worker must still be serving afterwards."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from ops.replay import Produced, Scenario
from streamscore.events import ClickEvent, NewsEvent
from tests.reliability.conftest import Deployment
from worker.domain.intake import Accepted, Record, decode

SQL_INJECTION = "Robert'); DROP TABLE news_sentiment;-- $ACME \" OR 1=1 --"


def fixed_corpus(news: str, clicks: str, known_item: str) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    dump = lambda obj: json.dumps(obj).encode()  # noqa: E731
    ok = {"id": "h-ok", "ts": now.isoformat(), "headline": "$ACME beats estimates"}
    return [
        (news, b"{"),
        (news, b"\xc3\x28 invalid utf-8"),
        (news, b"null"),
        (news, b"[]"),
        (news, b"123"),
        (news, b""),
        (news, dump({**ok, "id": "h-missing"} | {"headline": None})),
        (news, dump({"id": "h-no-ts", "headline": "x"})),
        (news, dump({**ok, "id": "h-extra", "extra": {"nested": [1, 2, 3]}, "another": True})),  # extra fields: fine
        (news, dump({**ok, "id": "h-empty", "headline": ""})),
        (news, dump({**ok, "id": ""})),
        (news, dump({**ok, "id": "h-1mb", "headline": "x" * 900_000})),  # just under Kafka's 1 MB record limit
        (news, b'{"id": "h-nan", "ts": NaN, "headline": "x"}'),
        (news, b'{"id": "h-inf", "ts": 1, "headline": "x", "score": Infinity}'),
        (news, dump({**ok, "id": "h-huge-array", "tickers": ["T"] * 10_000})),
        (news, dump({**ok, "id": "h-sql", "headline": SQL_INJECTION, "source": "'; DELETE FROM alerts; --"})),
        (news, dump({**ok, "id": "h-old", "ts": "1999-12-31T23:59:59Z"})),  # out of order / late: accepted
        (news, dump({**ok, "id": "h-future", "ts": (now + timedelta(days=400)).isoformat()})),
        (news, dump({**ok, "id": "h-bool-ts", "ts": True})),
        (news, dump({**ok, "id": "h-int-headline", "headline": 42})),
        (news, dump({**ok, "id": "h-nul", "headline": "a\u0000b"})),
        (news, b'{"id": "h-surrogate", "ts": 1, "headline": "\\ud800"}'),
        (news, b"[" * 5000 + b"]" * 5000),
        (news, dump({**ok, "id": "h-dup"})),
        (news, dump({**ok, "id": "h-dup", "headline": "same id again"})),
        (clicks, dump({"event_id": "hc-unknown", "user_id": "u1", "item_id": "no-such-item", "ts": 1})),
        (clicks, dump({"event_id": "hc-rating", "user_id": "u1", "item_id": known_item, "ts": 1, "rating": 11})),
        (clicks, dump({"event_id": "hc-action", "user_id": "u1", "item_id": known_item, "ts": 1, "action": "steal"})),
        (clicks, dump({"event_id": "hc-ok", "user_id": "u1", "item_id": known_item, "ts": 1, "rating": 4})),
        (clicks, dump({"event_id": "hc-ok", "user_id": "u1", "item_id": known_item, "ts": 2})),
    ]


def mutations(news: str, seed: int, n: int) -> list[tuple[str, bytes]]:
    """Seeded random damage to valid events: dropped and retyped fields, odd unicode, truncation, bit flips."""
    rng = random.Random(seed)
    weird = ["", " ", "\u202e", "💥", "\t", "\\", '"', "𝔘𝔫𝔦", "\ufeff", "a" * 300, "NaN", "-1", "1e309"]
    values = [None, True, 0, -1, 1e308, [], {}, [1, [2, [3]]], "", "x" * 25_000, *weird]
    out = []
    for i in range(n):
        event = {
            "id": f"m-{seed}-{i}",
            "ts": 1_700_000_000_000 + i,
            "headline": f"$M{i % 7} headline {rng.choice(weird)}",
            "tickers": [f"M{i % 7}"],
        }
        action = rng.randrange(5)
        if action == 0:
            event.pop(rng.choice(list(event)))
        elif action == 1:
            event[rng.choice(list(event))] = rng.choice(values)
        raw = json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()
        if action == 2:
            raw = raw[: rng.randrange(len(raw))]
        elif action == 3:
            pos = rng.randrange(len(raw))
            raw = raw[:pos] + bytes([raw[pos] ^ (1 << rng.randrange(8))]) + raw[pos + 1 :]
        out.append((news, raw))
    return out


def expected_outcomes(records: list[tuple[str, bytes]], topics) -> Counter:
    """What the pure edge says, plus duplicate ids (first record of an id wins)."""
    seen: set[str] = set()
    outcome: Counter = Counter()
    for offset, (topic, value) in enumerate(records):
        model = NewsEvent if topic == topics.news else ClickEvent
        result = decode(Record(topic, 0, offset, value), model, 86400)
        if isinstance(result, Accepted):
            ident = getattr(result.event, "id", None) or result.event.event_id
            if ident in seen:
                outcome["duplicate_id"] += 1
            else:
                seen.add(ident)
                outcome["ok"] += 1
        else:
            outcome[result.error_code] += 1
    return outcome


def test_hostile_input_is_dead_lettered_by_policy_and_never_crashes(deployment: Deployment) -> None:
    scenario = Scenario(news=0, clicks=0, run="hostile")
    scenario.build(deployment.settings.data_dir, deployment.topics)
    worker = deployment.start_worker()
    deployment.produce(scenario.catalog())
    deployment.wait_items(len(scenario.catalog()))
    known = scenario.catalog()[0].key
    corpus = fixed_corpus(deployment.topics.news, deployment.topics.clicks, known) + mutations(
        deployment.topics.news, seed=7, n=300
    )
    # one partition's order decides which duplicate is first, so all go through one key per topic
    deployment.produce([Produced(topic, "hostile", value) for topic, value in corpus])
    expected = expected_outcomes(corpus, deployment.topics)
    snap = deployment.wait_accounted(len(corpus))
    assert snap.processed.get("news", 0) + snap.processed.get("clicks", 0) == expected.pop("ok")
    assert snap.dead_letters == dict(expected)
    assert "processing_error" not in snap.dead_letters
    assert deployment.scalar("SELECT headline FROM news_sentiment WHERE news_id = 'h-sql'") == SQL_INJECTION
    assert deployment.scalar("SELECT count(*) FROM news_sentiment WHERE news_id = 'h-old'") == 1
    assert worker.process.poll() is None and deployment.ready(worker)["ready"] is True
