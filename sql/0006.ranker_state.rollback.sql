DROP VIEW IF EXISTS v_recommendation_items;
DROP VIEW IF EXISTS v_recommendation_reasons;
ALTER TABLE user_history DROP COLUMN IF EXISTS recent, DROP COLUMN IF EXISTS liked;
