-- The event feed's ordering key (§2.5): `events.position`, 1, 2, 3, ... in commit order.
--
-- Positions come from the one-row counter `event_positions`, which a writing transaction
-- updates as its last step (`UPDATE ... SET last_position = last_position + n RETURNING`). The
-- row lock taken by that UPDATE is held until the writer commits or rolls back, so a later
-- transaction obtains a higher position only after every lower one has committed (or was
-- rolled back, handing its positions back): a reader that has seen position p never later
-- finds a newly committed event at or below p. A sequence would not do: its numbers are
-- taken at insert time and commit in any order. See crates/persistence/src/events.rs.

ALTER TABLE events ADD COLUMN position BIGINT;

-- Events written before this migration keep the order they have always been shown in.
UPDATE events
SET position = ranked.position
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY occurred_at, id) AS position FROM events) AS ranked
WHERE events.id = ranked.id;

ALTER TABLE events ALTER COLUMN position SET NOT NULL;
ALTER TABLE events ADD CONSTRAINT events_position_check CHECK (position >= 1);

-- The feed pages by position (`WHERE position > $after ORDER BY position LIMIT n`); unique, so
-- a bug could never hand two events one position.
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
