//! One tracing span per request, built by `tracing-actix-web`'s `TracingLogger` with this
//! crate's [`OrderlyRootSpan`]: method, route template (the matched pattern such as
//! `/v1/users/{id}`, never the raw path, so ids and tokens in paths stay out of logs), status,
//! latency, request id, and the caller's user id once the auth extractor knows it.
//!
//! It also carries the request's W3C Trace Context (`traceparent`): `trace_id` is the caller's
//! trace id when it sent a valid `traceparent` header, so this request's log lines can be
//! joined with the caller's (a gateway, another service), and `parent_span_id` is the caller's
//! span; with no valid header, a fresh trace id is made and `parent_span_id` stays empty.
//!
//! Deliberately absent: headers (the `Authorization` header carries a bearer token), query
//! strings (cursors), bodies (passwords, refresh tokens).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;

use crate::middleware::RouteTemplate;
use crate::middleware::request_id::RequestId;

/// The W3C Trace Context request header.
pub const TRACEPARENT: &str = "traceparent";

/// Span field the auth extractor records the caller's id into.
pub const USER_ID_FIELD: &str = "user_id";

/// When the request entered the span, for the latency recorded at its end.
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

/// Builds the per-request root span and records the outcome on it.
pub struct OrderlyRootSpan;

impl RootSpanBuilder for OrderlyRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = RouteTemplate::of(request.request());
        let route = route.as_deref().unwrap_or("<unmatched>");
        let request_id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        request.extensions_mut().insert(Started(Instant::now()));
        let parent = incoming_trace_parent(request);
        let trace_id = parent.as_ref().map_or_else(new_trace_id, |parent| parent.trace_id.clone());
        let span = tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            http.route = %route,
            request_id = %request_id,
            trace_id = %trace_id,
            parent_span_id = Empty,
            user_id = Empty,
            http.status_code = Empty,
            latency_ms = Empty,
        );
        if let Some(parent) = parent {
            span.record("parent_span_id", tracing::field::display(&parent.parent_id));
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, started) = match outcome {
            Ok(response) => (response.status(), response.request().extensions().get::<Started>().copied()),
            Err(error) => (error.as_response_error().status_code(), None),
        };
        span.record("http.status_code", status.as_u16());
        if let Some(Started(at)) = started {
            let latency_ms = at.elapsed().as_secs_f64() * 1000.0;
            span.record("latency_ms", latency_ms);
        }
        // One line per request, inside the span so it carries every field above.
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), "request completed");
        }
    }
}

/// The caller's trace context, from a valid W3C `traceparent` header (version `00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The caller's span: 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// The caller's trace flags (bit 0: sampled).
    pub flags: u8,
}

/// The request's `traceparent`, if it has exactly one and it is valid. Several headers are
/// ignored too: the specification says a receiver cannot tell which one to trust.
fn incoming_trace_parent(request: &ServiceRequest) -> Option<TraceParent> {
    let mut headers = request.headers().get_all(TRACEPARENT);
    let (Some(value), None) = (headers.next(), headers.next()) else { return None };
    parse_traceparent(value.to_str().ok()?)
}

/// Parses a version-`00` `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex
/// flags>`, hex in lowercase, trace and parent ids not all zero. Anything else is `None`, and
/// the request gets a trace of its own. Other versions are refused rather than parsed as `00`
/// (which the specification allows): nothing sends them yet, and guessing would let a
/// malformed header name the trace.
///
/// No crate is used for this: the one that provides it is OpenTelemetry's propagator, which
/// brings the whole OpenTelemetry SDK for what is a fixed 55-character format, and Orderly
/// exports no spans — it only needs the ids in its log lines.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let mut fields = value.split('-');
    let (Some(version), Some(trace_id), Some(parent_id), Some(flags), None) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let lowercase_hex = |field: &str, len: usize| {
        field.len() == len && field.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let all_zero = |field: &str| field.bytes().all(|b| b == b'0');
    let valid = version == "00"
        && lowercase_hex(trace_id, 32)
        && !all_zero(trace_id)
        && lowercase_hex(parent_id, 16)
        && !all_zero(parent_id)
        && lowercase_hex(flags, 2);
    if !valid {
        return None;
    }
    Some(TraceParent {
        trace_id: trace_id.to_owned(),
        parent_id: parent_id.to_owned(),
        flags: u8::from_str_radix(flags, 16).ok()?,
    })
}

/// A trace id for a request that brought none: a UUIDv7 as 32 lowercase hex digits. It is
/// never all zero and unique without coordination (74 random bits under a millisecond
/// timestamp), and needs no random-number crate beyond the one `uuid` already uses.
fn new_trace_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Records the authenticated caller on the request's root span.
pub fn record_user_id(req: &actix_web::HttpRequest, user_id: &impl std::fmt::Display) {
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record(USER_ID_FIELD, tracing::field::display(user_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    #[test]
    fn a_valid_traceparent_gives_its_ids_and_flags() {
        let parsed = parse_traceparent(&format!("00-{TRACE}-{PARENT}-01")).unwrap();
        assert_eq!(parsed, TraceParent { trace_id: TRACE.to_owned(), parent_id: PARENT.to_owned(), flags: 1 });
        assert_eq!(parse_traceparent(&format!("00-{TRACE}-{PARENT}-00")).unwrap().flags, 0);
        assert_eq!(parse_traceparent(&format!("00-{TRACE}-{PARENT}-ff")).unwrap().flags, 0xff);
    }

    #[test]
    fn anything_else_is_refused() {
        let zero_trace = "0".repeat(32);
        let zero_parent = "0".repeat(16);
        let invalid = [
            String::new(),
            "garbage".to_owned(),
            format!("01-{TRACE}-{PARENT}-01"),
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{zero_trace}-{PARENT}-01"),
            format!("00-{TRACE}-{zero_parent}-01"),
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            format!("00-{TRACE}-{}-01", PARENT.to_uppercase()),
            format!("00-{TRACE}-{PARENT}-1"),
            format!("00-{TRACE}-{PARENT}-0g"),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{TRACE}0-{PARENT}-01"),
            format!("00-{TRACE}-{}-01", &PARENT[1..]),
            format!("00-{TRACE}-{PARENT}-01-extra"),
            format!("00-{TRACE}-{PARENT}"),
            format!(" 00-{TRACE}-{PARENT}-01"),
            format!("00_{TRACE}_{PARENT}_01"),
            format!("00-{}-{PARENT}-01", "z".repeat(32)),
        ];
        for value in invalid {
            assert_eq!(parse_traceparent(&value), None, "{value:?}");
        }
    }

    #[test]
    fn fresh_trace_ids_are_valid_and_distinct() {
        let (first, second) = (new_trace_id(), new_trace_id());
        assert_ne!(first, second);
        for id in [first, second] {
            assert!(parse_traceparent(&format!("00-{id}-{PARENT}-00")).is_some(), "{id}");
        }
    }
}
