"""`streamscore bench profile`: folding py-spy's collapsed stacks into pipeline stages (pure), and one short
real run against a worker (py-spy attached to the worker process, results written)."""

from __future__ import annotations

import json
from pathlib import Path

from streamscore.bench.profile import OTHER, Frame, parse_collapsed, run_profile, stage_of, summarise
from streamscore.settings import Settings
from tests.conftest import Schema

LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
THREAD = "Thread._bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:83)"
COLLAPSED = [
    f"{THREAD};Pipeline.process_news (worker/pipeline.py:300);Scorer.sentiment (streamscore/scorer.py:170);"
    "Scorer.score_texts (streamscore/scorer.py:150);Scorer._run (streamscore/scorer.py:131);Session.run (capi/onnxruntime_inference_collection.py:266) 70",
    f"{THREAD};Pipeline.process_news (worker/pipeline.py:300);Store.transaction (worker/store.py:75);"
    "Connection.execute (sqlalchemy/engine/base.py:1416);DefaultDialect.do_execute (sqlalchemy/engine/default.py:951) 20",
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
        "ONNX Runtime: text model", "PostgreSQL (SQLAlchemy, psycopg2)", "Faust and the event loop", OTHER
    ]
    assert stage_of([Frame("Scorer.encode", "streamscore/scorer.py")]) == "tokenizer"
    assert stage_of([Frame("Scorer.score_texts", "streamscore/scorer.py")]) == "scorer: padding and outputs"


def test_summary_shares_add_up_and_skip_thread_plumbing() -> None:
    summary = summarise(parse_collapsed(COLLAPSED))
    assert summary["samples"] == 100
    assert summary["stages"]["ONNX Runtime: text model"] == 0.7 and abs(sum(summary["stages"].values()) - 1) < 1e-9
    assert summary["top_self"][0] == {"function": "Session.run (capi/onnxruntime_inference_collection.py)", "share": 0.7}
    inclusive = {f["function"]: f["share"] for f in summary["top_inclusive"]}
    assert inclusive["Pipeline.process_news (worker/pipeline.py)"] == 0.9
    assert not any("threading.py" in name or "futures/thread.py" in name for name in inclusive)


def test_profile_of_a_real_worker_writes_stages_and_report(stack: Settings, pg_schema: Schema, models_dir: Path, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"models_dir": models_dir, "database_url": pg_schema.admin, "writer_database_url": pg_schema.writer})
    report = run_profile(settings, "news", "smoke", tmp_path, events=200, seconds=3)
    saved = json.loads((tmp_path / "profile-news-smoke.json").read_text())
    assert saved["capacity_events_per_s"] > 0 and saved["samples"] > 50
    # a news worker under load spends most of its sampled time running the model
    assert max(saved["stages"], key=saved["stages"].get) == "ONNX Runtime: text model"
    assert report["top_inclusive"] == saved["top_inclusive"]
    assert "## news path" in (tmp_path / "profile.md").read_text() and (tmp_path / "profile.png").stat().st_size > 10_000
