"""The items path: catalog events → text embeddings stored with the model version, and the in-memory
candidate cache every worker ranks from (refreshed from PostgreSQL, re-embedded after a model swap)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from streamscore.events import ItemEvent, item_text
from streamscore.scorer import CallUsage
from worker.adapters import results_store as sql
from worker.adapters.catalog import CandidateCache
from worker.domain.intake import Accepted, Record
from worker.paths.core import BatchCore, BatchReport


class ItemsPath:
    def __init__(self, core: BatchCore):
        self.core = core
        manifest = core.models.scorer.bundle.manifest
        self.catalog = CandidateCache(dim=int(manifest["text_model"]["outputs"]["embedding"]["shape"][1]))
        self.indexed_for: str | None = None
        """The bundle version the cache's vocabulary indices were taken from."""
        self.titles: dict[str, str] = {}
        """Item id → title of every cached candidate (a reason names the item it points at)."""

    def process(self, records: Sequence[Record]) -> BatchReport:
        core = self.core
        started = time.perf_counter()
        scorer, report, accepted, dead = core.begin(core.topics.items, records, ItemEvent)
        latest: dict[str, Accepted[ItemEvent]] = {}
        for acc in accepted:  # a catalog: the newest version of an item in the batch is the one to embed
            prev = latest.get(acc.event.item_id)
            if prev is None or (acc.event.ts, acc.record.offset) >= (prev.event.ts, prev.record.offset):
                latest[acc.event.item_id] = acc
        items = [latest[k] for k in sorted(latest)]
        texts = [a.event.embedding_text for a in items]
        vectors = np.zeros((len(texts), self.catalog.dim), dtype=np.float32)
        usage, t0 = CallUsage(), time.perf_counter()
        for chunk in core.token_batches(texts):
            scores = scorer.score_texts([texts[i] for i in chunk], "embed")
            vectors[chunk] = scores.outputs["embedding"]
            usage = usage + scores.usage
        core.count_inference(report.topic, usage, time.perf_counter() - t0)
        rows = [
            {
                "item_id": a.event.item_id,
                "title": a.event.title,
                "body": a.event.text,
                "tags": list(a.event.tags),
                "genres": list(a.event.genres),
                "event_ts": a.event.ts,
                "embedding": vectors[i].tolist(),
                "embedding_model_version": scorer.embedding_space,
                "ingested_at": a.record.ingested_at,
            }
            for i, a in enumerate(items)
        ]

        def work(conn: Connection) -> set[str]:
            written = sql.upsert_items(conn, rows)
            report.processed = len(accepted)  # superseded versions are processed too: the catalog keeps the newest
            core.finish(conn, report, dead, [])
            return written

        written = core.store.transaction(work)
        self.titles.update((r["item_id"], r["title"]) for r in rows if r["item_id"] in written)
        if self.catalog.version == scorer.embedding_space:
            self.catalog.upsert(
                ((r["item_id"], r["embedding"], None) for r in rows if r["item_id"] in written), scorer.item_index
            )
        return core.account(report, records, dead, started)

    def refresh_catalog(self, force: bool = False) -> int:
        """Load item embeddings other workers stored since the last refresh (all of them after a model swap)."""
        scorer = self.core.models.scorer
        if self.catalog.version != scorer.embedding_space:
            self.catalog.reset(scorer.embedding_space)
            self.indexed_for = scorer.version
            force = True
        elif self.indexed_for != scorer.version:  # same vectors, maybe another rating-tower vocabulary
            self.catalog.reindex(scorer.item_index)
            self.indexed_for = scorer.version
        if not force and not self.catalog.due(self.core.config.catalog_refresh_s):
            return 0
        since = self.catalog.since()
        rows = self.core.store.transaction(lambda conn: sql.catalog_embeddings(conn, scorer.embedding_space, since))
        self.catalog.mark_refreshed()
        self.titles.update((item_id, title) for item_id, _, _, title in rows)
        return self.catalog.upsert(((i, e, u) for i, e, u, _ in rows), scorer.item_index)

    def reembed_stale(self, limit: int = 256) -> int:
        """Re-embed up to ``limit`` catalog items embedded in another space (after a swap to a new encoder)."""
        scorer = self.core.models.scorer

        def work(conn: Connection) -> int:
            stale = sql.claim_stale_items(conn, scorer.embedding_space, limit)
            if not stale:
                return 0
            texts = [item_text(title, genres, tags, body) for _, title, body, genres, tags in stale]
            vectors = scorer.embed(texts)
            vectors_by_id = {row[0]: vec.tolist() for row, vec in zip(stale, vectors)}
            sql.set_embeddings(conn, scorer.embedding_space, vectors_by_id)
            return len(stale)

        return self.core.store.transaction(work)
