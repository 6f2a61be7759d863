-- Views that dashboards read. The read-only role is granted these and nothing else; the views run with
-- their owner's rights, so dashboards never need access to the base tables.
-- depends: 0001.tables

CREATE VIEW v_sentiment_entity_hourly AS
SELECT entity,
       date_trunc('hour', event_ts) AS hour,
       count(*)                                        AS articles,
       count(*) FILTER (WHERE label = 'negative')      AS negative,
       count(*) FILTER (WHERE label = 'neutral')       AS neutral,
       count(*) FILTER (WHERE label = 'positive')      AS positive,
       avg(p_positive - p_negative)::real              AS mean_polarity,
       (count(*) FILTER (WHERE label = 'negative'))::real / count(*) AS negative_share
FROM news_sentiment, unnest(entities) AS entity
GROUP BY entity, date_trunc('hour', event_ts);

CREATE VIEW v_alert_timeline AS
SELECT alert_id, entity, status, seq, window_start, window_end, negative_count, total_count,
       negative_share, baseline_share, score, evidence, model_version, event_ts, created_at
FROM alerts
ORDER BY event_ts, alert_id, seq;

CREATE VIEW v_recommendation_freshness AS
SELECT user_id,
       trigger_event_id,
       model_version,
       cold_start,
       jsonb_array_length(items)           AS item_count,
       event_ts,
       updated_at,
       now() - updated_at                  AS age,
       updated_at - event_ts               AS event_to_update
FROM recommendations_latest;

CREATE VIEW v_throughput_per_minute AS
WITH results AS (
    SELECT 'news'::text AS stream, scored_at AS done_at, event_ts FROM news_sentiment
    UNION ALL
    SELECT 'clicks', processed_at, event_ts FROM click_events
    UNION ALL
    SELECT 'items', updated_at, event_ts FROM items
)
SELECT stream,
       date_trunc('minute', done_at)                                                   AS minute,
       count(*)                                                                        AS events,
       avg(extract(epoch FROM done_at - event_ts))::real                               AS mean_lag_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - event_ts))::real AS p95_lag_s
FROM results
GROUP BY stream, date_trunc('minute', done_at);

CREATE VIEW v_dead_letters_by_reason AS
SELECT source_topic, error_code, count(*) AS events, min(created_at) AS first_at, max(created_at) AS last_at
FROM dead_letters
GROUP BY source_topic, error_code;
