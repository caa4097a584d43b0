//! The body of a delivery: the event exactly as `GET /v1/events` represents it (docs/api.md#events).
//!
//! Owns the field order and formats: `{"id", "type", "occurred_at", "subject": {"type", "id"},
//! "data"}`, `occurred_at` in RFC 3339 UTC with milliseconds and `Z` (as every timestamp of the
//! API), `data` the stored payload embedded byte for byte. Must not touch: which events are
//! sent or how the body is signed.

use chrono::SecondsFormat;
use orderly_domain::event::FeedEvent;
use serde::Serialize;
use serde_json::value::RawValue;

/// The stored payload of an event is not a JSON object, so it cannot be sent as the API
/// represents events. Names the event, never shows the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} has a payload that is not a JSON object")]
pub struct InvalidPayload {
    pub event_id: String,
}

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    #[serde(rename = "type")]
    type_name: &'a str,
    occurred_at: String,
    subject: Subject<'a>,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct Subject<'a> {
    #[serde(rename = "type")]
    subject_type: &'a str,
    id: &'a str,
}

/// The JSON body a delivery of `event` carries (and signs): the same representation as
/// `GET /v1/events` serves.
pub fn render_body(event: &FeedEvent) -> Result<String, InvalidPayload> {
    let invalid = || InvalidPayload { event_id: event.id.to_string() };
    let data: &RawValue = serde_json::from_str(&event.data_json).map_err(|_| invalid())?;
    if !data.get().trim_start().starts_with('{') {
        return Err(invalid());
    }
    let body = Body {
        id: event.id.to_string(),
        type_name: &event.type_name,
        occurred_at: event.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        subject: Subject { subject_type: &event.subject_type, id: &event.subject_id },
        data,
    };
    serde_json::to_string(&body).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{TimeZone as _, Utc};

    use super::*;

    fn event(data_json: &str) -> FeedEvent {
        FeedEvent {
            id: "0192f5c2-7001-7c3d-8e9f-0a1b2c3d4e71".parse().unwrap(),
            position: 7,
            type_name: "order.placed".into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 18, 4, 5).unwrap(),
            subject_type: "order".into(),
            subject_id: "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70".into(),
            data_json: data_json.into(),
        }
    }

    #[test]
    fn the_body_is_the_feed_representation_with_the_payload_untouched() {
        // Key order and number spelling survive: the payload is not re-serialised.
        let body = render_body(&event(r#"{"total":3000,"amount":2.50,"a":{"z":1,"b":[]}}"#)).unwrap();
        assert_eq!(
            body,
            r#"{"id":"0192f5c2-7001-7c3d-8e9f-0a1b2c3d4e71","type":"order.placed","occurred_at":"2026-11-23T18:04:05.000Z","subject":{"type":"order","id":"0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70"},"data":{"total":3000,"amount":2.50,"a":{"z":1,"b":[]}}}"#
        );
    }

    #[test]
    fn milliseconds_are_kept_and_finer_digits_cut() {
        let mut with_nanos = event("{}");
        with_nanos.occurred_at = Utc.timestamp_opt(1_795_456_445, 123_456_789).unwrap();
        let body: serde_json::Value = serde_json::from_str(&render_body(&with_nanos).unwrap()).unwrap();
        assert_eq!(body["occurred_at"], "2026-11-23T17:54:05.123Z");
    }

    #[test]
    fn a_payload_that_is_not_a_json_object_is_refused_without_being_shown() {
        for bad in ["", "not json", "[1,2]", "\"text\"", "{\"open\":"] {
            let error = render_body(&event(bad)).unwrap_err();
            assert_eq!(error.event_id, "0192f5c2-7001-7c3d-8e9f-0a1b2c3d4e71", "{bad}");
        }
    }
}
