-- The learning loop. People's feedback arrives on the `feedback` topic and is stored here (one row per
-- feedback event, idempotent on its id); the retrainer reads it with the clicks, items and news, and records
-- every challenger it builds in model_versions with its lineage and the gate's decision, published or not.
-- Served lists are judged against what the user did next (v_served_list_outcomes), per model version and day.
-- depends: 0006.ranker_state

CREATE TABLE feedback (
    feedback_id       text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('sentiment_correction', 'alert_verdict')),
    news_id           text,
    label             text CHECK (label IN ('negative', 'neutral', 'positive')),
    alert_id          text,
    verdict           text CHECK (verdict IN ('useful', 'false_alarm')),
    given_by          text,
    event_ts          timestamptz NOT NULL,
    source_partition  integer,
    source_offset     bigint,
    ingested_at       timestamptz,
    received_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'sentiment_correction' AND news_id IS NOT NULL AND label IS NOT NULL AND alert_id IS NULL)
        OR (kind = 'alert_verdict' AND alert_id IS NOT NULL AND verdict IS NOT NULL AND news_id IS NULL))
);
CREATE INDEX feedback_news_idx ON feedback (news_id, event_ts) WHERE kind = 'sentiment_correction';
CREATE INDEX feedback_alert_idx ON feedback (alert_id, event_ts) WHERE kind = 'alert_verdict';
CREATE INDEX feedback_event_ts_idx ON feedback (event_ts);
CREATE INDEX recommendation_history_created_at_idx ON recommendation_history (created_at);

-- Feedback is a stream like the others on the throughput dashboard.
CREATE OR REPLACE VIEW v_throughput_per_minute AS
WITH results AS (
    SELECT 'news'::text AS stream, scored_at AS done_at, coalesce(ingested_at, event_ts) AS event_ts FROM news_sentiment
    UNION ALL
    SELECT 'clicks', processed_at, coalesce(ingested_at, event_ts) FROM click_events
    UNION ALL
    SELECT 'items', updated_at, coalesce(ingested_at, event_ts) FROM items
    UNION ALL
    SELECT 'feedback', received_at, coalesce(ingested_at, event_ts) FROM feedback
)
SELECT stream,
       date_trunc('minute', done_at)                                                   AS minute,
       count(*)                                                                        AS events,
       avg(extract(epoch FROM done_at - event_ts))::real                               AS mean_lag_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - event_ts))::real AS p95_lag_s
FROM results
GROUP BY stream, date_trunc('minute', done_at);

-- Lineage: a retrain writes one row per challenger, including the ones the gate refused.
ALTER TABLE model_versions
    ADD COLUMN parent_version text,
    ADD COLUMN decision       text CHECK (decision IN ('published', 'refused', 'dry_run')),
    ADD COLUMN reason         text,
    ADD COLUMN data_window    jsonb,
    ADD COLUMN row_counts     jsonb,
    ADD COLUMN metrics        jsonb,
    ADD COLUMN decided_at     timestamptz;

-- The latest correction per article (the latest event wins when people disagree), beside what the model said.
CREATE VIEW v_sentiment_corrections AS
SELECT DISTINCT ON (f.news_id)
       f.news_id,
       f.label                        AS corrected_label,
       n.label                        AS model_label,
       n.model_version,
       n.headline,
       f.given_by,
       f.event_ts,
       count(*) OVER (PARTITION BY f.news_id) AS corrections
FROM feedback f
LEFT JOIN news_sentiment n ON n.news_id = f.news_id
WHERE f.kind = 'sentiment_correction'
ORDER BY f.news_id, f.event_ts DESC, f.feedback_id DESC;

-- Feedback per day and kind (dashboards: "how much are people correcting?").
CREATE VIEW v_feedback_daily AS
SELECT date_trunc('day', event_ts) AS day, kind, count(*) AS events, count(DISTINCT given_by) AS people
FROM feedback
GROUP BY 1, 2;

