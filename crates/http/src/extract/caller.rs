//! Who is calling (docs/api.md#authentication-and-authorisation): the [`Caller`] extractor reads
//! `Authorization: Bearer <token>`, has the domain's `SessionService::authenticate` verify it, and
//! records the user id on the request's span. It decides only *who*; *what they may do* is the
//! domain's decision.
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
//! [`Authorised`] is for operations that some role may never perform (admin-only ones): the
//! caller as above, then the domain's role rule for the operation (403 `forbidden`), decided
//! before any other part of the request is read (docs/api.md#authentication-and-authorisation).
//!
//! Verification is a few microseconds of HMAC with no I/O, so it runs inline rather than on
//! the blocking pool, and once per request: its outcome is kept in the request's extensions
//! ([`verify_once`]). The first of the rate-limit middleware (to pick the caller's bucket), the
//! revocation middleware (to judge the token) and the extractor to ask verifies; the others
//! read that outcome ([`verified_claims`] for the middlewares). The token is never logged.
//!
//! A validly signed token may have been revoked since (ADR 0015): the revocation middleware
//! (`crate::revocation`) has judged it before any extractor runs, and left its
//! [`Admission`]: revoked → 401 `invalid_token` as above; its user's generation could not be
//! read → 503 `service_unavailable` with `Retry-After` — never accepted unchecked.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use orderly_domain::Actor;
use orderly_domain::auth::AccessClaims;
use orderly_domain::authorisation::Operation;
use orderly_domain::services::{
    AdjustStockError, Admission, ChangeProductError, CreateProductError, ListAdjustmentsError, ListUsersError,
    ReadFeedError, WebhookError,
};

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

    /// Whether the request carried a (valid) token: what decides its caching (docs/api.md#caching).
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
    let token = sent_bearer_token(req.headers()).map_err(ApiError::unauthenticated)?;
    let invalid = || ApiError::unauthenticated(BearerChallenge::InvalidToken);
    let state = req
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ApiState is not registered as app data")))?;
    // Expired or invalid alike: the client is told only that the token is invalid.
    let claims = verify_once(req, state, token).ok_or_else(invalid)?;
    let actor = match req.extensions().get::<Admission>().copied() {
        Some(Admission::Accepted(actor)) if actor.user_id == claims.user_id => actor,
        // Revoked since it was issued: to the client, just as invalid.
        Some(Admission::Revoked) => return Err(invalid()),
        Some(Admission::Unavailable) => {
            return Err(ApiError::unavailable(anyhow::anyhow!("cannot check whether the access token was revoked")));
        }
        // Never accepted unchecked: the check failed (logged where it did), or no admission at
        // all, which means the middleware is missing.
        Some(Admission::Accepted(_) | Admission::Failed) | None => {
            return Err(ApiError::internal(anyhow::anyhow!("the revocation check failed or did not run")));
        }
    };
    telemetry::record_user_id(req, &actor.user_id);
    Ok(Caller(actor))
}

/// The claims of the request's bearer token if it sent exactly one well-formed, validly signed
/// one (revoked or not): what the rate-limit and revocation middlewares go by. Verified at most
/// once per request ([`verify_once`]).
pub(crate) fn verified_claims(req: &HttpRequest, state: &ApiState) -> Option<AccessClaims> {
    sent_bearer_token(req.headers()).ok().and_then(|token| verify_once(req, state, token))
}

/// The token of the request's one `Authorization: Bearer` header: `Missing` without the
/// header, `InvalidToken` for several headers (they identify nobody) or one that is not a
/// well-formed bearer credential.
fn sent_bearer_token(headers: &HeaderMap) -> Result<&str, BearerChallenge> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    match (values.next(), values.next()) {
        (None, _) => Err(BearerChallenge::Missing),
        (Some(value), None) => value.to_str().ok().and_then(bearer_token).ok_or(BearerChallenge::InvalidToken),
        (Some(_), Some(_)) => Err(BearerChallenge::InvalidToken),
    }
}

