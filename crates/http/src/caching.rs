//! How responses may be cached (§1.3), and the conditional GET built on ETags.
//!
//! - errors: `no-store` (set by `middleware::problem_responses`);
//! - token responses and user creation, and other writes that return personal data: `no-store`;
//! - anything read with a token: `private, no-cache` and `Vary: Authorization`, since the answer
//!   depends on who asks;
//! - operational endpoints: `no-store` (a cached health answer is a wrong one).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::extract::{ETag, IfNoneMatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Never stored by any cache.
    NoStore,
    /// Only the caller's own cache, and only after revalidating (with the ETag, if any).
    PrivateRevalidate,
}

impl CachePolicy {
    pub fn apply(self, response: &mut HttpResponseBuilder) {
        match self {
            Self::NoStore => {
                response.insert_header((header::CACHE_CONTROL, "no-store"));
            }
            Self::PrivateRevalidate => {
                response.insert_header((header::CACHE_CONTROL, "private, no-cache"));
                response.insert_header((header::VARY, "Authorization"));
            }
        }
    }

    /// The same, on a response already built.
    pub fn apply_to(self, response: &mut HttpResponse) {
        let headers = response.headers_mut();
        match self {
            Self::NoStore => {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            Self::PrivateRevalidate => {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
                headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
            }
        }
    }
}

/// A single versioned resource: 200 with its body and strong ETag, or 304 with no body and
/// the same ETag when `If-None-Match` already names it.
pub fn versioned<T: Serialize>(
    version: i64,
    body: &T,
    if_none_match: &IfNoneMatch,
    policy: CachePolicy,
) -> HttpResponse {
    let etag = ETag::for_version(version);
    let not_modified = if_none_match.matches(&etag);
    let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header((header::ETAG, etag.header_value()));
    policy.apply(&mut response);
    if not_modified { response.finish() } else { response.json(body) }
}
