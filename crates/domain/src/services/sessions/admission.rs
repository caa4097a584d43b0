//! Whether a validly signed access token has been revoked since it was issued, as one instance
//! judges it (docs/api.md#authentication-and-authorisation, ADR 0015). The rule is
//! [`SessionService::admit`] (accepted iff the token's generation is its user's current one);
//! what this module owns is how fresh the generation it is compared with must be, and recording
//! each access token's first use: [`SessionService::admit_access`], with this instance's memory
//! ([`GenerationCache`]), gives the [`Admission`].
//!
//! A read per request would make every authenticated request a database round trip, so each
//! instance keeps a [`GenerationCache`]: user id → (generation, when it was read), an entry
//! trusted for the check interval (`ORDERLY_REVOCATION_CHECK_INTERVAL`, 1 s by default) after
//! the read *began*. That interval is the bound the docs state: a revocation committed on
//! another instance reaches this one's cache within it. On a fresh entry:
//! - the token's generation equals it → accepted, no I/O;
//! - it is lower → revoked at once;
//! - it is higher → the entry is stale (the revocation and this token happened after the read,
//!   possibly on another instance): read it again now, so a token issued right after a
//!   revocation works at once, anywhere.
//!
//! A miss (or a stale entry) reads one row by primary key ([`SessionService::token_generation`]).
//! If the read fails, the token is not admitted: [`Admission::Unavailable`] when the store is
//! unreachable (inbound adapters answer 503 with `Retry-After`), [`Admission::Failed`] otherwise —
//! never "accept anyway". The instance that makes a revoking change forgets the user's entry at
//! once ([`GenerationCache::forget`]).
//!
//! A token admitted this way that names the refresh token issued with it (`sid`) has its first
//! use recorded against that refresh token ([`SessionService::record_access_use`]): either token
//! of a pair being used shows its answer arrived, which ends the refresh reuse leeway of the
//! token the pair replaced (ADR 0015). It is one conditional write per new access token per
//! instance, not one per request: each instance remembers, bounded, which tokens it recorded
//! ([`RecordedUses`]). Forgetting one costs only a repeated write that changes nothing. If the
//! write fails, the token is not admitted either, exactly as for a failed read, since admitting
//! it unrecorded would leave the leeway open to a thief replaying the spent token after the
//! client demonstrably got its answer.
//!
//! [`GenerationCache::admission`] answers from memory alone, with no I/O, when it can, so an
//! inbound adapter can judge most requests inline and run [`SessionService::admit_access`],
//! which may read and write the store, only where blocking is allowed.
//!
//! Must not touch: HTTP, the blocking pool, async runtimes — the memory is `std` maps behind
//! `std` mutexes, each held for one lookup or insert, never across a call to a port.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::SessionService;
use crate::Actor;
use crate::auth::{AccessClaims, GenerationCheck, TokenGeneration};
use crate::error::StoreError;
use crate::user::UserId;

/// What the revocation check decided for a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted(Actor),
    /// Revoked since it was issued (or its user no longer exists).
    Revoked,
    /// The store could not be reached ([`StoreError::Unavailable`]), so whether the token was
    /// revoked is unknown: not admitted, worth retrying.
    Unavailable,
    /// The store failed otherwise ([`StoreError::Unexpected`], logged where it happened).
    Failed,
}

/// Shards of the memory, each behind its own mutex held for a map lookup or insert only, so
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
    hasher: RandomState,
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
    hasher: RandomState,
    capacity_per_set: usize,
}

/// One shard of [`RecordedUses`]: the ids since the last turnover, and the ones before it.
#[derive(Debug, Default)]
struct RecentIds {
    current: HashSet<Uuid>,
    previous: HashSet<Uuid>,
}

