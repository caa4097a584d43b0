//! Logging in, refreshing and logging out (§1.6, §2.1).
//!
//! Rules owned here:
//! - a failed login looks the same whether the email is unknown, the password wrong or the
//!   account deactivated: same error, and the same argon2 work (a dummy hash for unknown emails);
//! - refresh tokens rotate on every use; presenting a spent token revokes its whole family;
//! - a deactivated user cannot refresh, and a refreshed access token carries the current role.

use std::sync::Arc;

use uuid::Uuid;

use crate::auth::{AccessClaims, NewRefreshToken, Rotation, StoredRefreshToken, TokenPair};
use crate::error::StoreError;
use crate::ports::{Clock, PasswordHasher, RefreshTokenRepository, TokenService, UserRepository};
use crate::user::{Email, User};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, spent, revoked, or its user is gone or deactivated.
    #[error("the refresh token is not valid")]
    InvalidToken,
    /// A spent token was presented again; its family is now revoked. Clients see the same
    /// answer as `InvalidToken`; the distinction exists so operators can log and count it.
    #[error("a spent refresh token was presented again; family {family_id} revoked")]
    ReuseDetected { family_id: Uuid },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct SessionService {
    users: Arc<dyn UserRepository>,
    refresh_tokens: Arc<dyn RefreshTokenRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    clock: Arc<dyn Clock>,
}

impl SessionService {
    pub fn new(
        users: Arc<dyn UserRepository>,
        refresh_tokens: Arc<dyn RefreshTokenRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, refresh_tokens, hasher, tokens, clock }
    }

    /// Exchanges credentials for a token pair in a new refresh-token family. `email` is the raw
    /// input: a malformed address is simply a failed login, not a validation error that would
    /// tell the caller something about the account space.
    pub fn login(&self, email: &str, password: &str) -> Result<TokenPair, LoginError> {
        let credentials = match Email::parse(email) {
            Ok(email) => self.users.find_credentials_by_email(&email)?,
            Err(_) => None,
        };
        // Always run one verification so that every failure costs the same time.
        let hash = credentials.as_ref().map_or_else(|| self.hasher.dummy_hash(), |c| c.password_hash.clone());
        let password_matches = self.hasher.verify(password, &hash)?;
        let user = match credentials {
            Some(credentials) if password_matches && credentials.user.active => credentials.user,
            _ => return Err(LoginError::InvalidCredentials),
        };
        let family_id = Uuid::now_v7();
        let (pair, token) = self.issue_pair(&user, family_id)?;
        self.refresh_tokens.start_family(&token)?;
        Ok(pair)
    }

    /// Spends a refresh token for a new pair in the same family.
    pub fn refresh(&self, presented: &str) -> Result<TokenPair, RefreshError> {
        let now = self.clock.now();
        let stored = self.usable_token(presented)?;
        if stored.spent {
            // A spent token came back: either its holder is replaying it or it was stolen.
            // Either way nobody in this family can be trusted any more.
            self.refresh_tokens.revoke_family(stored.family_id, now)?;
            return Err(RefreshError::ReuseDetected { family_id: stored.family_id });
        }
        let user = match self.users.find_by_id(stored.user_id)? {
            Some(user) if user.active => user,
            _ => return Err(RefreshError::InvalidToken),
        };
        let (pair, next) = self.issue_pair(&user, stored.family_id)?;
        match self.refresh_tokens.rotate(stored.id, &next, now)? {
            Rotation::Rotated => Ok(pair),
            Rotation::Lost => {
                // A concurrent request spent the same token first: that is reuse too.
                self.refresh_tokens.revoke_family(stored.family_id, now)?;
                Err(RefreshError::ReuseDetected { family_id: stored.family_id })
            }
        }
    }

    /// Revokes the family of a refresh token. Idempotent: an unknown, expired or already
    /// revoked token is not an error, so logout never tells an attacker what it held.
    pub fn logout(&self, presented: &str) -> Result<(), StoreError> {
        let hash = self.tokens.hash_refresh_token(presented);
        if let Some(stored) = self.refresh_tokens.find_by_hash(&hash)?
            && !stored.family_revoked
        {
            self.refresh_tokens.revoke_family(stored.family_id, self.clock.now())?;
        }
        Ok(())
    }

    /// Verifies an access token. Inbound adapters call this to establish the `Actor`.
    pub fn authenticate(&self, access_token: &str) -> Result<crate::Actor, crate::ports::TokenRejected> {
        let claims = self.tokens.verify_access_token(access_token, self.clock.now())?;
        Ok(crate::Actor { user_id: claims.user_id, role: claims.role })
    }

    /// Finds a presented token that could still be exchanged: known, unexpired, family
    /// unrevoked. A spent one is returned so the caller can treat it as reuse.
    fn usable_token(&self, presented: &str) -> Result<StoredRefreshToken, RefreshError> {
        let hash = self.tokens.hash_refresh_token(presented);
        let stored = self.refresh_tokens.find_by_hash(&hash)?.ok_or(RefreshError::InvalidToken)?;
        if stored.family_revoked || stored.expires_at <= self.clock.now() {
            return Err(RefreshError::InvalidToken);
        }
        Ok(stored)
    }

    fn issue_pair(&self, user: &User, family_id: Uuid) -> anyhow::Result<(TokenPair, NewRefreshToken)> {
        let now = self.clock.now();
        let access = self.tokens.issue_access_token(AccessClaims { user_id: user.id, role: user.role }, now)?;
        let (secret, hash) = self.tokens.mint_refresh_token()?;
        let lifetime = self.tokens.refresh_token_lifetime();
        let token = NewRefreshToken {
            id: Uuid::now_v7(),
            family_id,
            user_id: user.id,
            hash,
            issued_at: now,
            expires_at: now + lifetime,
        };
        let pair = TokenPair { access, refresh: secret, refresh_expires_in_seconds: lifetime.num_seconds() };
        Ok((pair, token))
    }
}

#[cfg(test)]
mod tests;
