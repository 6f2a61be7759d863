"""A broker loss on a replicated cluster: three KRaft nodes on loopback ports (three JVMs, small heaps),
topics with replication factor 3 and ``min.insync.replicas=2``, two workers; ``kill -9`` of the broker that
leads the most input partitions while the stream is flowing. Nothing may be lost or doubled, every output must
reach its topic, the surge must raise one alert, and the killed broker must rejoin every ISR after a restart.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.replay import Scenario
from ops.stack.kafka import KafkaCluster
from streamscore.settings import Settings
from tests.conftest import Schema
from tests.reliability.conftest import OVERLAP
from tests.reliability.reconcile import produce_in_background, reconcile, record, redelivered, start, wait_fraction
from tests.streaming.conftest import Deployment, private_deployment

BROKERS = 3


def free_port_block(width: int) -> int:
    """A base port with ``width`` free ports after it (node n takes base + 2(n-1) and base + 2(n-1) + 1)."""
    for base in range(21000, 60000, 97):
        try:
            for offset in range(width):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of loopback ports")


@pytest.fixture
def cluster(stack: Settings, tmp_path: Path) -> Iterator[KafkaCluster]:
    base = free_port_block(2 * BROKERS)
    settings = stack.model_copy(
        update={
            "stack_dir": tmp_path / "cluster",
            "cache_dir": Path(stack.cache_dir).resolve(),
            "kafka_bootstrap": f"127.0.0.1:{base}",
            "kafka_controller_port": base + 1,
            "kafka_brokers": BROKERS,
            "kafka_heap": "256m",
            "topic_replication_factor": BROKERS,
            "topic_min_insync_replicas": 2,
        }
    )
    cluster = KafkaCluster(settings)
    try:
        assert cluster.start().startswith(f"started {BROKERS} of {BROKERS}")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def replicated(
    cluster: KafkaCluster, pg_schema: Schema, topic_prefix: str, models_dir: Path, tmp_path: Path
) -> Iterator[Deployment]:
    settings = cluster.settings.model_copy(update={"kafka_bootstrap": cluster.bootstrap})
    with private_deployment(
        settings,
        pg_schema,
        topic_prefix,
        models_dir,
        tmp_path,
        STREAMSCORE_TOPIC_REPLICATION_FACTOR=str(BROKERS),
        STREAMSCORE_TOPIC_MIN_INSYNC_REPLICAS="2",
        **OVERLAP,
    ) as dep:
        yield dep


def partitions(bootstrap: str, topics: list[str], timeout_s: float = 30) -> list[dict]:
    """Every partition of ``topics``, asked again while the cluster is changing (a new topic not yet known to
    every broker, a broker's connections reset while it is lost)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
            try:
                described = admin.describe_topics(topics)
            finally:
                admin.close()
        except (KafkaError, OSError):
            described = None
        if described is not None and all(t["error_code"] == 0 for t in described):
            return [p for t in described for p in t["partitions"]]
        assert time.monotonic() < deadline, f"topics not described in {timeout_s} s: {described}"
        time.sleep(0.5)


def topic_config(bootstrap: str, topic: str, timeout_s: float = 30) -> dict[str, str]:
    """The topic's configuration, asked again until the broker that answers knows the topic: each broker
    applies the metadata log on its own, and one that has not yet replayed the topic's creation answers with
    no entries (seen once in CI, right after ``describe_topics`` had been answered by another broker)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        entries: dict[str, str] = {}
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
            try:
                configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            finally:
                admin.close()
            entries = {name: entry["value"] for name, entry in configs.get("topic", {}).get(topic, {}).items()}
        except (KafkaError, OSError):
            pass
        if entries:
            return entries
        assert time.monotonic() < deadline, f"no configuration of {topic} in {timeout_s} s"
        time.sleep(0.5)


def wait_until(check, timeout_s: float, step_s: float = 0.5) -> float:
    """Seconds until ``check()`` held (fails the test past ``timeout_s``)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout_s, "timed out"
        time.sleep(step_s)
    return time.monotonic() - began


def test_topics_are_replicated_with_min_insync(replicated: Deployment) -> None:
    topics = replicated.topics
    every = [topics.news, topics.items, topics.clicks, topics.alerts, topics.recommendations, topics.dead_letter]
    described = partitions(replicated.settings.kafka_bootstrap, every)
    assert described and all(len(p["replica_nodes"]) == BROKERS for p in described)
    for topic in (topics.news, topics.alerts):
        assert topic_config(replicated.settings.kafka_bootstrap, topic)["min.insync.replicas"] == "2"


def test_kill_9_the_busiest_broker_mid_stream(replicated: Deployment, cluster: KafkaCluster) -> None:
    dep = replicated
    inputs = [dep.topics.news, dep.topics.items, dep.topics.clicks]
    scenario = Scenario(news=1200, clicks=2000, surge_ticker="ACME", surge_size=30, bad=True, run="brokerloss")
    start(dep, scenario, workers=2)
    producer = produce_in_background(dep, scenario)
    at_kill = wait_fraction(dep, scenario.expected_accounted(), 0.3)

    leaders = Counter(p["leader_id"] for p in partitions(dep.settings.kafka_bootstrap, inputs))
    victim_id, led = leaders.most_common(1)[0]
    victim = cluster.node(victim_id)
    assert victim.kill(), "the busiest broker was not one this test started"
    killed_at = time.monotonic()
    assert at_kill < scenario.expected_accounted(), "the kill must land mid-stream"
    # the test's own admin client asks a live broker (the workers and the producer keep the full list)
    survivors = ",".join(n.address.bootstrap for n in cluster.nodes if n is not victim)

    def failed_over() -> bool:
        return all(p["leader_id"] not in (victim_id, -1) for p in partitions(survivors, inputs))

    failover_s = wait_until(failed_over, timeout_s=120)
    producer.join()
    figures = reconcile(dep, scenario)
    drained_s = time.monotonic() - killed_at
    assert figures["news_rows"] + figures["click_rows"] + figures["dead_letters"] == figures["events"]
    assert all(w.process.poll() is None for w in dep.workers), "a worker died with the broker"

    # every stored output is on its topic (at least once); the surge raised exactly one alert
    alerts = [json.loads(v) for v in dep.consume(dep.topics.alerts, bootstrap=survivors)]
    assert {a["alert_id"] for a in alerts if a["status"] == "raised"} == {
        a for (a,) in dep.rows("SELECT alert_id FROM alerts WHERE status = 'raised'")
    }
    assert len({a["alert_id"] for a in alerts if a["status"] == "raised" and a["entity"] == "ACME"}) == 1
    on_topic = {json.loads(v)["trigger_event_id"] for v in dep.consume(dep.topics.recommendations, bootstrap=survivors)}
    stored = {e for (e,) in dep.rows("SELECT trigger_event_id FROM recommendation_history")}
    assert stored and stored <= on_topic
    dead_on_topic = map(json.loads, dep.consume(dep.topics.dead_letter, bootstrap=survivors))
    dead = {(d["source_topic"], d["partition"], d["offset"]) for d in dead_on_topic}
    assert set(dep.rows("SELECT source_topic, source_partition, source_offset FROM dead_letters")) <= dead

    assert victim.start() == "started"
    every = [*inputs, dep.topics.alerts, dep.topics.recommendations, dep.topics.dead_letter]

    def rejoined() -> bool:
        return all(victim_id in p["isr_nodes"] for p in partitions(dep.settings.kafka_bootstrap, every))

    rejoin_s = wait_until(rejoined, timeout_s=120)
    record(
        "kill -9 the busiest of 3 brokers (RF 3, min ISR 2)",
        **figures,
        accounted_at_kill=at_kill,
        partitions_led_by_victim=led,
        failover_s=round(failover_s, 1),
        drained_s=round(drained_s, 1),
        rejoin_s=round(rejoin_s, 1),
        redelivered=redelivered(dep),
    )
