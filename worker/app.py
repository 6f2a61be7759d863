"""The Faust app: ``faust -A worker.app worker`` (or ``streamscore worker``).

Only the app, its topics, agents, pages and timers. Four agents collect raw records in micro-batches
(``stream.take_events``: up to ``batch_max_events`` or ``batch_max_wait_ms``) and hand them to
:class:`worker.runtime.Runtime`, which runs the pipeline in the process's single model thread; Faust
acknowledges them only when the pipeline has stored them.

Web endpoints on ``worker_web_port``: ``/metrics`` (Prometheus), ``/health`` (the process is up) and
``/ready`` (model loaded and PostgreSQL writable).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamscore.logs import configure_logging
from streamscore.settings import get_settings
from streamscore.topics import Topics
from worker.adapters.kafka_monitor import KafkaMonitor
from worker.adapters.prometheus import REGISTRY, register_consumer_lag
from worker.runtime import Runtime, faust_app_options

logger = logging.getLogger("worker")
settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
topics = Topics.from_settings(settings)

app = faust.App(settings.worker_group, **faust_app_options(settings))

news_topic = app.topic(topics.news, key_serializer="raw", value_serializer="raw", allow_empty=True)
items_topic = app.topic(topics.items, key_serializer="raw", value_serializer="raw", allow_empty=True)
clicks_topic = app.topic(topics.clicks, key_serializer="raw", value_serializer="raw", allow_empty=True)
feedback_topic = app.topic(topics.feedback, key_serializer="raw", value_serializer="raw", allow_empty=True)

runtime = Runtime(settings, topics, lambda: app.producer)


def assigned_offsets() -> list[tuple[str, int, int, int | None]]:
    """Offsets of this worker's partitions, for the lag gauge; none before the consumer has started (a scrape
    during warm-up must not fail)."""
    monitor = app.monitor
    if not isinstance(monitor, KafkaMonitor):
        return []
    try:
        assigned = set(app.consumer.assignment())
    except ConsumerNotStarted:
        return []
    return list(monitor.partition_offsets(assigned))


register_consumer_lag(assigned_offsets)


@app.agent(news_topic)
async def score_news(stream: faust.StreamT) -> None:
    """News → sentiment per article, entity surge alerts."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await runtime.handle(events, "news")


@app.agent(items_topic)
async def embed_items(stream: faust.StreamT) -> None:
    """Catalog items → embeddings stored with the model version."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await runtime.handle(events, "items")


@app.agent(clicks_topic)
async def recommend(stream: faust.StreamT) -> None:
    """Clicks → user history, top-K recommendations."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await runtime.handle(events, "clicks")


@app.agent(feedback_topic)
async def store_feedback(stream: faust.StreamT) -> None:
    """Feedback → sentiment corrections and alert verdicts, stored for the retrainer and the dashboards."""
    async for events in stream.take_events(settings.batch_max_events, within=settings.batch_max_wait_ms / 1000):
        await runtime.handle(events, "feedback")


@app.timer(interval=settings.model_reload_interval_s)
async def reload_model() -> None:
    await runtime.reload_model()


@app.timer(interval=settings.served_metrics_interval_s)
async def served_metrics() -> None:
    await runtime.refresh_served_metrics()


@app.page("/metrics")
async def metrics(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    # aiohttp refuses a charset inside content_type; the exposition format is ASCII anyway
    return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")


@app.page("/health")
async def health(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return web.json({"status": "ok"})


@app.page("/ready")
async def ready(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    body = runtime.readiness(len(app.consumer.assignment()) if app.consumer else 0)
    return web.json(body, status=200 if body["ready"] else 503)


@app.task
async def warm_up() -> None:
    """Load the model and connect to PostgreSQL as the worker starts. A worker that cannot serve (no bundle,
    a bundle that fails verification) exits at once with the reason, before it has consumed anything, so a
    supervisor or `docker compose` shows the error instead of a worker that is up but never ready."""
    try:
        await runtime.in_model_thread(runtime.get)
    except Exception as exc:  # noqa: BLE001 - any reason to be unable to serve is fatal here
        logger.critical("worker cannot start: %s", exc)
        os._exit(2)


@app.on_before_shutdown.connect
async def finish_writes(app: faust.App, **kwargs: Any) -> None:
    """Stop retrying an unreachable PostgreSQL, then let the write in flight end, before the consumer commits
    on its way out."""
    if runtime.store is not None:
        runtime.store.stopping.set()
    await runtime.drain()


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
