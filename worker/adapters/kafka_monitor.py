"""Faust's monitor, extended to feed the worker's Prometheus metrics with what only the consumer sees:
commit latency, rebalances and the offsets behind the per-partition lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.sensors.monitor import Monitor

from worker.adapters.prometheus import COMMIT_SECONDS, REBALANCE_SECONDS, REBALANCES


class KafkaMonitor(Monitor):
    """Faust calls the app's monitor (not every sensor) with end and committed offsets, so this is where the
    lag's inputs are available; commit and rebalance timings come through the same hooks."""

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        COMMIT_SECONDS.observe(self.secs_since(state))

    def on_rebalance_start(self, app: Any) -> dict:
        state = super().on_rebalance_start(app)
        REBALANCES.inc()
        return state

    def on_rebalance_end(self, app: Any, state: dict) -> None:
        super().on_rebalance_end(app, state)
        REBALANCE_SECONDS.observe(state["latency_end"])

    def partition_offsets(self, assigned: set[Any]) -> Iterator[tuple[str, int, int, int | None]]:
        """End and committed offset of each assigned partition the consumer has fetched from."""
        for tp, end in list(self.tp_end_offsets.items()):
            if tp in assigned and end is not None:
                yield tp.topic, tp.partition, end, self.tp_committed_offsets.get(tp)
