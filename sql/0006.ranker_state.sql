-- The ranker's per-user state, kept beside the distinct-item history: the most recent liked items (at most
-- 1 000: a click on an item the user did not rate below 4) and the most recent items of any kind (at most
-- 20), both oldest first. Bounded, so a click costs the same for a user with ten items or ten thousand.
-- Backfilled from click_events; updated in the clicks' own transaction like the rest of user_history.
-- depends: 0005.user_history

ALTER TABLE user_history
    ADD COLUMN liked  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN recent text[] NOT NULL DEFAULT '{}';

UPDATE user_history AS h
SET liked = coalesce((
        SELECT array_agg(item_id ORDER BY event_ts, event_id) FROM (
            SELECT item_id, event_ts, event_id FROM click_events c
            WHERE c.user_id = h.user_id AND (c.rating IS NULL OR c.rating >= 4)
            ORDER BY event_ts DESC, event_id DESC LIMIT 1000) AS l), '{}'),
    recent = coalesce((
        SELECT array_agg(item_id ORDER BY event_ts, event_id) FROM (
            SELECT item_id, event_ts, event_id FROM click_events c
            WHERE c.user_id = h.user_id
            ORDER BY event_ts DESC, event_id DESC LIMIT 20) AS r), '{}');

-- Why each recommended item was recommended, per day and model version (dashboards: "what drives the lists").
CREATE VIEW v_recommendation_reasons AS
SELECT date_trunc('day', h.event_ts)        AS day,
       h.model_version,
       item ->> 'reason_kind'               AS reason_kind,
       count(*)                             AS items,
       count(DISTINCT h.user_id)            AS users
FROM recommendation_history h
CROSS JOIN LATERAL jsonb_array_elements(h.items) AS item
GROUP BY 1, 2, 3;

-- The latest list of every user, one row per recommended item with its reason.
CREATE VIEW v_recommendation_items AS
SELECT l.user_id,
       l.model_version,
       l.cold_start,
       l.event_ts,
       item.ordinality                      AS position,
       item.value ->> 'item_id'             AS item_id,
       (item.value ->> 'score')::float8     AS score,
       item.value ->> 'reason_kind'         AS reason_kind,
       item.value ->> 'because_item_id'     AS because_item_id,
       item.value ->> 'reason'              AS reason
FROM recommendations_latest l
CROSS JOIN LATERAL jsonb_array_elements(l.items) WITH ORDINALITY AS item(value, ordinality);

GRANT SELECT ON v_recommendation_reasons, v_recommendation_items TO streamscore_reader;
