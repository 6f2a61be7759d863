"""The Faust app: ``faust -A worker.app worker`` (or ``streamscore worker``).

A thin adapter: three agents collect raw records in micro-batches (``stream.take_events``: up to
``batch_max_events`` or ``batch_max_wait_ms``), hand them to :class:`worker.pipeline.Pipeline` in the
process's single model thread, and let Faust acknowledge them only when the pipeline has stored them.
The event loop stays free for heartbeats, fetching, commits, the producer and the web server.

Web endpoints on ``worker_web_port``: ``/metrics`` (Prometheus), ``/health`` (the process is up) and
``/ready`` (model loaded and PostgreSQL writable).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamscore.db.connection import writer_url
from streamscore.logs import configure_logging
from streamscore.security import faust_credentials
from streamscore.settings import get_settings
from streamscore.topics import Topics
from worker.alerts import AlertRule
from worker.batching import BatchPolicy
from worker.intake import Record
from worker.metrics import DB_RETRIES, REGISTRY
from worker.models import ModelHolder
from worker.pipeline import BatchReport, Output, Pipeline, PipelineConfig, report_line
from worker.store import OutputUnavailable, Store, StoreUnavailable

T = TypeVar("T")
logger = logging.getLogger("worker")
settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
topics = Topics.from_settings(settings)
(settings.stack_dir / "faust").mkdir(parents=True, exist_ok=True)

app = faust.App(
    settings.worker_group,
    broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
    web_port=settings.worker_web_port,
    web_bind=settings.worker_web_bind,
    web_host=settings.worker_web_bind,
    datadir=str(settings.stack_dir / "faust" / f"{settings.worker_group}-{settings.worker_web_port}"),
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=1,
    broker_commit_interval=1.0,
    broker_session_timeout=settings.worker_session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
    logging_config=None,
    broker_credentials=faust_credentials(settings),
)

news_topic = app.topic(topics.news, key_serializer="raw", value_serializer="raw", allow_empty=True)
items_topic = app.topic(topics.items, key_serializer="raw", value_serializer="raw", allow_empty=True)
clicks_topic = app.topic(topics.clicks, key_serializer="raw", value_serializer="raw", allow_empty=True)

model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamscore-model")
"""One scorer per process, used from one thread: ONNX Runtime already spreads a batch over the cores."""


class Runtime:
    """Pipeline, model and store, built on first use inside the model thread (loading takes seconds)."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.store: Store | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()

    def get(self) -> Pipeline:
        with self.lock:
            if self.pipeline is None:
                self.store = Store(writer_url(settings), settings.db_retry_max_s, on_retry=lambda exc: DB_RETRIES.inc())
                models = ModelHolder(settings.models_dir, settings.model_variant, settings.worker_threads, settings.inference_max_tokens, settings.inference_call_plan)
                config = PipelineConfig(
                    batch=BatchPolicy(settings.batch_max_events, settings.batch_max_wait_ms, settings.batch_max_tokens),
                    rule=AlertRule(
                        window_s=settings.alert_window_s, min_count=settings.alert_min_count, ratio=settings.alert_ratio,
                        min_share=settings.alert_min_share, z_threshold=settings.alert_z_threshold, cooldown_s=settings.alert_cooldown_s,
                    ),
                    max_future_skew_s=settings.max_future_skew_s,
                    recommend_k=settings.recommend_k,
                    cold_start_min_history=settings.cold_start_min_history,
                    catalog_refresh_s=settings.catalog_refresh_s,
                )
                self.pipeline = Pipeline(models, self.store, topics, self.emit, config)
                self.pipeline.register_model()
                logger.warning("worker ready", extra={"model": models.version, "providers": ",".join(models.scorer.providers), "variant": models.scorer.variant})
            return self.pipeline

    def emit(self, outputs: list[Output]) -> None:
        """Called from the model thread: produce on the loop and block until the broker acknowledged all."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(_produce(outputs), self.loop)
        try:
            future.result(timeout=120)
        except Exception as exc:
            future.cancel()
            raise OutputUnavailable(f"producing {len(outputs)} outputs failed: {exc!r}") from exc


runtime = Runtime()


async def _produce(outputs: Sequence[Output]) -> None:
    pending = [
        await app.producer.send(o.topic, o.key.encode(), o.value, partition=None, timestamp=None, headers=None) for o in outputs
    ]
    await asyncio.gather(*pending)


async def in_model_thread(fn: Callable[..., T], *args: Any) -> T:
    runtime.loop = asyncio.get_running_loop()
    return await runtime.loop.run_in_executor(model_thread, fn, *args)


def _records(events: Sequence[faust.EventT]) -> list[Record]:
    return [
        Record(e.message.topic, e.message.partition, e.message.offset, e.message.value, (e.message.timestamp or 0) * 1000 or None)
        for e in events
    ]


async def handle(events: Sequence[faust.EventT], kind: str) -> None:
    """Run one batch; if it cannot be stored, keep its records unacknowledged so no offset passes them."""
    records = _records(events)
    try:
        report: BatchReport = await in_model_thread(lambda: runtime.get().process_batch(kind, records))
    except BaseException:
        # take_events acknowledges the batch on the way out even when we raise; an extra reference keeps
        # these messages from ever reaching the committed offset in this process (they are redelivered).
        for event in events:
            event.message.incref()
        raise
    if logger.isEnabledFor(logging.INFO):
        logger.info("batch", extra={"report": report_line(report)})


@app.agent(news_topic)
async def score_news(stream: faust.StreamT) -> None:
    """News → sentiment per article, entity surge alerts."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await handle(events, "news")


