"""``streamscore bench alerts``: what users feel of the sentiment model — precision and recall of raised alerts on
a labelled surge scenario, for two (or more) bundles on the same replay.

The scenario (:func:`labelled_surges`): ``tickers`` surge tickers and as many calm ones, each with the same
volume of real held-out headlines (``sent_valid.csv``, which no model trained on) inside one alert window. A
surge ticker's headlines are ``surge_negatives`` of ``per_ticker`` truly negative; a calm ticker's are
``calm_negatives`` of ``per_ticker``, the background rate. The defaults sit near the rule's edge (8 of 16 against
a 0.4 minimum share and z ≥ 3; 4 of 16 well below it), so a model that misses negatives loses recall and one
that calls neutral news negative raises false alarms. Every bundle gets the same headlines in the same order at
the same times; only the ticker names differ between runs (a fresh entity state each), and only alerts on the
labelled tickers are scored (cashtags inside the headlines make other entities, which are reported apart).
"""

from __future__ import annotations

import json
import random
import shutil
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from ops.bench.output import pyplot, write_json
from ops.bench.pipeline_bench import Deployment, _produce
from ops.replay import NEGATIVE_LABEL, NEWS, Produced, _csv
from streamscore.bundle import point_current
from streamscore.settings import Settings
from streamscore.topics import Topics
from worker.domain.alerts import AlertRule, EntityState, observe
from worker.runtime import alert_rule


@dataclass(frozen=True)
class TickerPlan:
    """One labelled ticker's headlines: (text, truly negative) in stream order."""

    slot: int
    surge: bool
    headlines: tuple[tuple[str, bool], ...]


def plan_tickers(
    data_dir: Path,
    tickers: int = 20,
    per_ticker: int = 16,
    surge_negatives: int = 8,
    calm_negatives: int = 4,
    seed: int = 13,
) -> list[TickerPlan]:
    """Which held-out headlines each labelled ticker gets (no headline used twice)."""
    rows = list(_csv(Path(data_dir) / NEWS / "sent_valid.csv"))
    rng = random.Random(seed)
    negatives = [r["text"] for r in rows if r["label"] == NEGATIVE_LABEL]
    others = [r["text"] for r in rows if r["label"] != NEGATIVE_LABEL]
    rng.shuffle(negatives)
    rng.shuffle(others)
    need_neg = tickers * (surge_negatives + calm_negatives)
    need_other = tickers * (2 * per_ticker - surge_negatives - calm_negatives)
    if need_neg > len(negatives) or need_other > len(others):
        raise ValueError(f"the test file has {len(negatives)} negative headlines; the scenario needs {need_neg}")
    plans = []
    for slot in range(2 * tickers):
        surge = slot < tickers
        k = surge_negatives if surge else calm_negatives
        chosen = [(negatives.pop(), True) for _ in range(k)] + [(others.pop(), False) for _ in range(per_ticker - k)]
        rng.shuffle(chosen)
        plans.append(TickerPlan(slot, surge, tuple(chosen)))
    return plans


def ticker_name(tag: str, plan: TickerPlan) -> str:
    """A valid, run-unique ticker (``[A-Z][A-Z0-9]*``, at most 10 characters)."""
    return f"Q{tag}{'S' if plan.surge else 'C'}{plan.slot:02d}"


@dataclass(frozen=True)
class ScenarioEvent:
    """One headline of the scenario: its ticker, id, event time (ms) and text."""

    ticker: str
    news_id: str
    ts_ms: int
    headline: str


def scenario_events(
    plans: list[TickerPlan], tag: str, now_ms: int, span_s: float = 1200.0, seed: int = 13
) -> tuple[list[ScenarioEvent], dict[str, bool]]:
    """The headlines of one run, interleaved in event-time order inside ``span_s``, and ticker → is a surge."""
    events = []
    for plan in plans:
        name = ticker_name(tag, plan)
        for i, (headline, _) in enumerate(plan.headlines):
            events.append((name, i, headline))
    rng = random.Random(seed)
    rng.shuffle(events)  # the same order for every tag: the shuffle depends on the seed only
    step = span_s * 1000 / max(1, len(events))
    start = now_ms - int(span_s * 1000)
    ordered = [
        ScenarioEvent(ticker, f"aq-{tag}-{ticker}-{i}", start + int(step * n), headline)
        for n, (ticker, i, headline) in enumerate(events)
    ]
    return ordered, {ticker_name(tag, p): p.surge for p in plans}


