//! Logging in, refreshing and logging out (docs/api.md#authentication-and-authorisation, docs/api.md#users-and-tokens).
//!
//! Rules owned here:
//! - a failed login looks the same whether the email is unknown, the password wrong or the
//!   account deactivated: same error, and the same argon2 work (a dummy hash for unknown emails);
//! - refresh tokens rotate on every use; presenting a spent token revokes its whole family —
//!   except within the reuse leeway after its rotation while its successor is unused, when the
//!   presentation is taken for a retry of a refresh whose answer was lost: the unused successor
//!   is voided and a new pair answered, so the family still has one live token (ADR 0015).
//!   *Unused* means neither token of the successor pair was used: its refresh token was not
//!   presented, and no use of its access token was recorded — either shows the answer arrived;
//! - every access token names the refresh token issued with it, so that its first use can be
//!   recorded against that refresh token ([`SessionService::record_access_use`]);
//! - a deactivated user cannot refresh, and a refreshed access token carries the current role;
//! - an access token is accepted only while the token generation it was issued under is its
//!   user's current one: every revocation bumps the generation (ADR 0015). How fresh the
//!   generation an instance compares with must be, and recording each access token's first use
//!   once per instance, is [`admission`]'s ([`SessionService::admit_access`]).

pub mod admission;

use std::sync::Arc;

use uuid::Uuid;

use crate::auth::{
    AccessClaims, GenerationCheck, NewRefreshToken, Rotation, StoredRefreshToken, TokenGeneration, TokenPair,
};
use crate::error::StoreError;
use crate::ports::{Clock, PasswordHasher, RefreshTokenRepository, TokenRejected, TokenService, UserRepository};
use crate::services::SessionUseCases;
use crate::user::{Email, UserCredentials, UserId};

pub use admission::{Admission, GenerationCache, RecordedUses};

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

