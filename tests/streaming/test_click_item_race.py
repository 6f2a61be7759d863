"""Kafka orders nothing across topics: a producer that sends new items and, at once, clicks on them while
news is being scored must lose no click. The clicks are stored and counted in the users' state; the items
become candidates as soon as they are embedded, and a later click gets a personal, explained list."""

from __future__ import annotations

import json
import time

from ops.replay import Produced, _interleave, movie_catalog, news_events
from streamscore.bundle import CURRENT
from tests.streaming.conftest import Deployment


def _dump(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def test_clicks_on_items_still_in_flight_are_kept_and_ranked(deployment: Deployment) -> None:
    now_ms = int(time.time() * 1000)
    movies = movie_catalog(deployment.settings.data_dir)
    popular = json.loads((deployment.models / CURRENT / "recommender.json").read_text())["popular_items"]
    known = list(dict.fromkeys([*popular[:100], *movies]))[:400]  # the model's most liked movie comes first
    catalog = [Produced(deployment.topics.items, m, _dump({**movies[m], "ts": now_ms - 60_000})) for m in known]
    new_items = [
        {"item_id": f"race-{n}", "title": f"{movies[m]['title']} (director's cut)", "genres": movies[m]["genres"]}
        for n, m in enumerate(known[:30])
    ]
    clicks = [
        {"event_id": f"race-c{n}", "user_id": f"race-user-{n % 2}", "item_id": f"race-{n}", "ts": now_ms - 1000 + n}
        for n in range(10)
    ]
    news = news_events(deployment.settings.data_dir, 300, 1.0, now_ms, run="race")
    worker = deployment.start_worker()
    deployment.produce(catalog)
    deployment.wait_items(len(catalog))

    # everything at once, no pause: news ahead of and among the new items and the clicks on them
    burst = [Produced(deployment.topics.news, n["id"], _dump(n)) for n in news[:150]]
    burst += _interleave(
        [Produced(deployment.topics.items, i["item_id"], _dump({**i, "ts": now_ms})) for i in new_items],
        [Produced(deployment.topics.clicks, c["user_id"], _dump(c)) for c in clicks],
    )
    burst += [Produced(deployment.topics.news, n["id"], _dump(n)) for n in news[150:]]
    deployment.produce(burst)
    snap = deployment.wait_accounted(len(news) + len(clicks))

    assert snap.dead_letters == {}, "no click may be dead-lettered because its item was still in flight"
    assert deployment.scalar("SELECT count(*) FROM click_events WHERE event_id LIKE 'race-c%'") == len(clicks)
    state = dict(deployment.rows("SELECT user_id, items FROM user_history WHERE user_id LIKE 'race-user-%'"))
    assert {u: set(items) for u, items in state.items()} == {
        f"race-user-{u}": {c["item_id"] for c in clicks if c["user_id"] == f"race-user-{u}"} for u in (0, 1)
    }
    deployment.wait_items(len(catalog) + len(new_items))
    embedded = deployment.scalar(
        "SELECT count(*) FROM items WHERE item_id LIKE 'race-%' AND embedding_model_version IS NOT NULL"
    )
    assert embedded == len(new_items)

    # the next click, on a movie the model knows, gets a personal list that skips what the user saw
    follow = {"event_id": "race-follow", "user_id": "race-user-0", "item_id": known[0], "ts": now_ms + 5_000}
    deployment.produce([Produced(deployment.topics.clicks, "race-user-0", _dump(follow))])
    deployment.wait_accounted(len(news) + len(clicks) + 1)
    items, cold = deployment.rows("SELECT items, cold_start FROM recommendations_latest WHERE user_id = 'race-user-0'")[
        0
    ]
    assert not cold and len(items) == deployment.settings.recommend_k
    assert not {it["item_id"] for it in items} & (set(state["race-user-0"]) | {known[0]})
    # the only item of that history the ranker knows is the movie just clicked: every reason points at it
    assert {it["because_item_id"] for it in items if it["because_item_id"]} == {known[0]}
    assert sum(v for k, v in deployment.metrics(worker).items() if k.startswith("streamscore_catalog_items")) == (
        len(catalog) + len(new_items)
    )
