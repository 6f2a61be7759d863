"""The worker's wiring: settings → store, model holder and pipeline, the single model thread they run in,
and the bridge that produces a batch's outputs on the event loop and waits for the broker.

Kept apart from :mod:`worker.app` so the Faust module declares only the app, its topics, agents, pages and
timers, and so that everything here can be read (and built) without starting Faust.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
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
from worker.errors import OutputUnavailable, StoreUnavailable
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


def as_records(events: Sequence[ConsumedEvent]) -> list[Record]:
    """The pipeline's view of Faust events: topic, partition, offset, raw value, broker time in ms."""
    return [
        Record(
            e.message.topic,
            e.message.partition,
            e.message.offset,
            e.message.value,
            (e.message.timestamp or 0) * 1000 or None,
        )
        for e in events
    ]


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
        self.news_gathered: list[ConsumedEvent] = []
        """News messages gathered while the model was busy: its next batch."""
        self.news_modelled: asyncio.Future[Any] | None = None
        """The model-thread step of the last news batch handed over."""
        self.news_pending: deque[asyncio.Future[None]] = deque()
        """Each news batch handed over and not yet acknowledged, oldest first (its stored-then-acked step)."""
        self.news_failed: BaseException | None = None
        """Why a news batch could not be stored; no later news batch is stored after it in this process."""

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
        if kind == "news":
            await self._handle_news(events)
            return
        records = as_records(events)
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

    async def _handle_news(self, events: Sequence[ConsumedEvent]) -> None:
        """Gather news while the model scores: what arrives while it is busy becomes its next batch.

        ``take_events`` gathers nothing while the agent holds a batch, so an agent that waited for its batch
        to be scored left the model idle through the whole next gathering window (``batch_max_wait_ms``), and
        fed it only what that window brought. With ``worker_news_gather_while_scoring`` (the default) the
        agent returns at once: while the model is busy, what it brings is added to the next batch, which is
        handed over the moment the model is free (or, once it holds ``batch_max_events``, the agent waits for
        the model). An idle model gets a batch at once, so a light stream keeps its latency.

        Each message gets an extra reference first, so the acknowledgement ``take_events`` gives on our return
        is not the last one: the offset becomes committable only when :meth:`_finish_news` acknowledges it
        after the batch's transaction committed. Faust commits the lowest unacknowledged offset of each
        partition, so a slow or failed write is never passed. Writes keep the order of the batches: in the
        store thread (``worker_overlap_store``, the default) by each write waiting for the one before, in the
        model thread by its queue. Once a batch could not be stored, no later news batch is, and the next
        batch raises its error here, as a failed batch of another path does; a rebalance waits for every
        message held (``Consumer.wait_empty``), and a graceful stop for every batch (:meth:`drain`)."""
        self.loop = asyncio.get_running_loop()
        for event in events:
            event.message.incref()
        if self.news_failed is not None:
            raise StoreUnavailable(f"an earlier news batch was not stored: {self.news_failed!r}")
        self.news_gathered.extend(events)
        if not self.settings.worker_news_gather_while_scoring:
            await asyncio.wait([self._hand_over_news()])
        elif self.news_modelled is not None and not self.news_modelled.done():
            if len(self.news_gathered) >= self.settings.batch_max_events:
                await asyncio.wait([self.news_modelled])  # full: wait for the model, which then takes it
        if self.news_gathered and not self._model_busy_with_news():
            self._hand_over_news()
        # writes in flight stay few (the store thread may be slower than the model); a failed one raises here
        while self.news_pending and (self.news_pending[0].done() or len(self.news_pending) > 2):
            await self.news_pending.popleft()

    def _model_busy_with_news(self) -> bool:
        return self.news_modelled is not None and not self.news_modelled.done()

    def _hand_over_news(self) -> asyncio.Future[Any]:
        """Give the gathered news messages, up to ``batch_max_events``, to the model thread as one batch (on the
        event loop); the rest stays gathered for the model's next free moment."""
        assert self.loop is not None
        limit = self.settings.batch_max_events
        events, self.news_gathered = self.news_gathered[:limit], self.news_gathered[limit:]
        records = as_records(events)
        overlap = self.settings.worker_overlap_store
        step = (lambda: self.get().score_ahead(records)) if overlap else (lambda: self._process_news(records))
        modelled = self.loop.run_in_executor(self.model_thread, step)
        previous = self.news_pending[-1] if overlap and self.news_pending else None
        finished = asyncio.ensure_future(self._finish_news(modelled, previous, events, overlap))
        finished.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged in _finish_news
        self.news_modelled = modelled
        self.news_pending.append(finished)
        if self.settings.worker_news_gather_while_scoring:
            modelled.add_done_callback(lambda _: self._model_free_for_news())
        return modelled

    def _model_free_for_news(self) -> None:
        """The model finished a news batch: hand it what was gathered meanwhile (up to a batch), unless a batch
        has failed."""
        if self.news_gathered and self.news_failed is None and not self._model_busy_with_news():
            self._hand_over_news()

    def _process_news(self, records: list[Record]) -> BatchReport:
        """Score and store one news batch in the model thread, unless an earlier one failed to store."""
        if self.news_failed is not None:
            raise StoreUnavailable(f"an earlier news batch was not stored: {self.news_failed!r}")
        try:
            return self.get().process_batch("news", records)
        except BaseException as exc:
            self.news_failed = exc  # set here, before the model thread starts the next batch
            raise

    async def _finish_news(
        self,
        modelled: asyncio.Future[Any],
        previous: asyncio.Future[None] | None,
        events: Sequence[ConsumedEvent],
        overlap: bool,
    ) -> None:
        """Wait for the batch's model step; with the store overlap, write it in the store thread once the batch
        before it is written; then acknowledge its messages."""
        assert self.loop is not None
        try:
            done = await modelled
            if overlap:
                if previous is not None:
                    await previous
                done = await self.loop.run_in_executor(self.store_thread, done)
            report: BatchReport = done
        except BaseException as exc:
            if self.news_failed is None:
                self.news_failed = exc
            logger.exception("batch not stored; its offsets stay uncommitted", extra={"records": len(events)})
            raise
        for event in events:
            if event.ack():
                message = event.message
                event.app.sensors.on_message_out(message.tp, message.offset, message)
        if logger.isEnabledFor(logging.INFO):
            logger.info("batch", extra={"report": report_line(report)})

    async def drain(self) -> None:
        """Hand over what was gathered and wait for every news batch (a graceful stop: their offsets can then be
        committed on the way out, so the next owner of the partitions does not get them again)."""
        while self.news_gathered and self.news_failed is None:
            self._hand_over_news()
        while self.news_pending:
            try:
                await self.news_pending.popleft()
            except Exception:  # noqa: BLE001 - logged in _finish_news; the messages stay uncommitted
                pass

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
            "news_gather_while_scoring": self.settings.worker_news_gather_while_scoring,
        }
        return {"ready": body["model_loaded"] and body["database_ok"], **body}
