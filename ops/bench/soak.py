"""``streamscore bench soak``: one worker under a steady real-data load for N minutes.

Answers two questions a production user asks before trusting a long-running worker: does its memory stay
flat once warm (growth < 10 % after warm-up), and does it keep up (the backlog of produced-but-not-processed
events stays bounded)? Samples RSS from ``/proc`` and progress from the worker's own ``/metrics`` every few
seconds; writes ``soak.json``, ``soak.md`` and ``soak.png``.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ops.bench.output import pyplot, write_json
from ops.demo import WorkerProcess
from ops.replay import Produced, Scenario, produce
from streamscore.db.connection import writer_url
from streamscore.security import kafka_python_options
from streamscore.settings import Settings
from streamscore.topics import Topics, create_topics

RUN_MARK = "SOAKRUN"


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    produced: int
    processed: int

    @property
    def behind(self) -> int:
        return max(self.produced - self.processed, 0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def relabel(records: list[Produced], label: str) -> list[Produced]:
    """The same events with ids made unique by ``label`` (one per pass, and unique across runs: the
    database keeps every earlier run's rows, and a reused id would be a duplicate)."""
    mark, new = RUN_MARK.encode(), label.encode()
    return [
        Produced(r.topic, r.key.replace(RUN_MARK, label) if r.key else r.key, r.value.replace(mark, new), r.expect)
        for r in records
    ]


def summarise(samples: list[Sample], warmup_fraction: float = 0.25) -> dict:
    """Memory growth after warm-up (median of the last three samples vs the first three after warm-up) and
    the backlog in the first and second half of the run."""
    after = samples[max(int(len(samples) * warmup_fraction), 1) :]
    if len(after) < 6:
        raise ValueError("run longer: too few samples after warm-up")
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    start, end = med([s.rss_mb for s in after[:3]]), med([s.rss_mb for s in after[-3:]])
    half = len(after) // 2
    return {
        "rss_after_warmup_mb": round(start, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(max(s.rss_mb for s in samples), 1),
        "memory_growth": round((end - start) / start, 4),
        "max_backlog_first_half": max(s.behind for s in after[:half]),
        "max_backlog_second_half": max(s.behind for s in after[half:]),
        "events_per_s": round(
            (samples[-1].processed - samples[0].processed) / max(samples[-1].t_s - samples[0].t_s, 1e-6), 1
        ),
    }


def run_soak(
    settings: Settings, minutes: float, rate: float, out_dir: Path, sample_s: float = 5.0, port: int = 6090
) -> dict:
    """Run the soak against the local stack (started if needed) with a worker serving ``settings.models_dir``."""
    from ops.stack.manager import stack_up

    stack_up(settings)
    prefix = f"soak{int(time.time())}."
    scoped = settings.model_copy(update={"topic_prefix": prefix})
    topics = Topics.from_settings(scoped)
    security = kafka_python_options(settings)
    create_topics(settings.kafka_bootstrap, topics.specs_for(settings), **security)
    worker = WorkerProcess.start(
        port,
        settings.stack_dir / "logs",
        {
            "STREAMSCORE_TOPIC_PREFIX": prefix,
            "STREAMSCORE_WORKER_GROUP": f"g-{prefix}",
            "STREAMSCORE_WORKER_WEB_PORT": str(port),
            "STREAMSCORE_MODELS_DIR": str(Path(settings.models_dir).resolve()),
            "STREAMSCORE_WRITER_DATABASE_URL": writer_url(settings),
        },
    )
    try:
        worker.wait_ready()
        scenario = Scenario(news=400, clicks=600, run=RUN_MARK)
        scenario.build(settings.data_dir, topics)
        produce(settings.kafka_bootstrap, scenario.catalog(), progress=False, **security)
        stream = scenario.stream()
        produced = [0]
        deadline = time.monotonic() + minutes * 60

        run = uuid.uuid4().hex[:8]

        def feed() -> None:
            loop = 0
            while time.monotonic() < deadline:
                chunk = relabel(stream, f"{run}L{loop}")
                budget = max(int((deadline - time.monotonic()) * rate), 0)
                chunk = chunk[:budget]
                if not chunk:
                    break
                produce(settings.kafka_bootstrap, chunk, rate=rate, progress=False, **security)
                produced[0] += len(chunk)
                loop += 1

        feeder = threading.Thread(target=feed, daemon=True)
        started = time.monotonic()
        feeder.start()
        samples: list[Sample] = []
        while feeder.is_alive():
            time.sleep(sample_s)
            samples.append(
                Sample(
                    round(time.monotonic() - started, 1),
                    rss_mb(worker.process.pid),
                    produced[0],
                    worker.count("streamscore_events_in_total", [topics.news, topics.clicks]),
                )
            )
        drain_deadline = time.monotonic() + 120
        while (
            worker.count("streamscore_events_in_total", [topics.news, topics.clicks]) < produced[0]
            and time.monotonic() < drain_deadline
        ):
            time.sleep(1)
        drained_s = round(time.monotonic() - deadline, 1)
        report = {
            "minutes": minutes,
            "rate": rate,
            "sample_s": sample_s,
            "produced": produced[0],
            "processed": worker.count("streamscore_events_in_total", [topics.news, topics.clicks]),
            "drain_s_after_last_event": drained_s,
            **summarise(samples),
            "samples": [asdict(s) | {"behind": s.behind} for s in samples],
        }
    finally:
        worker.stop()
    write_soak_report(report, out_dir)
    return report


def write_soak_report(report: dict, out_dir: Path) -> None:
    plt = pyplot()
    write_json(out_dir, "soak", report)
    verdict = "flat" if report["memory_growth"] < 0.10 else "GROWING"
    (out_dir / "soak.md").write_text(
        f"# Soak: one worker, {report['minutes']} min at {report['rate']} events/s\n\n"
        "| figure | value |\n|---|---|\n"
        f"| events produced / processed | {report['produced']} / {report['processed']} |\n"
        f"| throughput while loaded | {report['events_per_s']} events/s |\n"
        f"| RSS after warm-up → end (peak) | {report['rss_after_warmup_mb']} → {report['rss_end_mb']} MB "
        f"({report['rss_peak_mb']}) |\n"
        f"| memory growth after warm-up | {report['memory_growth']:.1%} ({verdict}; target < 10 %) |\n"
        f"| max backlog, first / second half | {report['max_backlog_first_half']} / "
        f"{report['max_backlog_second_half']} events |\n"
        f"| drained after the last event | {report['drain_s_after_last_event']} s |\n"
    )
    t = [s["t_s"] for s in report["samples"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(t, [s["rss_mb"] for s in report["samples"]], marker=".")
    ax1.set(xlabel="seconds", ylabel="worker RSS (MB)", title="memory")
    ax2.plot(t, [s["behind"] for s in report["samples"]], marker=".", color="tab:red")
    ax2.set(xlabel="seconds", ylabel="events produced − processed", title="backlog")
    fig.tight_layout()
    fig.savefig(out_dir / "soak.png", dpi=110)
    plt.close(fig)
