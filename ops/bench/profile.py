"""``streamscore bench profile``: where one worker spends its CPU on the news or the click path.

A real worker drains a real-data backlog twice on private topics: once unobserved (the capacity to quote)
and once with py-spy attached (sampling, non-blocking, every thread of the worker). The collapsed stacks are
folded into *stages* — the leafmost frame that belongs to a known part of the pipeline decides — so the
report says "ONNX Runtime 71 %, PostgreSQL 12 %" rather than a wall of frames; the top functions by self
and inclusive time are kept beside it for the next fix. Runs are labelled (``before``/``after`` a change) and
``profile.md`` lays every recorded label of a path side by side, so a fix is shown with its evidence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ops.bench.output import pyplot, write_json
from streamscore.errors import StreamscoreError
from streamscore.settings import Settings

# (stage, rule) in the order they are tried on each frame from the leaf up; a rule is a substring of the
# frame's file path, optionally with the function name (without its class) after a colon. Native code
# (ONNX Runtime's kernels, the tokenizer, psycopg2's C part) shows as the Python frame that called it.
STAGE_RULES: tuple[tuple[str, str], ...] = (
    ("ONNX Runtime: text model", "streamscore/scorer.py:_run"),
    ("ONNX Runtime: recommender", "streamscore/scorer.py:score_items"),
    ("ranking and catalog", "streamscore/neighbour_ranker.py"),
    ("tokenizer", "streamscore/scorer.py:encode"),
    ("scorer: padding and outputs", "streamscore/scorer.py"),
    ("PostgreSQL (SQLAlchemy, psycopg2)", "sqlalchemy/"),
    ("PostgreSQL (SQLAlchemy, psycopg2)", "psycopg2/"),
    ("PostgreSQL (SQLAlchemy, psycopg2)", "worker/adapters/results_store.py"),
    ("Kafka client (aiokafka)", "aiokafka/"),
    ("Kafka client (aiokafka)", "kafka/"),
    ("decode and validate", "worker/domain/intake.py"),
    ("decode and validate", "pydantic"),
    ("ranking and catalog", "worker/domain/ranking.py"),
    ("ranking and catalog", "worker/adapters/catalog.py"),
    ("pipeline logic", "worker/"),
    ("Faust and the event loop", "faust/"),
    ("Faust and the event loop", "mode/"),
    ("Faust and the event loop", "asyncio/"),
    ("Faust and the event loop", "selectors.py"),
    ("metrics", "prometheus_client/"),
)
OTHER = "other"
# frames every sample of a thread passes through: true at 90 %+ inclusive, and useless for finding a fix
PLUMBING = ("threading.py", "concurrent/futures/thread.py")


class ProfilerUnavailable(StreamscoreError):
    """py-spy is not installed (it comes with the ``test`` extra)."""


@dataclass(frozen=True)
class Frame:
    function: str
    file: str

    @classmethod
    def parse(cls, text: str) -> Frame:
        """``function (path/to/file.py:123)`` as py-spy's raw format writes it; thread frames have no file."""
        name, _, rest = text.partition(" (")
        return cls(name.strip(), rest.rsplit(":", 1)[0].rstrip(")") if rest else "")

    @property
    def label(self) -> str:
        short = "/".join(self.file.split("/")[-2:]) if self.file else ""
        return f"{self.function} ({short})" if short else self.function


def stage_of(stack: list[Frame]) -> str:
    """The stage of one sample: the leafmost frame that a rule claims; ``other`` when none does."""
    for frame in reversed(stack):
        for stage, rule in STAGE_RULES:
            path, _, function = rule.partition(":")
            if path in frame.file and (not function or function == frame.function.rsplit(".", 1)[-1]):
                return stage
    return OTHER


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[Frame], int]]:
    """py-spy ``--format raw`` (Brendan Gregg's collapsed stacks): ``root;...;leaf count`` per line."""
    stacks = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append(([Frame.parse(f) for f in frames.split(";")], int(count)))
    return stacks


def summarise(stacks: list[tuple[list[Frame], int]], top: int = 15) -> dict:
    """Share of samples per stage, and the top functions by self and by inclusive time."""
    total = sum(count for _, count in stacks) or 1
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        stages[stage_of(frames)] += count
        code = [f for f in frames if f.file]
        if code:
            own[code[-1].label] += count
        for label in {f.label for f in code if not f.file.endswith(PLUMBING)}:
            inclusive[label] += count

    def share(c: float) -> float:
        return round(c / total, 4)

    return {
        "samples": total,
        "stages": {name: share(c) for name, c in stages.most_common()},
        "top_self": [{"function": name, "share": share(c)} for name, c in own.most_common(top)],
        "top_inclusive": [{"function": name, "share": share(c)} for name, c in inclusive.most_common(top)],
    }


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise ProfilerUnavailable("py-spy is not installed; `pip install -e '.[test]'` brings it")
    return found


