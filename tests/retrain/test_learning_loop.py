"""The learning loop end to end, on real Kafka, PostgreSQL and ONNX Runtime: a replay is stored by a worker,
people correct headlines the model got wrong, ``retrain`` publishes a challenger that honours them and ranks
the items and users that only the stream brought, the worker hot-reloads it with nothing lost; with nothing new
there is nothing to learn; a flood of wrong corrections makes a worse challenger, and the gate refuses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ops.replay import Produced, Scenario, movie_catalog
from ops.retrain import retrain
from streamscore.bundle import MANIFEST, current_version
from streamscore.events import SENTIMENT_LABELS
from tests.streaming.conftest import Deployment
from trainer.data.financial_news import load_financial_news
from trainer.retrain_gate import EXIT_NOTHING_TO_LEARN, EXIT_PUBLISHED, EXIT_REFUSED

PAIRS = 3


def _dump(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def _feedback(dep: Deployment, events: list[dict]) -> list[Produced]:
    return [Produced(dep.topics.feedback, e.get("news_id") or e.get("alert_id") or "x", _dump(e)) for e in events]


def _probe(dep: Deployment, tag: str, users: int, now_ms: int) -> list[dict]:
    """New users whose first click is on a stream-only item; their recommendation rows once stored."""
    clicks = [
        {"event_id": f"{tag}-{u}", "user_id": f"{tag}-user-{u}", "item_id": "loop-item-0", "ts": now_ms + u}
        for u in range(users)
    ]
    before = dep.snapshot().accounted
    dep.produce([Produced(dep.topics.clicks, c["user_id"], _dump(c)) for c in clicks])
    dep.wait_accounted(before + users)
    rows = dep.rows("SELECT cold_start, items FROM recommendations_latest WHERE user_id LIKE :p", p=f"{tag}-user-%")
    assert len(rows) == users
    return [{"cold_start": r[0], "items": [i["item_id"] for i in r[1]]} for r in rows]


@pytest.mark.timeout(900)
def test_the_loop_learns_from_what_the_workers_stored(deployment: Deployment, tmp_path) -> None:
    dep = deployment
    settings = dep.settings.model_copy(
        update={
            "retrainer_database_url": dep.schema.retrainer,
            "runs_dir": tmp_path / "runs",
            "retrain_min_new_interactions": 50,
        }
    )
    champion = current_version(dep.models)
    assert champion is not None
    dep.env["STREAMSCORE_SERVED_METRICS_INTERVAL_S"] = "1"
    worker = dep.start_worker()
    now_ms = int(time.time() * 1000)

    # -- the stream: a replay, plus items and users only the stream knows ---------------------------------
    scenario = Scenario(news=300, clicks=800, news_spacing_s=1.0, run="loop")
    scenario.build(settings.data_dir, dep.topics, now_ms)
    stream = scenario.stream()
    first_click = min(json.loads(r.value)["ts"] for r in stream if r.topic == dep.topics.clicks)
    movies = list(movie_catalog(settings.data_dir).values())
    new_items = [
        {"item_id": f"loop-item-{n}", "title": f"{m['title']} (streamed cut)", "genres": m["genres"], "ts": now_ms}
        for n, m in enumerate(movies[: 2 * PAIRS])
    ]
    # 45 new users, each liking one pair of new items in order: behaviour no public data holds
    new_clicks = [
        {
            "event_id": f"loop-{u}-{step}",
            "user_id": f"loop-user-{u}",
            "item_id": f"loop-item-{2 * (u % PAIRS) + step}",
            "ts": first_click - 3_600_000 + 1000 * u + step,
            "rating": 5.0,
            "action": "rate",
        }
        for u in range(45)
        for step in (0, 1)
    ]
    catalog = scenario.catalog() + [Produced(dep.topics.items, i["item_id"], _dump(i)) for i in new_items]
    dep.produce(catalog)
    dep.wait_items(len(catalog))
    dep.produce(stream + [Produced(dep.topics.clicks, c["user_id"], _dump(c)) for c in new_clicks])
    accounted = len(stream) + len(new_clicks)
    dep.wait_accounted(accounted)
    before = _probe(dep, "probe-before", 5, now_ms)
    accounted += 5

    # -- people correct the headlines the champion got wrong -----------------------------------------------
    _, test = load_financial_news(settings.data_dir)
    gold = {text: SENTIMENT_LABELS[label] for text, label in zip(test.texts, test.labels)}
    scored = dep.rows("SELECT news_id, headline, label FROM news_sentiment WHERE news_id LIKE 'fin-loop-%'")
    wrong = [(n, h, gold[h]) for n, h, label in scored if h in gold and gold[h] != label][:15]
    assert len(wrong) >= 5, "the quick model should get some of 300 headlines wrong"
    fixes = [
        {"feedback_id": f"fix-{n}", "kind": "sentiment_correction", "news_id": n, "label": g, "by": "ana", "ts": now_ms}
        for n, _, g in wrong
    ]
    first = wrong[0]
    mistaken = next(
        lab for lab in SENTIMENT_LABELS if lab != first[2]
    )  # an earlier, different verdict: the latest wins
    fixes.append(
        {"feedback_id": "fix-early", "kind": "sentiment_correction", "news_id": first[0], "label": mistaken,
         "by": "bob", "ts": now_ms - 60_000}
    )  # fmt: skip
    verdict = {"feedback_id": "v1", "kind": "alert_verdict", "alert_id": "a-1", "verdict": "useful", "ts": now_ms}
    bad = {"feedback_id": "bad", "kind": "sentiment_correction", "news_id": "fin-loop-1", "ts": now_ms}
    dep.produce(_feedback(dep, [*fixes, verdict, bad]))
    accounted += len(fixes) + 2
    snap = dep.wait_accounted(accounted)
    assert sum(snap.dead_letters.values()) == 1, snap.dead_letters  # the correction without a label
    assert dep.scalar("SELECT count(*) FROM feedback") == len(fixes) + 1
    latest = dict(dep.rows("SELECT news_id, corrected_label FROM v_sentiment_corrections"))
    assert latest[first[0]] == first[2] and len(latest) == len(wrong)

    # -- retrain: published, honours the corrections, ranks what only the stream knew ---------------------
    result = retrain(settings)
    assert (result.decision, result.exit_code) == ("published", EXIT_PUBLISHED), result.reason
    assert current_version(dep.models) == result.challenger != champion
    counts, metrics = result.row_counts, result.metrics
    assert counts["corrections"] == len(wrong) and counts["contradicted_articles"] == 1
    assert counts["items_added_to_ranker"] >= len(new_items) and counts["held_out_interactions"] > 0
    # the worker got every one of them wrong; rescored alone, a borderline headline may flip (dynamic int8
    # quantisation scales each call by its own batch), hence "almost none"
    assert metrics["champion"]["corrections_honoured"] <= 0.2
    assert metrics["challenger"]["corrections_honoured"] >= 0.8
    assert metrics["challenger"]["sentiment_accuracy"] >= metrics["champion"]["sentiment_accuracy"] - 0.01
    assert metrics["challenger"]["recent_ndcg@10"] >= metrics["champion"]["recent_ndcg@10"]
    lineage = dep.rows(
        "SELECT parent_version, decision, row_counts, metrics FROM model_versions WHERE version = :v",
        v=result.challenger,
    )
    assert lineage and lineage[0][0] == champion and lineage[0][1] == "published"
    assert lineage[0][2]["corrections"] == len(wrong) and "gate" in lineage[0][3]
    manifest = json.loads((dep.models / result.challenger / MANIFEST).read_text())
    assert manifest["retrain"]["decision"] == "published" and manifest["retrain"]["champion"] == champion
    assert manifest["embedding_space"] == champion  # the encoder was frozen: stored embeddings stay valid

    # the worker serves it by its hot reload, nothing lost on the way
    state = dep.wait_ready_until(worker, lambda s: s.get("model_version") == result.challenger, 60)
    assert state["model_version"] == result.challenger, state
    again = [{"id": f"again-{n}", "ts": now_ms + i, "headline": h, "tickers": []} for i, (n, h, _) in enumerate(wrong)]
    dep.produce([Produced(dep.topics.news, a["id"], _dump(a)) for a in again])
    accounted += len(again)
    dep.wait_accounted(accounted)
    rescored = dict(dep.rows("SELECT headline, label FROM news_sentiment WHERE news_id LIKE 'again-%'"))
    assert sum(rescored[h] == g for _, h, g in wrong) >= 0.8 * len(wrong), rescored

    after = _probe(dep, "probe-after", 5, now_ms + 10_000)
    accounted += 5
    cold_before = sum(r["cold_start"] for r in before) / len(before)
    cold_after = sum(r["cold_start"] for r in after) / len(after)
    assert cold_before == 1.0 and cold_after == 0.0, (before, after)
    assert all("loop-item-1" in r["items"] for r in after), after  # liked together by the stream's users

    # online evaluation of the served lists on /metrics, per model version
    deadline = time.monotonic() + 30
    served: dict[str, float] = {}
    while not served and time.monotonic() < deadline:
        served = {k: v for k, v in dep.metrics(worker).items() if k.startswith("streamscore_served_lists{")}
        time.sleep(0.5)
    assert served and sum(served.values()) > 0, served
    assert any(champion in k for k in served)

    # -- nothing new: nothing to learn (the CLI, as an operator runs it) ----------------------------------
    env = {
        **os.environ,
        "STREAMSCORE_MODELS_DIR": str(dep.models),
        "STREAMSCORE_RETRAINER_DATABASE_URL": dep.schema.retrainer,
        "STREAMSCORE_DATA_DIR": str(settings.data_dir),
        "STREAMSCORE_RUNS_DIR": str(settings.runs_dir),
        "STREAMSCORE_RETRAIN_MIN_NEW_INTERACTIONS": "50",
    }
    cli = subprocess.run(
        [sys.executable, "-m", "ops", "retrain", "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert cli.returncode == EXIT_NOTHING_TO_LEARN, cli.stdout + cli.stderr
    decision = json.loads(cli.stdout.strip().splitlines()[-1])
    assert decision["decision"] == "nothing_to_learn" and decision["champion"] == result.challenger

    # -- a flood of wrong corrections: a worse challenger, refused -----------------------------------------
    every = dep.rows("SELECT news_id FROM news_sentiment")
    flood = [
        {"feedback_id": f"flood-{n}", "kind": "sentiment_correction", "news_id": n, "label": "positive", "ts": now_ms}
        for (n,) in every
    ]
    dep.produce(_feedback(dep, flood))
    accounted += len(flood)
    dep.wait_accounted(accounted)
    published = current_version(dep.models)
    refused = retrain(settings)
    assert (refused.decision, refused.exit_code) == ("refused", EXIT_REFUSED), refused.reason
    assert "sentiment accuracy" in refused.reason, refused.reason  # by the gate, or by the export's int8 check
    assert current_version(dep.models) == published
    assert not (dep.models / str(refused.challenger)).exists()
    row = dep.rows(
        "SELECT parent_version, decision, reason FROM model_versions WHERE version = :v", v=refused.challenger
    )
    assert row and row[0][0] == published and row[0][1] == "refused" and row[0][2] == refused.reason, row
    assert worker.process.poll() is None
