"""What ``streamscore alerts forward`` sends, and when it tries again: pure functions, no I/O.

Two receivers are understood. ``alertmanager``: the body of Prometheus Alertmanager's ``POST /api/v2/alerts``
(a list of alerts with labels, annotations and start/end times), so Alertmanager groups, silences and routes
surges like any other alert; a resolved surge carries ``endsAt``. ``slack``: a Slack incoming-webhook message
(``text`` plus blocks). Each state change of an alert (``alert_id``, ``status``, ``seq``) is delivered once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

from streamscore.events import AlertEvent


class WebhookFormat(StrEnum):
    alertmanager = "alertmanager"
    slack = "slack"


def delivery_key(alert: AlertEvent) -> tuple[str, str, int]:
    """One state change of one alert: what deduplication is keyed on."""
    return alert.alert_id, alert.status, alert.seq


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def alertmanager_body(alert: AlertEvent, headlines: list[str], source_url: str | None = None) -> list[dict]:
    """Alertmanager API v2 ``postableAlerts``: the labels identify the surge (Alertmanager deduplicates on them),
    the annotations say what happened and why."""
    item: dict = {
        "labels": {
            "alertname": "NegativeNewsSurge",
            "entity": alert.entity,
            "alert_id": alert.alert_id,
            "severity": "warning",
            "source": "streamscore",
        },
        "annotations": {
            "summary": f"Negative-news surge for {alert.entity}",
            "description": (
                f"{alert.negative_count} of {alert.total_count} headlines negative "
                f"({alert.negative_share:.0%} vs a usual {alert.baseline_share:.0%}, z {alert.score:.1f}) "
                f"between {_iso(alert.window_start)} and {_iso(alert.window_end)}; model {alert.model_version}."
            ),
            "status": alert.status,
            "evidence": " | ".join(headlines) if headlines else ", ".join(alert.evidence),
        },
        "startsAt": _iso(alert.window_start),
    }
    if alert.status == "resolved":
        item["endsAt"] = _iso(alert.ts)
    if source_url:
        item["generatorURL"] = source_url
    return [item]


def slack_body(alert: AlertEvent, headlines: list[str], source_url: str | None = None) -> dict:
    """A Slack incoming-webhook message: one line of text (notifications show it) and blocks with the evidence."""
    verb = {"raised": "raised", "updated": "still rising", "resolved": "resolved"}[alert.status]
    icon = ":large_green_circle:" if alert.status == "resolved" else ":red_circle:"
    text = (
        f"{icon} Negative-news surge {verb} for *{alert.entity}*: {alert.negative_count}/{alert.total_count} "
        f"negative ({alert.negative_share:.0%} vs {alert.baseline_share:.0%} usual)"
    )
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if headlines:
        bullets = "\n".join(f"• {h}" for h in headlines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Evidence*\n{bullets}"}})
    context = f"alert {alert.alert_id} · state {alert.seq} · model {alert.model_version}"
    if source_url:
        context += f" · <{source_url}|dashboard>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}


def webhook_body(
    fmt: WebhookFormat, alert: AlertEvent, headlines: list[str], source_url: str | None = None
) -> list[dict] | dict:
    if fmt is WebhookFormat.alertmanager:
        return alertmanager_body(alert, headlines, source_url)
    return slack_body(alert, headlines, source_url)


def retry_delays(base_s: float, cap_s: float, rng: random.Random | None = None) -> Iterator[float]:
    """Exponential back-off with full jitter (a uniform draw up to ``base · 2^n``, capped), so forwarders that
    failed together do not retry together."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield rng.uniform(0, min(cap_s, base_s * 2**attempt))
        attempt += 1


def is_retryable(status: int | None) -> bool:
    """Network errors (no status), throttling and server errors are retried; any other 4xx means the request
    itself is wrong (a bad URL or token) and retrying cannot help."""
    return status is None or status == 429 or status >= 500
