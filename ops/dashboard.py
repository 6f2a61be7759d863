"""What a dashboard sees: one snapshot read through the read-only role's views (never the base tables).

Used by the demo's live summary and by the tests' reconciliation, so both look at the system the way a
user's dashboard does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, text


@dataclass
class Snapshot:
    processed: dict[str, int] = field(default_factory=dict)
    """Results stored per stream (news, clicks, items)."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """Per error code."""
    recommendations: int = 0
    cold_start_users: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Recommended items per reason kind (liked, next_item, similar_text, popular_now)."""
    example: str | None = None
    """One personal recommendation with its reason, as a user would read it."""
    alerts: list[dict] = field(default_factory=list)
    """Alert timeline rows, oldest first (only those written since the snapshot's ``alerts_since``)."""
    lag_p95_s: float | None = None
    """Worst p95 event-to-result lag over the last two minutes (from Kafka ingestion time)."""

    @property
    def accounted(self) -> int:
        """News, click and feedback results plus dead letters: each input record ends as exactly one of them."""
        kept = sum(self.processed.get(stream, 0) for stream in ("news", "clicks", "feedback"))
        return kept + sum(self.dead_letters.values())


def database_now(engine: Engine) -> datetime:
    """The database's clock: what ``alerts_since`` compares with, so a skewed local clock cannot hide alerts."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT now()")).scalar_one()


def snapshot(engine: Engine, alerts_since: datetime | None = None) -> Snapshot:
    """Counters over everything stored; alerts only from ``alerts_since`` on (all when ``None``): a database
    that served earlier runs keeps their alerts, and a run's summary must not count them as its own."""
    with engine.connect() as conn:
        processed = dict(
            conn.execute(text("SELECT stream, sum(events)::bigint FROM v_throughput_per_minute GROUP BY stream")).all()
        )
        dead = dict(
            conn.execute(
                text("SELECT error_code, sum(events)::bigint FROM v_dead_letters_by_reason GROUP BY error_code")
            ).all()
        )
        recs, cold = conn.execute(
            text("SELECT count(*), count(*) FILTER (WHERE cold_start) FROM v_recommendation_freshness")
        ).one()
        alerts = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT alert_id, entity, status, seq, negative_count, total_count, negative_share, "
                    "baseline_share, score, evidence, model_version FROM v_alert_timeline "
                    "WHERE CAST(:since AS timestamptz) IS NULL OR created_at >= :since"
                ),
                {"since": alerts_since},
            )
        ]
        reasons = dict(
            conn.execute(text("SELECT reason_kind, sum(items)::bigint FROM v_recommendation_reasons GROUP BY 1")).all()
        )
        example = conn.execute(
            text(
                "SELECT user_id, item_id, reason FROM v_recommendation_items "
                "WHERE position = 1 AND NOT cold_start ORDER BY event_ts DESC, user_id LIMIT 1"
            )
        ).first()
        lag = conn.execute(
            text("SELECT max(p95_lag_s) FROM v_throughput_per_minute WHERE minute >= now() - interval '2 minutes'")
        ).scalar()
    return Snapshot(
        processed={k: int(v) for k, v in processed.items()},
        dead_letters={k: int(v) for k, v in dead.items()},
        recommendations=int(recs),
        cold_start_users=int(cold),
        reasons={k: int(v) for k, v in reasons.items() if k},
        example=f"user {example[0]}: item {example[1]}, {example[2]}" if example else None,
        alerts=alerts,
        lag_p95_s=float(lag) if lag is not None else None,
    )