def record(pid: int, seconds: float, raw: Path, rate: int = 100) -> subprocess.Popen:
    """Start sampling ``pid`` (its busy threads, without pausing it) for ``seconds`` into ``raw``."""
    raw.parent.mkdir(parents=True, exist_ok=True)
    command = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--output",
        str(raw),
        "--duration",
        str(max(int(seconds), 1)),
        "--rate",
        str(rate),
        "--nonblocking",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def window_stats(before: dict[str, float], after: dict[str, float], topic: str) -> dict:
    """Events per micro-batch and the share of real tokens in what the model was fed, between two scrapes of
    a worker's ``/metrics`` (``None`` where the window had no batch, or no text-model call)."""

    def delta(name: str, *labels: str) -> float:
        keys = [
            k
            for k in after
            if k.startswith(name + "{") and f'topic="{topic}"' in k and all(label in k for label in labels)
        ]
        return sum(after[k] - before.get(k, 0.0) for k in keys)

    batches = delta("streamscore_batch_events_count")
    padded = delta("streamscore_model_tokens_total", 'kind="padded"')
    return {
        "events_per_batch": round(delta("streamscore_batch_events_sum") / batches, 1) if batches else None,
        "padding_efficiency": round(delta("streamscore_model_tokens_total", 'kind="real"') / padded, 3)
        if padded
        else None,
    }


def run_profile(
    settings: Settings,
    path: str,
    label: str,
    out_dir: Path,
    events: int = 1500,
    seconds: float = 20.0,
    note: str = "",
    rate: float = 0.0,
) -> dict:
    """Capacity unobserved, then py-spy on the worker: during a drain of a backlog (``rate`` 0), or while events
    arrive at ``rate`` per second, where latency is measured too (an absolute rate, so that runs of different
    code are compared under the same load). Writes ``profile-<path>-<label>.json``
    and ``profile.md``/``.png``."""
    from ops.bench.pipeline_bench import Deployment, Workload, _produce, capacity, event_id, latency, prepare_workload
    from ops.stack.manager import stack_up

    py_spy()
    stack_up(settings)
    work = Workload(settings, path, 600 if path == "news" else 800)
    raw = settings.stack_dir / "profiles" / f"{path}-{label}.txt"
    with Deployment(settings) as dep:
        assert dep.topics is not None
        topic = dep.topics.news if path == "news" else dep.topics.clicks
        prepare_workload(dep, work)
        plain = capacity(dep, work, events)
        producer: threading.Thread | None = None
        if rate > 0:
            # the workers are running (capacity started them); events arrive at a steady rate from now on
            records = work.events(dep.topics, int(rate * (seconds + 8)))
            target = dep.progress() + len(records)
            producer = threading.Thread(target=_produce, args=(settings, records), kwargs={"rate": rate}, daemon=True)
            producer.start()
            time.sleep(3.0)
        else:
            # a backlog that keeps the worker busy for longer than the sampler runs
            records = work.events(dep.topics, int(plain["events_per_s"] * (seconds + 5) * 1.5) + 100)
            target = len(records)
            dep.preload(records)
            dep.start_workers()  # fresh workers: their counters start at 0
            if not dep.wait(1, 120):
                raise StreamscoreError("the worker processed nothing within 120 s")
            time.sleep(1.0)  # past the first batches: sample the steady state
        start, before = dep.progress(), dep.procs[0].metrics()
        sampler = record(dep.procs[0].process.pid, seconds, raw)
        _, err = sampler.communicate(timeout=seconds + 60)
        profiled = (dep.progress() - start) / seconds
        window = window_stats(before, dep.procs[0].metrics(), topic)
        if producer is not None:
            producer.join()
        if not dep.wait(target, 600):
            raise StreamscoreError(f"the worker did not finish the {len(records)} profiled events within 600 s")
        if sampler.returncode != 0 or not raw.exists():
            raise StreamscoreError(f"py-spy failed ({sampler.returncode}): {err.decode(errors='replace')[-500:]}")
        delays = latency(dep.engine, path, [event_id(r) for r in records]) if producer is not None else None
    summary = summarise(parse_collapsed(raw.read_text().splitlines()))
    report = {
        "benchmark": "profile",
        "path": path,
        "label": label,
        "note": note,
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "batch": {"max_events": settings.batch_max_events, "max_wait_ms": settings.batch_max_wait_ms},
        "capacity_events_per_s": plain["events_per_s"],
        "cpu_s_per_1000": plain["cpu_s_per_1000"],
        "load": {"events_per_s": rate, "fraction_of_capacity": round(rate / plain["events_per_s"], 2), **(delays or {})}
        if rate > 0
        else None,
        "profiled_events_per_s": round(profiled, 1),
        **window,
        "profiler": {"tool": "py-spy", "rate_hz": 100, "seconds": seconds},
        **summary,
    }
    write_json(out_dir, f"profile-{path}-{label}", report)
    write_profile_report(out_dir)
    return report


