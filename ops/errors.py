"""Errors of the operator shell: the local services it starts and the runs it drives."""

from __future__ import annotations

from streamscore.errors import StreamscoreError


class StackError(StreamscoreError):
    """A local service (Kafka, PostgreSQL) could not be set up, started or reached."""

    def __init__(self, service: str, reason: str, log_tail: str = ""):
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
        message = f"{service}: {reason}"
        if log_tail:
            message += f"\n--- last log lines ---\n{log_tail}"
        super().__init__(message)


class ProduceFailed(StreamscoreError):
    """Records a replay sent were not acknowledged by the brokers within the delivery timeout."""


class IntervalError(StreamscoreError):
    """A duration or point in time given on the command line could not be read."""
