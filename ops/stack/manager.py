"""``stack up | down | status``: the local Kafka broker, PostgreSQL (unless ``DATABASE_URL``), topics, schema."""

from __future__ import annotations

import logging

from ops.stack.kafka import KafkaBroker
from ops.stack.postgres import LocalPostgres
from streamscore.db.connection import admin_url
from streamscore.db.migrate import migrate
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics

logger = logging.getLogger(__name__)


def stack_up(settings: Settings, with_topics: bool = True, with_migrations: bool = True) -> dict:
    """Start what is not running yet, create topics, apply migrations. Safe to call repeatedly."""
    report: dict = {"kafka": KafkaBroker(settings).start()}
    if settings.database_url:
        report["postgres"] = "external (DATABASE_URL)"
    else:
        report["postgres"] = LocalPostgres(settings).start()
    if with_topics:
        report["topics_created"] = create_topics(
            settings.kafka_bootstrap, Topics.from_settings(settings).specs(settings.topic_partitions)
        )
    if with_migrations:
        report["migrations_applied"] = migrate(admin_url(settings))
    return report


def stack_down(settings: Settings) -> dict:
    """Stop only the processes that ``up`` started (by their recorded PIDs)."""
    return {"kafka": KafkaBroker(settings).stop(), "postgres": LocalPostgres(settings).stop()}


def stack_status(settings: Settings) -> dict:
    status = {"kafka": KafkaBroker(settings).status()}
    status["postgres"] = (
        {"external": True, "url": "DATABASE_URL"} if settings.database_url else LocalPostgres(settings).status()
    )
    return status
