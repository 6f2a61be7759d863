"""`streamscore bench profile`: folding py-spy's collapsed stacks into pipeline stages (pure), and one short
real run against a worker (py-spy attached to the worker process, results written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.bench.profile import OTHER, Frame, parse_collapsed, run_profile, stage_of, summarise, window_stats
from streamscore.settings import Settings
from tests.conftest import Schema

LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
THREAD = "Thread._bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:83)"
COLLAPSED = [
    f"{THREAD};NewsPath.process (worker/paths/news.py:60);Scorer.sentiment (streamscore/scorer.py:170);"
    "Scorer.score_texts (streamscore/scorer.py:150);Scorer._run (streamscore/scorer.py:131);Session.run "
    "(capi/onnxruntime_inference_collection.py:266) 70",
    f"{THREAD};NewsPath.process (worker/paths/news.py:60);Store.transaction (worker/adapters/results_store.py:75);"
    "Connection.execute (sqlalchemy/engine/base.py:1416);DefaultDialect.do_execute "
    "(sqlalchemy/engine/default.py:951) 20",
    f"{LOOP};Handle._run (asyncio/events.py:84) 9",
    "<module> (tool.py:3) 1",
]


def test_frames_parse_from_py_spy_raw_format() -> None:
    assert Frame.parse("Scorer._run (streamscore/scorer.py:131)") == Frame("Scorer._run", "streamscore/scorer.py")
    assert Frame.parse("_run_code (<frozen runpy>:88)") == Frame("_run_code", "<frozen runpy>")
    assert Frame.parse("process 123") == Frame("process 123", "")
    stacks = parse_collapsed(COLLAPSED + ["", "  "])
    assert [count for _, count in stacks] == [70, 20, 9, 1]
    assert stacks[0][0][-1] == Frame("Session.run", "capi/onnxruntime_inference_collection.py")


def test_a_sample_belongs_to_its_leafmost_known_stage() -> None:
    stacks = parse_collapsed(COLLAPSED)
    # ORT's frame is unknown; the scorer's _run above it decides, not score_texts or the pipeline further up
    assert [stage_of(frames) for frames, _ in stacks] == [
        "ONNX Runtime: text model",
        "PostgreSQL (SQLAlchemy, psycopg2)",
        "Faust and the event loop",
        OTHER,
    ]
    assert stage_of([Frame("Scorer.encode", "streamscore/scorer.py")]) == "tokenizer"
    assert stage_of([Frame("Scorer.score_texts", "streamscore/scorer.py")]) == "scorer: padding and outputs"


def test_summary_shares_add_up_and_skip_thread_plumbing() -> None:
    summary = summarise(parse_collapsed(COLLAPSED))
    assert summary["samples"] == 100
    assert summary["stages"]["ONNX Runtime: text model"] == 0.7 and abs(sum(summary["stages"].values()) - 1) < 1e-9
    assert summary["top_self"][0] == {
        "function": "Session.run (capi/onnxruntime_inference_collection.py)",
        "share": 0.7,
    }
    inclusive = {f["function"]: f["share"] for f in summary["top_inclusive"]}
    assert inclusive["NewsPath.process (paths/news.py)"] == 0.9
    assert not any("threading.py" in name or "futures/thread.py" in name for name in inclusive)


def test_window_stats_are_deltas_between_two_scrapes_for_one_topic() -> None:
    before = {
        'streamscore_batch_events_count{topic="n"}': 10,
        'streamscore_batch_events_sum{topic="n"}': 100,
        'streamscore_model_tokens_total{kind="real",topic="n"}': 1000,
        'streamscore_model_tokens_total{kind="padded",topic="n"}': 2000,
    }
    after = {
        'streamscore_batch_events_count{topic="n"}': 14,
        'streamscore_batch_events_sum{topic="n"}': 200,
        'streamscore_model_tokens_total{kind="real",topic="n"}': 1900,
        'streamscore_model_tokens_total{kind="padded",topic="n"}': 3000,
        'streamscore_batch_events_count{topic="other"}': 99,
    }
    assert window_stats(before, after, "n") == {"events_per_batch": 25.0, "padding_efficiency": 0.9}
    assert window_stats(after, after, "n") == {"events_per_batch": None, "padding_efficiency": None}


@pytest.mark.parametrize("rate", [0.0, 40.0])
def test_profile_of_a_real_worker_writes_stages_and_report(
    stack: Settings, pg_schema: Schema, models_dir: Path, tmp_path: Path, rate: float
) -> None:
    settings = stack.model_copy(
        update={"models_dir": models_dir, "database_url": pg_schema.admin, "writer_database_url": pg_schema.writer}
    )
    report = run_profile(settings, "news", "smoke", tmp_path, events=200, seconds=3, rate=rate)
    saved = json.loads((tmp_path / "profile-news-smoke.json").read_text())
    assert saved["capacity_events_per_s"] > 0 and saved["samples"] > 20
    # draining, a news worker spends most of its sampled time running the model; at a light load the event
    # loop's polling can outweigh it, but the model is still sampled
    if rate:
        assert saved["stages"]["ONNX Runtime: text model"] > 0.05
    else:
        assert max(saved["stages"], key=saved["stages"].get) == "ONNX Runtime: text model"
    assert saved["events_per_batch"] >= 1 and 0 < saved["padding_efficiency"] <= 1
    if rate:
        assert saved["load"]["events_per_s"] == rate and 0 < saved["load"]["p50_ms"] <= saved["load"]["p99_ms"]
    else:
        assert saved["load"] is None
    assert report["top_inclusive"] == saved["top_inclusive"]
    assert (
        "## news path" in (tmp_path / "profile.md").read_text() and (tmp_path / "profile.png").stat().st_size > 10_000
    )