def load_profiles(out_dir: Path) -> list[dict]:
    reports = [json.loads(p.read_text()) for p in sorted(out_dir.glob("profile-*-*.json"))]
    return sorted(reports, key=lambda r: (r["path"], r["when"]))


def _load_cell(report: dict) -> str:
    load = report.get("load")
    if not load:
        return "draining a backlog"
    return (
        f"{load['events_per_s']:g} events/s ({load['fraction_of_capacity']:.0%} of capacity): "
        f"p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms"
    )


def _share(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "–"


def write_profile_report(out_dir: Path) -> None:
    """``profile.md`` and ``profile.png`` from every labelled profile in ``out_dir``, side by side per path."""
    reports = load_profiles(out_dir)
    if not reports:
        return
    lines = [
        "# Where a worker's CPU goes (py-spy, `streamscore bench profile`)",
        "",
        "Each run: one worker on real events; capacity is measured without the profiler (a drained backlog), then "
        "py-spy samples every thread at 100 Hz (non-blocking) during a second drain, or, with `--rate`, while events "
        "arrive at a steady rate (latency from Kafka to PostgreSQL measured over them). A sample's stage is the "
        "leafmost frame that belongs to a known part of the pipeline.",
        "",
    ]
    for path in sorted({r["path"] for r in reports}):
        runs = [r for r in reports if r["path"] == path]
        stages = sorted({s for r in runs for s in r["stages"]}, key=lambda s: -max(r["stages"].get(s, 0) for r in runs))
        header = " | ".join(f"{r['label']} ({r['when']})" for r in runs)
        lines += [
            f"## {path} path",
            "",
            f"| | {header} |",
            "|---" * (len(runs) + 1) + "|",
            "| what was run | " + " | ".join(r.get("note") or "" for r in runs) + " |",
            "| batch policy (max events / max wait ms) | "
            + " | ".join(f"{r['batch']['max_events']} / {r['batch']['max_wait_ms']:g}" for r in runs)
            + " |",
            "| capacity, unprofiled (events/s) | " + " | ".join(str(r["capacity_events_per_s"]) for r in runs) + " |",
            "| CPU s / 1 000 events | " + " | ".join(str(r["cpu_s_per_1000"]) for r in runs) + " |",
            "| profiled while | " + " | ".join(_load_cell(r) for r in runs) + " |",
            "| events per batch, real ÷ padded tokens (while profiled) | "
            + " | ".join(f"{r.get('events_per_batch') or '–'}, {_share(r.get('padding_efficiency'))}" for r in runs)
            + " |",
        ]
        lines += [f"| {s} | " + " | ".join(f"{r['stages'].get(s, 0):.1%}" for r in runs) + " |" for s in stages]
        latest = runs[-1]
        lines += ["", f"Top functions, `{latest['label']}` run (share of samples, inclusive):", ""]
        lines += [f"- {f['share']:.1%} {f['function']}" for f in latest["top_inclusive"][:12]]
        lines += ["", f"Top functions, `{latest['label']}` run (self):", ""]
        lines += [f"- {f['share']:.1%} {f['function']}" for f in latest["top_self"][:10]]
        lines.append("")
    (out_dir / "profile.md").write_text("\n".join(lines))

    plt = pyplot()
    paths = sorted({r["path"] for r in reports})
    fig, axes = plt.subplots(1, len(paths), figsize=(7 * len(paths), 4.5), squeeze=False)
    for ax, path in zip(axes[0], paths):
        runs = [r for r in reports if r["path"] == path]
        stages = sorted({s for r in runs for s in r["stages"]}, key=lambda s: max(r["stages"].get(s, 0) for r in runs))
        height = 0.8 / len(runs)
        for i, r in enumerate(runs):
            ys = [j + i * height for j in range(len(stages))]
            ax.barh(
                ys,
                [r["stages"].get(s, 0) * 100 for s in stages],
                height=height,
                label=f"{r['label']}: {r['capacity_events_per_s']} ev/s",
            )
        ax.set_yticks([j + 0.4 - height / 2 for j in range(len(stages))], stages, fontsize=8)
        ax.set(xlabel="share of CPU samples (%)", title=f"{path} path")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "profile.png", dpi=110)
    plt.close(fig)
