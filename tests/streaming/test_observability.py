"""What operators look at, after a real replay through a real worker: the worker's Prometheus metrics (consumer
lag per partition, commits, rebalances, process and build info), and the Grafana dashboard shipped in
deploy/grafana, checked without Grafana: its JSON names only the provisioned datasources, and **every
PostgreSQL panel's SQL** runs as the read-only role, returns rows with the columns the panel uses, and filters
time through an index."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import yaml
from sqlalchemy import text

from ops.replay import Scenario
from streamscore.settings import REPO_ROOT
from tests.streaming.conftest import Deployment

GRAFANA = REPO_ROOT / "deploy" / "grafana"
HISTORY_TABLES = ("news_sentiment", "click_events", "items", "feedback", "recommendation_history", "dead_letters")
WHOLE_TABLE_OK = {"Recommendation coverage": {"items"}}
"""Panels that read a whole table on purpose: coverage divides by the catalog's size (bounded by the catalog,
not by history)."""


def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "streamscore.json").read_text())


def pg_targets() -> list[tuple[dict, dict]]:
    return [
        (panel, target)
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        if target["datasource"]["type"] == "grafana-postgresql-datasource"
    ]


def expand_macros(sql: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros, as Grafana expands them."""

    def group(match: re.Match) -> str:
        column, interval = match.group(1).strip(), match.group(2).strip().strip("'")
        seconds = int(interval[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]]
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)", group, sql)
    return re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1).strip()} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'",
        sql,
    )


def used_columns(panel: dict) -> set[str]:
    """Columns a panel refers to by name: its organize transformation and its by-name overrides."""
    names = set()
    for transformation in panel.get("transformations", []):
        names |= set(transformation.get("options", {}).get("indexByName", {}))
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            names.add(override["matcher"]["options"])
    return names


def test_dashboard_names_only_provisioned_datasources_and_covers_what_operators_need() -> None:
    board = dashboard()
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "streamscore.yml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert uids.get(target["datasource"]["uid"]) == target["datasource"]["type"], panel["title"]
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    for needed in ("per minute", "consumer lag", "per entity", "open alerts", "evidence", "coverage", "dead letters"):
        assert needed in titles
    assert "model version" in titles
    reader = next(d for d in provisioned["datasources"] if d["type"] == "grafana-postgresql-datasource")
    assert reader["user"] == "streamscore_reader" and reader["secureJsonData"]["password"].startswith("${")
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "streamscore.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_macro_expansion_matches_grafana() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    sql = expand_macros("SELECT $__timeGroupAlias(done_at, '5m') FROM t WHERE $__timeFilter(done_at)", start, end)
    assert sql == (
        'SELECT floor(extract(epoch from done_at)/300)*300 AS "time" FROM t WHERE done_at BETWEEN '
        "'2026-01-01T00:00:00+00:00' AND '2026-01-02T00:00:00+00:00'"
    )


def wait_metrics(deployment: Deployment, worker, done, timeout_s: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while not done(samples := deployment.metrics(worker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return samples


def test_metrics_and_every_postgres_panel_after_a_replay(deployment: Deployment) -> None:
    scenario = Scenario(news=200, clicks=300, surge_ticker="ACME", surge_size=30, bad=True, run="dashboard")
    scenario.build(deployment.settings.data_dir, deployment.topics)
    worker = deployment.start_worker()
    deployment.produce(scenario.catalog())
    deployment.wait_items(len(scenario.catalog()))
    deployment.produce(scenario.stream())
    deployment.wait_accounted(scenario.expected_accounted())

    # consumer lag per input partition, back to zero once the offsets are committed (within a second)
    news = deployment.topics.news

    def lag(samples: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in samples.items() if k.startswith("streamscore_consumer_lag_records") and news in k}

    samples = wait_metrics(deployment, worker, lambda m: lag(m) and not any(lag(m).values()))
    assert len(lag(samples)) == deployment.settings.topic_partitions and sum(lag(samples).values()) == 0
    assert samples["streamscore_consumer_commit_seconds_count"] > 0
    assert samples["streamscore_consumer_rebalances_total"] >= 1
    assert samples["process_resident_memory_bytes"] > 0 and samples["process_cpu_seconds_total"] > 0
    version = (deployment.models / "current").resolve().name
    build = [k for k in samples if k.startswith("streamscore_build_info")]
    assert len(build) == 1 and f'model_version="{version}"' in build[0] and samples[build[0]] == 1
    sent_news = sum(r.topic == news for r in scenario.stream())
    assert samples[f'streamscore_event_lag_seconds_count{{topic="{news}"}}'] == sent_news

    now = datetime.now(UTC)
    start, end = now - timedelta(days=2), now + timedelta(hours=1)
    assert deployment.reader is not None
    checked = 0
    for panel, target in pg_targets():
        sql = expand_macros(target["rawSql"], start, end)
        with deployment.reader.connect() as conn:
            result = conn.execute(text(sql))
            columns, rows = list(result.keys()), result.fetchall()
            assert rows, f"{panel['title']}: no rows after a replay"
            if target["format"] == "time_series":
                assert "time" in columns, panel["title"]
                assert any(isinstance(v, int | float | Decimal) for v in rows[0][1:]), (
                    f"{panel['title']}: no value column"
                )
            assert used_columns(panel) <= set(columns), f"{panel['title']}: {used_columns(panel) - set(columns)}"
            if "$__timeFilter" in target["rawSql"]:
                # with sequential scans priced out, a filter that no index serves still shows up as a Seq Scan
                conn.execute(text("SET enable_seqscan = off"))
                plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
                allowed = WHOLE_TABLE_OK.get(panel["title"], set())
                scanned = {t for t in HISTORY_TABLES if f"Seq Scan on {t}" in plan} - allowed
                assert not scanned, f"{panel['title']}: whole-table scan of {scanned}\n{plan}"
        checked += 1
    assert checked >= 9
