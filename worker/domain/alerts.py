"""Negative-sentiment surge detection per entity: a pure function over a small, serialisable state.

For each entity the state keeps the scored articles of a sliding window (event time) and a slow baseline of
that entity's own negative share (an exponentially decayed count of negatives and totals, with a prior so a
new entity starts from the global rate). A surge is declared when, inside the window,

* at least ``min_count`` articles were seen,
* the negative share is at least ``ratio`` × the baseline share (and at least ``min_share``), and
* the excess is statistically clear: the binomial z-score ``(k − n·p₀) / √(n·p₀·(1−p₀))`` ≥ ``z_threshold``.

One surge gives one ``raised`` alert; while it lasts, new negative evidence gives ``updated`` alerts (at most
one per ``update_interval_s``); when the share falls under ``resolve_ratio`` × baseline (or the window
empties) it is ``resolved`` and the entity is quiet for ``cooldown_s``. Redelivered articles (same id) are
ignored, so at-least-once delivery cannot inflate a count. Articles in the window do not move the baseline
until they leave it, so a surge cannot raise its own bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class AlertRule:
    window_s: float = 1800.0
    min_count: int = 8
    ratio: float = 2.0
    min_share: float = 0.4
    z_threshold: float = 3.0
    resolve_ratio: float = 1.25
    cooldown_s: float = 3600.0
    update_interval_s: float = 300.0
    baseline_half_life_s: float = 6 * 3600.0
    prior_share: float = 0.15
    prior_weight: float = 20.0
    max_evidence: int = 20


@dataclass
class Observation:
    ts: float
    news_id: str
    negative: bool


@dataclass
class EntityState:
    """Everything the rule remembers about one entity; JSON-serialisable for a changelog-backed table."""

    window: list[Observation] = field(default_factory=list)
    baseline_negative: float = 0.0
    baseline_total: float = 0.0
    baseline_ts: float | None = None
    alert_id: str | None = None
    alert_seq: int = 0
    last_emit_ts: float | None = None
    last_emit_negative: int = 0
    cooldown_until: float = 0.0

    def to_dict(self) -> dict:
        """The stored JSON form, written out field by field: ``dataclasses.asdict`` deep-copies every
        observation of the window, and a busy ticker's state is written on every batch (it was a fifth of the
        model thread's time outside ONNX Runtime on the news path)."""
        return {
            "window": [{"ts": o.ts, "news_id": o.news_id, "negative": o.negative} for o in self.window],
            **{name: getattr(self, name) for name in SCALAR_FIELDS},
        }

    @classmethod
    def from_dict(cls, raw: dict) -> EntityState:
        window = [Observation(o["ts"], o["news_id"], o["negative"]) for o in raw.get("window", ())]
        return cls(window, **{name: raw[name] for name in SCALAR_FIELDS if name in raw})


SCALAR_FIELDS = tuple(f.name for f in fields(EntityState) if f.name != "window")


@dataclass(frozen=True)
class AlertDecision:
    """An alert to emit: the state change and the figures that justify it."""

    alert_id: str
    status: str
    seq: int
    entity: str
    window_start: float
    window_end: float
    negative_count: int
    total_count: int
    negative_share: float
    baseline_share: float
    score: float
    evidence: tuple[str, ...]


def baseline_share(state: EntityState, rule: AlertRule) -> float:
    return (state.baseline_negative + rule.prior_share * rule.prior_weight) / (state.baseline_total + rule.prior_weight)


def z_score(negative: int, total: int, p0: float) -> float:
    if total == 0:
        return 0.0
    p0 = min(max(p0, 1e-3), 1 - 1e-3)
    return (negative - total * p0) / math.sqrt(total * p0 * (1 - p0))


def _decay_baseline(state: EntityState, rule: AlertRule, now: float) -> None:
    if state.baseline_ts is not None and now > state.baseline_ts:
        factor = 0.5 ** ((now - state.baseline_ts) / rule.baseline_half_life_s)
        state.baseline_negative *= factor
        state.baseline_total *= factor
    state.baseline_ts = now if state.baseline_ts is None else max(state.baseline_ts, now)


def observe(
    state: EntityState, rule: AlertRule, entity: str, news_id: str, ts: float, negative: bool
) -> AlertDecision | None:
    """Fold one scored article into ``state`` (mutated in place); return the alert to emit, if any.

    Articles older than the window (relative to the newest seen) still count towards the baseline only.
    """
    if any(o.news_id == news_id for o in state.window):
        return None
    newest = max([ts, *(o.ts for o in state.window)])
    state.window.append(Observation(ts, news_id, negative))
    state.window.sort(key=lambda o: (o.ts, o.news_id))
    horizon = newest - rule.window_s
    _decay_baseline(state, rule, newest)
    while state.window and state.window[0].ts < horizon:
        old = state.window.pop(0)
        state.baseline_total += 1.0
        state.baseline_negative += 1.0 if old.negative else 0.0
    return _decide(state, rule, entity, newest)


def _decide(state: EntityState, rule: AlertRule, entity: str, now: float) -> AlertDecision | None:
    total = len(state.window)
    negatives = [o for o in state.window if o.negative]
    k = len(negatives)
    share = k / total if total else 0.0
    p0 = baseline_share(state, rule)
    score = z_score(k, total, p0)
    surging = total >= rule.min_count and share >= max(rule.ratio * p0, rule.min_share) and score >= rule.z_threshold

    def decision(status: str) -> AlertDecision:
        evidence = tuple(o.news_id for o in negatives[-rule.max_evidence :])
        return AlertDecision(
            alert_id=state.alert_id or "",
            status=status,
            seq=state.alert_seq,
            entity=entity,
            window_start=state.window[0].ts if state.window else now - rule.window_s,
            window_end=now,
            negative_count=k,
            total_count=total,
            negative_share=round(share, 4),
            baseline_share=round(p0, 4),
            score=round(score, 3),
            evidence=evidence,
        )

    if state.alert_id is None:
        if surging and now >= state.cooldown_until:
            state.alert_id = f"{entity}-{int(now)}"
            state.alert_seq = 0
            state.last_emit_ts, state.last_emit_negative = now, k
            return decision("raised")
        return None
    if total == 0 or share < rule.resolve_ratio * p0:
        state.alert_seq += 1
        result = decision("resolved")
        state.alert_id = None
        state.cooldown_until = now + rule.cooldown_s
        return result
    if surging and k > state.last_emit_negative and now - (state.last_emit_ts or now) >= rule.update_interval_s:
        state.alert_seq += 1
        state.last_emit_ts, state.last_emit_negative = now, k
        return decision("updated")
    return None
