-- What the workers need beyond the results: the surge rule's per-entity state (updated in the same
-- transaction as the articles that move it, so a redelivered article can never count twice), the time each
-- event reached Kafka (lag is measured from there: replayed events carry historical timestamps), and
-- whether the model had to cut a text to its token window, and item genres (part of the text an item is
-- embedded from, kept so a new model can re-embed the catalog).
-- depends: 0003.roles

CREATE TABLE entity_alert_state (
    entity      text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE news_sentiment ADD COLUMN ingested_at timestamptz;
ALTER TABLE news_sentiment ADD COLUMN truncated boolean NOT NULL DEFAULT false;
ALTER TABLE click_events ADD COLUMN ingested_at timestamptz;
ALTER TABLE items ADD COLUMN ingested_at timestamptz;
ALTER TABLE items ADD COLUMN genres text[] NOT NULL DEFAULT '{}';

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

GRANT SELECT, INSERT, UPDATE ON entity_alert_state TO streamscore_writer;
