//! Sessions: access tokens (short-lived, self-contained) and refresh tokens (long-lived, opaque,
//! stored hashed, rotated on every use, grouped in families so that replaying a spent token
//! revokes every descendant — token theft detection, §1.6).

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::user::{Role, UserId};

/// What a verified access token says about its bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub role: Role,
}

/// A freshly issued access token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in_seconds: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish()
    }
}

/// A refresh token as handed to the client: the only place the plain value exists.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenSecret(String);

impl RefreshTokenSecret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSecret(***)")
    }
}

/// The stored form of a refresh token: a one-way digest, so a database leak yields no sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    pub fn new(digest: String) -> Self {
        Self(digest)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A refresh token about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: UserId,
    pub hash: RefreshTokenHash,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token and the state of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    /// Set once the token has been exchanged for a new pair.
    pub spent: bool,
    /// Set once the family was revoked (logout, reuse, password change, deactivation).
    pub family_revoked: bool,
}

/// The outcome of atomically spending one token and storing its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// Another request spent the token first, or the family was revoked meanwhile.
    Lost,
}

/// What a successful login or refresh hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access: AccessToken,
    pub refresh: RefreshTokenSecret,
    pub refresh_expires_in_seconds: i64,
}
