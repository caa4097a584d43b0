DROP TABLE event_positions;

CREATE TABLE events_without_positions (
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    -- A JSON object.
    data         TEXT NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (id)
);

INSERT INTO events_without_positions (id, type, subject_type, subject_id, data, occurred_at)
SELECT id, type, subject_type, subject_id, data, occurred_at FROM events;

DROP TABLE events;
ALTER TABLE events_without_positions RENAME TO events;

CREATE INDEX events_subject_idx ON events (subject_type, subject_id);