@app.agent(items_topic)
async def embed_items(stream: faust.StreamT) -> None:
    """Catalog items → embeddings stored with the model version."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await handle(events, "items")


@app.agent(clicks_topic)
async def recommend(stream: faust.StreamT) -> None:
    """Clicks → user history, top-K recommendations."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await handle(events, "clicks")


@app.timer(interval=settings.model_reload_interval_s)
async def reload_model() -> None:
    """Hot reload: load a new bundle beside the old one (another thread), swap between batches."""
    pipeline = runtime.pipeline
    if pipeline is None:
        return
    loop = asyncio.get_running_loop()
    if await loop.run_in_executor(None, pipeline.models.check):
        await in_model_thread(pipeline.register_model)
        while await in_model_thread(pipeline.reembed_stale):
            pass  # one chunk per call, so scoring batches interleave with the re-embedding


@app.page("/metrics")
async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    # aiohttp refuses a charset inside content_type; the exposition format is ASCII anyway
    return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")


@app.page("/health")
async def health(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return web.json({"status": "ok"})


@app.page("/ready")
async def ready(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    pipeline, store = runtime.pipeline, runtime.store
    body = {
        "model_loaded": pipeline is not None,
        "database_ok": bool(store and store.healthy),
        "model_version": pipeline.models.version if pipeline else None,
        "providers": list(pipeline.models.scorer.providers) if pipeline else [],
        "last_reload_error": pipeline.models.last_error if pipeline else None,
        "assigned_partitions": len(app.consumer.assignment()) if app.consumer else 0,
    }
    ok = body["model_loaded"] and body["database_ok"]
    return web.json({"ready": ok, **body}, status=200 if ok else 503)


@app.task
async def warm_up() -> None:
    """Load the model and connect to PostgreSQL as the worker starts. A worker that cannot serve (no bundle,
    a bundle that fails verification) exits at once with the reason, before it has consumed anything, so a
    supervisor or `docker compose` shows the error instead of a worker that is up but never ready."""
    try:
        await in_model_thread(runtime.get)
    except Exception as exc:  # noqa: BLE001 - any reason to be unable to serve is fatal here
        logger.critical("worker cannot start: %s", exc)
        os._exit(2)


@app.on_before_shutdown.connect
async def stop_retrying(app: faust.App, **kwargs: Any) -> None:
    if runtime.store is not None:
        runtime.store.stopping.set()


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()

__all__ = ["app", "StoreUnavailable"]
