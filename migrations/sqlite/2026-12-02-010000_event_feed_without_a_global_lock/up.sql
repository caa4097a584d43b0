-- SQLite keeps its event counter (one writer at a time: positions follow commit order by
-- construction; see crates/persistence/src/events.rs). Like PostgreSQL, it stops maintaining
-- an index no query uses: events are read by position, or by type and position.
DROP INDEX events_subject_idx;
