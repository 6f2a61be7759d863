"""Real-data event streams for the worker, from ``../shared/data``: the demo's and the tests' producer.

* items: MovieLens movies (title, genres, the most used user tags) — the same text the model was trained on;
* clicks: MovieLens ratings in time order (the most recent ``count``), each a ``rate`` click with its rating;
  optional cold-start users (new ids) who click popular movies;
* news: the held-out financial news tweets (``sent_valid.csv``), stamped ``spacing_s`` apart ending now;
* a surge: ``size`` real negative headlines about one ticker within a few minutes, mid-stream;
* bad records: one of each kind the worker must dead-letter (for the reconciliation tests and the demo).

Generation is pure and seeded (lists of :class:`Produced`); :func:`produce` sends them with a rate limit and
a progress bar. Each record carries its key: news id, item id, user id (a user's clicks stay in order).
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ops.errors import ProduceFailed
from streamscore.topics import Topics

MOVIELENS = "movielens_latest_small"
NEWS = "twitter_financial_news_sentiment"
MAX_TAGS = 8
NEGATIVE_LABEL = "0"


@dataclass(frozen=True)
class Produced:
    """A record to send, and what the worker should make of it."""

    topic: str
    key: str | None
    value: bytes
    expect: str = "ok"
    """``ok`` (a result row), or the dead-letter error code it must get."""


def _csv(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def movie_catalog(data_dir: Path) -> dict[str, dict]:
    """``{movie_id: item event}`` for every movie, tags ranked by how often users applied them."""
    folder = Path(data_dir) / MOVIELENS
    tags: dict[str, Counter[str]] = {}
    for rec in _csv(folder / "tags.csv"):
        tag = rec["tag"].strip().lower()
        if tag:
            tags.setdefault(rec["movieId"].strip(), Counter())[tag] += 1
    catalog = {}
    for rec in _csv(folder / "movies.csv"):
        movie = rec["movieId"].strip()
        catalog[movie] = {
            "item_id": movie,
            "title": rec["title"].strip(),
            "genres": [g for g in rec["genres"].split("|") if g and g != "(no genres listed)"],
            "tags": [t[:100] for t, _ in tags.get(movie, Counter()).most_common(MAX_TAGS)],
        }
    return catalog


def click_events(data_dir: Path, count: int, cold_users: int = 0, seed: int = 13, run: str = "r0") -> list[dict]:
    """The ``count`` most recent MovieLens ratings in time order, plus ``cold_users`` new users' clicks."""
    rows = [
        (int(r["timestamp"]), r["userId"].strip(), r["movieId"].strip(), float(r["rating"]))
        for r in _csv(Path(data_dir) / MOVIELENS / "ratings.csv")
    ]
    rows.sort()
    chosen = rows[-count:] if count else []
    events = [
        {
            "event_id": f"ml-{run}-{u}-{m}-{ts}",
            "user_id": u,
            "item_id": m,
            "ts": ts * 1000,
            "rating": r,
            "action": "rate",
        }
        for ts, u, m, r in chosen
    ]
    if cold_users:
        popular = [m for m, _ in Counter(m for _, _, m, _ in rows).most_common(50)]
        rng = random.Random(seed)
        now_ms = int(time.time() * 1000)
        for n in range(cold_users):
            for i, movie in enumerate(rng.sample(popular, 2)):
                events.append(
                    {
                        "event_id": f"cold-{run}-{n}-{i}",
                        "user_id": f"new-user-{run}-{n}",
                        "item_id": movie,
                        "ts": now_ms + i,
                        "action": "click",
                    }
                )
    return events


