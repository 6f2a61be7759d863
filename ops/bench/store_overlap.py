"""``streamscore bench overlap``: the news path with and without the store overlap, against the scorer alone.

One run, the same headlines and bundle for every figure: one worker (the worker's batch policy) drains a
backlog of news with ``STREAMSCORE_WORKER_OVERLAP_STORE`` off (one batch at a time: score, then write to
PostgreSQL and produce its alerts) and on (batch N+1 scored while batch N is written), with two ONNX Runtime
threads and with one (which leaves a core to the write, the database and the broker while the model scores);
then the same scorer scores the same headlines in-process with two threads, at the worker's batch size, with
no Kafka and no database (the model-only ceiling). All are measured in rounds, interleaved, so a drift of
this shared machine falls on every one; each figure is the median of its rounds, compared by ratios. Beside
the worker's CPU per 1 000 headlines is that of PostgreSQL and Kafka, which share the machine's cores here.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

from ops.bench.output import pyplot, write_json
from ops.bench.pipeline_bench import Deployment, Workload, capacity, model_only, prepare_workload
from streamscore.settings import Settings
from streamscore.topics import Topics

CONFIGURATIONS = {
    "off, 2 threads": {"STREAMSCORE_WORKER_OVERLAP_STORE": "false", "STREAMSCORE_WORKER_THREADS": "2"},
    "on, 2 threads": {"STREAMSCORE_WORKER_OVERLAP_STORE": "true", "STREAMSCORE_WORKER_THREADS": "2"},
    "off, 1 thread": {"STREAMSCORE_WORKER_OVERLAP_STORE": "false", "STREAMSCORE_WORKER_THREADS": "1"},
    "on, 1 thread": {"STREAMSCORE_WORKER_OVERLAP_STORE": "true", "STREAMSCORE_WORKER_THREADS": "1"},
}
"""Store overlap × ONNX Runtime threads of the one worker."""


def run_overlap_bench(settings: Settings, out_dir: Path, rounds: int = 3, size: int = 1500) -> dict:
    from ops.stack.manager import stack_up

    stack_up(settings)
    news = Workload(settings, "news", 600)
    headlines = [json.loads(r.value)["headline"] for r in news.events(Topics.from_settings(settings), 600)]
    drains: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
    model: list[float] = []
    deployments = {label: Deployment(settings, env=env) for label, env in CONFIGURATIONS.items()}
    for dep in deployments.values():
        dep.__enter__()
        prepare_workload(dep, news)
        dep.stop_workers()
    try:
        for _ in range(rounds):
            for mode, dep in deployments.items():
                drains[mode].append(capacity(dep, news, size))
                dep.stop_workers()
            model.append(model_only(settings, headlines)["events_per_s"])
    finally:
        for dep in deployments.values():
            dep.__exit__(None, None, None)
    ceiling = statistics.median(model)
    modes = {}
    for mode, runs in drains.items():
        rate = statistics.median(d["events_per_s"] for d in runs)
        modes[mode] = {
            "events_per_s": rate,
            "drains_events_per_s": [d["events_per_s"] for d in runs],
            "cpu_s_per_1000": statistics.median(d["cpu_s_per_1000"] for d in runs),
            "stack_cpu_s_per_1000": statistics.median(d["stack_cpu_s_per_1000"] for d in runs),
            "share_of_model_only": round(rate / ceiling, 3),
        }
    report = {
        "benchmark": "store_overlap",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "events_per_drain": size,
        "rounds": rounds,
        "batch_max_events": settings.batch_max_events,
        "model_only_events_per_s": ceiling,
        "model_only_rounds": model,
        "modes": modes,
        "on_over_off": round(modes["on, 2 threads"]["events_per_s"] / modes["off, 2 threads"]["events_per_s"], 3),
        "best": max(modes, key=lambda label: modes[label]["events_per_s"]),
    }
    write_overlap_report(report, out_dir)
    return report


def write_overlap_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "store_overlap", report)
    modes, ceiling = report["modes"], report["model_only_events_per_s"]
    lines = [
        "# News path: storing batch N while batch N+1 is scored",
        "",
        f"{report['machine']['cpus']} CPUs; one run of `streamscore bench overlap`: one worker drains "
        f"{report['events_per_drain']} headlines per round ({report['rounds']} rounds, interleaved; medians), "
        f"batches of up to {report['batch_max_events']} events; model-only is the same scorer in-process on the "
        "same headlines (no Kafka, no PostgreSQL).",
        "",
        "| news path: overlap, ORT threads | headlines/s | drains | worker CPU s / 1 000 | PostgreSQL + Kafka "
        "CPU s / 1 000 | ÷ model-only |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in modes.items():
        lines.append(
            f"| {label} | {row['events_per_s']} | {', '.join(map(str, row['drains_events_per_s']))} | "
            f"{row['cpu_s_per_1000']} | {row['stack_cpu_s_per_1000']} | {row['share_of_model_only']:.0%} |"
        )
    lines += [
        f"| model only, 2 threads | {ceiling} | {', '.join(map(str, report['model_only_rounds']))} | | | 100% |",
        "",
        f"Overlap on ÷ off (2 threads): **{report['on_over_off']}×**; the fastest: **{report['best']}**.",
        "",
    ]
    (out_dir / "store_overlap.md").write_text("\n".join(lines))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels = [f"overlap {m}" for m in modes] + ["model only"]
    values = [row["events_per_s"] for row in modes.values()] + [ceiling]
    points = [row["drains_events_per_s"] for row in modes.values()] + [report["model_only_rounds"]]
    ax.bar(labels, values, color=["#9aa5b1", "#3e7cb1", "#c9b18a", "#b07d2b", "#2d3e50"][: len(values)])
    ax.tick_params(axis="x", labelsize=8)
    for x, pts in enumerate(points):
        ax.scatter([x] * len(pts), pts, color="black", s=12, zorder=3)
    for x, v in enumerate(values[:-1]):
        ax.annotate(f"{v / ceiling:.0%}", (x, v), ha="center", va="bottom")
    ax.set_ylabel("headlines / s")
    ax.set_title("News path vs the scorer alone (dots: rounds)")
    fig.tight_layout()
    fig.savefig(out_dir / "store_overlap.png", dpi=120)
    plt.close(fig)
