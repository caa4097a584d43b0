//! Whether a validly signed access token has been revoked since it was issued
//! (docs/api.md#authentication-and-authorisation, ADR 0015): the [`admit`] middleware judges the
//! request's bearer token against its user's token generation and leaves the outcome in the
//! request's extensions ([`Admission`]), where the `Caller` extractors (`crate::extract::caller`)
//! read it. The rule is the domain's (`SessionService::admit`: accepted iff the token's generation
//! is the current one); what this module owns is how fresh the generation it is compared with must
//! be.
//!
//! A read per request would make every authenticated request a database round trip, so each
//! instance keeps a [`GenerationCache`]: user id → (generation, when it was read), an entry
//! trusted for the check interval (`ORDERLY_REVOCATION_CHECK_INTERVAL`, 1 s by default) after
//! the read *began*. That interval is the bound the docs state: a revocation committed on
//! another instance reaches this one's cache within it. On a fresh entry:
//! - the token's generation equals it → accepted, no I/O;
//! - it is lower → revoked: 401 at once;
//! - it is higher → the entry is stale (the revocation and this token happened after the read,
//!   possibly on another instance): read it again now, so a token issued right after a
//!   revocation works at once, anywhere.
//!
//! A miss (or a stale entry) reads one row by primary key on the blocking pool under the
//! database bound (ADR 0011). If the read fails, the request cannot be authenticated: 503
//! `service_unavailable` with `Retry-After` (never "accept anyway", never a 500 for an
//! unreachable database). The instance that makes a revoking change forgets the user's entry at
//! once ([`GenerationCache::forget`]).
//!
//! A token admitted this way that names the refresh token issued with it (`sid`) has its first
//! use recorded against that refresh token ([`SessionService::record_access_use`]): either token
//! of a pair being used shows its answer arrived, which ends the refresh reuse leeway of the
//! token the pair replaced (ADR 0015). It is one conditional write per new access token per
//! instance, not one per request: each instance remembers, bounded, which tokens it recorded
//! ([`RecordedUses`]). Forgetting one costs only a repeated write that changes nothing. If the
//! write fails, the request is not authenticated either — 503 with `Retry-After` when the
//! database is unreachable — since admitting it unrecorded would leave the leeway open to a
//! thief replaying the spent token after the client demonstrably got its answer.
//!
//! It runs in the middleware rather than in the extractor, innermost, after the rate limit: the
//! extractors stay synchronous (the `FromRequest` API of handlers is unchanged), and a request
//! refused for its rate never costs a read.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use orderly_domain::auth::{AccessClaims, GenerationCheck, TokenGeneration};
use orderly_domain::services::SessionService;
use orderly_domain::user::UserId;
use orderly_domain::{Actor, StoreError};
use uuid::Uuid;

use crate::ApiState;
use crate::blocking::Needs;
use crate::extract::caller::verified_claims;

/// How many users' generations one instance remembers, at most. An entry is a few dozen
/// bytes; past the bound, expired entries go first, then the oldest.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Shards of the cache, each behind its own mutex held for a map lookup or insert only, so
/// workers rarely wait on one another.
const SHARDS: usize = 16;

/// The shard `key` hashes to.
fn shard_for<'s, T>(shards: &'s [T; SHARDS], hasher: &impl BuildHasher, key: impl Hash) -> &'s T {
    // The modulo keeps the index below SHARDS, so the cast cannot truncate a used value and
    // `get` always finds the shard; the first is there only to make that total.
    #[allow(clippy::cast_possible_truncation)]
    let index = (hasher.hash_one(key) % SHARDS as u64) as usize;
    let [first, ..] = shards;
    shards.get(index).unwrap_or(first)
}

/// What the revocation check decided for the request's token, for the extractors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted(Actor),
    /// Revoked since it was issued (or its user no longer exists): 401 `invalid_token`.
    Revoked,
    /// The generation could not be read: 503 with `Retry-After`.
    Unavailable,
    /// The read failed otherwise (logged where it happened): 500.
    Failed,
}

