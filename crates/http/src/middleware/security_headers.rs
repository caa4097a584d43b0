//! Headers every response carries, success or failure: no MIME sniffing, no framing, no
//! referrer, and a Content-Security-Policy that allows nothing for API responses. Only the
//! Swagger UI under `/docs` gets a policy that lets it load its own (vendored) scripts, styles
//! and images and call this origin.
//!
//! `Cache-Control` is not set here: it depends on what a response is (see
//! `problem_responses` for errors and the handlers for the rest).

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::openapi::DOCS_PATH;

/// Nothing may be loaded, framed or submitted: a JSON response needs none of it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the vendored Swagger UI needs: its own files, inline styles (set by its React
/// components), `data:` images (its icons) and requests to this origin ("Try it out").
/// The security headers of every API response (the documentation's CSP differs), also sent
/// on the refusals the server makes before routing (`crate::refusals`).
pub const API_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", API_CSP),
];

const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'none'";

pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let path = req.path();
    let is_docs = path == DOCS_PATH || path.starts_with(&format!("{DOCS_PATH}/"));
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    for (name, value) in API_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    if is_docs {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    }
    Ok(response)
}
