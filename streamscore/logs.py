"""Structured, quiet-by-default logging.

Records are written as one ``key=value`` line each (logfmt) or as JSON lines, to stderr, so that progress
bars on the terminal and log collectors in production both read them. Libraries below WARNING are muted.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="…" key=value`` lines, readable by people and by grep."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str)


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners and CLIs swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str = "WARNING", fmt: str = "logfmt") -> None:
    """Install one stderr handler on the root logger; safe to call more than once."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("streamscore").setLevel(level.upper())
    for stage in ("trainer", "export", "worker", "ops"):
        logging.getLogger(stage).setLevel(level.upper())
    # kafka-python times its own I/O tasks and warns when one exceeds 100 ms: on a loaded machine that is
    # CPU contention, not a fault anyone can act on; its real errors still come through at ERROR.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    # a metadata refresh that finds no open connection warns, then connects and retries by itself; a cluster
    # that really cannot be reached still surfaces as the delivery timeout's error
    logging.getLogger("kafka.cluster").setLevel(logging.ERROR)
