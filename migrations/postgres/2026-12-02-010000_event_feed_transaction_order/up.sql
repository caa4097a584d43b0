-- The event feed without a global write lock (issue 12; see crates/persistence/src/events.rs
-- and docs/decisions/0012-event-feed-ordered-by-transaction.md).
--
-- Until now every writing transaction took its positions from the one-row counter
-- `event_positions` and held that row's lock until it committed: all writes queued behind one
-- lock. From here on, on PostgreSQL, an event's position is
--
--     position = (id of the writing transaction, `pg_current_xact_id()`) * 2^20 + n
--
-- (n = 1, 2, ... within the transaction), and the feed serves only positions below
-- `pg_snapshot_xmin(pg_current_snapshot()) * 2^20`: every transaction below that id has ended,
-- so no event can later appear below a position a reader has seen. No lock is shared by two
-- writers any more.

-- The counter row would be a trap: nothing updates it now.
DROP TABLE event_positions;

-- Events written before this migration keep their positions (1, 2, 3, ...). They lie below
-- every new position because every transaction wrote fewer than 2^20 events and took its own
-- transaction id: counter <= (transactions so far) * 2^20 <= (this transaction's id) * 2^20.
-- Checked rather than assumed.
DO $$
BEGIN
    IF (SELECT COALESCE(MAX(position), 0) FROM events) >= pg_current_xact_id()::text::bigint * 1048576 THEN
        RAISE EXCEPTION 'existing event positions overlap the transaction-ordered positions';
    END IF;
END
$$;

-- No query looks events up by subject (the feed reads by position, or type and position), yet
-- every event paid for maintaining this index.
DROP INDEX events_subject_idx;

-- Writes one transaction's events, positioned after the events this transaction wrote so far
-- (a transaction may write events more than once), and returns their positions in order.
-- A function so that its statements are planned once per connection (PL/pgSQL caches their
-- plans) and the call is one round trip of a statement the client prepares once: planning the
-- equivalent `WITH ... INSERT ... SELECT FROM unnest(...)` on every write cost more database CPU
-- than executing it.
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
    -- `* 2^20` rather than `<< 20`: an id too large for the scheme is an error, not a wrap.
    base  CONSTANT BIGINT := pg_current_xact_id()::text::bigint * 1048576;
    count CONSTANT BIGINT := cardinality(ids);
    last  BIGINT;
BEGIN
    -- This transaction's own range: nobody else writes positions in it, and its own
    -- uncommitted rows are visible to it.
    SELECT COALESCE(MAX(e.position), base) INTO last
    FROM events e WHERE e.position > base AND e.position < base + 1048576;
    IF last + count >= base + 1048576 THEN
        RAISE EXCEPTION 'a transaction wrote more events than it has positions for (2^20)';
    END IF;
    INSERT INTO events (id, type, subject_type, subject_id, data, occurred_at, position)
    SELECT n.id, n.type, n.subject_type, n.subject_id, n.data, n.occurred_at, last + n.ordinal
    FROM unnest(ids, types, subject_types, subject_ids, payloads, occurred)
         WITH ORDINALITY AS n(id, type, subject_type, subject_id, data, occurred_at, ordinal);
    RETURN ARRAY(SELECT generate_series(last + 1, last + count));
END
$$;
