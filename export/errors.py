"""Errors of the export stage, named after the check that failed."""

from __future__ import annotations

from streamscore.errors import StreamscoreError


class ExportError(StreamscoreError):
    """Root of the export stage's errors."""


class ToleranceExceeded(ExportError):
    """An exported graph does not reproduce the checkpoint within tolerance (parity), or a quantised variant
    loses more accuracy than its gate allows. Carries what was measured and the limit it broke."""

    def __init__(self, what: str, measured: float, limit: float, detail: str = ""):
        self.what, self.measured, self.limit = what, measured, limit
        super().__init__(f"{what}: {measured:.6g} exceeds the limit {limit:.6g}{' (' + detail + ')' if detail else ''}")
