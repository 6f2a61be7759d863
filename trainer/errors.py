"""Errors of the training stage: input files and checkpoints, each carrying what a caller needs to react."""

from __future__ import annotations

from pathlib import Path

from streamscore.errors import StreamscoreError


class TrainerError(StreamscoreError):
    """Root of the training stage's errors."""


class DataFormatError(TrainerError):
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


class CheckpointError(TrainerError):
    """A checkpoint folder is missing files or was written by an incompatible version."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
