"""Serving the current bundle, and swapping it when ``models/current`` points elsewhere (hot reload).

The new bundle is loaded and verified (checksums, ONNX Runtime sessions, a warm-up) beside the old one; only
a bundle that passes replaces it, and the swap is one reference assignment that batches pick up at their
start, so a batch is always scored by one model. A bad bundle is refused, counted, logged, and remembered so
it is not retried every few seconds; the old model keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from streamscore.bundle import CURRENT, BundleError
from streamscore.call_plan import CallPlan
from streamscore.scorer import Scorer, Variant
from worker.adapters.prometheus import MODEL_INFO, MODEL_RELOADS, publish_build_info

logger = logging.getLogger(__name__)


class ModelHolder:
    """Owns the process's single scorer."""

    def __init__(
        self,
        models_dir: Path,
        variant: Variant = "auto",
        threads: int = 0,
        token_budget: int = 0,
        call_plan: CallPlan = "least-cost",
        parallel_calls: int = 0,
    ):
        self.pointer = Path(models_dir) / CURRENT
        self.variant: Variant = variant
        self.threads = threads
        self.parallel_calls = parallel_calls
        self.token_budget = token_budget
        self.call_plan: CallPlan = call_plan
        self.lock = threading.Lock()
        self.scorer = self._load(self._target())
        self.loaded_target = self._target()
        self.refused: str | None = None
        self.last_error: str | None = None
        self._publish()

    def _target(self) -> str:
        try:
            return os.path.realpath(self.pointer, strict=True)
        except OSError as exc:
            raise BundleError(self.pointer, f"no current bundle ({exc.strerror}); run `streamscore export`") from exc

    def _load(self, target: str) -> Scorer:
        return Scorer(
            target,
            variant=self.variant,
            threads=self.threads,
            parallel_calls=self.parallel_calls,
            token_budget=self.token_budget,
            call_plan=self.call_plan,
        )

    def _publish(self) -> None:
        MODEL_INFO.clear()
        MODEL_INFO.labels(self.scorer.version, self.scorer.variant, ",".join(self.scorer.providers)).set(1)
        publish_build_info(self.scorer.version)

    @property
    def version(self) -> str:
        return self.scorer.version

    def check(self) -> bool:
        """Swap to the bundle ``current`` points at, if it changed and verifies. True when swapped."""
        with self.lock:
            try:
                target = self._target()
            except BundleError as exc:
                self.last_error = str(exc)
                return False
            if target in (self.loaded_target, self.refused):
                return False
            try:
                scorer = self._load(target)
            except Exception as exc:  # BundleError, or anything a damaged tokenizer/graph raises while loading
                reason = exc.reason if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
                self.refused, self.last_error = target, reason
                MODEL_RELOADS.labels("refused").inc()
                logger.error(
                    "new bundle refused; the old model keeps serving",
                    extra={"bundle": target, "reason": reason, "serving": self.version},
                )
                return False
            old = self.scorer.version
            self.scorer, self.loaded_target, self.refused, self.last_error = scorer, target, None, None
            MODEL_RELOADS.labels("swapped").inc()
            self._publish()
            logger.warning(
                "model swapped", extra={"from": old, "to": scorer.version, "providers": ",".join(scorer.providers)}
            )
            return True