def labelled_stream(
    plans: list[TickerPlan], topics: Topics, tag: str, now_ms: int, span_s: float = 1200.0, seed: int = 13
) -> tuple[list[Produced], dict[str, bool]]:
    """The scenario as news records for the ``news`` topic, and ticker → is a surge.

    Each record is keyed by its ticker, as a feed that wants per-ticker order keys it: a ticker's headlines share
    a partition, so the worker folds them in the order they were produced, the order the offline replay folds
    them in. Keyed by id instead, they spread over partitions that the consumer reads at different paces, and a
    surge's prefix (8 of the first 9, say) can cross the bar in one run and not in the next."""
    events, labels = scenario_events(plans, tag, now_ms, span_s, seed)
    records = [
        Produced(
            topics.news,
            e.ticker,
            json.dumps(
                {
                    "id": e.news_id,
                    "ts": e.ts_ms,
                    "headline": e.headline,
                    "tickers": [e.ticker],
                    "source": "alert-quality-scenario",
                }
            ).encode(),
        )
        for e in events
    ]
    return records, labels


OFFLINE_NOW_MS = 1_767_225_600_000
"""Where the offline replay's clock stands (2026-01-01): any real time will do, the rule reads differences."""


def offline_alerts(plans: list[TickerPlan], is_negative: Callable[[str], bool], rule: AlertRule) -> set[str]:
    """The tickers the surge rule raises an alert for when each headline is called negative by
    ``is_negative``: the worker's own rule (:func:`worker.domain.alerts.observe`) over the same stream, in the
    same order, without Kafka or a bundle: what a model's test predictions would raise."""
    events, _ = scenario_events(plans, "X", OFFLINE_NOW_MS)
    states: dict[str, EntityState] = {}
    raised = set()
    for e in events:
        state = states.setdefault(e.ticker, EntityState())
        decision = observe(state, rule, e.ticker, e.news_id, e.ts_ms / 1000, is_negative(e.headline))
        if decision is not None and decision.status == "raised":
            raised.add(e.ticker)
    return raised


def offline_alert_scores(plans: list[TickerPlan], is_negative: Callable[[str], bool], rule: AlertRule) -> dict:
    """:func:`alert_scores` of :func:`offline_alerts`."""
    _, labels = scenario_events(plans, "X", OFFLINE_NOW_MS)
    return alert_scores(offline_alerts(plans, is_negative, rule), labels)


def raised_slots(raised: set[str]) -> list[int]:
    """The plan slots of raised labelled tickers (names from :func:`ticker_name`), whatever the run's tag."""
    return sorted(int(name[-2:]) for name in raised if name.startswith("Q") and name[-3] in "SC")


