//! Times cross the row boundary here: the domain speaks `DateTime<Utc>`, the columns are
//! `TIMESTAMP` holding UTC (`NaiveDateTime`), which both backends support through
//! `MultiConnection`.

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};

/// Truncated to microseconds, the precision PostgreSQL keeps, so that SQLite (which would keep
/// nanoseconds) stores the same value and a value read back equals the value written.
pub(crate) fn to_db(time: DateTime<Utc>) -> NaiveDateTime {
    time.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(time).naive_utc()
}

pub(crate) fn from_db(time: NaiveDateTime) -> DateTime<Utc> {
    time.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_microseconds_and_drops_nanoseconds() {
        let time = DateTime::parse_from_rfc3339("2026-11-23T18:04:05.123456789Z").unwrap().with_timezone(&Utc);
        let stored = to_db(time);
        assert_eq!(from_db(stored).to_rfc3339(), "2026-11-23T18:04:05.123456+00:00");
    }
}
