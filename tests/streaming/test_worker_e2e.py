"""The worker end to end: real Kafka, real PostgreSQL, real ONNX Runtime, real worker processes."""

from __future__ import annotations

import json
import shutil
from collections import Counter

from ops.dashboard import database_now, snapshot
from ops.demo import fresh_surge_ticker
from ops.replay import Scenario
from streamscore.bundle import CURRENT, write_manifest
from tests.streaming.conftest import Deployment


def test_replay_two_workers_reconcile_alert_once_and_recommend_unseen(deployment: Deployment) -> None:
    """A replay with a surge and every kind of bad input, shared by two workers: each valid event has one
    result row, each bad one one dead letter, the surge one alert, and recommendations skip seen items."""
    scenario = Scenario(news=160, clicks=240, cold_users=2, surge_ticker="ACME", surge_size=30, bad=True, run="e2e")
    records = scenario.build(deployment.settings.data_dir, deployment.topics)
    first, second = deployment.start_worker(wait=False), deployment.start_worker(wait=False)
    first.wait_ready()
    second.wait_ready()
    replay_started = database_now(deployment.reader)
    deployment.produce(scenario.catalog())
    deployment.wait_items(len(scenario.catalog()))
    deployment.produce(scenario.stream())
    snap = deployment.wait_accounted(scenario.expected_accounted())

    ok = Counter(r.topic for r in records if r.expect == "ok")
    assert (
        snap.processed["news"] == ok[deployment.topics.news] == deployment.scalar("SELECT count(*) FROM news_sentiment")
    )
    assert (
        snap.processed["clicks"]
        == ok[deployment.topics.clicks]
        == deployment.scalar("SELECT count(*) FROM click_events")
    )
    expected_codes = Counter(r.expect for r in records if r.expect != "ok")
    assert snap.dead_letters == dict(expected_codes)

    raised = [a for a in snap.alerts if a["status"] == "raised"]
    assert [a["entity"] for a in raised] == ["ACME"], raised
    surge_ids = {json.loads(r.value)["id"] for r in records if r.key and r.key.startswith("surge-")}
    assert set(raised[0]["evidence"]) <= surge_ids and raised[0]["total_count"] >= deployment.settings.alert_min_count
    # The demo's summary counts only the alerts of its own run: earlier runs' stay in the database.
    assert [a["alert_id"] for a in snapshot(deployment.reader, alerts_since=replay_started).alerts] == [
        a["alert_id"] for a in snap.alerts
    ]
    assert snapshot(deployment.reader, alerts_since=database_now(deployment.reader)).alerts == []
    # A rerun of the demo surges on a ticker with no history: ACME's surge is in its baseline now.
    assert fresh_surge_ticker(deployment.reader, "ACME") == "ACME2"
    assert fresh_surge_ticker(deployment.reader, "QUIETCO") == "QUIETCO"

    seen = {(u, i) for u, i in deployment.rows("SELECT user_id, item_id FROM click_events")}
    clicked: dict[str, set[str]] = {}
    for u, i in seen:
        clicked.setdefault(u, set()).add(i)
    ranker_items = set(json.loads((deployment.models / CURRENT / "ranker.json").read_text())["item_ids"])
    latest = deployment.rows("SELECT user_id, items, cold_start FROM recommendations_latest")
    assert len(latest) == len(clicked)
    for user, items, cold in latest:
        assert len(items) == deployment.settings.recommend_k
        assert not {(user, it["item_id"]) for it in items} & seen, f"user {user} was recommended an item they saw"
        # cold means no personal term reached the list: every reason is "popular now"; a history the ranker
        # knows nothing of is always cold
        kinds = [it["reason_kind"] for it in items]
        assert cold == (set(kinds) == {"popular_now"}), (user, kinds)
        if not clicked[user] & ranker_items:
            assert cold, user
        # personal items come first, the popular fill after them
        assert kinds == sorted(kinds, key=lambda kind: kind == "popular_now"), kinds
        for it in items:  # a reason names an item of the user's own history, in words
            assert it["reason"] and (it["because_item_id"] is None) == (it["reason_kind"] == "popular_now")
            assert it["because_item_id"] is None or it["because_item_id"] in clicked[user]
    by_user = {user: (items, cold) for user, items, cold in latest}
    new_users = [u for u in by_user if u.startswith("new-user-")]
    # new users' first clicks on known movies are enough for a personal, explained list
    assert new_users and any(not by_user[u][1] for u in new_users)
    assert sum(not cold for _, cold in by_user.values()) > len(by_user) / 2
    # the click on an item whose catalog event never came was stored, and its user served what is popular now
    assert by_user["u-bad"][1] and deployment.scalar("SELECT count(*) FROM click_events WHERE user_id = 'u-bad'") == 1
    reasons = dict(deployment.rows("SELECT reason_kind, sum(items) FROM v_recommendation_reasons GROUP BY 1"))
    assert reasons.get("liked", 0) > 0 and reasons.get("popular_now", 0) > 0, reasons

    # both workers took part, and the output topics carry what PostgreSQL holds
    for worker in (first, second):
        assert sum(v for k, v in deployment.metrics(worker).items() if k.startswith("streamscore_events_in_total")) > 0
    # the text model's padding is observable: real tokens are counted, and padding never makes them more
    tokens = Counter[str]()
    for worker in (first, second):
        for name, value in deployment.metrics(worker).items():
            if name.startswith("streamscore_model_tokens_total{"):
                tokens["padded" if 'kind="padded"' in name else "real"] += value
    assert 0 < tokens["real"] <= tokens["padded"]
    alerts = [json.loads(v) for v in deployment.consume(deployment.topics.alerts)]
    assert [(a["entity"], a["status"]) for a in alerts if a["status"] == "raised"] == [("ACME", "raised")]
    assert len(deployment.consume(deployment.topics.dead_letter)) == sum(expected_codes.values())
    assert deployment.scalar("SELECT count(DISTINCT model_version) FROM news_sentiment") == 1


