"""``streamscore bench e2e``: the whole path — producer → Kafka → worker → ONNX Runtime → Kafka + PostgreSQL.

Every figure is measured in one run, on the same data (the shared datasets, fixed seed), with the same
bundle, and reported beside the figures it is compared with:

1. **capacity** of one worker on the news path and the click path: a backlog is produced while the worker is
   stopped, then drained; events/s while draining, the median of three drains. A **rate ladder** at 50–115 %
   of it finds the highest rate whose backlog is gone within 3 s of the producer stopping (bounded lag).
2. **latency** p50/p95/p99 from the moment the event entered Kafka to its result in PostgreSQL (the start of
   the committing transaction, which follows after the outputs are acknowledged by the broker), at 25/50/80 %
   of the sustained rate.
3. the **micro-batch policy** sweep: max events × max wait → news capacity and p99 at a fixed load.
4. **efficiency**: news capacity ÷ model-only throughput of the same scorer on the same headlines (2 threads,
   the worker's batch size), with model-only throughput by tokens per ONNX Runtime call beside it; CPU seconds
   per 1 000 events and peak RSS of the worker.
5. the **naive baseline**: kafka-python, one event at a time, PyTorch eager, one INSERT per event.
6. **scaling**: two workers (one thread each) against one (two threads).
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, text

from ops.bench.output import pyplot, write_json
from ops.bench.soak import RUN_MARK, relabel, rss_mb
from ops.demo import WorkerProcess
from ops.replay import Produced, Scenario, produce
from streamscore.call_plan import CallPlan
from streamscore.db.connection import admin_url, make_engine, with_schema, writer_url
from streamscore.db.migrate import migrate
from streamscore.errors import StreamscoreError
from streamscore.scorer import CallUsage, TextJob, sentiment_labels
from streamscore.security import kafka_python_options
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics

TICK = 0.25
DRAIN_TICK = 1.0
"""How often a drain polls the workers' ``/metrics``. Its clock is PostgreSQL's, so polling only decides when
the drain is seen to end; each scrape costs the worker's event loop CPU on the cores it scores on (a fifth of
that loop's busy time at four scrapes a second, 2026-12-08), so a drain scrapes once a second."""
TOKENS_PER_CALL_SWEEP = (512, 1024, 2048, 4096, 8192)
CALL_PLAN_BATCHES = (16, 64, 256)
# per path: the result table, its event-id column, and when the row was written (the batch's transaction)
RESULT_COLUMNS = {
    "news": ("news_sentiment", "news_id", "scored_at"),
    "clicks": ("click_events", "event_id", "processed_at"),
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """CPU seconds of a process so far; with ``reaped_children``, also those of its children that have exited
    and been waited for (``cutime`` + ``cstime``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


STACK_PROCESSES = ("postgres", "kafka.Kafka")
"""Command-line words of the stack's own processes on this machine: the PostgreSQL server and its backends,
and the Kafka broker's JVM."""


def stack_cpu_seconds() -> float:
    """CPU seconds used so far by the PostgreSQL and Kafka processes on this machine. A PostgreSQL backend
    counts while it lives and, once it has exited, in its server's reaped-children time; counting only the
    live ones made a drain during which a backend exited come out negative."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(word in command for word in STACK_PROCESSES):
                total += cpu_seconds(int(entry.name), reaped_children=True)
        except (OSError, ValueError, IndexError):
            continue  # gone while we looked
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _admin_statement(settings: Settings, sql: str) -> None:
    engine = make_engine(admin_url(settings))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@dataclass
class Deployment:
    """Workers on a private set of topics (and consumer group) with one batch policy."""

    settings: Settings
    workers: int = 1
    batch_events: int | None = None  # None: the worker's configured defaults
    batch_wait_ms: float | None = None
    source: Path | None = None
    """Another revision's source tree to run the workers from (``None``: this checkout)."""
    cli_module: str = "ops"
    env: dict[str, str] = field(default_factory=dict)
    """More environment for the workers (a setting compared side by side, e.g. the store overlap)."""
    procs: list[WorkerProcess] = field(default_factory=list)
    topics: Topics | None = None
    prefix: str = ""
    schema: str = ""
    """A schema of the deployment's own, dropped on exit: a benchmark's synthetic news, alerts and clicks never
    reach the tables that dashboards and the alert forwarder read."""
    engine: Engine = field(init=False)

    def __enter__(self) -> Deployment:
        self.prefix = f"b{uuid.uuid4().hex[:8]}."
        self.schema = f"bench_{self.prefix[1:-1]}"
        _admin_statement(self.settings, f'CREATE SCHEMA "{self.schema}"')
        migrate(admin_url(self.settings), schema=self.schema)
        self.engine = make_engine(with_schema(admin_url(self.settings), self.schema))
        self.topics = Topics.from_settings(self.settings.model_copy(update={"topic_prefix": self.prefix}))
        create_topics(
            self.settings.kafka_bootstrap,
            self.topics.specs_for(self.settings),
            **kafka_python_options(self.settings),
        )
        self.start_workers()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_workers()
        self.engine.dispose()
        _admin_statement(self.settings, f'DROP SCHEMA "{self.schema}" CASCADE')

    def start_workers(self) -> None:
        """Start the workers and return once every one of them owns partitions (the group has settled)."""
        self.spawn_workers()
        for proc in self.procs:
            proc.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            (proc.ready() or {}).get("assigned_partitions", 0) > 0 for proc in self.procs
        ):
            time.sleep(0.5)

    def spawn_workers(self) -> None:
        """Start the worker processes without waiting for them."""
        threads = max(1, (os.cpu_count() or 2) // self.workers)
        events = self.batch_events or self.settings.batch_max_events
        wait_ms = self.batch_wait_ms if self.batch_wait_ms is not None else self.settings.batch_max_wait_ms
        for _ in range(self.workers):
            port = free_port()
            env = {
                "STREAMSCORE_TOPIC_PREFIX": self.prefix,
                "STREAMSCORE_WORKER_GROUP": f"g-{self.prefix}",
                "STREAMSCORE_WORKER_WEB_PORT": str(port),
                "STREAMSCORE_WORKER_THREADS": str(threads),
                "STREAMSCORE_BATCH_MAX_EVENTS": str(events),
                "STREAMSCORE_BATCH_MAX_WAIT_MS": str(wait_ms),
                "STREAMSCORE_MODELS_DIR": str(Path(self.settings.models_dir).resolve()),
                "STREAMSCORE_LOG_LEVEL": "WARNING",
                "STREAMSCORE_WRITER_DATABASE_URL": with_schema(writer_url(self.settings), self.schema),
            } | self.env
            if self.source is not None:
                env["PYTHONPATH"] = str(self.source)
                env["STREAMSCORE_DATA_DIR"] = str(Path(self.settings.data_dir).resolve())
                env["STREAMSCORE_STACK_DIR"] = str(Path(self.settings.stack_dir).resolve())
            logs = self.settings.stack_dir / "logs"
            self.procs.append(WorkerProcess.start(port, logs, env, self.cli_module, cwd=self.source))

    def preload(self, records: list[Produced]) -> None:
        """Stop the workers and put ``records`` in Kafka, so the next workers start on a backlog."""
        self.stop_workers()
        _produce(self.settings, records)

    def stop_workers(self) -> None:
        """Graceful stop: the workers commit what they finished, so a restart resumes exactly there."""
        for proc in self.procs:
            proc.stop()
        self.procs = []

    def progress(self) -> int:
        """News and click records the workers have finished (stored or dead-lettered)."""
        assert self.topics is not None
        return sum(p.count("streamscore_events_in_total", [self.topics.news, self.topics.clicks]) for p in self.procs)

    def items_done(self) -> int:
        assert self.topics is not None
        return sum(p.count("streamscore_events_in_total", [self.topics.items]) for p in self.procs)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.process.pid) for p in self.procs)

    def wait(self, target: int, timeout_s: float, tick: float = TICK) -> bool:
        """Poll the workers' counters every ``tick`` seconds until they reach ``target``; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.progress() < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(tick)
        return True


class Workload:
    """Real news or clicks (with their catalog), re-labelled per use so every event is new."""

    def __init__(self, settings: Settings, path: str, size: int):
        self.settings = settings
        self.path = path
        self.scenario = Scenario(
            news=size if path == "news" else 0,
            clicks=size if path == "clicks" else 0,
            run=RUN_MARK,
            news_spacing_s=0.01,
        )
        self.uses = 0
        self.run = uuid.uuid4().hex[:8]
        self.built_for: str | None = None

    def _build(self, topics: Topics) -> None:
        if self.built_for != topics.news:
            self.scenario.build(self.settings.data_dir, topics)
            self.built_for = topics.news

    def catalog(self, topics: Topics) -> list[Produced]:
        self._build(topics)
        return self.scenario.catalog()

    def events(self, topics: Topics, n: int) -> list[Produced]:
        self._build(topics)
        base = self.scenario.stream()
        out: list[Produced] = []
        while len(out) < n:
            out += relabel(base, f"{self.run}L{self.uses}")
            self.uses += 1
        return out[:n]


def _produce(settings: Settings, records: list[Produced], rate: float = 0.0) -> None:
    produce(settings.kafka_bootstrap, records, rate=rate, progress=False, **kafka_python_options(settings))


def prepare_workload(dep: Deployment, work: Workload) -> None:
    assert dep.topics is not None
    catalog = work.catalog(dep.topics)
    if work.path == "clicks":
        _produce(dep.settings, catalog)
        deadline = time.monotonic() + 180
        while dep.items_done() < len(catalog) and time.monotonic() < deadline:
            time.sleep(TICK)
        time.sleep(dep.settings.catalog_refresh_s + 0.5)
    warm = work.events(dep.topics, 200)
    _produce(dep.settings, warm)
    dep.wait(len(warm), 120)


def capacity(dep: Deployment, work: Workload, n: int) -> dict:
    """Drain a backlog of ``n`` events: events/s, CPU s per 1 000 events.

    The backlog is in Kafka before the workers start on it (they are stopped, the events produced, the
    workers started again), so the figure is the workers' pace, not the producer's: producing while
    draining capped the click path at the bench producer's own rate. The clock is PostgreSQL's: from the
    first batch's transaction to the last one's (the first batch's events are not counted), so neither
    worker start-up nor this process's polling is in it. CPU is counted from the first finished batch too:
    a worker drains 1 500 clicks in a fraction of a second, well inside its start-up's CPU noise."""
    assert dep.topics is not None
    records = work.events(dep.topics, n)
    dep.preload(records)
    dep.spawn_workers()
    deadline = time.monotonic() + 180
    while (counted_from := dep.progress()) == 0:
        if time.monotonic() > deadline or any(p.process.poll() is not None for p in dep.procs):
            raise StreamscoreError("the workers did not start draining; see their logs in .stack/logs")
        time.sleep(0.01)
    cpu0, stack0 = dep.cpu(), stack_cpu_seconds()
    if not dep.wait(n, 600, tick=DRAIN_TICK):
        raise StreamscoreError(f"the workers did not drain {n} events within 600 s")
    table, key, done = RESULT_COLUMNS[work.path]
    query = text(
        f"WITH t AS (SELECT {done} AS done FROM {table} WHERE {key} = ANY(:ids)) "
        "SELECT extract(epoch FROM max(done) - min(done)), count(*) FILTER (WHERE done = (SELECT min(done) FROM "
        "t)), count(DISTINCT done) FROM t"
    )
    with dep.engine.connect() as conn:
        seconds, first, batches = conn.execute(query, {"ids": [event_id(r) for r in records]}).one()
    seconds = max(float(seconds or 0.0), 1e-3)
    return {
        "events": n,
        "seconds": round(seconds, 2),
        "events_per_s": round((n - first) / seconds, 1),
        # a batch is one transaction, and its rows carry the transaction's clock
        "mean_batch_events": round(n / max(int(batches or 0), 1), 1),
        "cpu_s_per_1000": round((dep.cpu() - cpu0) / max(n - counted_from, 1) * 1000, 3),
        "stack_cpu_s_per_1000": round((stack_cpu_seconds() - stack0) / max(n - counted_from, 1) * 1000, 3),
    }


def constant_rate(dep: Deployment, work: Workload, rate: float, seconds: float) -> dict:
    """Produce at ``rate`` for ``seconds``; bounded if the backlog is gone within 3 s of the last event."""
    assert dep.topics is not None
    before = dep.progress()
    n = max(int(rate * seconds), 20)
    records = work.events(dep.topics, n)
    _produce(dep.settings, records, rate=rate)
    bounded = dep.wait(before + n, 3.0)
    if not bounded:
        dep.wait(before + n, 300)
    return {
        "rate": round(rate, 1),
        "events": n,
        "bounded": bounded,
        **latency(dep.engine, work.path, [event_id(r) for r in records]),
    }


def event_id(record: Produced) -> str:
    value = json.loads(record.value)
    return value.get("id") or value.get("event_id")


def latency(engine: Engine, path: str, ids: list[str]) -> dict:
    table, key, done = RESULT_COLUMNS[path]
    query = text(
        f"SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM {done} - "
        "ingested_at)) "
        f"FROM {table} WHERE {key} = ANY(:ids)"
    )
    with engine.connect() as conn:
        p50, p95, p99 = conn.execute(query, {"ids": ids}).scalar_one()
    return {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1), "p99_ms": round(p99 * 1000, 1)}


