"""The ONNX Runtime scorer on the CPU path, its provider report, and the `score` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ops.cli import app
from streamscore.bundle import Bundle
from streamscore.scorer import Scorer


@pytest.fixture(scope="module")
def scorer(bundle: Bundle) -> Scorer:
    return Scorer(bundle, variant="int8", device="auto", threads=2)


def test_provider_report_is_what_the_session_uses(scorer: Scorer) -> None:
    assert scorer.providers == scorer.text_session.get_providers()
    assert scorer.providers[0] == "CPUExecutionProvider"  # no GPU here, whatever onnxruntime-gpu lists
    assert scorer.describe() == {
        "version": scorer.version,
        "variant": "int8",
        "providers": scorer.providers,
        "parallel_calls": 2,
        "intra_op_threads": 1,
        "tokens_per_call": 2048,
        "call_plan": "least-cost",
        "call_cost_tokens": 64,
        "skipped_fusions": ["SkipLayerNormFusion"],
        "collapses_links": True,
    }


def test_parallel_calls_score_exactly_what_one_call_at_a_time_does(bundle: Bundle, data_dir: Path) -> None:
    """Two single-threaded calls at once (the CPU default) and one call over both threads give the same fp32
    outputs, row for row, in input order; only the schedule differs."""
    import csv

    with (data_dir / "twitter_financial_news_sentiment" / "sent_valid.csv").open() as handle:
        texts = [row["text"] for _, row in zip(range(300), csv.DictReader(handle))]
    parallel = Scorer(bundle, variant="fp32", threads=2, warm_up=False)
    single = Scorer(bundle, variant="fp32", threads=2, parallel_calls=1, warm_up=False)
    assert (parallel.parallel_calls, parallel.intra_op_threads) == (2, 1)
    assert (single.parallel_calls, single.intra_op_threads, single.call_pool) == (1, 2, None)
    for batch in (texts, texts[:3]):
        ours, theirs = parallel.score_texts(batch, "sentiment"), single.score_texts(batch, "sentiment")
        for name in ("sentiment_logits", "embedding"):
            assert np.allclose(ours.outputs[name], theirs.outputs[name], atol=1e-5), name
    assert parallel.usage.calls > single.usage.calls  # the 3-text batch was cut in two, one per core


def test_a_dropped_scorer_stops_its_call_threads(bundle: Bundle) -> None:
    """Hot reload drops the old scorer; its call pool must not outlive it."""
    import gc
    import threading
    import time

    def pool_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("streamscore-ort") and t.is_alive()}

    before = pool_threads()
    scorer = Scorer(bundle, variant="int8", threads=2, warm_up=False)
    scorer.score_texts(["one headline", "and another one, a little longer"], "sentiment")
    its_own = pool_threads() - before
    assert 1 <= len(its_own) <= 2  # threads start on demand, at most one per parallel call
    del scorer
    gc.collect()
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in its_own) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.is_alive() for t in its_own)


def test_links_are_collapsed_where_the_model_is_served(bundle: Bundle) -> None:
    """The bundle's tokenizer carries the trainer's link rewrite, so the served model sees what it was trained on."""
    assert bundle.manifest["text_model"]["collapses_links"] is True
    fp32 = Scorer(bundle, variant="fp32", warm_up=False)
    linked = [
        "$BYND - JPMorgan reels in expectations on Beyond Meat https://t.co/bd0xbFGjkT",
        "Guidance cut, see WWW.EXAMPLE.COM/IR",
    ]
    placeholder = ["$BYND - JPMorgan reels in expectations on Beyond Meat http", "Guidance cut, see http"]
    a, b = fp32.score_texts(linked, "sentiment"), fp32.score_texts(placeholder, "sentiment")
    assert a.lengths.tolist() == b.lengths.tolist()
    assert np.allclose(a.outputs["sentiment_logits"], b.outputs["sentiment_logits"], atol=1e-5)


def test_skipping_the_fusion_keeps_int8_results(bundle: Bundle, scorer: Scorer, data_dir: Path) -> None:
    """Skipping SkipLayerNormalization only reorders float sums: the labels of real headlines hold."""
    import csv

    with (data_dir / "twitter_financial_news_sentiment" / "sent_valid.csv").open() as handle:
        texts = [row["text"] for _, row in zip(range(400), csv.DictReader(handle))]
    fused = Scorer(bundle, variant="int8", threads=2, skipped_fusions=(), warm_up=False)
    assert fused.describe()["skipped_fusions"] == []
    ours, theirs = scorer.score_texts(texts, "sentiment").outputs, fused.score_texts(texts, "sentiment").outputs
    same = (ours["sentiment_logits"].argmax(1) == theirs["sentiment_logits"].argmax(1)).mean()
    assert same >= 0.98
    assert np.abs(ours["sentiment_logits"] - theirs["sentiment_logits"]).max() < 0.5


def test_outputs_are_order_preserving_and_independent_of_batching(bundle: Bundle, scorer: Scorer) -> None:
    texts = [
        "Stocks slump",
        "markets " * 300,
        "Shares of $AAPL rally after earnings beat expectations by a wide margin",
        "ok",
    ]
    fp32 = Scorer(bundle, variant="fp32", warm_up=False)
    together = fp32.score_texts(texts, "sentiment").outputs["sentiment_logits"]
    alone = np.vstack([fp32.score_texts([t], "sentiment").outputs["sentiment_logits"] for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    # int8 quantizes activations with one range per batch, so its outputs move slightly with the company
    # a text keeps; they stay close, and the order is preserved.
    together8 = scorer.score_texts(texts, "sentiment").outputs["sentiment_logits"]
    alone8 = np.vstack([scorer.score_texts([t], "sentiment").outputs["sentiment_logits"] for t in texts])
    assert np.allclose(together8, alone8, atol=0.25)
    result = scorer.sentiment(texts)
    assert [r["truncated"] for r in result] == [False, True, False, False]
    assert all(abs(r["p_negative"] + r["p_neutral"] + r["p_positive"] - 1) < 1e-5 for r in result)
    ratings = scorer.review_rating(["Love this dress, fits perfectly", "Terrible fabric, returned it"])
    assert all(1.0 <= r["rating"] <= 5.0 and r["stars"] in range(1, 6) for r in ratings)
    embeddings = scorer.embed(["Toy Story (1995)", "Heat (1995)"])
    assert embeddings.shape == (2, 384) and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-3)


def test_batch_mates_move_few_int8_labels_and_no_fp32_label(bundle: Bundle, scorer: Scorer, data_dir: Path) -> None:
    """What docs/serving.md reports: a real headline scored alone and in a shuffled batch of 64 keeps its fp32
    label exactly, and its int8 label in all but a few per cent of cases (one activation range per call)."""
    import csv
    import random

    with (data_dir / "twitter_financial_news_sentiment" / "sent_valid.csv").open() as handle:
        texts = [row["text"].strip() for _, row in zip(range(320), csv.DictReader(handle))]
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    fp32 = Scorer(bundle, variant="fp32", threads=2, warm_up=False)
    for model, most_moved in ((fp32, 0), (scorer, 0.05 * len(texts))):
        alone = [model.sentiment([t])[0]["label"] for t in texts]
        batched = {}
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            batched.update(zip(chunk, (r["label"] for r in model.sentiment([texts[i] for i in chunk]))))
        moved = sum(alone[i] != batched[i] for i in order)
        assert moved <= most_moved, (model.variant, moved)


def test_token_budget_splits_batches_without_changing_results(bundle: Bundle) -> None:
    texts = [f"headline number {i} about markets and rates" * (1 + i % 4) for i in range(40)]
    small_scorer = Scorer(bundle, variant="fp32", token_budget=64, warm_up=False)
    large_scorer = Scorer(bundle, variant="fp32", token_budget=100_000, warm_up=False)
    small = small_scorer.score_texts(texts, "sentiment").outputs
    large = large_scorer.score_texts(texts, "sentiment").outputs
    assert np.allclose(small["sentiment_logits"], large["sentiment_logits"], atol=1e-4)
    # the same real tokens either way; the small budget needs more calls, and no call exceeds it
    assert small_scorer.usage.real_tokens == large_scorer.usage.real_tokens <= large_scorer.usage.padded_tokens
    assert small_scorer.usage.calls > large_scorer.usage.calls
    assert small_scorer.usage.padded_tokens <= 64 * small_scorer.usage.calls


def test_user_item_scores_cover_every_candidate(scorer: Scorer) -> None:
    items = ["1", "2", "never-seen-item"]
    idx = np.array([scorer.item_index(i) for i in items])
    assert idx[-1] == 0 and idx[0] > 0
    emb = scorer.embed(["Toy Story (1995)", "Jumanji (1995)", "A brand new film (2031)"])
    users = np.array([scorer.user_index(next(iter(scorer.user_ids))), 0])
    score, rating = scorer.score_items(users, np.vstack([emb[:2].mean(0), emb[0]]), idx, emb)
    assert score.shape == rating.shape == (2, 3)
    assert np.isfinite(score).all() and ((rating >= 0.5) & (rating <= 5.0)).all()
    assert scorer.popular_items and all(isinstance(i, str) for i in scorer.popular_items)


def test_score_command_good_and_bad_rows(models_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "$TSLA plunges after weak deliveries"}\n'
        '{"id": "b", "text": 42}\n'
        "this is not json\n"
        '{"id": "d"}\n'
        '{"id": "e", "text": "   "}\n'
        '{"id": "f", "text": "Apple beats estimates"}\n'
    )
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app,
        ["score", "--model", str(models_dir), "--task", "sentiment", "--input", str(source), "--output", str(target)],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["row"] for r in rows] == [1, 2, 3, 4, 5, 6]
    version = Bundle.load(models_dir).version
    assert all(r["model_version"] == version for r in rows)
    assert [("error" in r) for r in rows] == [False, True, True, True, True, False]
    assert rows[1]["error"] == "field 'text' must be a string, got int"
    assert rows[2]["error"].startswith("invalid JSON")
    assert rows[3]["error"] == "missing field 'text'"
    assert rows[0]["label"] in ("negative", "neutral", "positive")


def test_score_command_csv_review_rating(models_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id,text\n1,"Love it, fits well"\n2,too,many,fields\n3,Awful\n')
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--model",
            str(models_dir),
            "--task",
            "review-rating",
            "--input",
            str(source),
            "--output",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = target.read_text().splitlines()
    assert lines[0].startswith("row,id,model_version,rating,stars")
    assert len(lines) == 4 and "expected 2 fields like the header, got 4" in lines[2]


def test_score_command_refuses_a_tampered_bundle(bundle: Bundle, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    (copy / "model.int8.onnx").write_bytes(b"garbage")
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "x"}\n')
    result = CliRunner().invoke(
        app, ["score", "--model", str(copy), "--input", str(source), "--output", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 1
    assert "checksum mismatch for model.int8.onnx" in result.stderr and result.stdout == ""


def test_batches_started_ahead_score_what_one_batch_at_a_time_does(bundle: Bundle, data_dir: Path) -> None:
    """The worker's news path starts batch N+1's calls while batch N's still run, and scores from two threads
    when a batch is retried record by record: the outputs are those of plain ``score_texts``, row for row."""
    import csv
    from concurrent.futures import ThreadPoolExecutor

    with (data_dir / "twitter_financial_news_sentiment" / "sent_valid.csv").open() as handle:
        texts = [row["text"] for _, row in zip(range(240), csv.DictReader(handle))]
    scorer = Scorer(bundle, variant="fp32", threads=2, warm_up=False)
    batches = [texts[:100], texts[100:180], texts[180:]]
    expected = [scorer.score_texts(batch, "sentiment").outputs["sentiment_logits"] for batch in batches]

    calls_before = scorer.usage.calls
    jobs = []
    for batch in batches:
        jobs.append(scorer.start_texts(batch, "sentiment"))
        assert jobs[-1].wait_for_room(30)
    assert scorer.usage.calls - calls_before == sum(job.usage.calls for job in jobs) >= 3  # counted as started
    for job, want in zip(jobs, expected):
        assert np.allclose(job.result().outputs["sentiment_logits"], want, atol=1e-5)

    with ThreadPoolExecutor(2) as threads:
        both = list(threads.map(lambda batch: scorer.score_texts(batch, "sentiment"), batches[:2]))
    for got, want in zip(both, expected):
        assert np.allclose(got.outputs["sentiment_logits"], want, atol=1e-5)
