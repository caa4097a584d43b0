//! Request metrics: one `http_requests_total` increment and one `http_request_duration_seconds`
//! sample per response, labelled with method, route template and status.
//!
//! It sits just outside the telemetry span (see `crate::middleware`), so it sees every response
//! the application makes — handlers' successes, problem responses rendered further in, 404/405
//! from the fallback, 429s from rate limiting — exactly as the client gets it.
//!
//! Label values are kept to a small, fixed set, since every distinct combination is a time
//! series held for the life of the process: the route is the matched *template*
//! (`/v1/products/{id}`), never the raw path, and [`UNMATCHED_ROUTE`] for any path no route
//! matched; a method outside the standard ones is `OTHER`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

use metrics::SharedString;

use crate::metrics::{HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, UNMATCHED_ROUTE};
use crate::middleware::RouteTemplate;

pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    // Read before the call: the request moves into it. The first to ask for the template,
    // so it is computed here and kept for the span.
    let method = method_label(req.method());
    let route = RouteTemplate::of(req.request()).0;
    let outcome = next.call(req).await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    // Shared strings: each macro clones the labels, and a clone of these is a reference count.
    let route = route.map_or(SharedString::const_str(UNMATCHED_ROUTE), SharedString::from);
    let status = SharedString::from(Arc::<str>::from(status.as_str()));
    let labels = [("method", SharedString::const_str(method)), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(started.elapsed());
    outcome
}

/// The method as a label value: the standard methods as they are, anything else (actix accepts
/// any token as a method) as `OTHER`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
    STANDARD.into_iter().find(|standard| *standard == method.as_str()).unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_labels_and_the_rest_is_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::CONNECT), "CONNECT");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "OTHER");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "OTHER");
    }
}
