"""Errors of the streaming stage: what a micro-batch could not reach. Both keep the batch's offsets
uncommitted, so its records are redelivered rather than lost."""

from __future__ import annotations

from streamscore.errors import StreamscoreError


class WorkerError(StreamscoreError):
    """Root of the streaming stage's errors."""


class StoreUnavailable(WorkerError):
    """The worker is stopping while PostgreSQL is still unreachable: the batch was not stored."""


class OutputUnavailable(WorkerError):
    """Producing a batch's outputs to Kafka failed; the batch's transaction rolls back and is retried."""
