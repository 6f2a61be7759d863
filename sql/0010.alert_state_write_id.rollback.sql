ALTER TABLE entity_alert_state DROP COLUMN IF EXISTS write_id;
