-- Each worker keeps the surge states it wrote last in memory, so a batch need not read and decode every
-- touched entity's window again. A row's write_id names the transaction that wrote its state: a worker uses
-- its own copy only while the stored write_id is still the one it wrote, so a state another worker moved since
-- (or a table emptied and refilled) is read again. It is a random tag, not a counter: a counter restarts at 0
-- with the row and could match an old copy.
-- depends: 0009.alert_deliveries

ALTER TABLE entity_alert_state ADD COLUMN write_id bigint NOT NULL DEFAULT 0;