/// A user's generation as read, and when the read began.
#[derive(Debug, Clone, Copy)]
struct Entry {
    generation: TokenGeneration,
    read_at: Instant,
}

/// Per-instance memory of users' token generations (see the module docs), and of which
/// access tokens' first use this instance has recorded ([`RecordedUses`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct GenerationCache {
    shards: Arc<[Mutex<HashMap<UserId, Entry>>; SHARDS]>,
    hasher: std::collections::hash_map::RandomState,
    interval: Duration,
    capacity_per_shard: usize,
    recorded: RecordedUses,
}

/// The refresh tokens (by id, an access token's `sid`) whose access token's use this instance
/// has recorded, so a token is recorded once per instance rather than on every request.
/// Bounded to the capacity it is given: per shard, the ids recorded since the last turnover and
/// the ones before it; when the current set is full it becomes the previous one and the older
/// ids are dropped. A dropped id still in use is simply recorded again — a conditional write
/// that changes nothing. Remembering is safe whatever the check interval: a recorded use is
/// never undone. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RecordedUses {
    shards: Arc<[Mutex<RecentIds>; SHARDS]>,
    hasher: std::collections::hash_map::RandomState,
    capacity_per_set: usize,
}

/// One shard of [`RecordedUses`]: the ids since the last turnover, and the ones before it.
#[derive(Debug, Default)]
struct RecentIds {
    current: std::collections::HashSet<Uuid>,
    previous: std::collections::HashSet<Uuid>,
}

impl RecordedUses {
    /// Remembers at most about `capacity` ids (a few dozen bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(RecentIds::default()))),
            hasher: std::collections::hash_map::RandomState::new(),
            // Two sets per shard, each holding half the shard's share.
            capacity_per_set: capacity.div_ceil(SHARDS * 2).max(1),
        }
    }

    fn shard(&self, token: Uuid) -> &Mutex<RecentIds> {
        shard_for(&self.shards, &self.hasher, token)
    }

    /// Whether this instance has recorded the use of the access token naming `token`.
    pub fn contains(&self, token: Uuid) -> bool {
        let shard = self.shard(token).lock().unwrap_or_else(PoisonError::into_inner);
        shard.current.contains(&token) || shard.previous.contains(&token)
    }

    /// Remembers that the use was recorded.
    pub fn insert(&self, token: Uuid) {
        let mut shard = self.shard(token).lock().unwrap_or_else(PoisonError::into_inner);
        if shard.previous.contains(&token) {
            return;
        }
        if shard.current.len() >= self.capacity_per_set && !shard.current.contains(&token) {
            shard.previous = std::mem::take(&mut shard.current);
        }
        shard.current.insert(token);
    }

    /// How many ids are remembered (for tests and curiosity).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                shard.current.len() + shard.previous.len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GenerationCache {
    /// A cache whose entries are trusted for `interval`; zero reads the generation on every
    /// request (and remembers nothing).
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(HashMap::new()))),
            hasher: std::collections::hash_map::RandomState::new(),
            interval,
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
            recorded: RecordedUses::new(capacity),
        }
    }

    /// Which access tokens' first use this instance has recorded.
    pub fn recorded_uses(&self) -> &RecordedUses {
        &self.recorded
    }

    /// How long an entry is trusted: the bound within which a revocation reaches this instance.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn shard(&self, user: UserId) -> &Mutex<HashMap<UserId, Entry>> {
        shard_for(&self.shards, &self.hasher, user)
    }

    /// The user's generation if it was read less than the interval ago.
    pub fn fresh(&self, user: UserId, now: Instant) -> Option<TokenGeneration> {
        let shard = self.shard(user).lock().unwrap_or_else(PoisonError::into_inner);
        shard.get(&user).filter(|entry| now.duration_since(entry.read_at) < self.interval).map(|entry| entry.generation)
    }

    /// Remembers a generation whose read began at `read_at`, unless a later read is already
    /// remembered. Freshness runs from the start of the read, so a slow read of a value that a
    /// revocation has since overtaken is trusted no longer than the interval after that
    /// revocation committed.
    pub fn remember(&self, user: UserId, generation: TokenGeneration, read_at: Instant) {
        if self.interval.is_zero() {
            return;
        }
        let mut shard = self.shard(user).lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = shard.get(&user)
            && known.read_at > read_at
        {
            return;
        }
        if shard.len() >= self.capacity_per_shard && !shard.contains_key(&user) {
            let interval = self.interval;
            shard.retain(|_, entry| read_at.saturating_duration_since(entry.read_at) < interval);
            if shard.len() >= self.capacity_per_shard
                && let Some(oldest) = shard.iter().min_by_key(|(_, entry)| entry.read_at).map(|(id, _)| *id)
            {
                shard.remove(&oldest);
            }
        }
        shard.insert(user, Entry { generation, read_at });
    }

    /// Drops what this instance knows of the user: called where this instance has just made a
    /// revoking change, so it is not trusted a moment longer.
    pub fn forget(&self, user: UserId) {
        self.shard(user).lock().unwrap_or_else(PoisonError::into_inner).remove(&user);
    }

    /// How many users are remembered (for tests and curiosity).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
        let admission = match judge(&state, claims).await {
            Admission::Accepted(actor) => record_first_use(&state, &claims, actor).await,
            refused => refused,
        };
        req.extensions_mut().insert(admission);
    }
    next.call(req).await
}

