"""One root exception for the project, with narrow subclasses that carry what a caller needs to react.

The CLI turns any :class:`StreamscoreError` into a one-line message and a non-zero exit instead of a
traceback, so every message here is written for the person who has to fix the input.
"""

from __future__ import annotations

from pathlib import Path


class StreamscoreError(Exception):
    """Root of every error raised on purpose by streamscore."""


class ConfigurationError(StreamscoreError):
    """A setting or a required local resource (dataset folder, pretrained encoder) is missing or wrong."""


class DataFormatError(StreamscoreError):
    """A row of an input file does not have the documented shape.

    Carries the file, the 1-based data row (the header is row 0), the column and what was expected,
    so the message points at the exact cell to fix.
    """

    def __init__(self, path: Path | str, row: int | None, column: str | None, expected: str, got: object = None):
        self.path = Path(path)
        self.row = row
        self.column = column
        self.expected = expected
        self.got = got
        where = f"{self.path}"
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        detail = f"expected {expected}"
        if got is not None:
            shown = repr(got)
            detail += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
        super().__init__(f"{where}: {detail}")


class CheckpointError(StreamscoreError):
    """A checkpoint folder is missing files or was written by an incompatible version."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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
