"""A private deployment per test: unique topics and consumer group, a fresh schema, its own models folder,
and real worker processes (``python -m ops worker``) against the session's Kafka and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ops.dashboard import Snapshot, snapshot
from ops.demo import WorkerProcess
from ops.replay import Produced, produce
from streamscore.bundle import CURRENT, point_current
from streamscore.db.connection import make_engine
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics
from tests.conftest import Schema


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Deployment:
    settings: Settings
    schema: Schema
    topics: Topics
    models: Path
    env: dict[str, str]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    admin: Engine | None = None
    reader: Engine | None = None

    def start_worker(self, wait: bool = True) -> WorkerProcess:
        port = free_port()
        worker = WorkerProcess.start(port, self.log_dir, {**self.env, "STREAMSCORE_WORKER_WEB_PORT": str(port)})
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def produce(self, records: list[Produced]) -> None:
        produce(self.settings.kafka_bootstrap, records, progress=False)

    def snapshot(self) -> Snapshot:
        assert self.reader is not None
        return snapshot(self.reader)

    def wait_accounted(self, expected: int, timeout_s: float = 240.0) -> Snapshot:
        """Poll the dashboard views until ``expected`` records are results or dead letters."""
        deadline = time.monotonic() + timeout_s
        snap = self.snapshot()
        while snap.accounted < expected and time.monotonic() < deadline:
            for worker in self.workers:
                assert worker.process.poll() is None or worker.process.returncode in (0, -9, -15), (
                    worker.log.read_text()[-3000:]
                )
            time.sleep(0.5)
            snap = self.snapshot()
        assert snap.accounted == expected, f"accounted {snap.accounted} of {expected}: {snap}"
        return snap

    def wait_items(self, expected: int, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.scalar("SELECT count(*) FROM items") < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert self.scalar("SELECT count(*) FROM items") == expected

    def scalar(self, sql: str, **params: object):
        assert self.admin is not None
        with self.admin.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list:
        assert self.admin is not None
        with self.admin.connect() as conn:
            return list(conn.execute(text(sql), params))

    def metrics(self, worker: WorkerProcess) -> dict[str, float]:
        samples = worker.metrics()
        assert samples, f"worker :{worker.port} serves no metrics"
        return samples

    def ready(self, worker: WorkerProcess) -> dict:
        """The worker's /ready body (a 503 carries the same body, saying what is not ready)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/ready", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def wait_ready_until(self, worker: WorkerProcess, done: Callable[[dict], bool], timeout_s: float = 60.0) -> dict:
        """Poll /ready until ``done`` holds for its body (or the time is up); returns the last body. A reload
        happens on the worker's timer, not with the events, so a test waits for it here."""
        deadline = time.monotonic() + timeout_s
        while not done(state := self.ready(worker)) and time.monotonic() < deadline:
            time.sleep(0.25)
        return state

    def point_current(self, version: str) -> None:
        point_current(self.models, version)

    def consume(self, topic: str, timeout_s: float = 10.0, bootstrap: str | None = None) -> list[bytes]:
        """Every record on an output topic (from the beginning), read through ``bootstrap`` if given."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap or self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(timeout_s * 1000),
            group_id=None,
        )
        try:
            return [m.value for m in consumer]
        finally:
            consumer.close()


@contextmanager
def private_deployment(
    settings: Settings, pg_schema: Schema, topic_prefix: str, models_dir: Path, tmp_path: Path, **env: str
) -> Iterator[Deployment]:
    """A deployment against ``settings``' Kafka; ``env`` adds worker settings (``STREAMSCORE_…``)."""
    models = tmp_path / "models"
    models.mkdir()
    source = (models_dir / CURRENT).resolve()
    shutil.copytree(source, models / source.name)
    point_current(models, source.name)
    settings = settings.model_copy(update={"topic_prefix": topic_prefix, "models_dir": models})
    topics = Topics.from_settings(settings)
    create_topics(settings.kafka_bootstrap, topics.specs_for(settings))
    worker_env = {
        "STREAMSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMSCORE_TOPIC_PREFIX": topic_prefix,
        "STREAMSCORE_WORKER_GROUP": f"g-{topic_prefix.rstrip('.')}",
        "STREAMSCORE_WRITER_DATABASE_URL": pg_schema.writer,
        "STREAMSCORE_MODELS_DIR": str(models),
        "STREAMSCORE_STACK_DIR": str(tmp_path / "stack"),
        "STREAMSCORE_DATA_DIR": str(settings.data_dir),
        "STREAMSCORE_MODEL_RELOAD_INTERVAL_S": "1",
        "STREAMSCORE_CATALOG_REFRESH_S": "0.5",
        "STREAMSCORE_WORKER_THREADS": "1",
        "STREAMSCORE_LOG_LEVEL": "INFO",
        **env,
    }
    dep = Deployment(
        settings,
        pg_schema,
        topics,
        models,
        worker_env,
        tmp_path / "logs",
        admin=make_engine(pg_schema.admin),
        reader=make_engine(pg_schema.reader),
    )
    try:
        yield dep
    finally:
        for worker in dep.workers:
            worker.stop()
        for engine in (dep.admin, dep.reader):
            assert engine is not None
            engine.dispose()


@pytest.fixture
def deployment(
    stack: Settings, pg_schema: Schema, topic_prefix: str, models_dir: Path, tmp_path: Path
) -> Iterator[Deployment]:
    with private_deployment(stack, pg_schema, topic_prefix, models_dir, tmp_path) as dep:
        yield dep
