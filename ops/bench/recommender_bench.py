"""``streamscore bench recommender``: how the served ranker's cost grows with the catalog.

For the real MovieLens catalog and synthetic ones of ~30 k and ~100 k items (MovieLens replicated: each copy
of an item gets its text embedding perturbed, each copy of a user rates the same copy of the catalog, so
sparsity per user stays MovieLens's), one subprocess per size fits the ranker and reports its fit time, its
peak memory (the process's max RSS), the size of what the bundle carries, and the per-click scoring latency
(one user's scores, top-K and reasons) over 300 users. Each size runs in its own process so peak memory is
that size's alone.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ops.bench.output import pyplot, write_json
from ops.errors import StackError

SIZES = (1, 3, 10)
"""Replicas of the MovieLens catalog: 9 742, 29 226 and 97 420 items."""


def measure(data_dir: Path, replicas: int, dense_items: int, seed: int = 13) -> dict:
    """Fit and time one synthetic catalog (run inside its own process)."""
    import pandas as pd

    from streamscore.neighbour_ranker import Reason
    from trainer.data.movielens import load_movielens
    from trainer.data.splits import temporal_split
    from trainer.neighbour_fit import FitParams, fit_ranker

    interactions, items = load_movielens(data_dir)
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(len(items), 384)).astype(np.float32)  # MiniLM-sized stand-in for text: cost only
    ids, embeddings, frames = [], [], []
    for r in range(replicas):
        ids += [f"{i}~{r}" for i in items["item_id"].astype(str)]
        embeddings.append(base + 0.05 * rng.normal(size=base.shape).astype(np.float32))
        frames.append(
            interactions.assign(
                user_id=interactions["user_id"].astype(str) + f"~{r}",
                item_id=interactions["item_id"].astype(str) + f"~{r}",
            )
        )
    emb = np.concatenate(embeddings)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    train, dev, _ = temporal_split(pd.concat(frames, ignore_index=True))
    history = pd.concat([train, dev], ignore_index=True)
    started = time.perf_counter()
    ranker = fit_ranker(history, ids, emb, FitParams(dense_items=dense_items))
    fit_s = time.perf_counter() - started
    stored = sum(
        a.nbytes
        for a in (
            ranker.collaborative.indptr,
            ranker.collaborative.indices,
            ranker.collaborative.data,
            ranker.transitions.indptr,
            ranker.transitions.indices,
            ranker.transitions.data,
            ranker.text_map,
            ranker.item_embeddings,
        )
    )
    ordered = history.sort_values(["user_id", "timestamp"])
    users = ordered["user_id"].drop_duplicates().sample(300, random_state=seed).tolist()
    groups = {u: g for u, g in ordered[ordered["user_id"].isin(users)].groupby("user_id")}
    latencies = []
    for user in users:
        g = groups[user]
        liked = g.loc[g["rating"] >= 4, "item_id"].tolist()
        recent = g["item_id"].tolist()[-20:]
        t0 = time.perf_counter()
        scores = ranker.user_scores(liked, recent)
        top = np.argpartition(-scores.total, 10)[:10]
        reasons: list[Reason] = ranker.explain_many(scores, top.tolist())
        latencies.append(time.perf_counter() - t0)
        assert len(reasons) == 10
    ms = np.array(latencies) * 1000
    return {
        "items": len(ids),
        "interactions": len(history),
        "collaborative_items": int(ranker.warm.sum()),
        "fit_seconds": round(fit_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "bundle_mb": round(stored / 2**20, 1),
        "per_click_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "per_click_ms_p99": round(float(np.percentile(ms, 99)), 2),
    }


def run_recommender_bench(
    data_dir: Path, out_dir: Path, sizes: tuple[int, ...] = SIZES, dense_items: int = 10_000
) -> dict:
    rows = []
    for replicas in sizes:
        code = (
            "import json, sys; from pathlib import Path; from ops.bench.recommender_bench import measure; "
            f"print(json.dumps(measure(Path({str(data_dir)!r}), {replicas}, {dense_items})))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError("bench recommender", f"the {replicas}× catalog failed", result.stderr[-3000:])
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    report = {"dense_items": dense_items, "sizes": rows}
    write_report(report, out_dir)
    return report


def write_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "recommender", report)
    lines = [
        "# Recommender cost by catalog size",
        "",
        "`streamscore bench recommender`: one process per size fits the served ranker (EASE + next-item + text "
        f"bridge; dense inversions over at most {report['dense_items']:,} items, the rest through the text "
        "bridge) on MovieLens replicated, and times one user's scores, top 10 and reasons.",
        "",
        "| items | interactions | items with a collaborative part | fit s | peak RSS MB | bundle MB "
        "| per click p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["sizes"]:
        lines.append(
            f"| {r['items']:,} | {r['interactions']:,} | {r['collaborative_items']:,} | {r['fit_seconds']} | "
            f"{r['peak_rss_mb']:.0f} | {r['bundle_mb']} | {r['per_click_ms_p50']} | {r['per_click_ms_p99']} |"
        )
    (out_dir / "recommender.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    n = [r["items"] for r in report["sizes"]]
    for ax, key, title in (
        (axes[0], "fit_seconds", "fit time (s)"),
        (axes[1], "peak_rss_mb", "peak memory (MB)"),
        (axes[2], "per_click_ms_p50", "per-click scoring p50 (ms)"),
    ):
        ax.plot(n, [r[key] for r in report["sizes"]], "o-")
        ax.set(title=title, xlabel="catalog items", xscale="log")
    fig.tight_layout()
    fig.savefig(out_dir / "recommender.png", dpi=110)
    plt.close(fig)
