"""The end-to-end demo: stack, model, two workers, a real-data replay with a surge, and a live summary.

Everything the demo starts (broker, database, workers) it stops on exit or Ctrl-C; what was already running
is left running. The results stay in PostgreSQL for dashboards (``streamscore_reader`` reads the views).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import Engine, text

from ops.dashboard import Snapshot, database_now, snapshot
from ops.errors import StackError
from ops.replay import Scenario, produce
from streamscore.bundle import CURRENT
from streamscore.db.connection import make_engine, reader_url
from streamscore.security import kafka_python_options
from streamscore.settings import Settings
from streamscore.topics import Topics

console = Console()

DEFAULT_SURGE = "ACME"


@dataclass
class WorkerProcess:
    """One ``streamscore worker`` subprocess, its web port and log file."""

    process: subprocess.Popen
    port: int
    log: Path

    @classmethod
    def start(
        cls, port: int, log_dir: Path, env: dict[str, str] | None = None, module: str = "ops", cwd: Path | None = None
    ) -> WorkerProcess:
        """``python -m <module> worker`` in ``cwd``: another revision's worker runs from its own tree (``-m``
        puts the working directory first on the path), and its CLI package may have another name."""
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"worker-{port}.log"
        handle = log.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", module, "worker", "--web-port", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=cwd,
        )
        return cls(process, port, log)

    def ready(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_ready(self, timeout_s: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError("worker", f"port {self.port}: exited with {self.process.returncode}; see {self.log}")
            state = self.ready()
            if state and state.get("ready"):
                return state
            time.sleep(0.5)
        raise StackError("worker", f"port {self.port}: not ready after {timeout_s:.0f} s; see {self.log}")

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples, ``name{labels}`` → value (empty when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                body = response.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def count(self, metric: str, topics: Sequence[str]) -> int:
        """Sum of a per-topic counter over ``topics``."""
        return int(
            sum(
                v
                for k, v in self.metrics().items()
                if k.startswith(metric + "{") and any(f'topic="{t}"' in k for t in topics)
            )
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure_bundle(settings: Settings) -> str:
    """Train (quick profile) and export unless a current bundle exists; returns how the bundle was obtained."""
    if (settings.models_dir / CURRENT).exists():
        return "existing bundle"
    from export.exporter import ExportLimits, export_bundle
    from trainer.datasets import DataSources
    from trainer.profiles import get_profile
    from trainer.training import run_training

    console.print("[bold]no bundle yet:[/] training the quick profile, then exporting")
    run_dir = settings.runs_dir / "demo"
    checkpoint = run_training(
        settings,
        get_profile("quick"),
        DataSources(settings.data_dir),
        run_dir,
        resume=(run_dir / "checkpoint").exists(),
    )
    export_bundle(checkpoint, settings.models_dir, ExportLimits(), make_current=True)
    return "trained (quick) and exported"


def processed_items(procs: list[WorkerProcess], topics: Topics) -> int:
    """Item events the workers have stored so far, from their /metrics."""
    return sum(proc.count("streamscore_events_processed_total", [topics.items]) for proc in procs)


def wait_for_catalog(procs: list[WorkerProcess], topics: Topics, count: int, timeout_s: float) -> None:
    """Clicks on items the catalog does not know yet are dead-lettered, so the catalog goes first."""
    deadline = time.monotonic() + timeout_s
    while processed_items(procs, topics) < count and time.monotonic() < deadline:
        time.sleep(0.5)


def fresh_surge_ticker(engine: Engine, base: str) -> str:
    """``base``, or ``base2``, ``base3``… if the database already holds news about it. A rerun's surge on the
    same ticker raises nothing, and rightly: the first run's surge is in the ticker's baseline (half-life
    6 h of event time), so its negative news is the norm there now."""
    with engine.connect() as conn:
        seen = set(conn.execute(text("SELECT DISTINCT entity FROM v_sentiment_entity_hourly")).scalars())
    return next(name for name in (base, *(f"{base}{n}" for n in range(2, 10_000))) if name not in seen)


def summary_table(snap: Snapshot, expected: int, rate: float, elapsed: float) -> Table:
    table = Table(title=f"streamscore live · {elapsed:5.1f} s · {rate:6.1f} results/s", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for stream in ("news", "clicks", "items"):
        table.add_row(f"{stream} scored", str(snap.processed.get(stream, 0)))
    table.add_row("recommendations (users)", f"{snap.recommendations} ({snap.cold_start_users} cold start)")
    if snap.reasons:
        table.add_row("reasons", ", ".join(f"{k}={v}" for k, v in sorted(snap.reasons.items())))
    if snap.example:
        table.add_row("e.g.", snap.example)
    table.add_row("dead letters", ", ".join(f"{k}={v}" for k, v in sorted(snap.dead_letters.items())) or "0")
    table.add_row("accounted / produced", f"{snap.accounted} / {expected}")
    table.add_row("p95 lag (last 2 min)", f"{snap.lag_p95_s:.2f} s" if snap.lag_p95_s is not None else "-")
    for alert in snap.alerts[-5:]:
        table.add_row(
            f"[red]alert {alert['status']}[/] {alert['entity']}",
            f"{alert['negative_count']}/{alert['total_count']} negative (baseline {alert['baseline_share']:.2f}, "
            f"z={alert['score']:.1f}); "
            f"evidence {', '.join(alert['evidence'][:3])}…",
        )
    return table


def run_demo(
    settings: Settings, news: int, clicks: int, rate: float, surge: str | None, workers: int, timeout_s: float
) -> Snapshot:
    """``surge`` None: ``ACME``, or the first of ``ACME2``, ``ACME3``… the database has no news about."""
    from ops.stack.kafka import KafkaCluster
    from ops.stack.manager import stack_up
    from ops.stack.postgres import LocalPostgres

    with ExitStack() as cleanup:
        console.print("[bold]1/4[/] stack: Kafka (KRaft) and PostgreSQL")
        report = stack_up(settings)
        if report["kafka"].startswith("started"):
            cleanup.callback(KafkaCluster(settings).stop)
        if report.get("postgres") == "started":
            cleanup.callback(LocalPostgres(settings).stop)
        console.print(
            f"     kafka {report['kafka']}, postgres {report['postgres']}, migrations "
            f"{report['migrations_applied'] or 'up to date'}"
        )
        console.print(f"[bold]2/4[/] model: {ensure_bundle(settings)}")
        console.print(f"[bold]3/4[/] {workers} workers")
        procs = [WorkerProcess.start(settings.worker_web_port + i, settings.stack_dir / "logs") for i in range(workers)]
        for proc in procs:
            cleanup.callback(proc.stop)
        for proc in procs:
            state = proc.wait_ready()
            console.print(
                f"     worker :{proc.port} ready · model {state['model_version']} · providers "
                f"{', '.join(state['providers'])}"
            )
        topics = Topics.from_settings(settings)
        engine = make_engine(reader_url(settings))
        surge = surge or fresh_surge_ticker(engine, DEFAULT_SURGE)
        scenario = Scenario(
            news=news, clicks=clicks, cold_users=3, surge_ticker=surge, bad=True, run=f"demo{int(time.time())}"
        )
        records = scenario.build(settings.data_dir, topics)
        replay_started = database_now(engine)
        before = snapshot(engine).accounted
        expected = before + scenario.expected_accounted()
        console.print(
            f"[bold]4/4[/] replay: {len(records)} events at {rate or 'max'} ev/s (surge of negative news on ${surge})"
        )
        catalog = scenario.catalog()
        security = kafka_python_options(settings)
        produce(settings.kafka_bootstrap, catalog, rate=0, progress=True, **security)
        wait_for_catalog(procs, topics, len(catalog), timeout_s)
        produce(settings.kafka_bootstrap, scenario.stream(), rate=rate, progress=True, **security)
        started = time.monotonic()
        last_total, last_t = before, started
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                snap = snapshot(engine, alerts_since=replay_started)
                now = time.monotonic()
                rate_now = (snap.accounted - last_total) / max(now - last_t, 1e-6)
                last_total, last_t = snap.accounted, now
                live.update(summary_table(snap, expected, rate_now, now - started))
                if snap.accounted >= expected or now - started > timeout_s:
                    break
                time.sleep(1.0)
        if snap.accounted < expected:
            console.print(f"[yellow]timed out with {expected - snap.accounted} events not yet accounted for[/]")
        console.print("results stay in PostgreSQL: read them as streamscore_reader through the v_* views")
        return snap
