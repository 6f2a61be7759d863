-- Least privilege. streamscore_writer (workers): read and write rows, nothing else — it owns nothing and
-- cannot create, alter or drop. streamscore_reader (dashboards): the views only.
-- Roles are cluster-wide and created once; grants apply to the schema being migrated.
-- depends: 0002.views

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamscore_writer') THEN
        CREATE ROLE streamscore_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamscore_reader') THEN
        CREATE ROLE streamscore_reader LOGIN;
    END IF;
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM streamscore_writer, streamscore_reader', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO streamscore_writer, streamscore_reader', current_schema());
    GRANT SELECT, INSERT, UPDATE ON model_versions, items, news_sentiment, click_events, recommendation_history,
        recommendations_latest, alerts, dead_letters TO streamscore_writer;
    GRANT SELECT ON v_sentiment_entity_hourly, v_alert_timeline, v_recommendation_freshness,
        v_throughput_per_minute, v_dead_letters_by_reason TO streamscore_reader;
END
$$;
