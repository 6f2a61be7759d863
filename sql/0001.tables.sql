-- streamscore base tables. Every row written by a worker is keyed by something the event carries, so a
-- redelivered event is an idempotent upsert (ON CONFLICT) and never a second row.
-- Names are unqualified: migrations run with search_path set to the target schema.

CREATE TABLE model_versions (
    version            text PRIMARY KEY,
    created_at         timestamptz NOT NULL,
    source_checkpoint  text,
    manifest           jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    item_id                  text PRIMARY KEY,
    title                    text NOT NULL,
    body                     text,
    tags                     text[] NOT NULL DEFAULT '{}',
    event_ts                 timestamptz NOT NULL,
    embedding                real[],
    embedding_model_version  text,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_embedding_model_version_idx ON items (embedding_model_version);

CREATE TABLE news_sentiment (
    news_id          text PRIMARY KEY,
    event_ts         timestamptz NOT NULL,
    headline         text NOT NULL,
    source           text,
    entities         text[] NOT NULL DEFAULT '{}',
    label            text NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    p_negative       real NOT NULL,
    p_neutral        real NOT NULL,
    p_positive       real NOT NULL,
    model_version    text NOT NULL,
    source_partition integer,
    source_offset    bigint,
    scored_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX news_sentiment_event_ts_idx ON news_sentiment (event_ts);
CREATE INDEX news_sentiment_entities_idx ON news_sentiment USING gin (entities);
CREATE INDEX news_sentiment_scored_at_idx ON news_sentiment (scored_at);

CREATE TABLE click_events (
    event_id         text PRIMARY KEY,
    user_id          text NOT NULL,
    item_id          text NOT NULL,
    action           text NOT NULL DEFAULT 'click',
    rating           real CHECK (rating IS NULL OR (rating >= 0 AND rating <= 5)),
    event_ts         timestamptz NOT NULL,
    source_partition integer,
    source_offset    bigint,
    processed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX click_events_user_idx ON click_events (user_id, event_ts);
CREATE INDEX click_events_processed_at_idx ON click_events (processed_at);

-- One row per triggering event (history) ...
CREATE TABLE recommendation_history (
    trigger_event_id text PRIMARY KEY,
    user_id          text NOT NULL,
    items            jsonb NOT NULL,
    cold_start       boolean NOT NULL DEFAULT false,
    model_version    text NOT NULL,
    event_ts         timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendation_history_user_idx ON recommendation_history (user_id, event_ts);

-- ... and the latest per user, replaced only by a newer event (out-of-order redelivery cannot roll it back).
CREATE TABLE recommendations_latest (
    user_id          text PRIMARY KEY,
    trigger_event_id text NOT NULL,
    items            jsonb NOT NULL,
    cold_start       boolean NOT NULL DEFAULT false,
    model_version    text NOT NULL,
    event_ts         timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per alert state change: (alert_id, status) is unique, so one surge has one 'raised' row.
CREATE TABLE alerts (
    alert_id        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('raised', 'updated', 'resolved')),
    seq             integer NOT NULL DEFAULT 0,
    entity          text NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    negative_count  integer NOT NULL,
    total_count     integer NOT NULL,
    negative_share  real NOT NULL,
    baseline_share  real NOT NULL,
    score           real NOT NULL,
    evidence        text[] NOT NULL DEFAULT '{}',
    model_version   text NOT NULL,
    event_ts        timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, status, seq)
);
CREATE INDEX alerts_entity_idx ON alerts (entity, event_ts);

-- Rejected input, keyed by where it came from: a redelivered bad record is stored once.
CREATE TABLE dead_letters (
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    error_code       text NOT NULL,
    reason           text NOT NULL,
    payload          text NOT NULL,
    payload_encoding text NOT NULL DEFAULT 'utf-8' CHECK (payload_encoding IN ('utf-8', 'base64')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_created_at_idx ON dead_letters (created_at);
