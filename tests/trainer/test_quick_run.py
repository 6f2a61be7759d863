"""End to end: the quick profile trains, writes a checkpoint and report, reloads, and beats trivial baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from ops.cli import app
from streamscore.settings import Settings
from trainer.checkpoint import load_checkpoint
from trainer.evaluation import evaluate_checkpoint
from trainer.report import PLOTS


def test_quick_run_writes_checkpoint_and_report(quick_run: Path) -> None:
    ckpt = quick_run / "checkpoint"
    for name in (
        "config.json",
        "model.safetensors",
        "recommender.safetensors",
        "ids.json",
        "items.jsonl",
        "tokenizer.json",
        "history.json",
    ):
        assert (ckpt / name).is_file(), name
    assert not list(ckpt.glob("*.pt")) and not list(ckpt.glob("*.bin")), "checkpoints hold no pickles"
    report = quick_run / "report"
    for name in ("metrics.json", "report.md", *PLOTS):
        assert (report / name).stat().st_size > 0, name
    for plot in PLOTS:
        assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "report.md").read_text()
    assert "Sentiment" in text and "nDCG@10" in text and "Funk SVD" in text
    # the run's tokenizer collapses links, the saved checkpoint keeps it, and the report says so
    assert "links collapsed" in text and json.loads((report / "metrics.json").read_text())["collapses_links"] is True
    assert json.loads((ckpt / "config.json").read_text())["profile"]["collapse_links"] is True
    reloaded = load_checkpoint(ckpt).tokenizer
    assert reloaded.convert_ids_to_tokens(reloaded("Shares fall https://t.co/bd0xbFGjkT")["input_ids"])[-2:] == [
        "http",
        "[SEP]",
    ]


def test_quick_metrics_beat_trivial_baselines(quick_run: Path) -> None:
    m = json.loads((quick_run / "report" / "metrics.json").read_text())
    assert m["sentiment"]["accuracy"] > m["sentiment"]["majority_class_accuracy"]
    assert m["review_rating"]["model"]["mae"] < m["review_rating"]["baseline_mean"]["mae"]
    assert m["movielens_rating"]["model"]["rmse"] < m["movielens_rating"]["global_mean"]["rmse"]
    assert m["movielens_ranking"]["model"]["ndcg@10"] > 0


def test_reloaded_checkpoint_reproduces_metrics_and_scores_cold_items(quick_run: Path, settings: Settings) -> None:
    ckpt = load_checkpoint(quick_run / "checkpoint")
    again = evaluate_checkpoint(ckpt, settings).metrics
    saved = json.loads((quick_run / "report" / "metrics.json").read_text())
    assert again["sentiment"]["accuracy"] == saved["sentiment"]["accuracy"]
    assert abs(again["movielens_rating"]["model"]["rmse"] - saved["movielens_rating"]["model"]["rmse"]) < 1e-6
    assert ckpt.item_embeddings.shape == (len(ckpt.items) + 1, ckpt.text_model.embedding_dim)
    assert np.allclose(np.linalg.norm(ckpt.item_embeddings[1:], axis=1), 1.0, atol=1e-4)
    # a brand-new item and a brand-new user are scored from text alone
    enc = ckpt.tokenizer(["Brand New Movie (2031). Genres: Comedy"], return_tensors="pt")
    with torch.no_grad():
        emb = ckpt.text_model(enc["input_ids"], enc["attention_mask"])["embedding"]
        out = ckpt.recommender(torch.tensor([0]), emb, torch.tensor([0]), emb)
    assert torch.isfinite(out["predicted_rating"]).all() and 0.5 < float(out["predicted_rating"]) < 5.5


def test_evaluate_command_rewrites_the_report(quick_run: Path, settings: Settings, tmp_path: Path) -> None:
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(
        app, ["evaluate", str(quick_run / "checkpoint"), "--out", str(tmp_path / "r")], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "movielens top-10" in result.output
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["profile"] == "quick"


def test_resume_continues_after_the_last_finished_epoch(quick_run: Path, settings: Settings) -> None:
    state = quick_run / "state" / "trainer_state.pt"
    saved = torch.load(state, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and saved["history"]["epochs"][0]["epoch"] == 1
    env = {"STREAMSCORE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(
        app, ["train", "--profile", "quick", "--out", str(quick_run), "--resume"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    history = json.loads((quick_run / "checkpoint" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1], "no epoch was trained twice"


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1  # a runtime failure; 2 is kept for usage errors
    assert "missing model.safetensors" in result.stderr and "missing" not in result.stdout
