"""SQLAlchemy 2 definitions of the tables that ``sql/`` creates (0001, altered by 0004 and later migrations).

``sql/`` is the source of truth that migrations apply; these classes give the worker typed access to the same
tables, and ``tests/stack/test_schema.py`` proves the two agree column by column (names, types, nullability,
primary keys), so a migration that changes one without the other fails CI.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, REAL, BigInteger, Boolean, DateTime, Integer, MetaData, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {"ix": "%(table_name)s_%(column_0_name)s_idx", "pk": "%(table_name)s_pkey"}

TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    version: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    source_checkpoint: Mapped[str | None] = mapped_column(Text)
    manifest: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    first_seen_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    parent_version: Mapped[str | None] = mapped_column(Text)
    """The champion a retrain started from (lineage); null for an offline-trained bundle."""
    decision: Mapped[str | None] = mapped_column(Text)
    """``published``, ``refused`` or ``dry_run``: the retrain gate's verdict on this version."""
    reason: Mapped[str | None] = mapped_column(Text)
    data_window: Mapped[dict | None] = mapped_column(JSONB)
    row_counts: Mapped[dict | None] = mapped_column(JSONB)
    metrics: Mapped[dict | None] = mapped_column(JSONB)
    """Champion and challenger on the same held-out data."""
    decided_at: Mapped[datetime | None] = mapped_column(TS)


class Item(Base):
    __tablename__ = "items"
    item_id: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    event_ts: Mapped[datetime] = mapped_column(TS)
    embedding: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    embedding_model_version: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    ingested_at: Mapped[datetime | None] = mapped_column(TS)
    genres: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")


class NewsSentiment(Base):
    __tablename__ = "news_sentiment"
    news_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_ts: Mapped[datetime] = mapped_column(TS)
    headline: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    entities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    label: Mapped[str] = mapped_column(Text)
    p_negative: Mapped[float] = mapped_column(REAL)
    p_neutral: Mapped[float] = mapped_column(REAL)
    p_positive: Mapped[float] = mapped_column(REAL)
    model_version: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    scored_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    ingested_at: Mapped[datetime | None] = mapped_column(TS)
    truncated: Mapped[bool] = mapped_column(Boolean, server_default="false")


class ClickEvent(Base):
    __tablename__ = "click_events"
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, server_default="click")
    rating: Mapped[float | None] = mapped_column(REAL)
    event_ts: Mapped[datetime] = mapped_column(TS)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    ingested_at: Mapped[datetime | None] = mapped_column(TS)


class _RecommendationColumns:
    """Columns shared by the history (one row per trigger) and the latest-per-user table."""

    items: Mapped[list] = mapped_column(JSONB)
    cold_start: Mapped[bool] = mapped_column(Boolean, server_default="false")
    model_version: Mapped[str] = mapped_column(Text)
    event_ts: Mapped[datetime] = mapped_column(TS)


class RecommendationHistory(_RecommendationColumns, Base):
    __tablename__ = "recommendation_history"
    trigger_event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class RecommendationLatest(_RecommendationColumns, Base):
    __tablename__ = "recommendations_latest"
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    trigger_event_id: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class Alert(Base):
    __tablename__ = "alerts"
    alert_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="0")
    entity: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime] = mapped_column(TS)
    window_end: Mapped[datetime] = mapped_column(TS)
    negative_count: Mapped[int] = mapped_column(Integer)
    total_count: Mapped[int] = mapped_column(Integer)
    negative_share: Mapped[float] = mapped_column(REAL)
    baseline_share: Mapped[float] = mapped_column(REAL)
    score: Mapped[float] = mapped_column(REAL)
    evidence: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    model_version: Mapped[str] = mapped_column(Text)
    event_ts: Mapped[datetime] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    source_topic: Mapped[str] = mapped_column(Text, primary_key=True)
    source_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    error_code: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    payload_encoding: Mapped[str] = mapped_column(Text, server_default="utf-8")
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"
    alert_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(Text, primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int] = mapped_column(Integer)
    delivered_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class Feedback(Base):
    """People's feedback events (``streamscore.events.FeedbackEvent``), one row per ``feedback_id``."""

    __tablename__ = "feedback"
    feedback_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    news_id: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    alert_id: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(Text)
    given_by: Mapped[str | None] = mapped_column(Text)
    event_ts: Mapped[datetime] = mapped_column(TS)
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime | None] = mapped_column(TS)
    received_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class EntityAlertState(Base):
    """The surge rule's state per entity (``worker.domain.alerts.EntityState`` as JSON)."""

    __tablename__ = "entity_alert_state"
    entity: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[dict] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    write_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """A random tag of the transaction that wrote ``state`` (0: never written): a worker's in-memory copy is
    current while the tag is still the one it wrote (``worker.domain.alert_states``)."""


LIKED_KEPT = 1000
RECENT_KEPT = 20


class UserHistory(Base):
    """Distinct items per user in first-interaction order (derived from ``click_events``)."""

    __tablename__ = "user_history"
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    items: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    clicks: Mapped[int] = mapped_column(Integer, server_default="0")
    liked: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    """The most recent liked items (at most ``LIKED_KEPT``), oldest first: the ranker's input."""
    recent: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    """The most recent items of any kind (at most ``RECENT_KEPT``), oldest first: the next-item input."""
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


VIEWS = (
    "v_sentiment_entity_hourly",
    "v_alert_timeline",
    "v_recommendation_freshness",
    "v_throughput_per_minute",
    "v_dead_letters_by_reason",
    "v_recommendation_reasons",
    "v_recommendation_items",
    "v_sentiment_corrections",
    "v_feedback_daily",
    "v_alert_precision",
    "v_served_list_outcomes",
    "v_online_performance",
    "v_results",
    "v_articles",
    "v_entity_mentions",
    "v_open_alerts",
    "v_alert_evidence",
    "v_recommended_slots",
    "v_catalog",
    "v_dead_letters",
    "v_model_versions",
)
"""Dashboard views (``sql/0002.views.sql``, ``0006.ranker_state.sql``); the only relations the reader role may read."""
