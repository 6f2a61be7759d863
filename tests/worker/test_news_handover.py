"""The news agent's handover (:meth:`worker.runtime.Runtime.handle`) on the real pipeline, PostgreSQL and ONNX
bundle, with Faust's message reference counting played by a small double: the agent returns before its batch
is scored, what it brings while the model is busy becomes the model's next batch, every message becomes
committable only after its batch is stored, in order, and once a batch could not be stored no later news
batch is stored and the next one raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from streamscore.db.connection import make_engine
from streamscore.settings import Settings
from streamscore.topics import Topics
from tests.conftest import Schema
from worker.adapters.model_holder import ModelHolder
from worker.adapters.results_store import Store
from worker.errors import StoreUnavailable
from worker.paths.core import Output
from worker.pipeline import Pipeline
from worker.runtime import Runtime


@dataclass
class Committable:
    """What Faust's sensors hear when a message's last reference is gone: the offset may now be committed."""

    offsets: list[int] = field(default_factory=list)

    def on_message_out(self, tp: object, offset: int, message: object) -> None:
        self.offsets.append(offset)


@dataclass
class App:
    sensors: Committable


@dataclass
class Message:
    """Faust's reference counting: ``take_events`` holds one reference, the worker may add its own."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: float | None = None
    refcount: int = 1

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def incref(self) -> None:
        self.refcount += 1


@dataclass
class Event:
    message: Message
    app: App

    def ack(self) -> bool:
        self.message.refcount -= 1
        return self.message.refcount == 0


def batch(app: App, first: int, n: int = 8) -> list[Event]:
    now = datetime.now(UTC).isoformat()
    return [
        Event(
            Message(
                "news",
                0,
                offset,
                json.dumps({"id": f"n{offset}", "ts": now, "headline": f"ACME headline number {offset}"}).encode(),
            ),
            app,
        )
        for offset in range(first, first + n)
    ]


def taken(events: list[Event]) -> None:
    """What ``take_events`` does when the agent returns: its own acknowledgement."""
    for event in events:
        if event.ack():
            event.app.sensors.on_message_out(event.message.tp, event.message.offset, event.message)


@pytest.fixture
def runtime(pg_schema: Schema, models_dir: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    overlap = getattr(request, "param", False)
    settings = Settings(
        _env_file=None, worker_overlap_store=overlap, worker_news_gather_while_scoring=True, batch_max_events=12
    )
    topics = Topics.from_settings(settings)
    store = Store(pg_schema.writer, retry_max_s=0.2)
    emitted: list[Output] = []
    rt = Runtime(settings, topics, producer=lambda: None)  # type: ignore[arg-type,return-value]
    rt.store = store
    rt.pipeline = Pipeline(ModelHolder(models_dir), store, topics, emitted.extend)
    yield rt
    store.dispose()


def stored_ids(pg_schema: Schema) -> list[str]:
    engine = make_engine(pg_schema.admin)
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT news_id FROM news_sentiment"))]
    engine.dispose()
    return sorted(ids, key=lambda i: int(i[1:]))


@pytest.mark.parametrize("runtime", [False, True], ids=["store in the model thread", "store overlap"], indirect=True)
def test_the_agent_returns_at_once_and_offsets_follow_the_writes(runtime: Runtime, pg_schema: Schema) -> None:
    app = App(Committable())

    async def agent() -> list[tuple[list[int], list[int]]]:
        seen = []
        for first in (100, 200, 300):
            events = batch(app, first)
            await runtime.handle(events, "news")
            seen.append((list(app.sensors.offsets), [e.message.offset for e in runtime.news_gathered]))
            taken(events)
        await runtime.drain()
        return seen

    seen = asyncio.run(agent())
    # the agent got the first batch back before it was stored: nothing of it was committable yet
    assert seen[0] == ([], [])
    # what came while the model scored the first batch was gathered; at batch_max_events (12) the agent waited
    # for the model, which took 12 of the 16, and the rest waits for its next free moment
    assert seen[1][1] == [*range(200, 208)]
    assert seen[2][1] == [*range(304, 308)]
    assert app.sensors.offsets == [*range(100, 108), *range(200, 208), *range(300, 308)]
    assert stored_ids(pg_schema) == [f"n{o}" for o in app.sensors.offsets]


@pytest.mark.parametrize("runtime", [False, True], ids=["store in the model thread", "store overlap"], indirect=True)
def test_after_a_failed_write_nothing_later_is_stored_or_committable(runtime: Runtime, pg_schema: Schema) -> None:
    app = App(Committable())
    admin = make_engine(pg_schema.admin)
    with admin.begin() as conn:  # a real refusal the store retries (a revoked grant waits for an operator)
        conn.execute(text("REVOKE INSERT ON news_sentiment FROM streamscore_writer"))

    def stop() -> None:
        """The first write is still retrying; the operator fixes the grant, but the worker is stopping."""
        with admin.begin() as conn:
            conn.execute(text("GRANT INSERT ON news_sentiment TO streamscore_writer"))
        assert runtime.store is not None
        runtime.store.stopping.set()

    async def agent() -> None:
        first, second = batch(app, 100), batch(app, 200)
        asyncio.get_running_loop().call_later(1.0, stop)
        await runtime.handle(first, "news")
        taken(first)
        await runtime.handle(second, "news")  # may wait for the first batch's model step, hence the timer
        taken(second)
        await runtime.drain()
        third = batch(app, 300)
        with pytest.raises(StoreUnavailable):
            await runtime.handle(third, "news")
        taken(third)

    asyncio.run(agent())
    admin.dispose()
    assert isinstance(runtime.news_failed, StoreUnavailable)
    assert app.sensors.offsets == []  # no offset may pass the batch that failed
    assert stored_ids(pg_schema) == []
