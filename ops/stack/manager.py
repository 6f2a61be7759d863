"""``stack up | down | status``: the local Kafka cluster, PostgreSQL (unless ``DATABASE_URL``), topics, schema."""

from __future__ import annotations

import logging

from ops.stack.kafka import KafkaCluster
from ops.stack.postgres import LocalPostgres
from streamscore.db.connection import admin_url
from streamscore.db.migrate import migrate
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics

logger = logging.getLogger(__name__)


def stack_up(
    settings: Settings, with_topics: bool = True, with_migrations: bool = True, brokers: int | None = None
) -> dict:
    """Start what is not running yet, create topics, apply migrations. Safe to call repeatedly. ``brokers``
    asks for a cluster size (refused if the cluster on disk has another); else the size on disk, else
    ``settings.kafka_brokers``."""
    cluster = KafkaCluster(settings, brokers)
    report: dict = {"kafka": cluster.start()}
    if len(cluster.nodes) > 1:
        settings = settings.model_copy(update={"kafka_bootstrap": cluster.bootstrap})
        report["kafka_bootstrap"] = f"{cluster.bootstrap} (export STREAMSCORE_KAFKA_BOOTSTRAP={cluster.bootstrap})"
        if settings.topic_replication_factor < min(3, len(cluster.nodes)):
            report["replication"] = (
                f"topics get {settings.topic_replication_factor} replica(s): set "
                "STREAMSCORE_TOPIC_REPLICATION_FACTOR=3 and STREAMSCORE_TOPIC_MIN_INSYNC_REPLICAS=2 to survive a "
                "broker loss"
            )
    if settings.database_url:
        report["postgres"] = "external (DATABASE_URL)"
    else:
        report["postgres"] = LocalPostgres(settings).start()
    if with_topics:
        report["topics_created"] = create_topics(
            settings.kafka_bootstrap, Topics.from_settings(settings).specs_for(settings)
        )
    if with_migrations:
        report["migrations_applied"] = migrate(admin_url(settings))
    return report


def stack_down(settings: Settings) -> dict:
    """Stop only the processes that ``up`` started (by their recorded PIDs)."""
    return {"kafka": KafkaCluster(settings).stop(), "postgres": LocalPostgres(settings).stop()}


def stack_status(settings: Settings) -> dict:
    status = {"kafka": KafkaCluster(settings).status()}
    status["postgres"] = (
        {"external": True, "url": "DATABASE_URL"} if settings.database_url else LocalPostgres(settings).status()
    )
    return status
