"""``streamscore bench retrain``: wall time and peak memory of one retrain at several sizes of stored data.

Per size, a fresh PostgreSQL schema is filled the way the workers would have filled it: the ``n`` most recent
MovieLens ratings as stored clicks, their items with the champion's embeddings (as the items path stores
them), 300 scored headlines and 50 corrections of them. Then ``streamscore retrain --dry-run --json`` runs in
a child process against ``models/current`` (the champion), so its peak RSS is its own (``wait4``); its
``seconds`` say where the time went. A dry run builds, exports and judges the challenger exactly as a real
run does, and publishes nothing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import text

from ops.bench.output import pyplot, write_json
from ops.errors import StackError
from ops.replay import click_events, movie_catalog, news_events
from streamscore.bundle import Bundle, current_version
from streamscore.db.connection import admin_url, make_engine, retrainer_url, with_schema
from streamscore.db.migrate import migrate
from streamscore.events import SENTIMENT_LABELS
from streamscore.neighbour_ranker import NeighbourRanker
from streamscore.settings import Settings
from trainer.data.financial_news import load_financial_news

SIZES = (2_000, 10_000, 40_000)


def _seed(engine, settings: Settings, n_clicks: int, champion: Bundle) -> dict:
    ranker = NeighbourRanker.load(champion.path)
    clicks = click_events(settings.data_dir, n_clicks, run="bench")
    catalog = movie_catalog(settings.data_dir)
    items = sorted({c["item_id"] for c in clicks})
    vectors = {i: ranker.item_embeddings[ranker.index[i]] for i in items if i in ranker.index}
    news = news_events(settings.data_dir, 300, 1.0, int(time.time() * 1000), run="bench")
    _, test = load_financial_news(settings.data_dir)
    gold = {t: SENTIMENT_LABELS[lab] for t, lab in zip(test.texts, test.labels)}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (item_id, title, genres, tags, event_ts, embedding, embedding_model_version) "
                "VALUES (:item_id, :title, :genres, :tags, now(), :embedding, :version)"
            ),
            [
                {
                    "item_id": i,
                    "title": catalog.get(i, {}).get("title", i),
                    "genres": catalog.get(i, {}).get("genres", []),
                    "tags": catalog.get(i, {}).get("tags", []),
                    "embedding": vectors[i].tolist() if i in vectors else None,
                    "version": champion.version if i in vectors else None,
                }
                for i in items
            ],
        )
        conn.execute(
            text(
                "INSERT INTO click_events (event_id, user_id, item_id, action, rating, event_ts) "
                "VALUES (:event_id, :user_id, :item_id, 'rate', :rating, to_timestamp(:ts / 1000.0))"
            ),
            clicks,
        )
        conn.execute(
            text(
                "INSERT INTO news_sentiment (news_id, event_ts, headline, label, p_negative, p_neutral, p_positive, "
                "model_version) VALUES (:id, to_timestamp(:ts / 1000.0), :headline, 'neutral', 0, 1, 0, :v)"
            ),
            [{**n, "v": champion.version} for n in news],
        )
        conn.execute(
            text(
                "INSERT INTO feedback (feedback_id, kind, news_id, label, event_ts) "
                "VALUES (:f, 'sentiment_correction', :n, :label, now())"
            ),
            [{"f": f"fix-{n['id']}", "n": n["id"], "label": gold.get(n["headline"], "neutral")} for n in news[:50]],
        )
    return {"clicks": len(clicks), "items": len(items), "users": len({c["user_id"] for c in clicks})}


def _run_retrain(settings: Settings, schema: str) -> tuple[dict, float, float]:
    env = {
        **os.environ,
        "STREAMSCORE_RETRAINER_DATABASE_URL": with_schema(retrainer_url(settings), schema),
        "STREAMSCORE_MODELS_DIR": str(Path(settings.models_dir).resolve()),
        "STREAMSCORE_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "STREAMSCORE_RUNS_DIR": str(Path(settings.runs_dir).resolve()),
        "STREAMSCORE_LOG_LEVEL": "ERROR",
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "ops", "retrain", "--dry-run", "--json"], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS, not the largest of all children
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code not in (0, 3):
        raise StackError("bench retrain", f"retrain exited with {code}", stderr[-3000:])
    return json.loads(stdout.strip().splitlines()[-1]), round(wall, 1), round(usage.ru_maxrss / 1024, 1)


def run_retrain_bench(settings: Settings, out_dir: Path, sizes: tuple[int, ...] = SIZES) -> dict:
    from ops.stack.manager import stack_up

    stack_up(settings)
    version = current_version(Path(settings.models_dir))
    if version is None:
        raise StackError("bench retrain", f"no champion at {settings.models_dir}/current (run the demo first)")
    champion = Bundle.load(Path(settings.models_dir) / version)
    engine = make_engine(admin_url(settings))
    rows = []
    try:
        for n in sizes:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                migrate(admin_url(settings), schema=schema)
                scoped = make_engine(with_schema(admin_url(settings), schema))
                seeded = _seed(scoped, settings, n, champion)
                scoped.dispose()
                result, wall, peak = _run_retrain(settings, schema)
            finally:
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            rows.append(
                {
                    "stored_clicks": seeded["clicks"],
                    "users": seeded["users"],
                    "items": seeded["items"],
                    "wall_s": wall,
                    "peak_rss_mb": peak,
                    "decision": result["decision"],
                    "reason": result["reason"],
                    "gate": (result.get("metrics") or {}).get("gate", {}).get("checks", []),
                    "seconds": result["seconds"],
                    "row_counts": result["row_counts"],
                }
            )
    finally:
        engine.dispose()
    report = {
        "benchmark": "retrain",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "champion": version,
        "catalog_items": len(NeighbourRanker.load(champion.path)),
        "sizes": rows,
    }
    write_json(out_dir, "retrain", report)
    write_retrain_report(report, out_dir)
    draw_loop(out_dir.parent / "learning-loop.png")
    return report


PARTS = ("read", "recommender_refit", "sentiment_head", "export", "evaluate")


def write_retrain_report(report: dict, out_dir: Path) -> None:
    lines = [
        "# Retrain: wall time and peak memory by stored interactions",
        "",
        f"{report['machine']['cpus']} CPUs; one run of `streamscore bench retrain`; champion {report['champion']} "
        f"({report['catalog_items']} catalog items); `streamscore retrain --dry-run` in a child process per size.",
        "",
        "| stored clicks | users | wall s | peak RSS MB | " + " | ".join(f"{p} s" for p in PARTS) + " | decision |",
        "|---" * (5 + len(PARTS)) + "|",
    ]
    for r in report["sizes"]:
        parts = " | ".join(str(r["seconds"].get(p, "—")) for p in PARTS)
        lines.append(
            f"| {r['stored_clicks']:,} | {r['users']:,} | {r['wall_s']} | {r['peak_rss_mb']:.0f} | {parts} | "
            f"{r['decision']} |"
        )
    lines += ["", "Decisions (a dry run judges as a real run would):", ""]
    lines += [f"* {r['stored_clicks']:,} clicks: {r['decision']}: {r['reason']}" for r in report["sizes"]]
    (out_dir / "retrain.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    xs = np.arange(len(report["sizes"]))
    bottom = np.zeros(len(xs))
    for part in PARTS:
        values = np.array([r["seconds"].get(part, 0.0) for r in report["sizes"]])
        ax.bar(xs, values, bottom=bottom, label=part)
        bottom += values
    ax.set_xticks(xs, [f"{r['stored_clicks']:,}" for r in report["sizes"]])
    ax.set_xlabel("stored clicks")
    ax.set_ylabel("seconds")
    ax.set_title("One retrain, by stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "retrain.png", dpi=120)
    plt.close(fig)


LOOP_STEPS = (
    ("Kafka events", "news · items · clicks\nfeedback"),
    ("workers", "score, rank, alert\n(hot-reload current)"),
    ("PostgreSQL", "clicks · items · news\ncorrections · served lists"),
    ("retrain", "ranker refit, head update\n(champion's checkpoint)"),
    ("gate", "same held-out data:\nrecent slice + public test"),
    ("bundle", "export: parity, int8,\nchecksums → current"),
)


def draw_loop(path: Path) -> Path:
    """The learning loop as one picture (docs/learning-loop.png)."""
    plt = pyplot()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.set_xlim(0, 9)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    centres = [(1.5, 3.2), (4.5, 3.2), (7.5, 3.2), (7.5, 1.0), (4.5, 1.0), (1.5, 1.0)]
    for (title, body), (x, y) in zip(LOOP_STEPS, centres):
        ax.add_patch(
            FancyBboxPatch((x - 1.15, y - 0.55), 2.3, 1.1, boxstyle="round,pad=0.05", fc="#eef3fb", ec="#3465a4")
        )
        ax.text(x, y + 0.22, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.2, body, ha="center", va="center", fontsize=7.5)
    order = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 1)]
    for a, b in order:
        (x0, y0), (x1, y1) = centres[a], centres[b]
        if y0 == y1:
            start, end = (x0 + (1.2 if x1 > x0 else -1.2), y0), (x1 - (1.2 if x1 > x0 else -1.2), y1)
        elif x0 == x1:
            start, end = (x0, y0 - 0.6), (x1, y1 + 0.6)
        else:
            start, end = (x0 + 0.6, y0 + 0.6), (x1 - 0.6, y1 - 0.6)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#555"))
    ax.text(4.5, 0.15, "refused: current unchanged, reason in model_versions · published: workers reload it",
            ha="center", fontsize=8, style="italic")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