/// What verifying the request's bearer token gave: its claims, or `None` when it was refused.
#[derive(Debug, Clone, Copy)]
struct Verified(Option<AccessClaims>);

/// Verifies `token`'s signature and claims (not whether it was revoked since: that is
/// `crate::revocation`'s), unless this request's token was verified already; either way the
/// outcome is kept in the request's extensions.
fn verify_once(req: &HttpRequest, state: &ApiState, token: &str) -> Option<AccessClaims> {
    if let Some(Verified(outcome)) = req.extensions().get::<Verified>() {
        return *outcome;
    }
    let outcome = state.sessions.verify_access_token(token).ok();
    req.extensions_mut().insert(Verified(outcome));
    outcome
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 6750 `b64token` syntax).
fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    let token = token.trim_start();
    let b64token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.chars().all(b64token)).then_some(token)
}

/// The caller, once the domain has agreed that their role may perform the operation `O`
/// (`orderly_domain::authorisation::Operation`): 401 as for [`Caller`], then 403 `forbidden`.
///
/// A handler of an operation that some role may never perform lists this **first** among its
/// fallible arguments. actix runs extractors in argument order and stops at the first that
/// fails, so for a forbidden caller the path, the query, `If-Match`, `Idempotency-Key` and
/// the body are never read: docs/api.md#authentication-and-authorisation — authentication, then
/// authorisation, then validation — and the caller learns nothing from the request's validation.
/// The use case asks the same rule again; this only moves the answer ahead of the parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorised<O> {
    actor: Actor,
    operation: PhantomData<O>,
}

impl<O> Authorised<O> {
    pub fn actor(self) -> Actor {
        self.actor
    }
}

/// A type naming one `Operation`, so that [`Authorised`] can say in a handler's signature
/// which operation it guards (an enum value cannot be a type parameter).
pub trait GuardedOperation {
    const OPERATION: Operation;
}

impl<O: GuardedOperation> FromRequest for Authorised<O> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|Caller(actor)| {
            if actor.may(O::OPERATION) {
                Ok(Authorised { actor, operation: PhantomData })
            } else {
                Err(forbidden(O::OPERATION))
            }
        }))
    }
}

/// The 403 for `operation`: the same problem its use case answers when it refuses it, so the
/// answer does not depend on which of the two checks refused.
fn forbidden(operation: Operation) -> ApiError {
    match operation {
        Operation::ListUsers => ListUsersError::Forbidden.into(),
        Operation::CreateProduct => CreateProductError::Forbidden.into(),
        Operation::ChangeProduct | Operation::ArchiveProduct => ChangeProductError::Forbidden.into(),
        Operation::AdjustStock => AdjustStockError::Forbidden.into(),
        Operation::ReadStockAdjustments => ListAdjustmentsError::Forbidden.into(),
        Operation::ReadEventFeed => ReadFeedError::Forbidden.into(),
        Operation::ManageWebhooks => WebhookError::Forbidden.into(),
    }
}

/// The marker types of [`Authorised`], one per `Operation`, named as its variants.
pub mod operation {
    use orderly_domain::authorisation::Operation;

    use super::GuardedOperation;

    macro_rules! guarded_operations {
        ($($name:ident),* $(,)?) => {
            $(
                #[doc = concat!("`Operation::", stringify!($name), "`.")]
                #[derive(Debug, Clone, Copy, PartialEq, Eq)]
                pub enum $name {}

                impl GuardedOperation for $name {
                    const OPERATION: Operation = Operation::$name;
                }
            )*
        };
    }

    guarded_operations!(
        ListUsers,
        CreateProduct,
        ChangeProduct,
        ArchiveProduct,
        AdjustStock,
        ReadStockAdjustments,
        ReadEventFeed,
        ManageWebhooks,
    );
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
