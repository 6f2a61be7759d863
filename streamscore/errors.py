"""One root exception for the project, with narrow subclasses that carry what a caller needs to react.

Each stage keeps its own errors in its ``errors.py`` (``trainer.errors``, ``export.errors``,
``worker.errors``, ``ops.errors``), all under :class:`StreamscoreError`. This module holds the root and the
errors of the contracts themselves (settings, bundles).

The CLI turns any :class:`StreamscoreError` into a one-line message and a non-zero exit instead of a
traceback, so every message here is written for the person who has to fix the input.
"""

from __future__ import annotations

from pathlib import Path


class StreamscoreError(Exception):
    """Root of every error raised on purpose by streamscore."""


class ConfigurationError(StreamscoreError):
    """A setting or a required local resource (dataset folder, pretrained encoder) is missing or wrong."""


class BundleError(StreamscoreError):
    """A bundle is missing, incomplete, tampered with, or of an unknown format."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"bundle {self.path}: {reason}")