impl RecordedUses {
    /// Remembers at most about `capacity` ids (a few dozen bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(RecentIds::default()))),
            hasher: RandomState::new(),
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
    /// How many users' generations one instance remembers by default, at most. An entry is a
    /// few dozen bytes; past the bound, expired entries go first, then the oldest.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A cache whose entries are trusted for `interval`; zero reads the generation on every
    /// check (and remembers nothing).
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(HashMap::new()))),
            hasher: RandomState::new(),
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

    /// The check's outcome if memory alone decides it, with no I/O: the generation is fresh and
    /// either revokes the token or is its own, and then its first use (if it names a refresh
    /// token) was recorded already. `None` when the store must be asked:
    /// [`SessionService::admit_access`].
    pub fn admission(&self, claims: &AccessClaims) -> Option<Admission> {
        match self.judge(claims, Instant::now())? {
            Admission::Accepted(actor) => match claims.refresh_token_id {
                Some(token) if !self.recorded.contains(token) => None,
                _ => Some(Admission::Accepted(actor)),
            },
            refused => Some(refused),
        }
    }

    /// The generation check against a fresh entry: `None` on a miss, or when the token is newer
    /// than the entry (which is then stale: read it again).
    fn judge(&self, claims: &AccessClaims, now: Instant) -> Option<Admission> {
        let known = self.fresh(claims.user_id, now)?;
        match claims.check_generation(known) {
            GenerationCheck::Current => Some(verdict(SessionService::admit(*claims, Some(known)))),
            GenerationCheck::Revoked => Some(Admission::Revoked),
            // Issued after the cached read: the entry is stale, read again.
            GenerationCheck::Newer => None,
        }
    }
}

impl SessionService {
    /// The revocation check of a verified access token (see the module docs): `memory` if it
    /// can answer, else one read of the user's generation; then, for an admitted token that
    /// names its refresh token, its first use recorded unless `memory` says it was. May read
    /// and write the store, so run it where blocking is allowed; [`GenerationCache::admission`]
    /// is the part that needs no I/O.
    pub fn admit_access(&self, claims: AccessClaims, memory: &GenerationCache) -> Admission {
        let judged = match memory.judge(&claims, Instant::now()) {
            Some(known) => known,
            None => self.read_generation(claims, memory),
        };
        match judged {
            Admission::Accepted(actor) => self.record_first_use(&claims, actor, memory),
            refused => refused,
        }
    }

    /// Judges the token against its user's generation read now, and remembers what was read.
    fn read_generation(&self, claims: AccessClaims, memory: &GenerationCache) -> Admission {
        let read_at = Instant::now();
        match self.token_generation(claims.user_id) {
            Ok(current) => {
                if let Some(current) = current {
                    memory.remember(claims.user_id, current, read_at);
                }
                verdict(Self::admit(claims, current))
            }
            Err(error) => store_failed(error, "reading a token generation"),
        }
    }

    /// Records the first use of an admitted access token against the refresh token it names
    /// (`sid`), unless this instance did already: one conditional write per new access token per
    /// instance. Until it is recorded the token is not admitted — a write that cannot be made
    /// is never "admit anyway", which would keep the reuse leeway open (ADR 0015).
    fn record_first_use(&self, claims: &AccessClaims, actor: Actor, memory: &GenerationCache) -> Admission {
        let Some(token) = claims.refresh_token_id else {
            // Issued before `sid` existed: there is nothing to record it against.
            return Admission::Accepted(actor);
        };
        let recorded = memory.recorded_uses();
        if recorded.contains(token) {
            return Admission::Accepted(actor);
        }
        match self.record_access_use(token) {
            Ok(()) => {
                recorded.insert(token);
                Admission::Accepted(actor)
            }
            Err(error) => store_failed(error, "recording an access token's use"),
        }
    }
}

fn verdict(rule: Result<Actor, crate::ports::TokenRejected>) -> Admission {
    rule.map_or(Admission::Revoked, Admission::Accepted)
}

/// The store could not answer: unreachable → [`Admission::Unavailable`], anything else →
/// [`Admission::Failed`]. Either way the token is not admitted.
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

#[cfg(test)]
mod tests;