-- Alert precision as people judge it: per day the alert was raised, the latest verdict on each alert.
CREATE VIEW v_alert_precision AS
WITH verdicts AS (
    SELECT DISTINCT ON (alert_id) alert_id, verdict
    FROM feedback WHERE kind = 'alert_verdict'
    ORDER BY alert_id, event_ts DESC, feedback_id DESC
), raised AS (
    SELECT alert_id, min(event_ts) AS raised_at, min(entity) AS entity
    FROM alerts WHERE status = 'raised' GROUP BY alert_id
)
SELECT date_trunc('day', r.raised_at)                        AS day,
       count(*)                                              AS alerts,
       count(v.alert_id)                                     AS judged,
       count(*) FILTER (WHERE v.verdict = 'useful')          AS useful,
       count(*) FILTER (WHERE v.verdict = 'false_alarm')     AS false_alarms,
       (count(*) FILTER (WHERE v.verdict = 'useful'))::float8 / nullif(count(v.alert_id), 0) AS precision
FROM raised r
LEFT JOIN verdicts v USING (alert_id)
GROUP BY 1;

-- Every served list against what the user did next: the position of the first of its items the user then
-- clicked (or rated 4 or more) within their next 10 interactions and 24 hours; null when none was.
CREATE VIEW v_served_list_outcomes AS
SELECT h.trigger_event_id,
       h.user_id,
       h.model_version,
       h.cold_start,
       h.event_ts,
       jsonb_array_length(h.items) AS listed,
       hit.position                AS hit_position
FROM recommendation_history h
LEFT JOIN LATERAL (
    SELECT min(listed.ordinality) AS position
    FROM (
        SELECT c.item_id, c.rating
        FROM click_events c
        WHERE c.user_id = h.user_id
          AND c.event_ts > h.event_ts
          AND c.event_ts <= h.event_ts + interval '24 hours'
        ORDER BY c.event_ts, c.event_id
        LIMIT 10
    ) AS nxt
    JOIN jsonb_array_elements(h.items) WITH ORDINALITY AS listed(value, ordinality)
      ON listed.value ->> 'item_id' = nxt.item_id
    WHERE nxt.rating IS NULL OR nxt.rating >= 4
) AS hit ON true;

-- Online performance of what was served, per model version and day of the triggering click: hit rate,
-- nDCG of the first hit (1 / log2(1 + position)), and catalog coverage of the lists.
CREATE VIEW v_online_performance AS
WITH outcomes AS (
    SELECT date_trunc('day', event_ts)                                  AS day,
           model_version,
           count(*)                                                     AS lists,
           avg((hit_position IS NOT NULL)::int)::float8                 AS hit_rate,
           avg(coalesce(1.0 / log(2, 1 + hit_position), 0))::float8     AS ndcg,
           avg(cold_start::int)::float8                                 AS cold_start_share
    FROM v_served_list_outcomes
    GROUP BY 1, 2
), served AS (
    SELECT date_trunc('day', h.event_ts) AS day, h.model_version, count(DISTINCT item ->> 'item_id') AS items_served
    FROM recommendation_history h
    CROSS JOIN LATERAL jsonb_array_elements(h.items) AS item
    GROUP BY 1, 2
)
SELECT o.day, o.model_version, o.lists, o.hit_rate, o.ndcg, o.cold_start_share, s.items_served
FROM outcomes o
JOIN served s USING (day, model_version);

-- The retrainer: reads what the workers stored, writes nothing but the model tables.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamscore_retrainer') THEN
        CREATE ROLE streamscore_retrainer LOGIN;
    END IF;
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM streamscore_retrainer', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO streamscore_retrainer', current_schema());
    GRANT SELECT ON click_events, items, news_sentiment, feedback, recommendation_history, alerts,
        v_served_list_outcomes, v_online_performance TO streamscore_retrainer;
    GRANT SELECT, INSERT, UPDATE ON model_versions TO streamscore_retrainer;
    GRANT SELECT, INSERT ON feedback TO streamscore_writer;
    GRANT SELECT ON v_served_list_outcomes TO streamscore_writer;
    GRANT SELECT ON v_sentiment_corrections, v_feedback_daily, v_alert_precision, v_served_list_outcomes,
        v_online_performance TO streamscore_reader;
END
$$;
