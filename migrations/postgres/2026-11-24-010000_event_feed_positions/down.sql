DROP TABLE event_positions;
DROP INDEX events_type_position_idx;
DROP INDEX events_position_key;
ALTER TABLE events DROP CONSTRAINT events_position_check;
ALTER TABLE events DROP COLUMN position;
