"""The gate between a challenger and the champion: explicit rules on figures both were measured with on the
same held-out data. Pure, so every rule is tested without a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

EXIT_PUBLISHED = 0
EXIT_REFUSED = 3
EXIT_NOTHING_TO_LEARN = 4


@dataclass(frozen=True)
class GateLimits:
    max_accuracy_drop: float = 0.01
    """Public sentiment test accuracy the challenger may lose (absolute)."""
    max_macro_f1_drop: float = 0.02
    max_ndcg_drop: float = 0.0
    """Recommender nDCG@10 on the recent held-out slice the challenger may lose (0: it must not drop)."""
    max_rmse_rise: float = 0.02
    """Review-star and MovieLens rating RMSE (public test sets) the challenger may add."""


@dataclass(frozen=True)
class Check:
    name: str
    champion: float | None
    challenger: float | None
    limit: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    publish: bool
    reason: str
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"publish": self.publish, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def _drop_check(name: str, champion: float | None, challenger: float | None, max_drop: float) -> Check:
    if champion is None or challenger is None:
        return Check(name, champion, challenger, "not measured (no held-out rows)", True)
    passed = challenger >= champion - max_drop - 1e-12
    return Check(name, champion, challenger, f"may drop by at most {max_drop:g}", passed)


def _rise_check(name: str, champion: float | None, challenger: float | None, max_rise: float) -> Check:
    if champion is None or challenger is None:
        return Check(name, champion, challenger, "not measured", True)
    passed = challenger <= champion + max_rise + 1e-12
    return Check(name, champion, challenger, f"may rise by at most {max_rise:g}", passed)


def judge(champion: dict, challenger: dict, limits: GateLimits = GateLimits()) -> Verdict:
    """Publish only when no task got worse beyond its tolerance. Figures: ``sentiment_accuracy``,
    ``sentiment_macro_f1`` (public test, the corrected headlines left out), ``review_rmse`` and
    ``movielens_rmse`` (public test sets), ``recent_ndcg@10`` (the recent slice; None when empty)."""
    checks = [
        _rise_check(
            "review-star RMSE (public test)",
            champion.get("review_rmse"),
            challenger.get("review_rmse"),
            limits.max_rmse_rise,
        ),
        _rise_check(
            "MovieLens rating RMSE (public test)",
            champion.get("movielens_rmse"),
            challenger.get("movielens_rmse"),
            limits.max_rmse_rise,
        ),
        _drop_check(
            "sentiment accuracy (public test)",
            champion.get("sentiment_accuracy"),
            challenger.get("sentiment_accuracy"),
            limits.max_accuracy_drop,
        ),
        _drop_check(
            "sentiment macro-F1 (public test)",
            champion.get("sentiment_macro_f1"),
            challenger.get("sentiment_macro_f1"),
            limits.max_macro_f1_drop,
        ),
        _drop_check(
            "recommender nDCG@10 (recent held-out slice)",
            champion.get("recent_ndcg@10"),
            challenger.get("recent_ndcg@10"),
            limits.max_ndcg_drop,
        ),
    ]
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.name}: {c.challenger:.4f} vs champion {c.champion:.4f} ({c.limit})" for c in failed)
        return Verdict(False, reason, checks)
    return Verdict(True, "no task got worse beyond its tolerance", checks)
