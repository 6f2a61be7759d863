"""Online evaluation and feedback views on real PostgreSQL: a served list is judged by what its user did next,
people's latest verdicts decide alert precision, and the latest correction of an article wins."""

from __future__ import annotations

import json

from sqlalchemy import text

from streamscore.db.connection import make_engine
from tests.stack.conftest import Schema


def _list(trigger: str, user: str, items: list[str], ts: str, version: str = "v1") -> dict:
    payload = [{"item_id": i, "score": 1.0, "reason_kind": "liked", "reason": "r"} for i in items]
    return {"t": trigger, "u": user, "items": json.dumps(payload), "ts": ts, "v": version}


def test_served_lists_are_judged_by_the_next_clicks(pg_schema: Schema) -> None:
    engine = make_engine(pg_schema.writer)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO recommendation_history (trigger_event_id, user_id, items, cold_start, model_version, "
                "event_ts) VALUES (:t, :u, CAST(:items AS jsonb), false, :v, CAST(:ts AS timestamptz))"
            ),
            [
                _list("c1", "u1", ["a", "b", "c"], "2026-01-01T10:00Z"),  # hit at position 2
                _list("c2", "u2", ["a", "b"], "2026-01-01T10:00Z"),  # u2's next click is after 24 h: no hit
                _list("c3", "u3", ["x"], "2026-01-01T10:00Z", "v2"),  # u3 rated x low: not a hit
            ],
        )
        conn.execute(
            text(
                "INSERT INTO click_events (event_id, user_id, item_id, rating, event_ts) "
                "VALUES (:e, :u, :i, :r, CAST(:ts AS timestamptz))"
            ),
            [
                {"e": "k1", "u": "u1", "i": "z", "r": None, "ts": "2026-01-01T10:01Z"},
                {"e": "k2", "u": "u1", "i": "b", "r": None, "ts": "2026-01-01T10:02Z"},
                {"e": "k3", "u": "u2", "i": "a", "r": None, "ts": "2026-01-02T11:00Z"},
                {"e": "k4", "u": "u3", "i": "x", "r": 2.0, "ts": "2026-01-01T10:05Z"},
            ],
        )
    with make_engine(pg_schema.reader).connect() as conn:
        hits = dict(conn.execute(text("SELECT trigger_event_id, hit_position FROM v_served_list_outcomes")).all())
        assert hits == {"c1": 2, "c2": None, "c3": None}
        rows = {
            r.model_version: r
            for r in conn.execute(
                text("SELECT model_version, lists, hit_rate, ndcg, items_served FROM v_online_performance")
            )
        }
        assert rows["v1"].lists == 2 and rows["v1"].hit_rate == 0.5 and rows["v1"].items_served == 3
        assert abs(rows["v1"].ndcg - 0.5 / 1.584962500721156) < 1e-9  # (1 / log2(3) + 0) / 2
        assert rows["v2"].hit_rate == 0.0


def test_feedback_views_read_the_latest_verdicts(pg_schema: Schema) -> None:
    with make_engine(pg_schema.writer).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alerts (alert_id, status, entity, window_start, window_end, negative_count, total_count, "
                "negative_share, baseline_share, score, model_version, event_ts) VALUES "
                "(:a, 'raised', 'ACME', now(), now(), 5, 8, 0.6, 0.2, 3.5, 'v1', '2026-01-01T10:00Z')"
            ),
            [{"a": "A-1"}, {"a": "A-2"}, {"a": "A-3"}],
        )
        conn.execute(
            text(
                "INSERT INTO feedback (feedback_id, kind, alert_id, verdict, news_id, label, event_ts) VALUES "
                "(:f, :k, :a, :v, :n, :l, CAST(:ts AS timestamptz))"
            ),
            [
                {"f": "f1", "k": "alert_verdict", "a": "A-1", "v": "false_alarm", "n": None, "l": None,
                 "ts": "2026-01-01T11:00Z"},
                {"f": "f2", "k": "alert_verdict", "a": "A-1", "v": "useful", "n": None, "l": None,
                 "ts": "2026-01-01T12:00Z"},
                {"f": "f3", "k": "alert_verdict", "a": "A-2", "v": "false_alarm", "n": None, "l": None,
                 "ts": "2026-01-01T11:00Z"},
                {"f": "f4", "k": "sentiment_correction", "a": None, "v": None, "n": "n1", "l": "negative",
                 "ts": "2026-01-01T11:00Z"},
                {"f": "f5", "k": "sentiment_correction", "a": None, "v": None, "n": "n1", "l": "neutral",
                 "ts": "2026-01-01T09:00Z"},
            ],
        )  # fmt: skip
    with make_engine(pg_schema.reader).connect() as conn:
        row = conn.execute(text("SELECT alerts, judged, useful, false_alarms, precision FROM v_alert_precision")).one()
        assert tuple(row) == (3, 2, 1, 1, 0.5)  # A-1's latest verdict is "useful"; A-3 is not judged
        correction = conn.execute(text("SELECT corrected_label, corrections FROM v_sentiment_corrections")).one()
        assert tuple(correction) == ("negative", 2)
        daily = dict(conn.execute(text("SELECT kind, events FROM v_feedback_daily")).all())
        assert daily == {"alert_verdict": 3, "sentiment_correction": 2}
