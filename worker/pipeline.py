"""One micro-batch of one input topic: validate → score → decide → store and emit.

The agents in :mod:`worker.app` are thin: they collect records with ``stream.take_events`` and run
:meth:`Pipeline.process_batch` in the process's single model thread, off the event loop. The per-topic logic
lives in :mod:`worker.paths`; the delivery guarantees are stated in :mod:`worker.paths.core`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
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
from worker.paths.news import NewsPath

logger = logging.getLogger(__name__)


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
            "news": self.news.process,
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
                reports = [self.process_batch(kind, [r]) for r in records]
                merged = BatchReport(reports[0].topic, model_version=reports[0].model_version)
                for r in reports:
                    merged.merge(r)
                return merged
            return self._reject(records[0], exc)

    def _reject(self, record: Record, exc: Exception) -> BatchReport:
        started = time.perf_counter()
        letter = dead_letter(record, "processing_error", f"{type(exc).__name__}: {exc}")
        report = BatchReport(record.topic, received=1, model_version=self.models.version)
        self.core.store.transaction(lambda conn: self.core.finish(conn, report, [letter], []))
        return self.core.account(report, [record], [letter], started)