/// Why an access token was not accepted: refused, or its user's generation could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    #[error(transparent)]
    Rejected(#[from] TokenRejected),
    /// The store could not say whether the token was revoked. Never "accept anyway".
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct SessionService {
    users: Arc<dyn UserRepository>,
    refresh_tokens: Arc<dyn RefreshTokenRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    clock: Arc<dyn Clock>,
    refresh_reuse_leeway: chrono::Duration,
}

impl SessionService {
    pub fn new(
        users: Arc<dyn UserRepository>,
        refresh_tokens: Arc<dyn RefreshTokenRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, refresh_tokens, hasher, tokens, clock, refresh_reuse_leeway: Self::DEFAULT_REFRESH_REUSE_LEEWAY }
    }

    /// The "short reuse leeway" of docs/api.md#authentication-and-authorisation (ADR 0015): long
    /// enough for a client's retry after a lost answer, short enough that a stolen spent token is
    /// of little use.
    pub const DEFAULT_REFRESH_REUSE_LEEWAY: chrono::Duration = chrono::Duration::seconds(30);

    /// This service with another reuse leeway; zero turns it off (every reuse revokes).
    pub fn with_refresh_reuse_leeway(self, leeway: chrono::Duration) -> Self {
        Self { refresh_reuse_leeway: leeway.max(chrono::Duration::zero()), ..self }
    }

    /// The successor to void when a spent token is presented again within the leeway after
    /// its rotation: the presentation is taken for a retry of a refresh whose answer was lost.
    /// Not for a token voided by an earlier retry (it was never answered to anyone), and never
    /// once the leeway is over. Whether the successor is still unused is the store's to decide,
    /// under its row lock.
    fn retried_within_leeway(&self, stored: &StoredRefreshToken) -> Option<Uuid> {
        let replacement = stored.replaced?;
        (self.clock.now() < replacement.at + self.refresh_reuse_leeway).then_some(replacement.successor)
    }

    /// Answers a retry like the refresh it repeats: a new pair, whose refresh token replaces
    /// the unused `successor` (voided), so the family still has exactly one live token. If
    /// either token of the successor pair was used meanwhile (its refresh token presented, or
    /// its access token's use recorded), or another retry won the race, it is reuse after all.
    fn answer_retry(&self, stored: &StoredRefreshToken, successor: Uuid) -> Result<TokenPair, RefreshError> {
        let credentials = self.active_user(stored)?;
        let (pair, next) = self.issue_pair(&credentials, stored.family_id)?;
        match self.refresh_tokens.replace_unused_successor(stored.id, successor, &next, self.clock.now())? {
            Rotation::Rotated => Ok(pair),
            Rotation::Lost => Err(self.reuse_detected(stored)?),
        }
    }

    /// Revokes the family of a token presented when it must not have been.
    fn reuse_detected(&self, stored: &StoredRefreshToken) -> Result<RefreshError, StoreError> {
        self.refresh_tokens.revoke_family(stored.family_id, self.clock.now())?;
        Ok(RefreshError::ReuseDetected { family_id: stored.family_id })
    }

    /// The token's user, if they still exist and are active, with their token generation read
    /// in the same row as their role (so a token never pairs an old role with a new generation).
    fn active_user(&self, stored: &StoredRefreshToken) -> Result<UserCredentials, RefreshError> {
        match self.users.find_credentials_by_id(stored.user_id)? {
            Some(credentials) if credentials.user.active => Ok(credentials),
            _ => Err(RefreshError::InvalidToken),
        }
    }

    /// Records the first use of an access token issued together with refresh token
    /// `refresh_token_id` (its claims' `refresh_token_id`): from then on, that refresh token
    /// counts as used, and a retry of the refresh that issued it is reuse — the client got the
    /// answer (ADR 0015). Idempotent; callers record once per access token, not per request.
    /// A failure must not be ignored: the leeway would stay open.
    pub fn record_access_use(&self, refresh_token_id: Uuid) -> Result<(), StoreError> {
        self.refresh_tokens.record_access_use(refresh_token_id, self.clock.now())
    }

    /// The user's current token generation as stored; `None` if there is no such user.
    pub fn token_generation(&self, user: UserId) -> Result<Option<TokenGeneration>, StoreError> {
        self.users.token_generation(user)
    }

    /// The revocation rule, given the user's current generation as just read from the store
    /// (`None`: no such user): accepted if and only if the token's generation is the current
    /// one. A token newer than the store knows was not issued by it.
    pub fn admit(claims: AccessClaims, current: Option<TokenGeneration>) -> Result<crate::Actor, TokenRejected> {
        match current.map(|current| claims.check_generation(current)) {
            Some(GenerationCheck::Current) => Ok(crate::Actor { user_id: claims.user_id, role: claims.role }),
            Some(GenerationCheck::Revoked | GenerationCheck::Newer) | None => Err(TokenRejected::Revoked),
        }
    }

    /// Verifies an access token and checks it against its user's stored generation: one read
    /// per call. Inbound adapters that can afford a short staleness verify the token
    /// ([`Self::verify_access_token`]) and check it with [`Self::admit_access`] and a
    /// [`GenerationCache`] instead (ADR 0015).
    pub fn authenticate(&self, access_token: &str) -> Result<crate::Actor, AuthenticationError> {
        let claims = self.verify_access_token(access_token)?;
        let current = self.users.token_generation(claims.user_id)?;
        Ok(Self::admit(claims, current)?)
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

    fn issue_pair(
        &self,
        credentials: &UserCredentials,
        family_id: Uuid,
    ) -> anyhow::Result<(TokenPair, NewRefreshToken)> {
        let (user, generation) = (&credentials.user, credentials.token_generation);
        let now = self.clock.now();
        // The access token names the refresh token issued with it, so its first use can end
        // the reuse leeway of the token this pair replaces.
        let id = Uuid::now_v7();
        let claims = AccessClaims { user_id: user.id, role: user.role, generation, refresh_token_id: Some(id) };
        let access = self.tokens.issue_access_token(claims, now)?;
        let (secret, hash) = self.tokens.mint_refresh_token()?;
        let lifetime = self.tokens.refresh_token_lifetime();
        let token =
            NewRefreshToken { id, family_id, user_id: user.id, hash, issued_at: now, expires_at: now + lifetime };
        let pair = TokenPair { access, refresh: secret, refresh_expires_in_seconds: lifetime.num_seconds() };
        Ok((pair, token))
    }
}

impl SessionUseCases for SessionService {
    /// Exchanges credentials for a token pair in a new refresh-token family. `email` is the raw
    /// input: a malformed address is simply a failed login, not a validation error that would
    /// tell the caller something about the account space.
    fn login(&self, email: &str, password: &str) -> Result<TokenPair, LoginError> {
        let credentials = match Email::parse(email) {
            Ok(email) => self.users.find_credentials_by_email(&email)?,
            Err(_) => None,
        };
        // Always run one verification so that every failure costs the same time.
        let hash = credentials.as_ref().map_or_else(|| self.hasher.dummy_hash(), |c| c.password_hash.clone());
        let password_matches = self.hasher.verify(password, &hash)?;
        let credentials = match credentials {
            Some(credentials) if password_matches && credentials.user.active => credentials,
            _ => return Err(LoginError::InvalidCredentials),
        };
        let family_id = Uuid::now_v7();
        let (pair, token) = self.issue_pair(&credentials, family_id)?;
        self.refresh_tokens.start_family(&token)?;
        Ok(pair)
    }

    /// Spends a refresh token for a new pair in the same family.
    fn refresh(&self, presented: &str) -> Result<TokenPair, RefreshError> {
        let now = self.clock.now();
        let stored = self.usable_token(presented)?;
        if stored.spent {
            if let Some(successor) = self.retried_within_leeway(&stored) {
                return self.answer_retry(&stored, successor);
            }
            // A spent token came back: either its holder is replaying it or it was stolen.
            // Either way nobody in this family can be trusted any more.
            return Err(self.reuse_detected(&stored)?);
        }
        let credentials = self.active_user(&stored)?;
        let (pair, next) = self.issue_pair(&credentials, stored.family_id)?;
        match self.refresh_tokens.rotate(stored.id, &next, now)? {
            Rotation::Rotated => Ok(pair),
            // A concurrent request spent the same token first: that is reuse too.
            Rotation::Lost => Err(self.reuse_detected(&stored)?),
        }
    }

    /// Revokes the family of a refresh token, and with it (the user's generation bumped) the
    /// access tokens of its user. Idempotent: an unknown, expired or already revoked token is
    /// not an error, so logout never tells an attacker what it held. Answers whose tokens were
    /// revoked, so an adapter caching generations can forget that user at once.
    fn logout(&self, presented: &str) -> Result<Option<UserId>, StoreError> {
        let hash = self.tokens.hash_refresh_token(presented);
        if let Some(stored) = self.refresh_tokens.find_by_hash(&hash)?
            && !stored.family_revoked
        {
            self.refresh_tokens.revoke_family(stored.family_id, self.clock.now())?;
            return Ok(Some(stored.user_id));
        }
        Ok(None)
    }

    /// Checks an access token's signature and claims: no I/O. Whether it was revoked since is
    /// [`Self::admit`]'s question, against the user's generation.
    fn verify_access_token(&self, access_token: &str) -> Result<AccessClaims, TokenRejected> {
        self.tokens.verify_access_token(access_token, self.clock.now())
    }

    // The body stays in `admission`, beside the private steps it runs.
    fn admit_access(&self, claims: AccessClaims, memory: &GenerationCache) -> Admission {
        Self::admit_access(self, claims, memory)
    }
}

#[cfg(test)]
mod tests;
