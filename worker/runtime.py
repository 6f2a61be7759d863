"""The worker's wiring: settings → store, model holder and pipeline, the single model thread they run in,
and the bridge that produces a batch's outputs on the event loop and waits for the broker.

Kept apart from :mod:`worker.app` so the Faust module declares only the app, its topics, agents, pages and
timers, and so that everything here can be read (and built) without starting Faust.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import faust

from streamscore.db.connection import writer_url
from streamscore.security import ssl_context
from streamscore.settings import Settings
from streamscore.topics import Topics
from worker.adapters import results_store as sql
from worker.adapters.kafka_monitor import KafkaMonitor
from worker.adapters.model_holder import ModelHolder
from worker.adapters.prometheus import DB_RETRIES, SERVED_HIT_RATIO, SERVED_LISTS, SERVED_NDCG
from worker.adapters.results_store import Store
from worker.domain.alerts import AlertRule
from worker.domain.batch_policy import BatchPolicy
from worker.domain.intake import Record
from worker.errors import OutputUnavailable
from worker.paths.core import BatchReport, Output, PipelineConfig, report_line
from worker.pipeline import Pipeline

T = TypeVar("T")
logger = logging.getLogger("worker")


class Producer(Protocol):
    async def send(self, topic: str, key: bytes, value: bytes, partition: Any, timestamp: Any, headers: Any) -> Any: ...


class ConsumedEvent(Protocol):
    """What the runtime needs of a Faust event: its message, which can be held back from the commit, and the
    acknowledgement that lets its offset be committed once the last reference is gone."""

    message: Any
    app: Any

    def ack(self) -> bool: ...


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for the Faust app (None for PLAINTEXT), from the same settings every client reads."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    assert settings.kafka_sasl_password is not None
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )


def faust_app_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of the ``faust.App``: brokers, web server, group timing, credentials."""
    (settings.stack_dir / "faust").mkdir(parents=True, exist_ok=True)
    return {
        "broker": [f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        "web_port": settings.worker_web_port,
        "web_bind": settings.worker_web_bind,
        "web_host": settings.worker_web_bind,
        "datadir": str(settings.stack_dir / "faust" / f"{settings.worker_group}-{settings.worker_web_port}"),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": settings.worker_session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.worker_session_timeout_s / 3),
        "logging_config": None,
        "broker_credentials": faust_credentials(settings),
        "Monitor": KafkaMonitor,
    }


def alert_rule(settings: Settings) -> AlertRule:
    """The surge rule the settings configure (also what offline replays of a scenario fold through)."""
    return AlertRule(
        window_s=settings.alert_window_s,
        min_count=settings.alert_min_count,
        ratio=settings.alert_ratio,
        min_share=settings.alert_min_share,
        z_threshold=settings.alert_z_threshold,
        cooldown_s=settings.alert_cooldown_s,
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        batch=BatchPolicy(settings.batch_max_events, settings.batch_max_wait_ms, settings.batch_max_tokens),
        rule=alert_rule(settings),
        max_future_skew_s=settings.max_future_skew_s,
        recommend_k=settings.recommend_k,
        cold_start_min_history=settings.cold_start_min_history,
        catalog_refresh_s=settings.catalog_refresh_s,
        popular_window_s=settings.popular_window_s,
        alert_states_kept=settings.worker_alert_states_kept,
    )


class Runtime:
    """Pipeline, model and store, built on first use inside the model thread (loading takes seconds).

    One scorer per process, used from one thread: ONNX Runtime already spreads a batch over the cores, and
    the event loop stays free for heartbeats, fetching, commits, the producer and the web server.
    """

    def __init__(self, settings: Settings, topics: Topics, producer: Callable[[], Producer]):
        self.settings = settings
        self.topics = topics
        self.producer = producer
        self.pipeline: Pipeline | None = None
        self.store: Store | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamscore-model")
        self.store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamscore-store")
        self.news_write: asyncio.Future[None] | None = None
        """The news batch being written while the next one is scored (one at a time, so writes keep their order)."""

    def get(self) -> Pipeline:
        with self.lock:
            if self.pipeline is None:
                s = self.settings
                self.store = Store(writer_url(s), s.db_retry_max_s, on_retry=lambda exc: DB_RETRIES.inc())
                models = ModelHolder(
                    s.models_dir,
                    s.model_variant,
                    s.worker_threads,
                    s.inference_max_tokens,
                    s.inference_call_plan,
                    s.inference_parallel_calls,
                )
                self.pipeline = Pipeline(models, self.store, self.topics, self.emit, pipeline_config(s))
                self.pipeline.register_model()
                logger.warning(
                    "worker ready",
                    extra={
                        "model": models.version,
                        "providers": ",".join(models.scorer.providers),
                        "variant": models.scorer.variant,
                        "parallel_calls": models.scorer.parallel_calls,
                    },
                )
            return self.pipeline

    def emit(self, outputs: list[Output]) -> None:
        """Called from the model thread: produce on the loop and block until the broker acknowledged all."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(self._produce(outputs), self.loop)
        try:
            future.result(timeout=120)
        except Exception as exc:
            future.cancel()
            raise OutputUnavailable(f"producing {len(outputs)} outputs failed: {exc!r}") from exc

    async def _produce(self, outputs: Sequence[Output]) -> None:
        producer = self.producer()
        pending = [
            await producer.send(o.topic, o.key.encode(), o.value, partition=None, timestamp=None, headers=None)
            for o in outputs
        ]
        await asyncio.gather(*pending)

    async def in_model_thread(self, fn: Callable[..., T], *args: Any) -> T:
        self.loop = asyncio.get_running_loop()
        return await self.loop.run_in_executor(self.model_thread, fn, *args)

    async def handle(self, events: Sequence[ConsumedEvent], kind: str) -> None:
        """Run one batch; if it cannot be stored, keep its records unacknowledged so no offset passes them."""
        records = [
            Record(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.message.value,
                (e.message.timestamp or 0) * 1000 or None,
            )
            for e in events
        ]
        if kind == "news" and self.settings.worker_overlap_store:
            await self._handle_ahead(events, records)
            return
        try:
            report: BatchReport = await self.in_model_thread(lambda: self.get().process_batch(kind, records))
        except BaseException:
            # take_events acknowledges the batch on the way out even when we raise; an extra reference keeps
            # these messages from ever reaching the committed offset in this process (they are redelivered).
            for event in events:
                event.message.incref()
            raise
        if logger.isEnabledFor(logging.INFO):
            logger.info("batch", extra={"report": report_line(report)})

    async def _handle_ahead(self, events: Sequence[ConsumedEvent], records: list[Record]) -> None:
        """Score this batch in the model thread while the previous one is still being stored, then store it
        in the store thread once the previous write is done, and return for the next batch.

        Each message gets an extra reference first, so the acknowledgement ``take_events`` gives on our return
        is not the last one: the offset becomes committable only when :meth:`_store` acknowledges it after the
        transaction committed. Faust commits the lowest unacknowledged offset of each partition, so a slow or
        failed write is never passed; a rebalance waits for the write in flight (``Consumer.wait_empty``) and
        so does a graceful stop (:meth:`drain`); a failed write leaves its messages held, and the next batch
        raises its error here, as :meth:`handle` would."""
        for event in events:
            event.message.incref()
        store = await self.in_model_thread(lambda: self.get().score_ahead(records))
        previous, self.news_write = self.news_write, None
        if previous is not None:
            await previous
        task = asyncio.ensure_future(self._store(store, events))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged in _store; raised by the next batch
        self.news_write = task

    async def drain(self) -> None:
        """Wait for the write in flight (a graceful stop: their offsets can then be committed on the way out,
        so the next owner of the partitions does not get them again)."""
        task, self.news_write = self.news_write, None
        if task is not None:
            try:
                await task
            except Exception:  # noqa: BLE001 - logged in _store; the messages stay uncommitted
                pass

    async def _store(self, store: Callable[[], BatchReport], events: Sequence[ConsumedEvent]) -> None:
        assert self.loop is not None
        try:
            report = await self.loop.run_in_executor(self.store_thread, store)
        except BaseException:
            logger.exception("batch not stored; its offsets stay uncommitted", extra={"records": len(events)})
            raise
        for event in events:
            if event.ack():
                message = event.message
                event.app.sensors.on_message_out(message.tp, message.offset, message)
        if logger.isEnabledFor(logging.INFO):
            logger.info("batch", extra={"report": report_line(report)})

    async def reload_model(self) -> None:
        """Hot reload: load a new bundle beside the old one (another thread), swap between batches."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(None, pipeline.models.check):
            await self.in_model_thread(pipeline.register_model)
            while await self.in_model_thread(pipeline.reembed_stale):
                pass  # one chunk per call, so scoring batches interleave with the re-embedding

    async def refresh_served_metrics(self) -> None:
        """Online evaluation on ``/metrics``: how the most recent served lists fared (a read, off the model
        thread; a failed read leaves the last figures in place and is logged)."""
        store = self.store
        if store is None:
            return
        n = self.settings.served_metrics_lists
        try:
            rows = await asyncio.to_thread(store.transaction, lambda conn: sql.served_outcomes(conn, n))
        except Exception as exc:  # noqa: BLE001 - metrics must never take the worker down
            logger.warning("served-list metrics not refreshed: %s", exc)
            return
        for version, lists, hits, ndcg in rows:
            SERVED_LISTS.labels(version).set(lists)
            SERVED_HIT_RATIO.labels(version).set(hits)
            SERVED_NDCG.labels(version).set(ndcg)

    def readiness(self, assigned_partitions: int) -> dict[str, Any]:
        pipeline, store = self.pipeline, self.store
        body = {
            "model_loaded": pipeline is not None,
            "database_ok": bool(store and store.healthy),
            "model_version": pipeline.models.version if pipeline else None,
            "providers": list(pipeline.models.scorer.providers) if pipeline else [],
            "last_reload_error": pipeline.models.last_error if pipeline else None,
            "assigned_partitions": assigned_partitions,
            "news_store_overlap": self.settings.worker_overlap_store,
        }
        return {"ready": body["model_loaded"] and body["database_ok"], **body}
