-- The users' interaction state for recommendations: the distinct items each user interacted with, in
-- first-interaction order. Derived from click_events and updated in the same transaction as the clicks that
-- change it (only newly stored clicks count), so it is exact under redelivery; it replaces re-reading a
-- user's whole click log on every click.
-- depends: 0004.worker_state

CREATE TABLE user_history (
    user_id     text PRIMARY KEY,
    items       text[] NOT NULL DEFAULT '{}',
    clicks      integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO user_history (user_id, items, clicks)
SELECT user_id, array_agg(item_id ORDER BY first_ts, item_id), sum(n)::integer
FROM (SELECT user_id, item_id, min(event_ts) AS first_ts, count(*) AS n FROM click_events GROUP BY user_id, item_id) AS firsts
GROUP BY user_id;

GRANT SELECT, INSERT, UPDATE ON user_history TO streamscore_writer;
