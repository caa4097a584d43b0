-- The event feed's ordering key (§2.5): `events.position`, 1, 2, 3, ... in commit order.
--
-- Positions come from the one-row counter `event_positions`, which a writing transaction
-- updates as its last step. SQLite has one writer at a time (write transactions begin with
-- `BEGIN IMMEDIATE`), so positions are handed out in commit order by construction; the same
-- statement gives PostgreSQL the same guarantee through the counter's row lock. See
-- crates/persistence/src/events.rs.
--
-- SQLite cannot add a NOT NULL column without a default, nor a CHECK to an existing table, so
-- `events` is rebuilt (nothing references it). Events written before this migration are
-- numbered in the order they have always been shown in, (occurred_at, id).

CREATE TABLE events_with_positions (
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    -- A JSON object.
    data         TEXT NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    position     BIGINT NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_position_check CHECK (position >= 1)
);

INSERT INTO events_with_positions (id, type, subject_type, subject_id, data, occurred_at, position)
SELECT id, type, subject_type, subject_id, data, occurred_at, ROW_NUMBER() OVER (ORDER BY occurred_at, id)
FROM events;

DROP TABLE events;
ALTER TABLE events_with_positions RENAME TO events;

CREATE INDEX events_subject_idx ON events (subject_type, subject_id);
-- The feed pages by position (`WHERE position > ? ORDER BY position LIMIT n`); unique, so a
-- bug could never hand two events one position.
CREATE UNIQUE INDEX events_position_key ON events (position);
-- The same order within the `type` filter.
CREATE INDEX events_type_position_idx ON events (type, position);

CREATE TABLE event_positions (
    id            INTEGER NOT NULL,
    -- The highest position handed out; the next transaction's first event gets this + 1.
    last_position BIGINT NOT NULL,
    CONSTRAINT event_positions_pkey PRIMARY KEY (id),
    CONSTRAINT event_positions_one_row_check CHECK (id = 1),
    CONSTRAINT event_positions_last_position_check CHECK (last_position >= 0)
);

INSERT INTO event_positions (id, last_position) SELECT 1, COALESCE(MAX(position), 0) FROM events;
