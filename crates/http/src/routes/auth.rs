//! `/v1/auth` (docs/api.md#authentication-and-authorisation, docs/api.md#users-and-tokens): logging
//! in, refreshing and logging out. Token responses are never cached. Logging in runs argon2, so it
//! is admitted to the blocking pool under the hashing bound, not the database one
//! (`crate::blocking`). `Idempotency-Key` is validated here but never stored
//! (`crate::idempotency`): token responses must not be kept for replay.

use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder, post, web};
use orderly_domain::services::LoginError;

use crate::ApiState;
use crate::blocking::Needs;
use crate::caching::CachePolicy;
use crate::dto::auth::{Credentials, LoginRequest, PresentedRefreshToken, RefreshTokenRequest, TokenPairResponse};
use crate::extract::{IdempotencyKeyHeader, ValidJson};
use crate::metrics::AUTH_FAILED_LOGINS_TOTAL;
use crate::problem::ApiError;
use crate::routes::responses;

/// Log in
///
/// Exchanges an email and password for an access token and a refresh token. Unknown email,
/// wrong password and deactivated account all get the same `invalid_credentials` answer.
///
/// An `Idempotency-Key` is checked (400 when malformed) but not stored: the answer carries
/// live tokens, which are never kept for replay. A retry logs in again (a new pair).
#[utoipa::path(
    operation_id = "createToken",
    tag = "auth",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new token pair", body = TokenPairResponse),
        (status = 401, description = "`invalid_credentials`: unknown email, wrong password or deactivated account"),
    )
)]
#[post("/auth/tokens")]
pub(crate) async fn login(
    state: web::Data<ApiState>,
    _not_stored: IdempotencyKeyHeader,
    body: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { email, password } = body.into_inner();
    let sessions = state.sessions.clone();
    let pair = match state.blocking.run(Needs::PasswordHash, move || sessions.login(&email, &password)).await? {
        Ok(pair) => pair,
        Err(error) => {
            // Counted here, not in the domain: the domain knows no metrics. A rising rate is
            // credential stuffing or a broken client; the login rate limit caps it per address.
            if matches!(error, LoginError::InvalidCredentials) {
                metrics::counter!(AUTH_FAILED_LOGINS_TOTAL).increment(1);
            }
            return Err(error.into());
        }
    };
    Ok(token_response().json(TokenPairResponse::from(pair)))
}

/// Refresh
///
/// Spends a refresh token for a new pair. Each refresh token works once: presenting a spent
/// one again ends every session descended from the same login — except within the reuse
/// leeway (30 s by default) after it was spent, while neither token of the pair that spending
/// it issued has been used (its refresh token for a refresh, its access token for any
/// request): then the presentation is taken for a retry of a refresh whose answer was lost,
/// and answered with a new pair like a normal refresh; the unused refresh token of the lost
/// answer stops working, so the session still has exactly one live refresh token.
///
/// An `Idempotency-Key` is checked (400 when malformed) but not stored: the answer carries
/// live tokens, which are never kept for replay. After a lost answer, retry with the same
/// refresh token within the leeway; later, log in again.
#[utoipa::path(
    operation_id = "refreshToken",
    tag = "auth",
    request_body(content = RefreshTokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent", body = TokenPairResponse),
        (status = 401, description = "`unauthenticated`: the refresh token is unknown, expired or revoked, or spent (outside the reuse leeway, or a token of the pair it was exchanged for was used), which revokes its session",
            headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
    )
)]
#[post("/auth/refresh")]
pub(crate) async fn refresh(
    state: web::Data<ApiState>,
    _not_stored: IdempotencyKeyHeader,
    body: ValidJson<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let PresentedRefreshToken(token) = body.into_inner();
    let sessions = state.sessions.clone();
    let pair = state.blocking.run(Needs::Database, move || sessions.refresh(&token)).await??;
    Ok(token_response().json(TokenPairResponse::from(pair)))
}

/// Log out
///
/// Ends the session the refresh token belongs to (its whole family), and revokes the user's
/// access tokens: they stop working within the revocation check interval (1 s by default) on
/// every instance; a token issued afterwards works at once. Always 204, also for a token that
/// is unknown or already revoked.
///
/// An `Idempotency-Key` is checked (400 when malformed) but not stored: the request carries a
/// live refresh token, which is never kept. Retrying is harmless: the answer is 204 again.
#[utoipa::path(
    operation_id = "logout",
    tag = "auth",
    request_body(content = RefreshTokenRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "The session is over"),
    )
)]
#[post("/auth/logout")]
pub(crate) async fn logout(
    state: web::Data<ApiState>,
    _not_stored: IdempotencyKeyHeader,
    body: ValidJson<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let PresentedRefreshToken(token) = body.into_inner();
    let sessions = state.sessions.clone();
    if let Some(user) = state.blocking.run(Needs::Database, move || sessions.logout(&token)).await?? {
        // The user's access tokens were revoked too (ADR 0015): this instance stops trusting
        // what it remembers of them at once; the others within the check interval.
        state.revocations.forget(user);
    }
    Ok(responses::no_content())
}

/// Token responses must never be stored (RFC 6749 §5.1).
fn token_response() -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    CachePolicy::NoStore.apply(&mut response);
    response.insert_header((header::PRAGMA, "no-cache"));
    response
}