def alert_scores(raised: set[str], labels: dict[str, bool]) -> dict:
    """Precision and recall of raised alerts over the labelled tickers."""
    surges = {t for t, s in labels.items() if s}
    hits = raised & surges
    false_alarms = raised & (set(labels) - surges)
    precision = len(hits) / len(hits | false_alarms) if hits | false_alarms else 0.0
    recall = len(hits) / len(surges) if surges else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "surges": len(surges),
        "calm": len(labels) - len(surges),
        "alerted_surges": len(hits),
        "false_alarms": len(false_alarms),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def run_alert_quality(settings: Settings, bundles: dict[str, Path], out_dir: Path, tickers: int = 20) -> dict:
    plans = plan_tickers(settings.data_dir, tickers)
    nonce = "".join(random.Random().choices(string.ascii_uppercase, k=2))
    results = {}
    now_ms = int(time.time() * 1000)
    for n, (label, bundle) in enumerate(bundles.items()):
        tag = f"{nonce}{string.ascii_uppercase[n]}"
        with tempfile.TemporaryDirectory(prefix="streamscore-aq-") as tmp:
            models = Path(tmp)
            shutil.copytree(Path(bundle).resolve(), models / Path(bundle).resolve().name)
            point_current(models, Path(bundle).resolve().name)
            with Deployment(settings.model_copy(update={"models_dir": models}), workers=1) as dep:
                assert dep.topics is not None
                records, labels = labelled_stream(plans, dep.topics, tag, now_ms)
                _produce(dep.settings, records)
                if not dep.wait(len(records), timeout_s=300):
                    raise TimeoutError(f"{label}: the worker did not finish the scenario in 300 s")
                time.sleep(2)  # the last batch's alerts are stored with it; allow its commit to land
                with dep.engine.connect() as conn:
                    rows = conn.execute(
                        text("SELECT DISTINCT entity FROM alerts WHERE status = 'raised' AND entity LIKE :p"),
                        {"p": f"Q{tag}%"},
                    ).scalars()
                    raised = set(rows)
                    version = conn.execute(
                        text("SELECT model_version FROM news_sentiment WHERE news_id LIKE :p LIMIT 1"),
                        {"p": f"aq-{tag}-%"},
                    ).scalar()
                    stored_rows = conn.execute(
                        text("SELECT headline, label = 'negative' FROM news_sentiment WHERE news_id LIKE :p"),
                        {"p": f"aq-{tag}-%"},
                    ).all()
            # Every row is counted (a headline lost to a dead letter breaks the check); labels are looked up by text.
            stored = {headline: negative for headline, negative in stored_rows}
            # The offline replay (what `streamscore sweep` scores variants with) folded over the labels this worker
            # stored must raise exactly the alerts the worker raised: a check on every run that the two agree.
            # Stored headlines are stripped, as every event's text is on intake.
            offline = offline_alerts(plans, lambda h, s=stored: bool(s.get(h.strip(), False)), alert_rule(dep.settings))
        results[label] = {
            "bundle": str(bundle),
            "model_version": version,
            **alert_scores(raised, labels),
            "raised_slots": raised_slots(raised),
            "offline_rule_agrees": len(stored_rows) == len(records) and raised_slots(offline) == raised_slots(raised),
        }
    report = {
        "scenario": {
            "tickers_per_kind": tickers,
            "headlines_per_ticker": 16,
            "negatives_surge": 8,
            "negatives_calm": 4,
            "source": "sent_valid.csv (held out)",
            "rule": {
                "window_s": settings.alert_window_s,
                "min_count": settings.alert_min_count,
                "min_share": settings.alert_min_share,
                "z": settings.alert_z_threshold,
            },
        },
        "results": results,
    }
    write_alert_quality_report(report, out_dir)
    return report


def write_alert_quality_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir, "alerts", report)
    s = report["scenario"]
    lines = [
        "# Alert quality: precision and recall of raised alerts, same labelled replay",
        "",
        f"`streamscore bench alerts`: {s['tickers_per_kind']} surge and {s['tickers_per_kind']} calm tickers, "
        f"{s['headlines_per_ticker']} held-out headlines each inside one alert window; a surge ticker's are "
        f"{s['negatives_surge']} truly negative, a calm ticker's {s['negatives_calm']}. One worker per model. "
        "*Offline rule agrees*: the worker's rule folded offline over the labels the worker stored raises the "
        "same tickers (what `streamscore sweep` relies on to score recipes without a deployment).",
        "",
        "| model | version | alerted surges | false alarms | precision | recall | F1 | offline rule agrees |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in report["results"].items():
        lines.append(
            f"| {label} | `{r['model_version']}` | {r['alerted_surges']} / {r['surges']} | {r['false_alarms']} / "
            f"{r['calm']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
            f"{'yes' if r.get('offline_rule_agrees') else 'no'} |"
        )
    (out_dir / "alerts.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = list(report["results"])
    width = 0.25
    for i, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(
            [x + i * width for x in range(len(labels))],
            [report["results"][m][metric] for m in labels],
            width,
            label=metric,
        )
    ax.set_xticks([x + width for x in range(len(labels))], labels)
    ax.set_ylim(0, 1.05)
    ax.set_title("Raised alerts on a labelled surge scenario")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "alerts.png", dpi=120)
    plt.close(fig)
