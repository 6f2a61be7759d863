"""``streamscore retrain``: learn from what the workers stored, gate the challenger, publish it or say why not.

    PostgreSQL (clicks, items, news, feedback) ──▶ challenger ──▶ export (parity, int8 gate, checksums)
          ▲                                                              │
     workers store                       gate: champion vs challenger on the same held-out data
          │                                                              │
    Kafka events ◀── workers hot-reload `models/current` ◀── publish (atomic switch), or refuse

One run:

1. the champion is the bundle ``models/current`` points at; its checkpoint (``source_checkpoint`` in the
   manifest) is what the challenger starts from;
2. the stored interactions, items and sentiment corrections are read as the retrainer role (``--since``
   bounds the window); the most recent ``retrain_holdout_share`` of the interactions in time is held out;
3. the challenger: the ranker refit on the public history plus the stored interactions before the held-out
   slice, over the catalog extended with the stream's items; the sentiment head updated with the
   corrections (the latest per article) and the public training headlines (:mod:`trainer.continual`);
4. it is exported through the same path as ``streamscore export`` but not made current;
5. both bundles are measured on the same held-out data: the recent slice (ranking, from the same
   histories), the public sentiment test without the corrected headlines (int8, as served), and the
   corrected headlines themselves; the gate (:mod:`trainer.retrain_gate`) decides;
6. the decision, both sets of figures, the data window and the row counts go into the challenger's
   manifest and ``model_versions``; ``current`` switches only on a pass. Workers pick the new bundle up by
   their hot reload; serving never pauses.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert

from export.errors import ExportError
from export.exporter import export_bundle
from streamscore.bundle import MANIFEST, Bundle, current_version, point_current
from streamscore.db.connection import make_engine, retrainer_url
from streamscore.db.tables import ModelVersion
from streamscore.errors import StreamscoreError
from streamscore.events import SENTIMENT_LABELS, item_text
from streamscore.scorer import Scorer
from streamscore.settings import Settings
from trainer.checkpoint import load_checkpoint
from trainer.continual import (
    INTERACTION_COLUMNS,
    label_index,
    latest_corrections,
    recent_cut,
    refit_recommender,
    sentence_features,
    slice_ranking,
    stored_interactions,
    update_sentiment_head,
)
from trainer.datasets import SplitRecipe
from trainer.neighbour_fit import FitParams
from trainer.rec_evaluation import CHOICE_FILE, RANKER_DIR
from trainer.retrain_gate import (
    EXIT_NOTHING_TO_LEARN,
    EXIT_PUBLISHED,
    EXIT_REFUSED,
    GateLimits,
    Verdict,
    judge,
)

logger = logging.getLogger(__name__)
CHECKPOINT_FILES_SKIPPED = (RANKER_DIR,)


class RetrainError(StreamscoreError):
    """The retrain could not run (no champion, no checkpoint behind it, no database)."""


@dataclass
class RetrainResult:
    decision: str
    """``published``, ``refused``, ``would_publish``/``would_refuse`` (dry run) or ``nothing_to_learn``."""
    reason: str
    exit_code: int
    champion: str
    challenger: str | None = None
    row_counts: dict = field(default_factory=dict)
    data_window: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Stored:
    clicks: pd.DataFrame
    items: pd.DataFrame
    corrections: pd.DataFrame
    contradicted: int
    unmatched_corrections: int
    lineage: dict | None


def read_stored(engine: Engine, champion: str, since: datetime | None) -> Stored:
    """Everything the retrain learns from, in one read-only transaction (a consistent snapshot)."""
    window = "WHERE event_ts >= :since" if since else ""
    params = {"since": since} if since else {}
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        clicks = pd.read_sql_query(
            text(f"SELECT user_id, item_id, rating, event_ts, processed_at FROM click_events {window}"),
            conn,
            params=params,
        )
        items = pd.read_sql_query(
            text("SELECT item_id, title, body, genres, tags, embedding, embedding_model_version FROM items"), conn
        )
        raw = pd.read_sql_query(
            text(
                "SELECT f.feedback_id, f.news_id, f.label, f.event_ts, f.received_at, n.headline FROM feedback f "
                "LEFT JOIN news_sentiment n USING (news_id) WHERE f.kind = 'sentiment_correction'"
                + (" AND f.event_ts >= :since" if since else "")
            ),
            conn,
            params=params,
        )
        row = conn.execute(
            text("SELECT data_window FROM model_versions WHERE version = :v"), {"v": champion}
        ).scalar_one_or_none()
    corrections, contradicted = latest_corrections(raw)
    unmatched = int(corrections["headline"].isna().sum()) if len(corrections) else 0
    corrections = corrections[corrections["headline"].notna()] if len(corrections) else corrections
    return Stored(clicks, items, corrections, contradicted, unmatched, row)


def _new_since(frame: pd.DataFrame, column: str, lineage: dict | None) -> int:
    """Rows stored after the champion's data window ended (every row for an offline-trained champion)."""
    until = (lineage or {}).get("stored_until")
    if not until or frame.empty:
        return len(frame)
    return int((pd.to_datetime(frame[column], utc=True) > pd.Timestamp(until)).sum())


