"""``streamscore bench overlap``: the news path with and without the store overlap, for both ways of running
the model's calls, each against the same scorer alone.

One run, the same headlines and bundle for every figure: one worker (the worker's batch policy, two ONNX
Runtime threads) drains a backlog of news with ``STREAMSCORE_WORKER_OVERLAP_STORE`` off (one batch at a
time: score, then write to PostgreSQL and produce its alerts) and on (batch N+1 scored while batch N is
written), once running one call at a time over both threads (``STREAMSCORE_INFERENCE_PARALLEL_CALLS=1``,
the scorer before 2026-12-03) and once two single-threaded calls at once (the default); then the same
scorer, configured the same way, scores the same headlines in-process at the worker's batch size, with no
Kafka and no database (the model-only ceiling of that configuration). One more worker runs the default
without keeping the surge states in memory (``STREAMSCORE_WORKER_ALERT_STATES_KEPT=0``). All are measured in rounds,
interleaved, so a drift of this shared machine falls on every one; each figure is the median of its rounds,
compared by ratios. Beside the worker's CPU per 1 000 headlines is that of PostgreSQL and Kafka, which share
the machine's cores here.
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

CALL_MODES = {"1 call × 2 threads": 1, "2 calls × 1 thread": 2}
"""How the scorer runs a batch's calls: ``inference_parallel_calls`` of each (two ORT threads in all)."""
CONFIGURATIONS = {
    f"{mode}, overlap {switch}": {
        "STREAMSCORE_WORKER_OVERLAP_STORE": str(switch == "on").lower(),
        "STREAMSCORE_WORKER_THREADS": "2",
        "STREAMSCORE_INFERENCE_PARALLEL_CALLS": str(parallel),
    }
    for mode, parallel in CALL_MODES.items()
    for switch in ("off", "on")
}
READ_EVERY_BATCH = "2 calls × 1 thread, overlap off, states read every batch"
CONFIGURATIONS[READ_EVERY_BATCH] = {
    **CONFIGURATIONS["2 calls × 1 thread, overlap off"],
    "STREAMSCORE_WORKER_ALERT_STATES_KEPT": "0",
}
"""Call mode × store overlap of the one worker; and the default without the surge states kept in memory
between batches (every touched entity's window read back and decoded, as before 2026-12-03's second change)."""


def call_mode_of(label: str) -> str:
    return label.split(", overlap")[0]


def run_overlap_bench(settings: Settings, out_dir: Path, rounds: int = 3, size: int = 1500) -> dict:
    from ops.stack.manager import stack_up

    stack_up(settings)
    news = Workload(settings, "news", 600)
    headlines = [json.loads(r.value)["headline"] for r in news.events(Topics.from_settings(settings), 600)]
    drains: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
    model: dict[str, list[float]] = {mode: [] for mode in CALL_MODES}
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
            for mode, parallel in CALL_MODES.items():
                model[mode].append(model_only(settings, headlines, parallel_calls=parallel)["events_per_s"])
    finally:
        for dep in deployments.values():
            dep.__exit__(None, None, None)
    ceilings = {mode: statistics.median(rates) for mode, rates in model.items()}
    modes = {}
    for label, runs in drains.items():
        rate = statistics.median(d["events_per_s"] for d in runs)
        modes[label] = {
            "calls": call_mode_of(label),
            "events_per_s": rate,
            "drains_events_per_s": [d["events_per_s"] for d in runs],
            "cpu_s_per_1000": statistics.median(d["cpu_s_per_1000"] for d in runs),
            "stack_cpu_s_per_1000": statistics.median(d["stack_cpu_s_per_1000"] for d in runs),
            "share_of_model_only": round(rate / ceilings[call_mode_of(label)], 3),
        }
    single, parallel = CALL_MODES
    report = {
        "benchmark": "store_overlap",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "events_per_drain": size,
        "rounds": rounds,
        "batch_max_events": settings.batch_max_events,
        "model_only": {mode: {"events_per_s": ceilings[mode], "rounds": model[mode]} for mode in CALL_MODES},
        "modes": modes,
        "on_over_off": {
            mode: round(modes[f"{mode}, overlap on"]["events_per_s"] / modes[f"{mode}, overlap off"]["events_per_s"], 3)
            for mode in CALL_MODES
        },
        "parallel_over_single": {
            "news_path": round(
                modes[f"{parallel}, overlap off"]["events_per_s"] / modes[f"{single}, overlap off"]["events_per_s"], 3
            ),
            "model_only": round(ceilings[parallel] / ceilings[single], 3),
        },
        "kept_over_read": round(
            modes[f"{parallel}, overlap off"]["events_per_s"] / modes[READ_EVERY_BATCH]["events_per_s"], 3
        ),
        "best": max(modes, key=lambda label: modes[label]["events_per_s"]),
    }
    write_overlap_report(report, out_dir)
    return report


