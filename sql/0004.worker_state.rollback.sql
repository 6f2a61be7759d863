CREATE OR REPLACE VIEW v_throughput_per_minute AS
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

ALTER TABLE items DROP COLUMN genres;
ALTER TABLE items DROP COLUMN ingested_at;
ALTER TABLE click_events DROP COLUMN ingested_at;
ALTER TABLE news_sentiment DROP COLUMN truncated;
ALTER TABLE news_sentiment DROP COLUMN ingested_at;
DROP TABLE entity_alert_state;