def news_events(
    data_dir: Path, count: int, spacing_s: float, end_ms: int, seed: int = 13, run: str = "r0"
) -> list[dict]:
    """Held-out headlines in a seeded order, stamped ``spacing_s`` apart so that the last one is ``end_ms``."""
    rows = list(_csv(Path(data_dir) / NEWS / "sent_valid.csv"))
    random.Random(seed).shuffle(rows)
    chosen = rows[:count]
    start = end_ms - int(spacing_s * 1000) * max(len(chosen) - 1, 0)
    return [
        {
            "id": f"fin-{run}-{i}",
            "ts": start + int(spacing_s * 1000) * i,
            "headline": r["text"],
            "tickers": [],
            "source": "twitter-financial-news",
        }
        for i, r in enumerate(chosen)
    ]


def surge_events(
    data_dir: Path, ticker: str, size: int, start_ms: int, every_s: float = 10.0, seed: int = 13, run: str = "r0"
) -> list[dict]:
    """``size`` real negative headlines attributed to ``ticker``, ``every_s`` apart from ``start_ms``."""
    negatives = [r["text"] for r in _csv(Path(data_dir) / NEWS / "sent_valid.csv") if r["label"] == NEGATIVE_LABEL]
    rng = random.Random(seed + 1)
    picked = rng.sample(negatives, min(size, len(negatives)))
    return [
        {
            "id": f"surge-{ticker}-{run}-{i}",
            "ts": start_ms + int(every_s * 1000) * i,
            "headline": text,
            "tickers": [ticker],
            "source": "surge-scenario",
        }
        for i, text in enumerate(picked)
    ]


LATE_ITEM = "not-announced-yet"
"""The item of the replay's click whose catalog event never comes."""


def bad_records(topics: Topics, now_ms: int, known_item: str, duplicate_news: dict | None) -> list[Produced]:
    """One record of each kind of bad input, with the error code the worker must give it."""
    bad = [
        Produced(topics.news, "bad-1", b"{not json", "invalid_json"),
        Produced(topics.news, "bad-2", b"\xff\xfe\x00 not utf-8", "invalid_utf8"),
        Produced(topics.news, "bad-3", b'["an", "array"]', "not_an_object"),
        Produced(topics.news, "bad-4", _dump({"id": "bad-4", "ts": now_ms}), "schema"),  # no headline
        Produced(topics.news, "bad-5", _dump({"id": 5, "ts": now_ms, "headline": "id is a number"}), "schema"),
        Produced(topics.news, "bad-6", _dump({"id": "bad-6", "ts": now_ms, "headline": "x" * 25_000}), "text_too_long"),
        Produced(
            topics.news,
            "bad-7",
            _dump({"id": "bad-7", "ts": now_ms + 10 * 86_400_000, "headline": "from the future"}),
            "future_ts",
        ),
        Produced(topics.news, "bad-8", b'{"id": "bad-8", "ts": NaN, "headline": "nan"}', "invalid_json"),
        # a click on an item whose catalog event has not arrived (Kafka orders nothing across topics): stored
        # and counted in the user's state, never lost
        Produced(
            topics.clicks,
            "u-bad",
            _dump({"event_id": "bad-c1", "user_id": "u-bad", "item_id": LATE_ITEM, "ts": now_ms}),
            "ok",
        ),
        Produced(
            topics.clicks,
            "u-bad",
            _dump({"event_id": "bad-c2", "user_id": "u-bad", "item_id": known_item, "ts": now_ms, "rating": "five"}),
            "schema",
        ),
        Produced(topics.items, "bad-i1", _dump({"item_id": "bad-i1", "ts": now_ms}), "schema"),  # no title
    ]
    if duplicate_news is not None:
        bad.append(Produced(topics.news, duplicate_news["id"], _dump(duplicate_news), "duplicate_id"))
    return bad