def write_overlap_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "store_overlap", report)
    modes, model = report["modes"], report["model_only"]
    lines = [
        "# News path: how the model's calls run, and storing batch N while batch N+1 is scored",
        "",
        f"{report['machine']['cpus']} CPUs; one run of `streamscore bench overlap`: one worker (two ONNX Runtime "
        f"threads) drains {report['events_per_drain']} headlines per round ({report['rounds']} rounds, interleaved; "
        f"medians), batches of up to {report['batch_max_events']} events; model-only is the same scorer, configured "
        "the same way, in-process on the same headlines (no Kafka, no PostgreSQL).",
        "",
        "| news path: calls, store overlap | headlines/s | drains | worker CPU s / 1 000 | PostgreSQL + Kafka "
        "CPU s / 1 000 | ÷ model-only of its calls |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in modes.items():
        lines.append(
            f"| {label} | {row['events_per_s']} | {', '.join(map(str, row['drains_events_per_s']))} | "
            f"{row['cpu_s_per_1000']} | {row['stack_cpu_s_per_1000']} | {row['share_of_model_only']:.0%} |"
        )
    for mode, row in model.items():
        lines.append(
            f"| model only, {mode} | {row['events_per_s']} | {', '.join(map(str, row['rounds']))} | | | 100% |"
        )
    ratio = report["parallel_over_single"]
    overlap = ", ".join(f"{mode} **{value}×**" for mode, value in report["on_over_off"].items())
    lines += [
        "",
        f"Two single-threaded calls at once ÷ one call over both threads: news path **{ratio['news_path']}×**, "
        f"model only {ratio['model_only']}×. Overlap on ÷ off: {overlap}. Surge states kept in memory ÷ read "
        f"every batch (2 calls × 1 thread, overlap off): **{report['kept_over_read']}×**. The fastest: "
        f"**{report['best']}**.",
        "",
    ]
    (out_dir / "store_overlap.md").write_text("\n".join(lines))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [label.replace(", ", "\n") for label in modes] + [f"model only\n{mode}" for mode in model]
    values = [row["events_per_s"] for row in modes.values()] + [row["events_per_s"] for row in model.values()]
    points = [row["drains_events_per_s"] for row in modes.values()] + [row["rounds"] for row in model.values()]
    colours = {mode: colour for mode, colour in zip(model, ("#9aa5b1", "#3e7cb1"))}
    ax.bar(
        labels,
        values,
        color=[colours[row["calls"]] for row in modes.values()] + ["#2d3e50"] * len(model),
    )
    ax.tick_params(axis="x", labelsize=7)
    for x, pts in enumerate(points):
        ax.scatter([x] * len(pts), pts, color="black", s=12, zorder=3)
    for x, row in enumerate(modes.values()):
        ax.annotate(f"{row['share_of_model_only']:.0%}", (x, row["events_per_s"]), ha="center", va="bottom")
    ax.set_ylabel("headlines / s")
    ax.set_title("News path vs the same scorer alone (% of its model-only; dots: rounds)")
    fig.tight_layout()
    fig.savefig(out_dir / "store_overlap.png", dpi=120)
    plt.close(fig)
