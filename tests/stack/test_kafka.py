"""Produce and consume through the local broker with both client libraries the project uses."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from ops.stack.kafka import KafkaCluster, broker_ready, kafka_version, new_cluster_id
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


def test_new_cluster_ids_never_begin_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)


def test_storage_formats_with_an_id_that_begins_with_a_dash(stack: Settings, tmp_path: Path) -> None:
    """Ids made before the redraw rule may begin with "-"; the format call must still take them as a value."""
    private = stack.model_copy(update={"stack_dir": tmp_path / "stack"})
    cluster = KafkaCluster(private, brokers=1)
    cluster.home.mkdir(parents=True)
    (cluster.home / "cluster.id").write_text("-zefn3AnSWKHu2Y13ZbTRA")
    node = cluster.node(1)
    node.write_config()
    node.format_storage(cluster.cluster_id())
    meta = (node.home / "data" / "meta.properties").read_text()
    assert "cluster.id=-zefn3AnSWKHu2Y13ZbTRA" in meta