def ladder(dep: Deployment, work: Workload, cap: float, seconds: float) -> tuple[float, list[dict]]:
    rungs = []
    sustained = 0.0
    for fraction in (0.5, 0.7, 0.85, 1.0, 1.15):
        rung = constant_rate(dep, work, cap * fraction, seconds) | {"fraction_of_capacity": fraction}
        rungs.append(rung)
        if rung["bounded"]:
            sustained = rung["rate"]
    return sustained, rungs


def model_only(
    settings: Settings,
    texts: list[str],
    threads: int = 2,
    tokens_per_call: int = 0,
    batch: int = 0,
    call_plan: CallPlan = "least-cost",
    min_seconds: float = 3.0,
    keep_links: bool = False,
    parallel_calls: int | None = None,
    pipelined: bool = True,
) -> dict:
    """Headlines/s of the same scorer, in-process, in the worker's batch size unless ``batch`` says otherwise
    (no Kafka, no database), over whole passes through ``texts`` for at least ``min_seconds``; with the
    share of the padded tokens that were real. ``tokens_per_call`` 0 is the worker's own choice.
    ``keep_links`` takes the bundle's link rewrite out of the tokenizer: the same weights fed every link's
    word pieces, which is what the rewrite saves. ``parallel_calls`` None is the worker's setting.
    ``pipelined`` starts each batch's calls while the last batch's still run, as the worker's news path does;
    otherwise the batches run one after the other."""
    from streamscore.bundle import CURRENT
    from streamscore.scorer import Scorer

    scorer = Scorer(
        Path(settings.models_dir) / CURRENT,
        variant=settings.model_variant,
        threads=threads,
        parallel_calls=settings.inference_parallel_calls if parallel_calls is None else parallel_calls,
        token_budget=tokens_per_call,
        call_plan=call_plan,
    )
    if keep_links:
        from trainer.tokenizer import remove_link_normaliser

        remove_link_normaliser(scorer.tokenizer)
    size = batch or settings.batch_max_events
    scorer.sentiment(texts[:size])
    scorer.usage = CallUsage()
    done, start = 0, time.perf_counter()
    previous: TextJob | None = None  # pipelined: the batch whose calls still run, across passes too
    while done == 0 or time.perf_counter() - start < min_seconds:
        for i in range(0, len(texts), size):
            job = scorer.start_texts(texts[i : i + size], "sentiment")
            if not pipelined:
                sentiment_labels(job.result())
                continue
            job.wait_for_room()  # the worker's model thread: the next batch is prepared while these calls run
            if previous is not None:
                sentiment_labels(previous.result())
            previous = job
        done += len(texts)
    if previous is not None:
        sentiment_labels(previous.result())
    usage = scorer.usage
    return {
        "events_per_s": round(done / (time.perf_counter() - start), 1),
        "padding_efficiency": round(usage.real_tokens / max(usage.padded_tokens, 1), 3),
        "calls_per_batch": round(usage.calls / (done / size), 2),
        "tokens_per_event": round(usage.real_tokens / done, 1),
        "collapses_links": scorer.collapses_links and not keep_links,
        "skipped_fusions": scorer.skipped_fusions,
        "parallel_calls": scorer.parallel_calls,
    }


