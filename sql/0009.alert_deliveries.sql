-- Alert delivery: `streamscore alerts forward` records each state change of an alert it delivered to a webhook
-- target, so a redelivered Kafka record (after a crash or a rebalance) is not posted twice. The target is a
-- digest of the format and URL: the URL itself can carry a token and is never stored.
-- depends: 0008.dashboards

CREATE TABLE alert_deliveries (
    alert_id      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('raised', 'updated', 'resolved')),
    seq           integer NOT NULL,
    target        text NOT NULL,
    attempts      integer NOT NULL,
    http_status   integer NOT NULL,
    delivered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, status, seq, target)
);
CREATE INDEX alert_deliveries_delivered_at_idx ON alert_deliveries (delivered_at);

GRANT SELECT, INSERT ON alert_deliveries TO streamscore_writer;
