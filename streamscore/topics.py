"""Topic names and their configs, from settings (with the optional prefix). Shared by stack, worker and replay."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamscore.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replicas: int = 1


@dataclass(frozen=True)
class Topics:
    news: str
    items: str
    clicks: str
    feedback: str
    recommendations: str
    alerts: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(
            news=p + settings.topic_news,
            items=p + settings.topic_items,
            clicks=p + settings.topic_clicks,
            feedback=p + settings.topic_feedback,
            recommendations=p + settings.topic_recommendations,
            alerts=p + settings.topic_alerts,
            dead_letter=p + settings.topic_dead_letter,
        )

    def specs(self, partitions: int, replicas: int = 1, min_insync: int = 1) -> list[TopicSpec]:
        """Inputs and outputs keyed by entity get ``partitions`` partitions; the item catalog is compacted so
        the latest version of every item survives forever, like a table. Every topic gets ``replicas`` copies
        and ``min.insync.replicas``, which is what makes the producers' ``acks=all`` mean something."""
        durable = {"min.insync.replicas": str(min_insync)}
        return [
            TopicSpec(spec.name, spec.partitions, {**spec.config, **durable}, replicas)
            for spec in self._layout(partitions)
        ]

    def specs_for(self, settings: Settings) -> list[TopicSpec]:
        """:meth:`specs` with the partitions, replicas and ``min.insync.replicas`` the settings name."""
        return self.specs(
            settings.topic_partitions, settings.topic_replication_factor, settings.topic_min_insync_replicas
        )

    def _layout(self, partitions: int) -> list[TopicSpec]:
        # inputs carry the broker's append time, so the worker's event lag starts when Kafka had the record
        # whatever timestamp a producer sets
        appended = {"message.timestamp.type": "LogAppendTime"}
        return [
            TopicSpec(self.news, partitions, {"retention.ms": str(7 * 24 * 3600 * 1000), **appended}),
            TopicSpec(
                self.items, partitions, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", **appended}
            ),
            TopicSpec(self.clicks, partitions, {"retention.ms": str(7 * 24 * 3600 * 1000), **appended}),
            TopicSpec(self.feedback, partitions, {"retention.ms": str(30 * 24 * 3600 * 1000), **appended}),
            TopicSpec(self.recommendations, partitions, {"cleanup.policy": "compact,delete"}),
            TopicSpec(self.alerts, partitions, {}),
            TopicSpec(self.dead_letter, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        ]


def create_topics(
    bootstrap: str, specs: list[TopicSpec], timeout_ms: int = 30000, **client_options: object
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); returns the names created. ``client_options``
    are kafka-python's security options (:func:`streamscore.security.kafka_python_options`)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **client_options)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(s.name, s.partitions, s.replicas, topic_configs=s.config) for s in missing],
                    timeout_ms=timeout_ms,
                )
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: the goal is reached
        return [s.name for s in missing]
    finally:
        admin.close()
