//! How responses may be cached (docs/api.md#caching), and the conditional GET built on ETags.
//!
//! - errors: `no-store` (set by `middleware::problem_responses`);
//! - token responses and user creation, and other writes that return personal data: `no-store`;
//! - anything read with a token: `private, no-cache` and `Vary: Authorization`, since the answer
//!   depends on who asks;
//! - catalogue reads without a token: `public, max-age=30` and `Vary: Authorization`: any cache
//!   may keep them briefly, but never serve them to a request that carries a token (an admin
//!   also sees archived products), nor a token holder's copy to anyone else;
//! - invoices, which never change once issued: `private, max-age=31536000, immutable` and
//!   `Vary: Authorization` — the caller's own cache may keep them for a year without asking;
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
    /// Any cache, for [`PUBLIC_MAX_AGE_SECONDS`]; only for requests without a token.
    PublicShortLived,
    /// Only the caller's own cache, for a year, without revalidating: for representations
    /// that never change (invoices).
    PrivateImmutable,
}

/// How long a shared cache may serve an anonymous catalogue read without revalidating (docs/api.md#caching).
pub const PUBLIC_MAX_AGE_SECONDS: u32 = 30;

impl CachePolicy {
    /// Catalogue reads (docs/api.md#caching): public and short-lived for anonymous callers, private for
    /// anyone who sent a token.
    pub fn for_catalogue(authenticated: bool) -> Self {
        if authenticated { Self::PrivateRevalidate } else { Self::PublicShortLived }
    }

    /// `(Cache-Control, Vary)` of this policy.
    fn headers(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::NoStore => ("no-store", None),
            Self::PrivateRevalidate => ("private, no-cache", Some("Authorization")),
            Self::PublicShortLived => ("public, max-age=30", Some("Authorization")),
            Self::PrivateImmutable => ("private, max-age=31536000, immutable", Some("Authorization")),
        }
    }

    pub fn apply(self, response: &mut HttpResponseBuilder) {
        let (cache_control, vary) = self.headers();
        response.insert_header((header::CACHE_CONTROL, cache_control));
        if let Some(vary) = vary {
            response.insert_header((header::VARY, vary));
        }
    }

    /// The same, on a response already built.
    pub fn apply_to(self, response: &mut HttpResponse) {
        let (cache_control, vary) = self.headers();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
        if let Some(vary) = vary {
            headers.insert(header::VARY, HeaderValue::from_static(vary));
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
    tagged(ETag::for_version(version), body, if_none_match, policy)
}

/// A single resource with the strong tag `etag`: 200 with its body, or 304 with no body and
/// the same tag when `If-None-Match` already names it.
pub fn tagged<T: Serialize>(etag: ETag, body: &T, if_none_match: &IfNoneMatch, policy: CachePolicy) -> HttpResponse {
    let not_modified = if_none_match.matches(&etag);
    let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header((header::ETAG, etag.header_value()));
    policy.apply(&mut response);
    if not_modified { response.finish() } else { response.json(body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_max_age_is_the_one_in_the_header() {
        let (cache_control, vary) = CachePolicy::PublicShortLived.headers();
        assert_eq!(cache_control, format!("public, max-age={PUBLIC_MAX_AGE_SECONDS}"));
        assert_eq!(vary, Some("Authorization"));
        assert_eq!(CachePolicy::for_catalogue(true), CachePolicy::PrivateRevalidate);
        assert_eq!(CachePolicy::for_catalogue(false), CachePolicy::PublicShortLived);
    }
}
