//! The revocation check of access tokens, as a middleware (ADR 0015): [`admit`] leaves the
//! domain's verdict on the request's bearer token — an `Admission` — in the request's
//! extensions, where the `Caller` extractors (`crate::extract::caller`) read it. What the verdict
//! is, how fresh the generation it is compared with must be, and recording each access token's
//! first use are the domain's (`orderly_domain::services::sessions::admission`, with this
//! instance's `GenerationCache` in `ApiState::revocations`); this module owns only where it runs.
//!
//! It runs in the middleware rather than in the extractor, innermost, after the rate limit: the
//! extractors stay synchronous (the `FromRequest` API of handlers is unchanged), and a request
//! refused for its rate never costs a read. What memory alone answers is judged inline; a check
//! that needs the store runs on the blocking pool under the database bound (ADR 0011), whose
//! saturation is `Admission::Unavailable` (503 with `Retry-After`), never "accept anyway".
//!
//! Must not touch: the check's rules or the cache's policy (the domain's), answering the
//! request (the extractors').

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use orderly_domain::services::Admission;

use crate::ApiState;
use crate::blocking::Needs;
use crate::extract::caller::verified_claims;

/// The middleware: judges the request's one bearer token, if it has one and its signature is
/// valid, and leaves the [`Admission`] in the request's extensions. It never answers itself:
/// what a refused or unchecked token means is the extractors' call, so a route that needs no
/// caller is not affected.
pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(state) = req.app_data::<web::Data<ApiState>>().cloned()
        && let Some(claims) = verified_claims(req.request(), &state)
    {
        let admission = match state.revocations.admission(&claims) {
            Some(remembered) => remembered,
            None => {
                let (sessions, memory) = (state.sessions.clone(), state.revocations.clone());
                let checked = state.blocking.run(Needs::Database, move || sessions.admit_access(claims, &memory));
                checked.await.unwrap_or_else(|error| pool_failed(&error))
            }
        };
        req.extensions_mut().insert(admission);
    }
    next.call(req).await
}

/// The blocking pool refused (saturated: a 503 already) or failed.
fn pool_failed(error: &crate::problem::ApiError) -> Admission {
    if actix_web::ResponseError::status_code(error) == StatusCode::SERVICE_UNAVAILABLE {
        return Admission::Unavailable;
    }
    tracing::error!(error = %error, "the blocking pool failed checking an access token's revocation");
    Admission::Failed
}
