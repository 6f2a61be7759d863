"""One micro-batch of one input topic: validate → score → decide → store and emit.

The agents in :mod:`worker.app` are thin: they collect records with ``stream.take_events`` and run
:meth:`Pipeline.process_batch` in the process's single model thread, off the event loop. The per-topic logic
lives in :mod:`worker.paths`; the delivery guarantees are stated in :mod:`worker.paths.core`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from streamscore.topics import Topics
from worker.adapters import results_store as sql
from worker.adapters.model_holder import ModelHolder
from worker.adapters.results_store import Store
from worker.domain.intake import Record, dead_letter
from worker.errors import StoreUnavailable
from worker.paths.clicks import ClicksPath
from worker.paths.core import BatchCore, BatchReport, Emit, PipelineConfig
from worker.paths.feedback import FeedbackPath
from worker.paths.items import ItemsPath
from worker.paths.news import NewsPath, ScoredNews, StartedNews

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unscored:
    """A record whose scoring failed on its own, and why: stored as a ``processing_error`` dead letter."""

    record: Record
    error: Exception


def merged(reports: Sequence[BatchReport]) -> BatchReport:
    """The reports of one batch's parts (stored record by record) as one."""
    total = BatchReport(reports[0].topic, model_version=reports[0].model_version)
    for report in reports:
        total.merge(report)
    return total


class Pipeline:
    """Everything one worker process does with a batch, independent of Faust."""

    def __init__(
        self, models: ModelHolder, store: Store, topics: Topics, emit: Emit, config: PipelineConfig = PipelineConfig()
    ):
        self.core = BatchCore(models, store, topics, emit, config)
        self.news = NewsPath(self.core)
        self.items = ItemsPath(self.core)
        self.clicks = ClicksPath(self.core, self.items)
        self.feedback = FeedbackPath(self.core)
        self.paths: dict[str, Callable[[Sequence[Record]], BatchReport]] = {
            "news": lambda records: self.score_ahead(records)(),
            "items": self.items.process,
            "clicks": self.clicks.process,
            "feedback": self.feedback.process,
        }
        self.registered: set[str] = set()

    @property
    def models(self) -> ModelHolder:
        return self.core.models

    def register_model(self) -> None:
        """Record the serving bundle in ``model_versions`` (once per version and process)."""
        scorer = self.models.scorer
        if scorer.version in self.registered:
            return
        manifest = scorer.bundle.manifest
        created = datetime.fromisoformat(manifest["created_at"])
        self.core.store.transaction(
            lambda conn: sql.register_model(conn, scorer.version, created, manifest.get("source_checkpoint"), manifest)
        )
        self.registered.add(scorer.version)

    def reembed_stale(self, limit: int = 256) -> int:
        return self.items.reembed_stale(limit)

    def score_ahead(self, records: Sequence[Record]) -> Callable[[], BatchReport]:
        """Start scoring a news batch (in the model thread); the step returned collects the scores and stores
        them (in the store thread).

        This returns once the batch's calls have nearly all begun, not when they end, so the model thread
        prepares the next batch while this one's calls still run and the call pool does not wait for it.

        The same last line of defence as :meth:`process_batch`, without scoring anything twice and without
        storing out of order: a batch that fails to score is scored record by record (here if it failed to
        start, in the returned step if a call failed), and a batch the database refuses is stored record by
        record by the returned step; a record that still fails becomes a ``processing_error`` dead letter."""
        started: StartedNews | None = None
        scored_alone: list[ScoredNews | Unscored] = []
        try:
            started = self.news.start(records)
            started.wait_for_room()
        except Exception:
            logger.exception("batch not scored; scoring its records one by one", extra={"records": len(records)})
            scored_alone = [self._score_alone(record) for record in records]

        def store() -> BatchReport:
            parts = scored_alone if started is None else self._finish_scoring(started, records)
            reports = [self._store_scored(part) for part in parts]
            return reports[0] if len(reports) == 1 else merged(reports)

        return store

    def _finish_scoring(self, started: StartedNews, records: Sequence[Record]) -> list[ScoredNews | Unscored]:
        try:
            return [self.news.finish_scoring(started)]
        except Exception:
            logger.exception("batch not scored; scoring its records one by one", extra={"records": len(records)})
            return [self._score_alone(record) for record in records]

    def _score_alone(self, record: Record) -> ScoredNews | Unscored:
        try:
            return self.news.score([record])
        except Exception as exc:
            logger.exception("record not scored", extra={"partition": record.partition, "offset": record.offset})
            return Unscored(record, exc)

    def _store_scored(self, part: ScoredNews | Unscored) -> BatchReport:
        if isinstance(part, Unscored):
            return self._reject(part.record, part.error)
        try:
            return self.news.store(part)
        except StoreUnavailable:
            raise
        except Exception as exc:
            logger.exception("batch not stored; storing its records one by one", extra={"records": len(part.records)})
            if len(part.records) > 1:
                return merged([self._store_scored(one) for one in part.split()])
            return self._reject(part.records[0], exc)

    def process_batch(self, kind: str, records: Sequence[Record]) -> BatchReport:
        """Run one path with a last line of defence: if a batch fails for a reason that is not transient
        (a bug, or data the database refuses), its records are retried one by one and a record that still
        fails becomes a ``processing_error`` dead letter. The worker never crashes on input."""
        try:
            return self.paths[kind](records)
        except StoreUnavailable:
            raise
        except Exception as exc:
            logger.exception(
                "batch failed; retrying its records one by one", extra={"kind": kind, "records": len(records)}
            )
            if len(records) > 1:
                return merged([self.process_batch(kind, [r]) for r in records])
            return self._reject(records[0], exc)

    def _reject(self, record: Record, exc: Exception) -> BatchReport:
        started = time.perf_counter()
        letter = dead_letter(record, "processing_error", f"{type(exc).__name__}: {exc}")
        report = BatchReport(record.topic, received=1, model_version=self.models.version)
        self.core.store.transaction(lambda conn: self.core.finish(conn, report, [letter], []))
        return self.core.account(report, [record], [letter], started)
