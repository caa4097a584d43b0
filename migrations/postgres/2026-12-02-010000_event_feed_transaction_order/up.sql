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