def naive_baseline(
    settings: Settings, checkpoint: Path, records: list[Produced], seconds: float, keep_links: bool = False
) -> dict:
    """What a straightforward script does: poll one record, score it with PyTorch eager, INSERT, commit.

    It loads the checkpoint's own tokenizer, so it collapses links exactly as the worker does: the same
    model, the same input. ``keep_links`` takes the rewrite out, to show what it saves a one-at-a-time
    consumer (little: at batch 1 PyTorch's per-call overhead outweighs a dozen tokens)."""
    import torch
    from kafka import KafkaConsumer

    from trainer.checkpoint import load_checkpoint
    from trainer.inference import predict_texts
    from trainer.tokenizer import remove_link_normaliser

    torch.set_num_threads(2)
    ckpt = load_checkpoint(checkpoint)
    if keep_links:
        remove_link_normaliser(ckpt.tokenizer.backend_tokenizer)
    topic = f"naive{uuid.uuid4().hex[:8]}"
    create_topics(
        settings.kafka_bootstrap,
        Topics(topic, topic + "-i", topic + "-c", topic + "-f", topic + "-r", topic + "-a", topic + "-d").specs(1)[:1],
    )
    _produce(settings, [Produced(topic, r.key, r.value) for r in records])
    table = f"naive_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url(settings))
    conn = admin.raw_connection().driver_connection
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (news_id text PRIMARY KEY, label text, p_negative real)")
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"naive-{topic}",
        enable_auto_commit=True,
        max_poll_records=1,
    )
    max_length = int(ckpt.text_model.config.max_length_sentiment)
    done, start = 0, None
    try:
        while done < len(records):
            polled = consumer.poll(timeout_ms=1000, max_records=1)
            for messages in polled.values():
                for message in messages:
                    start = start or time.perf_counter()
                    event = json.loads(message.value)
                    out = predict_texts(ckpt.text_model, ckpt.tokenizer, [event["headline"]], max_length, batch_size=1)
                    probs = torch.softmax(torch.from_numpy(out["sentiment_logits"][0]), dim=-1).numpy()
                    with conn.cursor() as cur:
                        cur.execute(
                            f"INSERT INTO {table} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            (event["id"], ("negative", "neutral", "positive")[int(probs.argmax())], float(probs[0])),
                        )
                    done += 1
            if start and time.perf_counter() - start > seconds:
                break
        elapsed = time.perf_counter() - (start or time.perf_counter())
    finally:
        consumer.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        conn.close()
        admin.dispose()
    return {
        "events": done,
        "seconds": round(elapsed, 2),
        "events_per_s": round(done / max(elapsed, 1e-9), 1),
        "keep_links": keep_links,
    }


