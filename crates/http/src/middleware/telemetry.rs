//! One tracing span per request, built by `tracing-actix-web`'s `TracingLogger` with this
//! crate's [`OrderlyRootSpan`]: method, route template (the matched pattern such as
//! `/v1/users/{id}`, never the raw path, so ids and tokens in paths stay out of logs), status,
//! latency, request id, and the caller's user id once the auth extractor knows it.
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

use crate::middleware::request_id::RequestId;

/// Span field the auth extractor records the caller's id into.
pub const USER_ID_FIELD: &str = "user_id";

/// When the request entered the span, for the latency recorded at its end.
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

/// Builds the per-request root span and records the outcome on it.
pub struct OrderlyRootSpan;

impl RootSpanBuilder for OrderlyRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "<unmatched>".to_owned());
        let request_id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        request.extensions_mut().insert(Started(Instant::now()));
        tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            http.route = %route,
            request_id = %request_id,
            user_id = Empty,
            http.status_code = Empty,
            latency_ms = Empty,
        )
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

/// Records the authenticated caller on the request's root span.
pub fn record_user_id(req: &actix_web::HttpRequest, user_id: &impl std::fmt::Display) {
    if let Some(span) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        span.record(USER_ID_FIELD, tracing::field::display(user_id));
    }
}
