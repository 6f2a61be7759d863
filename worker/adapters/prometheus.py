"""Prometheus metrics of one worker process, served on its web port at ``/metrics``.

Names follow Prometheus' conventions (checked by ``tests/worker/test_metric_names.py``): a ``streamscore_``
prefix, base units in the name (``_seconds``, ``_records``, ``_events``, ``_tokens``), ``_total`` on counters
only, ``_info`` for constant-1 gauges whose labels carry the value. The process's own ``process_*`` and
``python_*`` series come from prometheus_client's collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from streamscore import __version__

disable_created_metrics()  # a `_created` gauge beside every counter and histogram doubles the series for nothing
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)


EVENTS_IN = Counter("streamscore_events_in_total", "Records consumed, per input topic.", ["topic"], registry=REGISTRY)
EVENTS_SCORED = Counter(
    "streamscore_events_processed_total",
    "Valid events stored with their result, per input topic.",
    ["topic"],
    registry=REGISTRY,
)
EVENTS_OUT = Counter(
    "streamscore_events_out_total", "Records produced, per output topic.", ["topic"], registry=REGISTRY
)
REDELIVERED = Counter(
    "streamscore_events_redelivered_total",
    "Records seen again after a restart (absorbed, not re-stored).",
    ["topic"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "streamscore_dead_letters_total",
    "Records rejected, per input topic and error code.",
    ["topic", "code"],
    registry=REGISTRY,
)
ALERTS = Counter("streamscore_alerts_total", "Alert state changes emitted.", ["status"], registry=REGISTRY)
RECOMMENDATIONS = Counter(
    "streamscore_recommendations_total", "Recommendation updates emitted.", ["cold_start"], registry=REGISTRY
)
BATCH_SIZE = Histogram(
    "streamscore_batch_events",
    "Events per micro-batch.",
    ["topic"],
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INFERENCE_SECONDS = Histogram(
    "streamscore_inference_seconds",
    "Model time per micro-batch, from its first call queued to its last result.",
    ["topic"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SECONDS = Histogram(
    "streamscore_batch_seconds",
    "Whole micro-batch: validate, score, store, emit.",
    ["topic"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG_SECONDS = Histogram(
    "streamscore_event_lag_seconds",
    "From the record's Kafka timestamp (the broker's append time on the topics streamscore creates) to its "
    "result stored and its outputs acknowledged; the offset commit follows within broker_commit_interval.",
    ["topic"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_CALLS = Counter(
    "streamscore_model_calls_total",
    "ONNX Runtime calls of the text model, per input topic.",
    ["topic"],
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "streamscore_model_tokens_total",
    "Tokens fed to the text model: real, and padded (real plus padding); real ÷ padded is the padding efficiency.",
    ["topic", "kind"],
    registry=REGISTRY,
)
DB_RETRIES = Counter(
    "streamscore_db_retries_total", "PostgreSQL writes retried after a transient failure.", registry=REGISTRY
)
MODEL_INFO = Gauge(
    "streamscore_model_info",
    "The bundle being served (value 1).",
    ["version", "variant", "providers"],
    registry=REGISTRY,
)
MODEL_RELOADS = Counter("streamscore_model_reloads_total", "Bundle swaps, by outcome.", ["outcome"], registry=REGISTRY)
RANKING_SECONDS = Histogram(
    "streamscore_ranking_seconds",
    "Ranker time per click batch (scores, top-K and reasons for every clicking user).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
CATALOG_ITEMS = Gauge("streamscore_catalog_items", "Candidate items cached for ranking.", registry=REGISTRY)
SERVED_LISTS = Gauge(
    "streamscore_served_lists",
    "Recent served recommendation lists judged against what the users did next, per model version.",
    ["model_version"],
    registry=REGISTRY,
)
SERVED_HIT_RATIO = Gauge(
    "streamscore_served_hit_ratio",
    "Share of those lists with an item the user then clicked or rated 4+ within 10 interactions and 24 h.",
    ["model_version"],
    registry=REGISTRY,
)
SERVED_NDCG = Gauge(
    "streamscore_served_ndcg",
    "Mean nDCG of the first such hit (1 / log2(1 + position); 0 without a hit) over those lists.",
    ["model_version"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "streamscore_build_info",
    "The running streamscore (value 1): package version and the model version being served.",
    ["version", "model_version"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "streamscore_consumer_rebalances_total", "Consumer-group rebalances this worker took part in.", registry=REGISTRY
)
REBALANCE_SECONDS = Histogram(
    "streamscore_consumer_rebalance_seconds",
    "From a rebalance starting to this worker consuming its new assignment again.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "streamscore_consumer_commit_seconds",
    "Offset commits: producer flush plus the commit request.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)


def publish_build_info(model_version: str) -> None:
    BUILD_INFO.clear()
    BUILD_INFO.labels(__version__, model_version).set(1)


PartitionOffsets = Callable[[], Iterable[tuple[str, int, int, int | None]]]
"""``(topic, partition, end offset, committed offset or None)`` of every partition assigned to this worker."""


class ConsumerLagCollector(Collector):
    """``streamscore_consumer_lag_records``: per assigned partition, records not yet committed by this group
    (end offset − committed offset), computed at scrape time from what the consumer last saw."""

    def __init__(self, offsets: PartitionOffsets):
        self.offsets = offsets

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "streamscore_consumer_lag_records",
            "Records behind the end of each assigned input partition (end offset minus committed offset).",
            labels=["topic", "partition"],
        )
        for topic, partition, end, committed in self.offsets():
            if committed is not None:
                lag.add_metric([topic, str(partition)], max(0, end - committed))
        yield lag


def register_consumer_lag(offsets: PartitionOffsets) -> ConsumerLagCollector:
    collector = ConsumerLagCollector(offsets)
    REGISTRY.register(collector)
    return collector
