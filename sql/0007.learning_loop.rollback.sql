DROP VIEW IF EXISTS v_online_performance;
DROP VIEW IF EXISTS v_served_list_outcomes;
DROP VIEW IF EXISTS v_alert_precision;
DROP VIEW IF EXISTS v_feedback_daily;
DROP VIEW IF EXISTS v_sentiment_corrections;
ALTER TABLE model_versions
    DROP COLUMN IF EXISTS decided_at, DROP COLUMN IF EXISTS metrics, DROP COLUMN IF EXISTS row_counts,
    DROP COLUMN IF EXISTS data_window, DROP COLUMN IF EXISTS reason, DROP COLUMN IF EXISTS decision,
    DROP COLUMN IF EXISTS parent_version;
CREATE OR REPLACE VIEW v_throughput_per_minute AS
WITH results AS (
    SELECT 'news'::text AS stream, scored_at AS done_at, coalesce(ingested_at, event_ts) AS event_ts FROM news_sentiment
    UNION ALL
    SELECT 'clicks', processed_at, coalesce(ingested_at, event_ts) FROM click_events
    UNION ALL
    SELECT 'items', updated_at, coalesce(ingested_at, event_ts) FROM items
)
SELECT stream,
       date_trunc('minute', done_at)                                                   AS minute,
       count(*)                                                                        AS events,
       avg(extract(epoch FROM done_at - event_ts))::real                               AS mean_lag_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - event_ts))::real AS p95_lag_s
FROM results
GROUP BY stream, date_trunc('minute', done_at);
DROP INDEX IF EXISTS recommendation_history_created_at_idx;
DROP TABLE IF EXISTS feedback;
