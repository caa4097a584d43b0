//! Times on the wire (docs/api.md#money-and-time): RFC 3339 in UTC with `Z` and milliseconds, e.g.
//! `2026-11-23T18:04:05.123Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `#[serde(serialize_with = "timestamp::serialize")]`.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(time))
}

/// `#[serde(serialize_with = "timestamp::serialize_option")]`: `null` when absent.
pub fn serialize_option<S: Serializer>(time: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&format(time)),
        None => serializer.serialize_none(),
    }
}

pub fn format(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_have_milliseconds_and_z() {
        let time = Utc.timestamp_micros(1_795_457_045_123_456).unwrap();
        assert_eq!(format(&time), "2026-11-23T18:04:05.123Z");
        let whole = Utc.timestamp_opt(1_795_457_045, 0).unwrap();
        assert_eq!(format(&whole), "2026-11-23T18:04:05.000Z");
    }
}