def test_calm_stream_raises_no_alert(deployment: Deployment) -> None:
    scenario = Scenario(news=400, clicks=0, run="calm")
    scenario.build(deployment.settings.data_dir, deployment.topics)
    deployment.start_worker()
    deployment.produce(scenario.stream())
    snap = deployment.wait_accounted(400)
    assert snap.processed["news"] == 400 and snap.alerts == []
    assert deployment.scalar("SELECT count(*) FROM entity_alert_state") > 10  # the cashtags were tracked


def _variant_of(deployment: Deployment, tamper: bool) -> str:
    """A copy of the serving bundle with a different version (a harmless tokenizer-config key), or a
    tampered copy (a byte of the model changed after the manifest was written)."""
    source = (deployment.models / CURRENT).resolve()
    work = deployment.models / (".variant" if not tamper else ".tampered")
    shutil.copytree(source, work)
    manifest = json.loads((work / "manifest.json").read_text())
    if tamper:
        with (work / "model.int8.onnx").open("r+b") as handle:
            handle.seek(2000)
            byte = handle.read(1)
            handle.seek(2000)
            handle.write(bytes([byte[0] ^ 0xFF]))
        name = "tampered"
    else:
        config = json.loads((work / "tokenizer_config.json").read_text())
        (work / "tokenizer_config.json").write_text(json.dumps({**config, "streamscore_note": "hot-reload test"}))
        fields = {k: v for k, v in manifest.items() if k not in ("format", "version", "files")}
        name = write_manifest(work, fields)["version"]
    work.rename(deployment.models / name)
    return name


def test_hot_reload_swaps_version_refuses_tampered_and_loses_nothing(deployment: Deployment) -> None:
    scenario = Scenario(news=240, clicks=0, run="reload")
    news = [
        r for r in scenario.build(deployment.settings.data_dir, deployment.topics) if r.topic == deployment.topics.news
    ]
    worker = deployment.start_worker()
    old = deployment.ready(worker)["model_version"]

    deployment.produce(news[:80])
    deployment.wait_accounted(80)

    deployment.point_current(_variant_of(deployment, tamper=True))
    deployment.produce(news[80:160])
    deployment.wait_accounted(160)
    state = deployment.wait_ready_until(worker, lambda s: bool(s["last_reload_error"]))
    assert state["model_version"] == old and "checksum" in (state["last_reload_error"] or "")
    assert deployment.metrics(worker)['streamscore_model_reloads_total{outcome="refused"}'] == 1
    assert "new bundle refused" in worker.log.read_text(errors="replace")  # and the log says so

    new = _variant_of(deployment, tamper=False)
    deployment.point_current(new)
    assert deployment.wait_ready_until(worker, lambda s: s["model_version"] == new)["model_version"] == new
    deployment.produce(news[160:])
    deployment.wait_accounted(240)
    versions = dict(deployment.rows("SELECT model_version, count(*) FROM news_sentiment GROUP BY model_version"))
    assert set(versions) == {old, new} and sum(versions.values()) == 240
    assert versions[new] >= 80
    assert deployment.scalar("SELECT count(*) FROM model_versions") == 2