def run_e2e_bench(settings: Settings, out_dir: Path, checkpoint: Path, quick: bool = False) -> dict:
    """Everything in the module docstring; ``quick`` shrinks every run (the smoke test)."""
    from ops.stack.manager import stack_up

    stack_up(settings)
    size = 150 if quick else 1500
    rung_s = 4.0 if quick else 12.0
    report: dict = {
        "benchmark": "e2e",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "quick": quick,
    }
    news, clicks = Workload(settings, "news", 600), Workload(settings, "clicks", 800)

    paths: dict[str, dict] = {}
    for work in (news, clicks):
        with Deployment(settings) as dep:
            prepare_workload(dep, work)
            # the figure every ratio uses: the median of three drains (one drain varies by ±15 % here)
            drains = [capacity(dep, work, size if work.path == "news" else size * 3) for _ in range(1 if quick else 3)]
            cap = sorted(drains, key=lambda d: d["events_per_s"])[len(drains) // 2] | {
                "drains_events_per_s": [d["events_per_s"] for d in drains]
            }
            sustained, rungs = ladder(dep, work, cap["events_per_s"], rung_s)
            base = sustained or cap["events_per_s"] * 0.5
            latencies = [constant_rate(dep, work, base * f, rung_s) | {"load": f} for f in (0.25, 0.5, 0.8)]
            paths[work.path] = {
                "capacity": cap,
                "sustained_events_per_s": sustained,
                "ladder": rungs,
                "latency": latencies,
                "peak_rss_mb": round(max(peak_rss_mb(p.process.pid) for p in dep.procs), 1),
                "rss_mb": round(max(rss_mb(p.process.pid) for p in dep.procs), 1),
            }
    report["paths"] = paths

    sweep = []
    grid = [(16, 10), (64, 50)] if quick else [(e, w) for e in (16, 64, 256) for w in (10, 50, 200)]
    load = paths["news"]["sustained_events_per_s"] * 0.5 or 20
    for events, wait in grid:
        with Deployment(settings, batch_events=events, batch_wait_ms=wait) as dep:
            prepare_workload(dep, news)
            cap = capacity(dep, news, size)
            lat = constant_rate(dep, news, load, rung_s)
            sweep.append(
                {
                    "max_events": events,
                    "max_wait_ms": wait,
                    "events_per_s": cap["events_per_s"],
                    "p99_ms_at_load": lat["p99_ms"],
                    "load": round(load, 1),
                }
            )
    report["batch_sweep"] = {
        "defaults": {"max_events": settings.batch_max_events, "max_wait_ms": settings.batch_max_wait_ms},
        "points": sweep,
    }

    scaling = {}
    for work in (news, clicks):
        with Deployment(settings, workers=2) as dep:
            prepare_workload(dep, work)
            scaling[work.path] = capacity(dep, work, size if work.path == "news" else size * 3)
    report["scaling"] = {
        path: {
            "one_worker": paths[path]["capacity"]["events_per_s"],
            "two_workers": s["events_per_s"],
            "ratio": round(s["events_per_s"] / paths[path]["capacity"]["events_per_s"], 2),
        }
        for path, s in scaling.items()
    }

    headlines = [json.loads(r.value)["headline"] for r in news.events(Topics.from_settings(settings), 600)]
    measure = partial(model_only, settings, headlines, min_seconds=0.0 if quick else 3.0)
    model = measure()
    raw_links = measure(keep_links=True)
    report["efficiency"] = {
        "model_only_events_per_s": model["events_per_s"],
        "model_only_padding_efficiency": model["padding_efficiency"],
        "tokens_per_headline": model["tokens_per_event"],
        "collapses_links": model["collapses_links"],
        "skipped_fusions": model["skipped_fusions"],
        "model_only_links_kept": {k: raw_links[k] for k in ("events_per_s", "tokens_per_event", "padding_efficiency")},
        "news_pipeline_events_per_s": paths["news"]["capacity"]["events_per_s"],
        "share_of_model_only": round(paths["news"]["capacity"]["events_per_s"] / model["events_per_s"], 3),
        "model_only_by_tokens_per_call": {
            str(t): measure(tokens_per_call=t)["events_per_s"] for t in TOKENS_PER_CALL_SWEEP
        },
        "model_only_by_call_plan": [
            {"batch": b, "call_plan": plan, **measure(batch=b, call_plan=plan)}
            for b in CALL_PLAN_BATCHES
            for plan in ("fill", "least-cost")
        ],
    }
    naive_run = partial(naive_baseline, settings, checkpoint, seconds=10 if quick else 30)
    naive = naive_run(news.events(Topics.from_settings(settings), 200 if quick else 600))
    naive_raw = naive_run(news.events(Topics.from_settings(settings), 200 if quick else 600), keep_links=True)
    report["naive_baseline"] = naive | {
        "pipeline_ratio": round(paths["news"]["capacity"]["events_per_s"] / naive["events_per_s"], 1),
        "links_kept": naive_raw,
    }
    write_e2e_report(report, out_dir)
    return report