/// The revocation check of one verified token: the cache if it can answer, else one read.
async fn judge(state: &ApiState, claims: AccessClaims) -> Admission {
    let cache = &state.revocations;
    if let Some(known) = cache.fresh(claims.user_id, Instant::now()) {
        match claims.check_generation(known) {
            GenerationCheck::Current => return admitted(claims, known),
            GenerationCheck::Revoked => return Admission::Revoked,
            // Issued after the cached read: the entry is stale, read again.
            GenerationCheck::Newer => {}
        }
    }
    let read_at = Instant::now();
    let sessions = state.sessions.clone();
    let user = claims.user_id;
    let read = state.blocking.run(Needs::Database, move || sessions.token_generation(user)).await;
    match read {
        Ok(Ok(current)) => {
            if let Some(current) = current {
                cache.remember(user, current, read_at);
            }
            match SessionService::admit(claims, current) {
                Ok(actor) => Admission::Accepted(actor),
                Err(_) => Admission::Revoked,
            }
        }
        Ok(Err(error)) => store_failed(error, "reading a token generation"),
        Err(error) => pool_failed(&error, "reading a token generation"),
    }
}

/// Records the first use of an admitted access token against the refresh token it names
/// (`sid`), unless this instance did already: one conditional write per new access token per
/// instance. Until it is recorded the request is not authenticated — a write that cannot be
/// made is a 503, never "admit anyway", which would keep the reuse leeway open (ADR 0015).
async fn record_first_use(state: &ApiState, claims: &AccessClaims, actor: Actor) -> Admission {
    let Some(token) = claims.refresh_token_id else {
        // Issued before `sid` existed: there is nothing to record it against.
        return Admission::Accepted(actor);
    };
    let recorded = state.revocations.recorded_uses();
    if recorded.contains(token) {
        return Admission::Accepted(actor);
    }
    let sessions = state.sessions.clone();
    let write = state.blocking.run(Needs::Database, move || sessions.record_access_use(token)).await;
    match write {
        Ok(Ok(())) => {
            recorded.insert(token);
            Admission::Accepted(actor)
        }
        Ok(Err(error)) => store_failed(error, "recording an access token's use"),
        Err(error) => pool_failed(&error, "recording an access token's use"),
    }
}