def _stored_until(stored: Stored) -> str | None:
    """The newest storage time among the rows read: what the next retrain counts as new is after it."""
    times = [pd.to_datetime(stored.clicks["processed_at"], utc=True).max()] if len(stored.clicks) else []
    if len(stored.corrections):
        times.append(pd.to_datetime(stored.corrections["received_at"], utc=True).max())
    return max(times).isoformat() if times else None


def _head_training_set(
    recipe: SplitRecipe, corrections: pd.DataFrame, public: bool
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, label indices and a correction mask: the public training headlines (so the head does not
    forget; without any a corrected headline would outvote nothing), then the corrected ones."""
    corrected = set(corrections["headline"])
    train = recipe.text_splits().sentiment_train if public else None
    kept = [(t, lab) for t, lab in zip(train.texts, train.labels) if t not in corrected] if train else []
    texts = [t for t, _ in kept] + corrections["headline"].tolist()
    labels = np.concatenate([np.asarray([lab for _, lab in kept], np.int64), label_index(corrections["label"])])
    is_correction = np.r_[np.zeros(len(kept), bool), np.ones(len(corrections), bool)]
    return texts, labels, is_correction


def _item_vectors(stored: pd.DataFrame, scorer: Scorer) -> dict[str, np.ndarray]:
    """Embeddings of the stored items: as the workers stored them for this model version, else embedded now
    (an item stored under another version, or not embedded yet)."""
    vectors: dict[str, np.ndarray] = {}
    missing = []
    for row in stored.itertuples(index=False):
        if row.embedding is not None and row.embedding_model_version == scorer.embedding_space:
            vectors[row.item_id] = np.asarray(row.embedding, np.float32)
        else:
            missing.append(row)
    if missing:
        texts = [item_text(r.title, list(r.genres or []), list(r.tags or []), r.body) for r in missing]
        for r, vec in zip(missing, scorer.embed(texts)):
            vectors[r.item_id] = vec.astype(np.float32)
    return vectors


def _sentiment_figures(scorer: Scorer, texts: list[str], labels: np.ndarray) -> dict:
    from trainer.eval_metrics import classification_report

    predicted = scorer.score_texts(texts, "sentiment").outputs["sentiment_logits"].argmax(-1)
    report = classification_report(labels, predicted, SENTIMENT_LABELS)
    return {"sentiment_accuracy": report["accuracy"], "sentiment_macro_f1": report["macro_f1"], "texts": len(texts)}


def _honoured(scorer: Scorer, corrections: pd.DataFrame) -> float | None:
    if corrections.empty:
        return None
    labels = [p["label"] for p in scorer.sentiment(corrections["headline"].tolist())]
    return float(np.mean([a == b for a, b in zip(labels, corrections["label"])]))


def _write_challenger_checkpoint(source: Path, target: Path, text_state: dict | None, ranker, record: dict) -> Path:
    from safetensors.torch import save_file

    from trainer.checkpoint import FORMAT

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*CHECKPOINT_FILES_SKIPPED))
    if text_state is not None:
        state = {k: v.detach().contiguous().cpu() for k, v in text_state.items()}
        save_file(state, str(target / "model.safetensors"), metadata={"format": FORMAT})
    ranker.save(target / RANKER_DIR)
    (target / RANKER_DIR / CHOICE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return target


def _record_lineage(engine: Engine, bundle: Bundle | None, version: str, parent: str, result: RetrainResult) -> None:
    """One ``model_versions`` row per challenger, published or not (``bundle`` is None when the export itself
    refused it)."""
    manifest = bundle.manifest if bundle is not None else {}
    values = {
        "version": version,
        "created_at": datetime.fromisoformat(manifest["created_at"]) if manifest else datetime.now(UTC),
        "source_checkpoint": manifest.get("source_checkpoint"),
        "manifest": manifest,
        "parent_version": parent,
        "decision": "dry_run" if result.decision.startswith("would") else result.decision,
        "reason": result.reason,
        "data_window": result.data_window,
        "row_counts": result.row_counts,
        "metrics": result.metrics,
        "decided_at": datetime.now(UTC),
    }
    stmt = insert(ModelVersion.__table__).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["version"], set_={k: stmt.excluded[k] for k in values if k not in ("version", "created_at")}
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def _same_embeddings(champion: Scorer, challenger: Scorer, texts: list[str]) -> bool:
    """Whether the challenger embeds like the champion (its encoder was frozen): then the item embeddings the
    workers stored stay valid and a swap needs no re-embedding of the catalog."""
    if not texts:
        return False
    return bool(np.array_equal(champion.embed(texts), challenger.embed(texts)))


def _annotate_manifest(bundle: Bundle, result: RetrainResult, embedding_space: str | None) -> None:
    """Add the retrain's decision and figures to the challenger's manifest, and the embedding space it shares
    with its parent (the files, and so the version and checksums, are unchanged)."""
    path = bundle.path / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["retrain"] = {k: v for k, v in result.to_dict().items() if k != "exit_code"}
    if embedding_space is not None:
        manifest["embedding_space"] = embedding_space
        bundle.manifest["embedding_space"] = embedding_space
    path.write_text(json.dumps(manifest, indent=2))
    bundle.manifest["retrain"] = manifest["retrain"]


def retrain(
    settings: Settings,
    since: datetime | None = None,
    dry_run: bool = False,
    keep_refused: bool = False,
    public: bool = True,
) -> RetrainResult:
    """One retrain; see the module docstring. Raises :class:`RetrainError` when it cannot run at all."""
    t0 = time.perf_counter()
    models_dir = Path(settings.models_dir)
    champion_version = current_version(models_dir)
    if champion_version is None:
        raise RetrainError(f"no champion: {models_dir}/current does not exist (export a bundle first)")
    champion_bundle = Bundle.load(models_dir / champion_version)
    source = champion_bundle.manifest.get("source_checkpoint")
    if not source or not Path(source).is_dir():
        raise RetrainError(
            f"the champion {champion_version} names no checkpoint on this machine ({source!r}): the challenger "
            "starts from it"
        )
    engine = make_engine(retrainer_url(settings))
    try:
        return _retrain(settings, engine, champion_bundle, Path(source), since, dry_run, keep_refused, public, t0)
    finally:
        engine.dispose()


def _retrain(
    settings: Settings,
    engine: Engine,
    champion_bundle: Bundle,
    source: Path,
    since: datetime | None,
    dry_run: bool,
    keep_refused: bool,
    public: bool,
    t0: float,
) -> RetrainResult:
    seconds: dict[str, float] = {}
    models_dir = Path(settings.models_dir)
    champion_version = champion_bundle.version
    try:
        stored = read_stored(engine, champion_version, since)
    except Exception as exc:  # noqa: BLE001 - a database we cannot read is the reason, said once
        raise RetrainError(f"cannot read the stored events as the retrainer role: {exc}") from exc
    seconds["read"] = round(time.perf_counter() - t0, 2)
    new_clicks = _new_since(stored.clicks, "processed_at", stored.lineage)
    new_corrections = _new_since(stored.corrections, "received_at", stored.lineage)
    counts = {
        "interactions": len(stored.clicks),
        "new_interactions": new_clicks,
        "items": len(stored.items),
        "corrections": len(stored.corrections),
        "new_corrections": new_corrections,
        "contradicted_articles": stored.contradicted,
        "corrections_without_article": stored.unmatched_corrections,
    }
    stored_until = _stored_until(stored)
    window = {"since": since.isoformat() if since else None, "stored_until": stored_until, "public_sets": public}
    if new_clicks < settings.retrain_min_new_interactions and new_corrections == 0:
        return RetrainResult(
            "nothing_to_learn",
            f"{new_clicks} new interactions (fewer than {settings.retrain_min_new_interactions}) and no new "
            "correction since the champion's data window",
            EXIT_NOTHING_TO_LEARN,
            champion_version,
            row_counts=counts,
            data_window=window,
        )

    ckpt = load_checkpoint(source)
    champion_scorer = Scorer(champion_bundle, variant="int8", device="cpu", warm_up=False)
    positive = champion_scorer.ranker.params.positive_rating

    # -- held-out slice and training histories -------------------------------------------------------
    recipe = SplitRecipe.from_checkpoint_config(ckpt.config, settings.data_dir)
    public_sets = recipe.interaction_splits()
    public_history = pd.concat([public_sets.train, public_sets.dev], ignore_index=True)[INTERACTION_COLUMNS]
    if not public:  # the stored events alone (the public sets still give the held-out sentiment test)
        public_history = public_history.iloc[0:0]
    interactions = stored_interactions(stored.clicks, positive)
    cut = recent_cut(pd.to_datetime(stored.clicks["event_ts"], utc=True), settings.retrain_holdout_share, 20)
    if cut is None:
        before, recent = interactions, interactions.iloc[0:0]
    else:
        in_recent = (pd.to_datetime(stored.clicks["event_ts"], utc=True) >= cut).to_numpy()
        before, recent = interactions[~in_recent], interactions[in_recent]
    history = pd.concat([public_history, before], ignore_index=True)
    counts |= {
        "held_out_interactions": len(recent),
        "trained_interactions": len(before),
        "public_interactions": len(public_history),
    }
    window |= {"held_out_from": cut.isoformat() if cut is not None else None}

    # -- recommender --------------------------------------------------------------------------------
    t = time.perf_counter()
    fit = FitParams(**champion_bundle.manifest["ranker"]["fit"])
    vectors = _item_vectors(stored.items, champion_scorer)
    challenger_ranker, added = refit_recommender(champion_scorer.ranker, history, vectors, fit)
    counts["items_added_to_ranker"] = len(added)
    seconds["recommender_refit"] = round(time.perf_counter() - t, 2)

    # -- sentiment head -----------------------------------------------------------------------------
    t = time.perf_counter()
    corrected = set(stored.corrections["headline"]) if len(stored.corrections) else set()
    head_update = None
    text_state = None
    if len(stored.corrections):
        texts, labels, is_correction = _head_training_set(recipe, stored.corrections, public)
        weights = np.where(is_correction, settings.retrain_correction_weight, 1.0)
        logger.info("updating the sentiment head", extra={"examples": len(texts), "corrections": len(corrected)})
        features = sentence_features(
            ckpt.text_model, ckpt.tokenizer, texts, ckpt.text_model.config.max_length_sentiment
        )
        head_update = update_sentiment_head(ckpt.text_model.sentiment_head, features, labels, weights, is_correction)
        text_state = ckpt.text_model.state_dict()
    seconds["sentiment_head"] = round(time.perf_counter() - t, 2)

    # -- export, not current ------------------------------------------------------------------------
    logger.info("exporting the challenger", extra={"items_added": len(added)})
    t = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work = Path(settings.runs_dir) / "retrain" / f"{stamp}-{champion_version}"
    record = {
        "fit": asdict(fit),
        "params": asdict(challenger_ranker.params),
        "dev": champion_bundle.manifest["ranker"].get("dev", {}),
        "grid": [],
        "refit_seconds": seconds["recommender_refit"],
        "refit_by": "retrain",
    }
    checkpoint = _write_challenger_checkpoint(source, work / "checkpoint", text_state, challenger_ranker, record)
    base = RetrainResult("", "", EXIT_REFUSED, champion_version, row_counts=counts, data_window=window)
    try:
        bundle = export_bundle(checkpoint, models_dir, make_current=False, data_dir=settings.data_dir)
    except ExportError as exc:
        shutil.rmtree(work, ignore_errors=True)
        base.decision, base.reason, base.seconds = "refused", f"export refused the challenger: {exc}", seconds
        # no bundle, so no content version: the lineage row is keyed by the attempt
        base.challenger = f"refused-{stamp}-{champion_version}"
        _record_lineage(engine, None, base.challenger, champion_version, base)
        return base
    seconds["export"] = round(time.perf_counter() - t, 2)
    base.challenger = bundle.version
    if bundle.version == champion_version:
        shutil.rmtree(work, ignore_errors=True)
        base.decision, base.exit_code = "nothing_to_learn", EXIT_NOTHING_TO_LEARN
        base.reason, base.seconds = "the challenger is byte for byte the champion", seconds
        return base

    # -- the same held-out data for both --------------------------------------------------------------
    t = time.perf_counter()
    challenger_scorer = Scorer(bundle, variant="int8", device="cpu", warm_up=False)
    shared_space = _same_embeddings(champion_scorer, challenger_scorer, ckpt.item_texts[:64])
    splits = recipe.text_splits()
    keep = [i for i, t_ in enumerate(splits.sentiment_test.texts) if t_ not in corrected]
    test_texts = [splits.sentiment_test.texts[i] for i in keep]
    test_labels = np.asarray(splits.sentiment_test.labels)[keep]
    figures = {}
    for name, scorer, ranker in (
        ("champion", champion_scorer, champion_scorer.ranker),
        ("challenger", challenger_scorer, challenger_ranker),
    ):
        ranking = slice_ranking(ranker, history, recent, challenger_ranker.item_ids, challenger_ranker.item_embeddings)
        served_metrics = scorer.bundle.manifest.get("validation", {}).get("metrics", {}).get("int8", {})
        figures[name] = {
            **_sentiment_figures(scorer, test_texts, test_labels),
            # measured by each bundle's export on the same public test sets (the checkpoint's split recipe)
            "review_rmse": served_metrics.get("review_rmse"),
            "movielens_rmse": served_metrics.get("movielens_rmse"),
            "corrections_honoured": _honoured(scorer, stored.corrections),
            "recent_ndcg@10": ranking.get("ndcg@10"),
            "recent_hr@10": ranking.get("hr@10"),
            "recent_cold_hr@10": ranking.get("cold_hr@10"),
            "recent_users": ranking.get("users", 0),
            "version": scorer.version,
        }
    figures["champion_served"] = _served_online(engine, champion_version, cut)
    figures["public_test_left_out"] = len(splits.sentiment_test.texts) - len(keep)
    if head_update is not None:
        figures["sentiment_head_update"] = asdict(head_update)
    seconds["evaluate"] = round(time.perf_counter() - t, 2)
    limits = GateLimits(
        settings.retrain_max_accuracy_drop,
        settings.retrain_max_macro_f1_drop,
        settings.retrain_max_ndcg_drop,
        settings.retrain_max_rmse_rise,
    )
    verdict: Verdict = judge(figures["champion"], figures["challenger"], limits)
    figures["gate"] = verdict.to_dict()
    base.metrics = figures
    base.reason = verdict.reason
    if dry_run:
        base.decision = "would_publish" if verdict.publish else "would_refuse"
        base.exit_code = EXIT_PUBLISHED if verdict.publish else EXIT_REFUSED
    else:
        base.decision = "published" if verdict.publish else "refused"
        base.exit_code = EXIT_PUBLISHED if verdict.publish else EXIT_REFUSED
    seconds["total"] = round(time.perf_counter() - t0, 2)
    base.seconds = seconds
    _annotate_manifest(bundle, base, champion_scorer.embedding_space if shared_space else None)
    _record_lineage(engine, bundle, bundle.version, champion_version, base)
    if base.decision == "published":
        point_current(models_dir, bundle.version)
        logger.info("challenger published", extra={"version": bundle.version, "parent": champion_version})
    elif not keep_refused:
        shutil.rmtree(bundle.path, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return base


def _served_online(engine: Engine, version: str, cut: pd.Timestamp | None) -> dict:
    """What the champion actually served in the held-out period, judged by what users did next."""
    query = (
        "SELECT count(*) AS lists, avg((hit_position IS NOT NULL)::int)::float8 AS hit_rate, "
        "avg(coalesce(1.0 / log(2, 1 + hit_position), 0))::float8 AS ndcg FROM v_served_list_outcomes "
        "WHERE model_version = :v" + (" AND event_ts >= :cut" if cut is not None else "")
    )
    params: dict = {"v": version} | ({"cut": cut.to_pydatetime()} if cut is not None else {})
    with engine.connect() as conn:
        row = conn.execute(text(query), params).one()
    return {"lists": int(row.lists), "hit_rate": row.hit_rate, "ndcg_first_hit": row.ndcg}
