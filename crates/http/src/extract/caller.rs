//! Who is calling (§1.6): the [`Caller`] extractor reads `Authorization: Bearer <token>`,
//! has the domain's `SessionService::authenticate` verify it, and records the user id on the
//! request's span. It decides only *who*; *what they may do* is the domain's decision.
//!
//! - no `Authorization` header → 401 `unauthenticated`, `WWW-Authenticate: Bearer`;
//! - a header that is not one well-formed bearer token, or a token that is expired, wrongly
//!   signed, `alg: none` or for another audience → 401 `unauthenticated`,
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//!
//! [`OptionalCaller`] is for operations anyone may call (the catalogue): no `Authorization`
//! header is an anonymous caller, but a header that is sent is checked exactly as above, so
//! an invalid or expired token is still a 401 — never silently downgraded to anonymous, which
//! would hide archived products from an admin whose token just expired.
//!
//! Verification is a few microseconds of HMAC with no I/O, so it runs inline rather than on
//! the blocking pool, and once per request: its outcome is kept in the request's extensions
//! ([`verify_once`]), where the rate-limit middleware, which verifies first to pick the
//! caller's bucket, leaves it for the extractor. The token is never logged.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use orderly_domain::Actor;

use crate::ApiState;
use crate::middleware::telemetry;
use crate::problem::{ApiError, BearerChallenge};

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Actor);

impl Caller {
    pub fn actor(self) -> Actor {
        self.0
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// The caller if a token was sent (and valid), `None` if no `Authorization` header was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalCaller(pub Option<Actor>);

impl OptionalCaller {
    pub fn actor(self) -> Option<Actor> {
        self.0
    }

    /// Whether the request carried a (valid) token: what decides its caching (§1.3).
    pub fn is_authenticated(self) -> bool {
        self.0.is_some()
    }
}

impl FromRequest for OptionalCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(if req.headers().contains_key(header::AUTHORIZATION) {
            authenticate(req).map(|caller| OptionalCaller(Some(caller.0)))
        } else {
            Ok(OptionalCaller(None))
        })
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(ApiError::unauthenticated(BearerChallenge::Missing));
    };
    let invalid = || ApiError::unauthenticated(BearerChallenge::InvalidToken);
    if values.next().is_some() {
        return Err(invalid());
    }
    let token = value.to_str().ok().and_then(bearer_token).ok_or_else(invalid)?;
    let state = req
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ApiState is not registered as app data")))?;
    // Expired or invalid alike: the client is told only that the token is invalid.
    let actor = verify_once(req, state, token).ok_or_else(invalid)?;
    telemetry::record_user_id(req, &actor.user_id);
    Ok(Caller(actor))
}

/// What verifying the request's bearer token gave: the caller, or `None` when it was refused.
#[derive(Debug, Clone, Copy)]
struct Verified(Option<Actor>);

/// Verifies `token`, the request's one bearer token, unless this request's token was verified
/// already; either way the outcome is kept in the request's extensions.
pub(crate) fn verify_once(req: &HttpRequest, state: &ApiState, token: &str) -> Option<Actor> {
    if let Some(Verified(outcome)) = req.extensions().get::<Verified>() {
        return *outcome;
    }
    let outcome = state.sessions.authenticate(token).ok();
    req.extensions_mut().insert(Verified(outcome));
    outcome
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 6750 `b64token` syntax).
pub(crate) fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    let token = token.trim_start();
    let b64token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.chars().all(b64token)).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc.def-ghi"), Some("abc.def-ghi"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
