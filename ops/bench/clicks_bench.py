"""``streamscore bench clicks``: the click path of this checkout beside another revision's, in one run.

The recommender changed what a click costs (a bounded ranker state per user, a sparse gather over the last
liked items, an explanation per recommended item, the popular-now fill), so the click path's throughput is
measured against the code before that change, not against a number from another day. Both revisions run the
same harness as ``bench e2e`` (:mod:`ops.bench.pipeline_bench`): the same stack, the same bundle
(``models/current``), the same clicks and catalog, one worker with the configured threads; the other
revision's worker runs from a ``git archive`` of it, on its own topics. Per revision: the median of three
drains of a backlog (capacity), then the rate ladder (the highest rate whose backlog is gone within 3 s of
the producer stopping) and latency at half of that rate. The revisions take turns drain by drain, so a
slow minute of the machine lands on both.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from ops.bench.output import pyplot, write_json
from ops.bench.pipeline_bench import Deployment, Workload, capacity, constant_rate, ladder, prepare_workload
from ops.errors import StackError
from streamscore.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def revision_tree(ref: str, into: Path) -> tuple[Path, str]:
    """Unpack ``ref`` (any git revision) into ``into``; returns the tree and the CLI's package there
    (``ops`` since the layout change, ``streamscore`` before it)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", ref], cwd=REPO_ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        archive = subprocess.run(["git", "archive", ref], cwd=REPO_ROOT, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StackError("git", f"cannot read revision {ref!r} from the repository at {REPO_ROOT}: {exc}") from exc
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    module = "ops" if (into / "ops" / "__main__.py").is_file() else "streamscore"
    return into, f"{module}@{sha}"


def run_clicks_bench(settings: Settings, out_dir: Path, against: str, drains: int = 3, rung_s: float = 12.0) -> dict:
    """Capacity, sustained rate and latency of the click path: this checkout and ``against``."""
    from ops.stack.manager import stack_up

    stack_up(settings)
    size = 4500
    report: dict = {
        "benchmark": "clicks",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "threads_per_worker": settings.worker_threads,
        "revisions": {},
    }
    with tempfile.TemporaryDirectory(prefix="streamscore-rev-") as tmp:
        tree, label = revision_tree(against, Path(tmp))
        module, sha = label.split("@")
        revisions = {"this checkout": (None, "ops"), f"{against} ({sha})": (tree, module)}
        work = {name: Workload(settings, "clicks", 800) for name in revisions}
        deployments = {name: Deployment(settings, source=src, cli_module=mod) for name, (src, mod) in revisions.items()}
        entered: list[Deployment] = []
        try:
            for name, dep in deployments.items():
                dep.__enter__()
                entered.append(dep)
                prepare_workload(dep, work[name])
            runs: dict[str, list[dict]] = {name: [] for name in revisions}
            for _ in range(drains):
                for name, dep in deployments.items():
                    runs[name].append(capacity(dep, work[name], size))
            for name, dep in deployments.items():
                drained = sorted(runs[name], key=lambda d: d["events_per_s"])
                cap = drained[len(drained) // 2] | {"drains_events_per_s": [d["events_per_s"] for d in runs[name]]}
                sustained, rungs = ladder(dep, work[name], cap["events_per_s"], rung_s)
                half = constant_rate(dep, work[name], (sustained or cap["events_per_s"] * 0.5) * 0.5, rung_s)
                report["revisions"][name] = {
                    "capacity": cap,
                    "sustained_events_per_s": sustained,
                    "ladder": rungs,
                    "latency_at_half_sustained": half,
                }
        finally:
            for dep in entered:
                dep.__exit__(None, None, None)
    names = list(report["revisions"])
    ours, theirs = (report["revisions"][n] for n in names)
    report["ratio_capacity"] = round(ours["capacity"]["events_per_s"] / theirs["capacity"]["events_per_s"], 2)
    report["ratio_sustained"] = (
        round(ours["sustained_events_per_s"] / theirs["sustained_events_per_s"], 2)
        if theirs["sustained_events_per_s"]
        else None
    )
    write_json(out_dir, "clicks", report)
    write_clicks_report(report, out_dir)
    return report


def write_clicks_report(report: dict, out_dir: Path) -> None:
    rows = [
        "# Click path: this checkout beside an earlier revision",
        "",
        f"{report['machine']['cpus']} CPUs, one worker per revision "
        f"({report['threads_per_worker'] or 'all'} ONNX Runtime threads); "
        "one run of `streamscore bench clicks`, same stack, bundle and clicks. Latency is from the click entering "
        "Kafka to its row in PostgreSQL, at half the sustained rate.",
        "",
        "| revision | capacity (events/s) | drains | sustained, bounded lag (events/s) | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["revisions"].items():
        lat = r["latency_at_half_sustained"]
        drains = ", ".join(f"{d:.0f}" for d in r["capacity"]["drains_events_per_s"])
        rows.append(
            f"| {name} | {r['capacity']['events_per_s']} | {drains} | {r['sustained_events_per_s']} | "
            f"{lat['p50_ms']} | {lat['p99_ms']} |"
        )
    sustained = (
        f"{report['ratio_sustained']}×"
        if report["ratio_sustained"] is not None
        else "not comparable (the earlier revision's ladder found no rung whose backlog cleared within 3 s)"
    )
    rows += [
        "",
        f"This checkout ÷ the earlier revision: capacity {report['ratio_capacity']}×, sustained {sustained}.",
        "",
        "Capacity is the median of three drains of a 4 500-click backlog (the figure `bench e2e` quotes). The ladder "
        "asks whether a backlog clears within 3 s of the producer stopping, which on two shared cores is noisy: "
        "read it as a lower bound.",
        "",
    ]
    (out_dir / "clicks.md").write_text("\n".join(rows))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(report["revisions"])
    caps = [report["revisions"][n]["capacity"]["events_per_s"] for n in names]
    sustained = [report["revisions"][n]["sustained_events_per_s"] for n in names]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], caps, width=0.4, label="capacity (drain)")
    ax.bar([x + 0.2 for x in xs], sustained, width=0.4, label="sustained, bounded lag")
    ax.axhline(5000, color="grey", linestyle="--", linewidth=1, label="5 000 events/s")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("clicks per second, one worker")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "clicks.png", dpi=120)
    plt.close(fig)