/// The store could not answer: unreachable → 503 (the request is not authenticated), anything
/// else → 500.
fn store_failed(error: StoreError, doing: &'static str) -> Admission {
    match error {
        StoreError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "{doing}: the database is unreachable; the request is not authenticated");
            Admission::Unavailable
        }
        StoreError::Unexpected(cause) => {
            tracing::error!(error = ?cause, "{doing} failed");
            Admission::Failed
        }
    }
}

/// The blocking pool refused (saturated: a 503 already) or failed.
fn pool_failed(error: &crate::problem::ApiError, doing: &'static str) -> Admission {
    if actix_web::ResponseError::status_code(error) == StatusCode::SERVICE_UNAVAILABLE {
        return Admission::Unavailable;
    }
    tracing::error!(error = %error, "the blocking pool failed {doing}");
    Admission::Failed
}

fn admitted(claims: AccessClaims, current: TokenGeneration) -> Admission {
    match SessionService::admit(claims, Some(current)) {
        Ok(actor) => Admission::Accepted(actor),
        Err(_) => Admission::Revoked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::new()
    }

    #[test]
    fn an_entry_is_fresh_for_the_interval_from_the_start_of_its_read() {
        let cache = GenerationCache::new(Duration::from_secs(1), 10);
        let (ada, start) = (user(), Instant::now());
        cache.remember(ada, 3, start);
        assert_eq!(cache.fresh(ada, start + Duration::from_millis(999)), Some(3));
        assert_eq!(cache.fresh(ada, start + Duration::from_secs(1)), None);
    }

    #[test]
    fn an_older_read_never_overwrites_a_newer_one() {
        let cache = GenerationCache::new(Duration::from_secs(1), 10);
        let (ada, start) = (user(), Instant::now());
        cache.remember(ada, 4, start + Duration::from_millis(10));
        cache.remember(ada, 3, start);
        assert_eq!(cache.fresh(ada, start + Duration::from_millis(20)), Some(4));
    }

    #[test]
    fn forgetting_drops_the_entry_and_a_zero_interval_remembers_nothing() {
        let cache = GenerationCache::new(Duration::from_secs(1), 10);
        let (ada, now) = (user(), Instant::now());
        cache.remember(ada, 1, now);
        cache.forget(ada);
        assert_eq!(cache.fresh(ada, now), None);

        let uncached = GenerationCache::new(Duration::ZERO, 10);
        uncached.remember(ada, 1, now);
        assert!(uncached.is_empty());
    }

    #[test]
    fn recorded_uses_are_remembered_bounded_and_the_newest_kept() {
        // At most two sets of one id per shard.
        let recorded = RecordedUses::new(SHARDS * 2);
        let first = Uuid::now_v7();
        recorded.insert(first);
        assert!(recorded.contains(first));
        recorded.insert(first);
        assert_eq!(recorded.len(), 1, "inserting twice remembers once");
        for _ in 0..(SHARDS * 20) {
            recorded.insert(Uuid::now_v7());
        }
        assert!(recorded.len() <= SHARDS * 2, "{} ids", recorded.len());
        let newest = Uuid::now_v7();
        recorded.insert(newest);
        assert!(recorded.contains(newest));
        assert!(!RecordedUses::new(10).contains(newest));
    }

    #[test]
    fn the_size_is_bounded_expired_entries_first_then_the_oldest() {
        // One entry per shard at most.
        let cache = GenerationCache::new(Duration::from_secs(1), SHARDS);
        let start = Instant::now();
        for i in 0..(SHARDS * 20) {
            cache.remember(user(), 0, start + Duration::from_millis(i as u64));
        }
        assert!(cache.len() <= SHARDS, "{} entries", cache.len());
        let newest = user();
        cache.remember(newest, 9, start + Duration::from_secs(5));
        assert_eq!(cache.fresh(newest, start + Duration::from_secs(5)), Some(9));
    }
}
