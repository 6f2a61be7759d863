"""What a dashboard sees: one snapshot read through the read-only role's views (never the base tables).

Used by the demo's live summary and by the tests' reconciliation, so both look at the system the way a
user's dashboard does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text


@dataclass
class Snapshot:
    processed: dict[str, int] = field(default_factory=dict)
    """Results stored per stream (news, clicks, items)."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """Per error code."""
    recommendations: int = 0
    cold_start_users: int = 0
    alerts: list[dict] = field(default_factory=list)
    lag_p95_s: float | None = None
    """Worst p95 event-to-result lag over the last two minutes (from Kafka ingestion time)."""

    @property
    def accounted(self) -> int:
        """News and click results plus dead letters: each input record ends as exactly one of them."""
        return self.processed.get("news", 0) + self.processed.get("clicks", 0) + sum(self.dead_letters.values())


def snapshot(engine: Engine) -> Snapshot:
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
                    "baseline_share, score, evidence, model_version FROM v_alert_timeline"
                )
            )
        ]
        lag = conn.execute(
            text("SELECT max(p95_lag_s) FROM v_throughput_per_minute WHERE minute >= now() - interval '2 minutes'")
        ).scalar()
    return Snapshot(
        processed={k: int(v) for k, v in processed.items()},
        dead_letters={k: int(v) for k, v in dead.items()},
        recommendations=int(recs),
        cold_start_users=int(cold),
        alerts=alerts,
        lag_p95_s=float(lag) if lag is not None else None,
    )
