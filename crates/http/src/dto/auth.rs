//! Sessions on the wire (docs/api.md#authentication-and-authorisation,
//! docs/api.md#users-and-tokens): login credentials, refresh tokens and the token pair. None of
//! these types implements `Debug`: they hold passwords and tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use orderly_domain::auth::TokenPair;
use orderly_domain::validation::FieldViolation;

use crate::extract::{BodyContext, RequestBody};

/// `POST /v1/auth/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    /// Compared as registration stores it (trimmed, Unicode NFC, lower-cased), so any spelling
    /// of the address works. Any text is taken: one that is no address is a failed login like
    /// any other, so the answer never tells which accounts exist.
    email: String,
    #[schema(format = Password)]
    password: String,
}

/// Login input as the domain takes it: raw strings, because a malformed email is just a failed
/// login (it must not reveal anything about which accounts exist).
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl RequestBody for LoginRequest {
    type Domain = Credentials;

    fn try_into_domain(self, _: &BodyContext) -> Result<Credentials, Vec<FieldViolation>> {
        Ok(Credentials { email: self.email, password: self.password })
    }
}

/// `POST /v1/auth/refresh` and `POST /v1/auth/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "4q7Zt0pXf8sJ2mWc9kR1vYbN3uHe6LdA"}))]
pub struct RefreshTokenRequest {
    /// The refresh token from the last token pair.
    refresh_token: String,
}

/// A presented refresh token.
pub struct PresentedRefreshToken(pub String);

impl RequestBody for RefreshTokenRequest {
    type Domain = PresentedRefreshToken;

    fn try_into_domain(self, _: &BodyContext) -> Result<PresentedRefreshToken, Vec<FieldViolation>> {
        Ok(PresentedRefreshToken(self.refresh_token))
    }
}

/// The `token_type` of every token pair.
#[derive(Serialize, ToSchema)]
pub enum TokenType {
    Bearer,
}

/// A fresh access token and the refresh token to get the next one.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "4q7Zt0pXf8sJ2mWc9kR1vYbN3uHe6LdA",
    "refresh_expires_in": 2592000
}))]
pub struct TokenPairResponse {
    /// JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; single use: refreshing spends it and returns a new one.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

impl From<TokenPair> for TokenPairResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access.token,
            token_type: TokenType::Bearer,
            expires_in: pair.access.expires_in_seconds,
            refresh_token: pair.refresh.expose().to_owned(),
            refresh_expires_in: pair.refresh_expires_in_seconds,
        }
    }
}
