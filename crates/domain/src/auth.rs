//! Sessions: access tokens (short-lived, self-contained) and refresh tokens (long-lived, opaque,
//! stored hashed, rotated on every use, grouped in families so that replaying a spent token
//! revokes every descendant — token theft detection, docs/api.md#authentication-and-authorisation).

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::user::{Role, UserId};

/// What a verified access token says about its bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub role: Role,
    /// The user's token generation the token was issued under (ADR 0015).
    pub generation: TokenGeneration,
    /// The refresh token issued together with this access token (a login or a refresh), by
    /// its stored id; `None` for tokens issued before the claim existed. The first use of the
    /// access token is recorded against that refresh token, which ends the reuse leeway of the
    /// token it replaced: a client that used the new pair did receive it (ADR 0015).
    pub refresh_token_id: Option<Uuid>,
}

/// A per-user revocation counter (ADR 0015). Every change that revokes a user's sessions —
/// logout, password change, deactivation, change of role, a family revoked for reuse — bumps
/// it in the same transaction; an access token is accepted only while the generation it was
/// issued under is still the user's current one. A counter, not a timestamp: a token issued
/// right after a revocation, even within the same second, carries the new value, and no
/// instance's clock is involved. Tokens issued before the counter existed carry none and
/// count as generation 0.
pub type TokenGeneration = i64;

/// How an access token's generation compares with its user's generation as some instance
/// last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationCheck {
    /// Issued under the current generation: accepted.
    Current,
    /// Issued before a revocation: refused, whatever else the token says.
    Revoked,
    /// Issued under a generation newer than the one seen: the view is stale (the revocation
    /// and the new token happened elsewhere, or after it was read); read it again before
    /// judging. Against the generation just read from the store, this is refused too.
    Newer,
}

impl AccessClaims {
    /// The revocation rule: a token is accepted if and only if its generation equals the
    /// user's current one.
    pub fn check_generation(&self, current: TokenGeneration) -> GenerationCheck {
        match self.generation.cmp(&current) {
            std::cmp::Ordering::Equal => GenerationCheck::Current,
            std::cmp::Ordering::Less => GenerationCheck::Revoked,
            std::cmp::Ordering::Greater => GenerationCheck::Newer,
        }
    }
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
///
/// Whether a token is *used* in the sense of the reuse leeway — presented for a refresh, or the
/// access token issued with it presented on any request — is not loaded here: it is decided by
/// the store under the successor's row lock when a retry tries to void it
/// (`RefreshTokenRepository::replace_unused_successor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    /// Set once the token has been exchanged for a new pair, or voided by a retry within the
    /// reuse leeway.
    pub spent: bool,
    /// When the token was exchanged, and for which successor; `None` while unspent, and for a
    /// successor voided by a retry (which never counts as a retry itself).
    pub replaced: Option<Replacement>,
    /// Set once the family was revoked (logout, reuse, password change, deactivation).
    pub family_revoked: bool,
}

/// A spent token's rotation: when it happened and the token it issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replacement {
    pub at: DateTime<Utc>,
    pub successor: Uuid,
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
