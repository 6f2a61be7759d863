"""Every metric the worker exposes follows Prometheus' naming conventions, so dashboards and alert rules
written against one worker read any other (https://prometheus.io/docs/practices/naming/)."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from worker.adapters.prometheus import REGISTRY, ConsumerLagCollector

UNITS = ("_seconds", "_bytes", "_records", "_events", "_tokens", "_ratio")
UNITLESS_OK = {"streamscore_served_lists", "streamscore_catalog_items", "streamscore_served_ndcg"}


def families() -> dict[str, str]:
    """Exposed name → type of every family (a counter's samples carry ``_total``)."""
    return {m.name + ("_total" if m.type == "counter" else ""): m.type for m in REGISTRY.collect()}


def test_names_are_prefixed_snake_case_with_base_units() -> None:
    found = families()
    ours = {name: kind for name, kind in found.items() if name.startswith("streamscore_")}
    assert len(ours) >= 20
    assert "process_resident_memory_bytes" in found and "process_cpu_seconds_total" in found
    for name, kind in ours.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert not re.search(r"_(ms|millis|milliseconds|minutes|kb|mb|percent)(_|$)", name), f"{name}: base units only"
        if kind == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), f"{name}: _total is for counters"
        if kind == "histogram":
            assert name.endswith(UNITS), f"{name}: a histogram says its unit"
        if kind == "gauge" and not name.endswith("_info"):
            assert name.endswith(UNITS) or name in UNITLESS_OK, f"{name}: a gauge says its unit"


def test_build_info_and_lag_are_exposed() -> None:
    found = families()
    assert found["streamscore_build_info"] == "gauge"
    assert found["streamscore_consumer_rebalances_total"] == "counter"
    text = generate_latest(REGISTRY).decode()
    assert "_created" not in text


def test_lag_is_end_minus_committed_and_skips_unknown_commits() -> None:
    collector = ConsumerLagCollector(lambda: [("news", 0, 120, 100), ("news", 1, 50, 50), ("clicks", 2, 9, None)])
    (family,) = collector.collect()
    assert family.name == "streamscore_consumer_lag_records" and family.type == "gauge"
    samples = {(s.labels["topic"], s.labels["partition"]): s.value for s in family.samples}
    assert samples == {("news", "0"): 20, ("news", "1"): 0}


def test_a_scrape_before_the_consumer_starts_does_not_fail() -> None:
    import worker.app  # noqa: F401 - registers the lag collector against a Faust app that has not started

    text = generate_latest(REGISTRY).decode()
    assert "streamscore_consumer_lag_records" in text and "process_cpu_seconds_total" in text
