"""Durations and look-backs as operators type them (``90s``, ``15m``, ``1h``, ``30d``, or an ISO-8601 time),
shared by ``retrain --since/--every`` and ``db prune --older-than``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ops.errors import IntervalError

INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(value: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1d"`` (or plain seconds) → seconds."""
    raw = value.strip().lower()
    unit = raw[-1] if raw and raw[-1] in INTERVAL_UNITS else "s"
    number = raw[:-1] if raw and raw[-1] in INTERVAL_UNITS else raw
    try:
        seconds = float(number) * INTERVAL_UNITS[unit]
    except ValueError as exc:
        raise IntervalError(f"not an interval: {value!r} (e.g. 90s, 15m, 1h)") from exc
    if seconds <= 0:
        raise IntervalError(f"the interval must be positive: {value!r}")
    return seconds


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (UTC when no zone is given) or a look-back such as ``"7d"`` / ``"12h"``."""
    now = now or datetime.now(UTC)
    raw = value.strip()
    if raw and raw[-1].lower() in INTERVAL_UNITS and raw[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(seconds=parse_interval(raw))
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IntervalError(f"{value!r} is neither an ISO-8601 time nor a look-back like 7d") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
