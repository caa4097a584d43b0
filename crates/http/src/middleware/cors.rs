//! CORS: off unless `ORDERLY_CORS_ORIGINS` names browser origins (exact matches, no `*`).
//!
//! The protocol itself is `actix-cors`'s; this module only decides the policy and makes its
//! refusals speak problem+json like every other answer.
//!
//! - Off (no origins): no `Access-Control-*` header is ever sent, and a preflight `OPTIONS` is
//!   an ordinary request to a route without that method (405 with `Allow`).
//! - On: a preflight from an allowed origin is answered here (204-like 200, never rate
//!   limited, never reaching a handler); actual requests from an allowed origin get
//!   `Access-Control-Allow-Origin` and the exposed headers a client needs (ETag, Location,
//!   Link, the rate-limit fields, ...). A request from any other origin is served as usual but
//!   without CORS headers, so the browser withholds the response; server-to-server clients,
//!   which send no `Origin`, are unaffected.
//! - A refused preflight (unknown origin, method or header) is 403 `forbidden` problem+json:
//!   [`render_refusals`] wraps the CORS middleware and renders `actix-cors`'s plain-text 400.
//!
//! Credentials (cookies) are not allowed: the API authenticates with bearer tokens only.

use actix_cors::{Cors, CorsError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use crate::middleware::problem_responses::ProblemContext;
use crate::problem::ApiError;

/// Methods a browser may use cross-origin: every method the API implements.
const ALLOWED_METHODS: [Method; 6] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Request headers a browser may send cross-origin, beyond the CORS-safelisted ones.
const ALLOWED_REQUEST_HEADERS: [&str; 6] =
    ["authorization", "content-type", "if-match", "if-none-match", "idempotency-key", "x-request-id"];

/// Response headers a browser script may read, beyond the CORS-safelisted ones.
const EXPOSED_RESPONSE_HEADERS: [&str; 9] = [
    "etag",
    "location",
    "link",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
    "idempotency-replayed",
    "www-authenticate",
];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECONDS: usize = 600;

/// The CORS middleware for `origins`, or `None` when CORS is off.
pub fn policy(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(ALLOWED_METHODS)
        .allowed_headers(ALLOWED_REQUEST_HEADERS.map(header::HeaderName::from_static))
        .expose_headers(EXPOSED_RESPONSE_HEADERS.map(header::HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE_SECONDS);
    Some(cors)
}

/// Renders a refused preflight as 403 `forbidden` problem+json (actix-cors answers a bare
/// `400` in plain text). Everything else passes untouched.
pub async fn render_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let response = next.call(req).await?;
    let refusal = response.response().error().and_then(|error| error.as_error::<CorsError>()).map(|error| {
        // The reason (which origin, method or header) helps the developer of the web app.
        let detail = match error {
            CorsError::OriginNotAllowed => "this origin is not allowed to call the API from a browser".to_owned(),
            other => format!("cross-origin request refused: {}", other.to_string().trim_end_matches('.')),
        };
        debug_assert_eq!(error.status_code(), actix_web::http::StatusCode::BAD_REQUEST);
        ApiError::forbidden(detail)
    });
    match refusal {
        Some(problem) => {
            let (request, _) = response.into_parts();
            let rendered = ProblemContext::of(&request).render(&problem);
            Ok(ServiceResponse::new(request, rendered).map_into_right_body())
        }
        None => Ok(response.map_into_left_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origins_means_no_cors_middleware() {
        assert!(policy(&[]).is_none());
        assert!(policy(&["https://app.example".to_owned()]).is_some());
    }
}
