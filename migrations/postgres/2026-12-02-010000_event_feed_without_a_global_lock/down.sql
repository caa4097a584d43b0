DROP FUNCTION orderly_insert_events(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TIMESTAMP[]);
DROP SEQUENCE event_positions_seq;

CREATE INDEX events_subject_idx ON events (subject_type, subject_id);

CREATE TABLE event_positions (
    id            INTEGER NOT NULL,
    last_position BIGINT NOT NULL,
    CONSTRAINT event_positions_pkey PRIMARY KEY (id),
    CONSTRAINT event_positions_one_row_check CHECK (id = 1),
    CONSTRAINT event_positions_last_position_check CHECK (last_position >= 0)
);

-- The counter continues above every position handed out so far.
INSERT INTO event_positions (id, last_position) SELECT 1, COALESCE(MAX(position), 0) FROM events;