def write_e2e_report(report: dict, out_dir: Path) -> None:
    plt = pyplot()
    write_json(out_dir, "e2e", report)
    p, eff, naive, scale = report["paths"], report["efficiency"], report["naive_baseline"], report["scaling"]
    lines = [
        "# End-to-end benchmark: producer → Kafka → worker → ONNX Runtime → Kafka + PostgreSQL",
        "",
        f"{report['machine']['cpus']} CPUs; one run of `streamscore bench e2e`, same data and bundle for every row. "
        "Latency is from the event entering Kafka to its result row in PostgreSQL.",
        "",
        f"Scorer: {report['efficiency'].get('tokens_per_headline', '?')} real tokens per headline "
        "(links "
        f"{'collapsed to one token' if report['efficiency'].get('collapses_links') else 'tokenized as they are'}), "
        f"ORT fusions skipped: {', '.join(report['efficiency'].get('skipped_fusions') or []) or 'none'}.",
        "",
        "| path | capacity (events/s) | sustained, bounded lag (events/s) | CPU s / 1 000 events | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for path, row in p.items():
        lines.append(
            f"| {path} | {row['capacity']['events_per_s']} | {row['sustained_events_per_s']} | "
            f"{row['capacity']['cpu_s_per_1000']} | {row['peak_rss_mb']} |"
        )
    lines += ["", "| path | load | rate (events/s) | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for path, row in p.items():
        for lat in row["latency"]:
            lines.append(
                f"| {path} | {lat['load']:.0%} of sustained | {lat['rate']} | {lat['p50_ms']} | {lat['p95_ms']} | "
                f"{lat['p99_ms']} |"
            )
    lines += [
        "",
        "| comparison | figure | ratio |",
        "|---|---|---|",
        "| news pipeline ÷ model-only (same scorer, same headlines, 2 threads) | "
        f"{eff['news_pipeline_events_per_s']} vs {eff['model_only_events_per_s']} events/s | "
        f"{eff['share_of_model_only']:.0%} |",
        "| news pipeline ÷ naive consumer (kafka-python, one at a time, PyTorch eager, one INSERT each) | "
        f"{eff['news_pipeline_events_per_s']} vs {naive['events_per_s']} events/s | {naive['pipeline_ratio']}× |",
    ]
    kept, naive_kept = eff.get("model_only_links_kept"), naive.get("links_kept")
    if kept and naive_kept:
        lines += [
            "| model-only, links collapsed ÷ the same weights fed every link's word pieces | "
            f"{eff['model_only_events_per_s']} vs {kept['events_per_s']} "
            f"headlines/s ({eff['tokens_per_headline']} vs {kept['tokens_per_event']} tokens each) | "
            f"{eff['model_only_events_per_s'] / kept['events_per_s']:.2f}× |",
            f"| naive consumer, links collapsed ÷ links kept | {naive['events_per_s']} vs "
            f"{naive_kept['events_per_s']} events/s | "
            f"{naive['events_per_s'] / naive_kept['events_per_s']:.2f}× |",
        ]
    for path, s in scale.items():
        lines.append(
            f"| {path}: two workers ÷ one | {s['two_workers']} vs {s['one_worker']} events/s | {s['ratio']}× |"
        )
    by_call = eff.get("model_only_by_tokens_per_call", {})
    lines += [
        "",
        "Model-only headlines/s by padded tokens per ONNX Runtime call (the worker's CPU default is 2048):",
        "",
        "| " + " | ".join(by_call) + " |",
        "|---" * len(by_call) + "|",
        "| " + " | ".join(str(v) for v in by_call.values()) + " |",
    ]
    by_plan = eff.get("model_only_by_call_plan", [])
    if by_plan:
        lines += [
            "",
            "Model-only headlines/s by how a batch is cut into calls: `fill` sorts by length and fills each call "
            "to the budget; "
            "`least-cost` (the worker's) minimises padded tokens plus a fixed cost per call:",
            "",
            "| batch | call plan | headlines/s | real ÷ padded tokens | calls per batch |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['batch']} | {r['call_plan']} | {r['events_per_s']} | {r['padding_efficiency']:.0%} | "
            f"{r['calls_per_batch']} |"
            for r in by_plan
        ]
    lines += [
        "",
        "Micro-batch policy (news capacity, and p99 at a fixed load):",
        "",
        "| max events | max wait ms | events/s | p99 ms |",
        "|---|---|---|---|",
    ]
    for pt in report["batch_sweep"]["points"]:
        lines.append(f"| {pt['max_events']} | {pt['max_wait_ms']} | {pt['events_per_s']} | {pt['p99_ms_at_load']} |")
    (out_dir / "e2e.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for path, row in p.items():
        axes[0].plot([r["rate"] for r in row["ladder"]], [r["p99_ms"] for r in row["ladder"]], "o-", label=path)
    axes[0].set(
        xscale="log", yscale="log", xlabel="offered rate (events/s)", ylabel="p99 latency (ms)", title="rate ladder"
    )
    axes[0].legend()
    for path, row in p.items():
        axes[1].plot(
            [lat["rate"] for lat in row["latency"]],
            [lat["p50_ms"] for lat in row["latency"]],
            "o--",
            label=f"{path} p50",
        )
        axes[1].plot(
            [lat["rate"] for lat in row["latency"]],
            [lat["p99_ms"] for lat in row["latency"]],
            "o-",
            label=f"{path} p99",
        )
    axes[1].set(
        xscale="log", yscale="log", xlabel="rate (events/s)", ylabel="latency (ms)", title="latency at 25/50/80 % load"
    )
    axes[1].legend()
    defaults = report["batch_sweep"]["defaults"]
    for pt in report["batch_sweep"]["points"]:
        chosen = pt["max_events"] == defaults["max_events"] and pt["max_wait_ms"] == defaults["max_wait_ms"]
        axes[2].scatter(
            pt["events_per_s"], pt["p99_ms_at_load"], s=90 if chosen else 40, color="tab:red" if chosen else "tab:blue"
        )
        axes[2].annotate(
            f"{pt['max_events']}/{pt['max_wait_ms']:g}{' (default)' if chosen else ''}",
            (pt["events_per_s"], pt["p99_ms_at_load"]),
            fontsize=8,
        )
    axes[2].set(
        xlabel="news capacity (events/s)",
        ylabel="p99 at fixed load (ms)",
        title="batch policy: max events / max wait ms",
    )
    fig.tight_layout()
    fig.savefig(out_dir / "e2e.png", dpi=110)
    plt.close(fig)
