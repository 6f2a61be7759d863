-- What dashboards read: one row per stored result, never an aggregate over all history, so a panel's time
-- filter (WHERE <time column> BETWEEN ...) reaches a table's index before anything is grouped; the panels
-- group what is left. Every time column a panel filters on has an index. Retention: `streamscore db prune`.
-- depends: 0007.learning_loop

CREATE INDEX items_updated_at_idx ON items (updated_at);
CREATE INDEX feedback_received_at_idx ON feedback (received_at);
CREATE INDEX alerts_event_ts_idx ON alerts (event_ts);
CREATE INDEX alerts_created_at_idx ON alerts (created_at);
CREATE INDEX alerts_open_idx ON alerts (alert_id, seq) WHERE status <> 'resolved';

-- Every stored result with how long it took from Kafka to PostgreSQL.
CREATE VIEW v_results AS
SELECT 'news'::text AS stream, scored_at AS done_at,
       extract(epoch FROM scored_at - coalesce(ingested_at, event_ts))::real AS lag_s
FROM news_sentiment
UNION ALL
SELECT 'clicks', processed_at, extract(epoch FROM processed_at - coalesce(ingested_at, event_ts))::real
FROM click_events
UNION ALL
SELECT 'items', updated_at, extract(epoch FROM updated_at - coalesce(ingested_at, event_ts))::real FROM items
UNION ALL
SELECT 'feedback', received_at, extract(epoch FROM received_at - coalesce(ingested_at, event_ts))::real
FROM feedback;

-- One row per scored article: an alert's evidence ids become headlines through it.
CREATE VIEW v_articles AS
SELECT news_id, event_ts, headline, source, entities, label, p_negative, p_neutral, p_positive, model_version,
       scored_at
FROM news_sentiment;

-- One row per (article, entity) mention, for sentiment per entity over time.
CREATE VIEW v_entity_mentions AS
SELECT entity, n.news_id, n.event_ts, n.label, n.p_negative, n.model_version
FROM news_sentiment n
CROSS JOIN LATERAL unnest(n.entities) AS entity;

-- Alerts whose latest state is not 'resolved', with their evidence as headlines (most negative first).
CREATE VIEW v_open_alerts AS
SELECT a.alert_id, a.entity, a.status, a.seq, a.window_start, a.window_end, a.negative_count, a.total_count,
       a.negative_share, a.baseline_share, a.score, a.model_version, a.event_ts,
       (SELECT array_agg(n.headline ORDER BY n.p_negative DESC, n.news_id)
        FROM news_sentiment n WHERE n.news_id = ANY (a.evidence)) AS evidence_headlines
FROM alerts a
WHERE a.status <> 'resolved'
  AND NOT EXISTS (SELECT 1 FROM alerts later WHERE later.alert_id = a.alert_id AND later.seq > a.seq);

-- One row per evidence article of every alert state change.
CREATE VIEW v_alert_evidence AS
SELECT a.alert_id, a.seq, a.status, a.entity, a.event_ts AS alert_ts, e.position, n.news_id, n.headline,
       n.event_ts, n.label, n.p_negative
FROM alerts a
CROSS JOIN LATERAL unnest(a.evidence) WITH ORDINALITY AS e(news_id, position)
JOIN news_sentiment n ON n.news_id = e.news_id;

-- One row per slot of every served list, for coverage and reasons over time.
CREATE VIEW v_recommended_slots AS
SELECT h.trigger_event_id, h.user_id, h.cold_start, h.model_version, h.event_ts, h.created_at,
       slot.position, slot.value ->> 'item_id' AS item_id, slot.value ->> 'reason_kind' AS reason_kind
FROM recommendation_history h
CROSS JOIN LATERAL jsonb_array_elements(h.items) WITH ORDINALITY AS slot(value, position);

-- The catalog without its embeddings (coverage = distinct recommended items / catalog size).
CREATE VIEW v_catalog AS
SELECT item_id, title, tags, event_ts, updated_at, embedding_model_version, embedding IS NOT NULL AS embedded
FROM items;

-- Rejected input without its payload (which may hold what a dashboard viewer should not see).
CREATE VIEW v_dead_letters AS
SELECT source_topic, source_partition, source_offset, error_code, reason, created_at FROM dead_letters;

-- Every model version a worker served or a retrain built, with its lineage.
CREATE VIEW v_model_versions AS
SELECT version, created_at, first_seen_at, parent_version, decision, reason, decided_at FROM model_versions;

GRANT SELECT ON v_results, v_articles, v_entity_mentions, v_open_alerts, v_alert_evidence, v_recommended_slots,
    v_catalog, v_dead_letters, v_model_versions TO streamscore_reader;
