"""Produce and consume through the local broker with both client libraries the project uses."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from ops.stack.kafka import broker_ready, kafka_version
from streamscore.settings import Settings
from streamscore.topics import Topics, TopicSpec, create_topics


def test_broker_answers_metadata_requests(stack: Settings) -> None:
    assert broker_ready(stack.kafka_bootstrap)
    assert kafka_version() == "3.8.1"
    assert not broker_ready("127.0.0.1:1", timeout_ms=500)


def test_topics_are_created_once_with_their_configs(stack: Settings, topic_prefix: str) -> None:
    topics = Topics.from_settings(stack.model_copy(update={"topic_prefix": topic_prefix}))
    specs = topics.specs(partitions=3)
    assert sorted(create_topics(stack.kafka_bootstrap, specs)) == sorted(s.name for s in specs)
    assert create_topics(stack.kafka_bootstrap, specs) == []  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics([topics.news, topics.items, topics.dead_letter])}
        assert len(described[topics.news]["partitions"]) == 3
        assert len(described[topics.dead_letter]["partitions"]) == 1
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.items)])
        assert configs["topic"][topics.items]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()


def test_kafka_python_produces_and_aiokafka_consumes(stack: Settings, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    create_topics(stack.kafka_bootstrap, [TopicSpec(topic, 2)])
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    for n in range(50):
        producer.send(topic, json.dumps({"n": n}).encode(), key=str(n % 5).encode())
    producer.flush()
    producer.close()

    async def consume() -> list[int]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest", group_id=f"{topic_prefix}g"
        )
        await consumer.start()
        seen: list[int] = []
        try:
            while len(seen) < 50:
                batch = await consumer.getmany(timeout_ms=10_000)
                if not batch:
                    break
                seen += [json.loads(m.value)["n"] for msgs in batch.values() for m in msgs]
        finally:
            await consumer.stop()
        return seen

    assert sorted(asyncio.run(consume())) == list(range(50))
