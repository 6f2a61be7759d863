"""``streamscore bench overlap``: the news path against the same scorer alone, by how the agent hands its
batches to the model and where they are written.

One run, the same headlines and bundle for every figure: one worker (the worker's batch policy, two ONNX
Runtime threads as two single-threaded calls at once, the default) drains a backlog of news

* with its agent waiting for each batch to be scored before it gathers the next
  (``STREAMSCORE_WORKER_NEWS_GATHER_WHILE_SCORING=false``, the worker before 2026-12-04), or gathering while
  the model scores and handing it all over the moment the model is free (``true``, the default);
* with each batch written in the model thread (``STREAMSCORE_WORKER_OVERLAP_STORE=false``), or in a store
  thread while the next batch is scored (``true``, the default since 2026-12-04);

then the same scorer, configured the same way, scores the same headlines in-process at the worker's batch
size, with no Kafka and no database, twice: starting each batch's calls while the last batch's still run (as
the news path does since 2026-12-08) and batch after batch; the faster is the model-only ceiling that every
share is of. All are measured in rounds, interleaved, so a
drift of this shared machine falls on every one; each figure is the median of its rounds, compared by
ratios. Beside the worker's CPU per 1 000 headlines is that of PostgreSQL and Kafka, which share the
machine's cores here, and the mean batch the worker formed (rows per transaction).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import textwrap
from pathlib import Path

from ops.bench.output import pyplot, write_json
from ops.bench.pipeline_bench import Deployment, Workload, capacity, model_only, prepare_workload
from streamscore.settings import Settings
from streamscore.topics import Topics

HANDOVERS = {"agent waits for each batch": False, "agent gathers while the model scores": True}
"""``worker_news_gather_while_scoring`` of each way the agent hands batches to the model."""
CONFIGURATIONS = {
    f"{handover}, store overlap {switch}": {
        "STREAMSCORE_WORKER_NEWS_GATHER_WHILE_SCORING": str(gather).lower(),
        "STREAMSCORE_WORKER_OVERLAP_STORE": str(switch == "on").lower(),
        "STREAMSCORE_WORKER_THREADS": "2",
    }
    for handover, gather in HANDOVERS.items()
    for switch in ("off", "on")
}
BEFORE = "agent waits for each batch, store overlap off"
DEFAULT = "agent gathers while the model scores, store overlap on"


def run_overlap_bench(settings: Settings, out_dir: Path, rounds: int = 3, size: int = 1500) -> dict:
    from ops.stack.manager import stack_up

    stack_up(settings)
    news = Workload(settings, "news", 600)
    headlines = [json.loads(r.value)["headline"] for r in news.events(Topics.from_settings(settings), 600)]
    drains: dict[str, list[dict]] = {label: [] for label in CONFIGURATIONS}
    model: list[float] = []
    one_by_one: list[float] = []
    deployments = {label: Deployment(settings, env=env) for label, env in CONFIGURATIONS.items()}
    for dep in deployments.values():
        dep.__enter__()
        prepare_workload(dep, news)
        dep.stop_workers()
    try:
        for _ in range(rounds):
            for label, dep in deployments.items():
                drains[label].append(capacity(dep, news, size))
                dep.stop_workers()
            model.append(model_only(settings, headlines)["events_per_s"])
            one_by_one.append(model_only(settings, headlines, pipelined=False)["events_per_s"])
    finally:
        for dep in deployments.values():
            dep.__exit__(None, None, None)
    ceiling = max(statistics.median(model), statistics.median(one_by_one))
    modes = {}
    for label, runs in drains.items():
        rate = statistics.median(d["events_per_s"] for d in runs)
        modes[label] = {
            "gathers_while_scoring": CONFIGURATIONS[label]["STREAMSCORE_WORKER_NEWS_GATHER_WHILE_SCORING"] == "true",
            "store_overlap": CONFIGURATIONS[label]["STREAMSCORE_WORKER_OVERLAP_STORE"] == "true",
            "events_per_s": rate,
            "drains_events_per_s": [d["events_per_s"] for d in runs],
            "mean_batch_events": statistics.median(d["mean_batch_events"] for d in runs),
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
        "batch_max_wait_ms": settings.batch_max_wait_ms,
        "model_only": {"events_per_s": statistics.median(model), "rounds": model},
        "model_only_batch_by_batch": {"events_per_s": statistics.median(one_by_one), "rounds": one_by_one},
        "ceiling_events_per_s": ceiling,
        "modes": modes,
        "gathering_over_waiting": {
            switch: round(
                modes[f"agent gathers while the model scores, store overlap {switch}"]["events_per_s"]
                / modes[f"agent waits for each batch, store overlap {switch}"]["events_per_s"],
                3,
            )
            for switch in ("off", "on")
        },
        "on_over_off": {
            handover: round(
                modes[f"{handover}, store overlap on"]["events_per_s"]
                / modes[f"{handover}, store overlap off"]["events_per_s"],
                3,
            )
            for handover in HANDOVERS
        },
        "default_over_before": round(modes[DEFAULT]["events_per_s"] / modes[BEFORE]["events_per_s"], 3),
        "best": max(modes, key=lambda label: modes[label]["events_per_s"]),
    }
    write_overlap_report(report, out_dir)
    return report


def write_overlap_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "store_overlap", report)
    modes, model = report["modes"], report["model_only"]
    lines = [
        "# News path against the scorer alone: gathering while the model scores, and storing batch N while N+1 "
        "is scored",
        "",
        f"{report['machine']['cpus']} CPUs; one run of `streamscore bench overlap`: one worker (two single-threaded "
        f"ONNX Runtime calls at once) drains {report['events_per_drain']} headlines per round ({report['rounds']} "
        f"rounds, interleaved; medians), batches of up to {report['batch_max_events']} events or "
        f"{report['batch_max_wait_ms']} ms; model-only is the same scorer, configured the same way, in-process on "
        "the same headlines at that batch size (no Kafka, no PostgreSQL), with each batch's calls started while the "
        "last batch's run, as the news path does, and batch after batch; shares are of the faster.",
        "",
        "| news path | headlines/s | drains | mean batch | worker CPU s / 1 000 | PostgreSQL + Kafka CPU s / 1 000 "
        "| ÷ model-only |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in modes.items():
        name = f"**{label}** (default)" if label == DEFAULT else label
        lines.append(
            f"| {name} | {row['events_per_s']} | {', '.join(map(str, row['drains_events_per_s']))} | "
            f"{row['mean_batch_events']} | {row['cpu_s_per_1000']} | {row['stack_cpu_s_per_1000']} | "
            f"{row['share_of_model_only']:.0%} |"
        )
    ceiling = report.get("ceiling_events_per_s", model["events_per_s"])
    alone = {"model only": model}
    if "model_only_batch_by_batch" in report:
        alone["model only, batch after batch"] = report["model_only_batch_by_batch"]
    for name, row in alone.items():
        lines.append(
            f"| {name} | {row['events_per_s']} | {', '.join(map(str, row['rounds']))} | | | | "
            f"{row['events_per_s'] / ceiling:.0%} |"
        )
    gathering = ", ".join(f"store overlap {k} **{v}×**" for k, v in report["gathering_over_waiting"].items())
    overlap = ", ".join(f"{k} {v}×" for k, v in report["on_over_off"].items())
    lines += [
        "",
        f"Gathering while the model scores ÷ the agent waiting: {gathering}. Store overlap on ÷ off: {overlap}. "
        f"The default ÷ the worker before: **{report['default_over_before']}×**. The fastest: **{report['best']}**.",
        "",
    ]
    (out_dir / "store_overlap.md").write_text("\n".join(lines))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = ["\n".join(textwrap.wrap(label, 22)) for label in [*modes, *alone]]
    values = [row["events_per_s"] for row in [*modes.values(), *alone.values()]]
    points = [row["drains_events_per_s"] for row in modes.values()] + [row["rounds"] for row in alone.values()]
    colours = ["#3e7cb1" if row["gathers_while_scoring"] else "#9aa5b1" for row in modes.values()]
    colours += ["#2d3e50", "#62778c"][: len(alone)]
    ax.bar(labels, values, color=colours)
    ax.tick_params(axis="x", labelsize=7)
    for x, pts in enumerate(points):
        ax.scatter([x] * len(pts), pts, color="black", s=12, zorder=3)
    for x, row in enumerate(modes.values()):
        ax.annotate(f"{row['share_of_model_only']:.0%}", (x, row["events_per_s"]), ha="center", va="bottom")
    ax.set_ylabel("headlines / s")
    ax.set_title("News path vs the same scorer alone (% of model-only; dots: rounds)")
    fig.tight_layout()
    fig.savefig(out_dir / "store_overlap.png", dpi=120)
    plt.close(fig)
