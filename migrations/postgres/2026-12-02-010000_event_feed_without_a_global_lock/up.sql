-- The event feed without a global write lock (issue 12; see crates/persistence/src/events.rs
-- and docs/decisions/0012-event-feed-without-a-global-lock.md).
--
-- Until now every writing transaction took its positions from the one-row counter
-- `event_positions` and held that row's lock until it committed: all writes queued behind one
-- lock. From here on, on PostgreSQL:
--
-- * a writer takes its positions from a sequence, in the statement that inserts its events
--   (always the last write of a change, made while the change's row locks are held), after
--   announcing itself with a shared, transaction-scoped advisory lock that it keeps until it
--   ends; sequences and shared locks make no writer wait for another;
-- * a reader notes the sequence's last value, waits until every writer announced at that
--   moment has ended, and only then reads up to that value: nothing can commit below it any
--   more.

-- The counter row would be a trap: nothing updates it now.
DROP TABLE event_positions;

-- One block of 1024 positions per batch of events (a transaction's events, written in one
-- statement, stay consecutive). It continues above every position handed out so far.
DO $$
BEGIN
    EXECUTE format(
        'CREATE SEQUENCE event_positions_seq AS BIGINT INCREMENT BY 1024 MINVALUE 1024 START WITH %s',
        ((SELECT COALESCE(MAX(position), 0) FROM events) / 1024 + 1) * 1024
    );
END
$$;

-- Writes one batch of events (`payloads` are the JSON `data`), returns their positions in
-- order. A function so that the write is one round trip of a statement the client prepares
-- once, and its statements are planned once per connection (PL/pgSQL caches their plans).
CREATE FUNCTION orderly_insert_events(
    ids           TEXT[],
    types         TEXT[],
    subject_types TEXT[],
    subject_ids   TEXT[],
    payloads      TEXT[],
    occurred      TIMESTAMP[]
) RETURNS BIGINT[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    count CONSTANT INTEGER := cardinality(ids);
    block BIGINT;
BEGIN
    IF count >= 1024 THEN
        RAISE EXCEPTION 'a batch of % events does not fit in one block of positions (1023 at most)', count;
    END IF;
    -- Announce this writer before it takes positions, until it commits or rolls back: a reader
    -- waits for every writer announced when it noted the sequence (the key is the event
    -- feed's, 'ordr' and 1; readers find it in pg_locks as classid 1869767794, objid 1).
    PERFORM pg_advisory_xact_lock_shared(1869767794, 1);
    block := nextval('event_positions_seq');
    INSERT INTO events (id, type, subject_type, subject_id, data, occurred_at, position)
    SELECT n.id, n.type, n.subject_type, n.subject_id, n.data, n.occurred_at, block + n.ordinal
    FROM unnest(ids, types, subject_types, subject_ids, payloads, occurred)
         WITH ORDINALITY AS n(id, type, subject_type, subject_id, data, occurred_at, ordinal);
    RETURN ARRAY(SELECT generate_series(block + 1, block + count));
END
$$;

-- No query looks events up by subject (the feed reads by position, or type and position), yet
-- every event paid for maintaining this index.
DROP INDEX events_subject_idx;
