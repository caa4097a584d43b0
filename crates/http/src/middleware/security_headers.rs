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
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

use crate::openapi::DOCS_PATH;

/// Nothing may be loaded, framed or submitted: a JSON response needs none of it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the vendored Swagger UI needs: its own files, inline styles (set by its React
/// components), `data:` images (its icons) and requests to this origin ("Try it out").
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
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let csp = if is_docs { DOCS_CSP } else { API_CSP };
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    Ok(response)
}