@dataclass
class Scenario:
    """What to replay; :meth:`build` turns it into records (items first, then news and clicks interleaved)."""

    news: int = 300
    clicks: int = 300
    cold_users: int = 0
    surge_ticker: str | None = None
    surge_size: int = 30
    news_spacing_s: float = 30.0
    bad: bool = False
    all_items: bool = False
    seed: int = 13
    run: str = "r0"
    """Part of every generated id, so that a second replay is new events rather than duplicates."""
    records: list[Produced] = field(default_factory=list)
    items_topic: str = ""
    """Set by build(): which records are the catalog."""

    def build(self, data_dir: Path, topics: Topics, now_ms: int | None = None) -> list[Produced]:
        now_ms = now_ms or int(time.time() * 1000)
        self.items_topic = topics.items
        catalog = movie_catalog(data_dir)
        clicks = click_events(data_dir, self.clicks, self.cold_users, self.seed, self.run)
        wanted = set(catalog) if self.all_items else {c["item_id"] for c in clicks} | set(_popular(data_dir, 300))
        items = [
            Produced(topics.items, movie, _dump({**catalog[movie], "ts": now_ms - 60_000}))
            for movie in sorted(wanted)
            if movie in catalog
        ]
        news = news_events(data_dir, self.news, self.news_spacing_s, now_ms - 1000, self.seed, self.run)
        if self.surge_ticker:
            mid = news[len(news) // 2]["ts"] if news else now_ms - 600_000
            news += surge_events(data_dir, self.surge_ticker, self.surge_size, mid, seed=self.seed, run=self.run)
            news.sort(key=lambda n: n["ts"])
        stream = [Produced(topics.news, n["id"], _dump(n)) for n in news]
        click_records = [Produced(topics.clicks, c["user_id"], _dump(c)) for c in clicks]
        mixed = _interleave(stream, click_records)
        if self.bad:
            mixed += bad_records(topics, now_ms, next(iter(sorted(wanted))), news[0] if news else None)
        self.records = items + mixed
        return self.records

    def catalog(self) -> list[Produced]:
        """The item records (send first, and wait for them: a click on an item not yet known is dead-lettered)."""
        return [r for r in self.records if r.topic == self.items_topic and r.expect == "ok"]

    def stream(self) -> list[Produced]:
        """Everything else: news and clicks interleaved, then the bad records."""
        return [r for r in self.records if not (r.topic == self.items_topic and r.expect == "ok")]

    def expected_accounted(self) -> int:
        """Records that must each end as one news/click result or one dead letter (catalog items are
        upserts: replaying an item again updates its row rather than adding one)."""
        return len(self.stream())


def _popular(data_dir: Path, n: int) -> list[str]:
    counts = Counter(r["movieId"].strip() for r in _csv(Path(data_dir) / MOVIELENS / "ratings.csv"))
    return [m for m, _ in counts.most_common(n)]


def _interleave(a: Sequence[Produced], b: Sequence[Produced]) -> list[Produced]:
    """Merge two streams keeping each one's order, spreading the shorter through the longer."""
    out: list[Produced] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and i * max(len(b), 1) <= j * max(len(a), 1)):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def produce(
    bootstrap: str, records: Sequence[Produced], rate: float = 0.0, progress: bool = True, **client_options: object
) -> dict[str, int]:
    """Send ``records`` in order (``rate`` events/s, 0 = as fast as possible); returns counts per topic.
    ``client_options`` are kafka-python's security options."""
    from kafka import KafkaProducer
    from tqdm import tqdm

    # A broker restart or a leader move takes seconds: retry until the delivery timeout rather than a count,
    # one request in flight per connection so retries keep each partition's order.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        retries=2**31 - 1,
        retry_backoff_ms=250,
        delivery_timeout_ms=180_000,
        max_in_flight_requests_per_connection=1,
        **client_options,
    )
    counts: Counter[str] = Counter()
    pending = []
    started = time.perf_counter()
    try:
        for sent, rec in enumerate(
            tqdm(records, desc="replay", unit="ev", disable=not progress, mininterval=0.5), start=1
        ):
            key = rec.key.encode() if rec.key is not None else None
            pending.append(producer.send(rec.topic, key=key, value=rec.value))
            counts[rec.topic] += 1
            if rate > 0:
                ahead = sent / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    failed = [f.exception for f in pending if f.failed()]
    if failed:
        raise ProduceFailed(f"{len(failed)} of {len(pending)} records were not delivered: {failed[0]!r}")
    return dict(counts)
