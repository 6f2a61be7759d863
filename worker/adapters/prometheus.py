"""Prometheus metrics of one worker process, served on its web port at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

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
    "streamscore_batch_size",
    "Events per micro-batch.",
    ["topic"],
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INFERENCE_SECONDS = Histogram(
    "streamscore_inference_seconds",
    "Model time per micro-batch.",
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
    "From the record entering Kafka to its result being committed.",
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
