//! The per-instance memory of the revocation check, and the check itself through mocked ports:
//! unconfigured mock methods panic when called, so "no I/O" is asserted by giving the stores no
//! expectations at all.

use std::sync::Arc;

use mockall::predicate::eq;

use super::*;
use crate::ports::{MockPasswordHasher, MockRefreshTokenRepository, MockTokenService, MockUserRepository};
use crate::services::fixtures::{fixed_clock, now};
use crate::user::Role;

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

/// Longer than any test: an entry read during the test stays fresh.
const A_MINUTE: Duration = Duration::from_secs(60);

/// A session service over the given user and refresh-token stores; nothing else is called.
fn sessions(users: MockUserRepository, refresh_tokens: MockRefreshTokenRepository) -> SessionService {
    SessionService::new(
        Arc::new(users),
        Arc::new(refresh_tokens),
        Arc::new(MockPasswordHasher::new()),
        Arc::new(MockTokenService::new()),
        fixed_clock(),
    )
}

/// A customer's token issued under `generation` together with refresh token `sid`.
fn claims(generation: TokenGeneration, sid: Option<Uuid>) -> AccessClaims {
    AccessClaims { user_id: user(), role: Role::Customer, generation, refresh_token_id: sid }
}

fn accepted(claims: AccessClaims) -> Admission {
    Admission::Accepted(Actor { user_id: claims.user_id, role: claims.role })
}

/// The store answers `generation` for the claims' user, `times` times.
fn expect_generation(users: &mut MockUserRepository, claims: AccessClaims, generation: TokenGeneration, times: usize) {
    users.expect_token_generation().with(eq(claims.user_id)).times(times).returning(move |_| Ok(Some(generation)));
}

#[test]
fn a_miss_reads_once_records_the_first_use_once_then_memory_answers_alone() {
    let sid = Uuid::now_v7();
    let ada = claims(2, Some(sid));
    let (mut users, mut refresh_tokens) = (MockUserRepository::new(), MockRefreshTokenRepository::new());
    expect_generation(&mut users, ada, 2, 1);
    refresh_tokens.expect_record_access_use().with(eq(sid), eq(now())).times(1).returning(|_, _| Ok(()));
    let (service, memory) = (sessions(users, refresh_tokens), GenerationCache::new(A_MINUTE, 10));

    assert_eq!(memory.admission(&ada), None, "nothing known yet");
    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
    assert_eq!(memory.admission(&ada), Some(accepted(ada)));
    assert_eq!(service.admit_access(ada, &memory), accepted(ada), "no second read or write");
}

#[test]
fn a_fresh_entry_refuses_an_older_token_without_io() {
    let ada = claims(1, Some(Uuid::now_v7()));
    let memory = GenerationCache::new(A_MINUTE, 10);
    memory.remember(ada.user_id, 2, Instant::now());
    let service = sessions(MockUserRepository::new(), MockRefreshTokenRepository::new());

    assert_eq!(memory.admission(&ada), Some(Admission::Revoked));
    assert_eq!(service.admit_access(ada, &memory), Admission::Revoked);
}

#[test]
fn a_token_newer_than_the_fresh_entry_is_read_again_at_once() {
    // Issued after a revocation that this instance's entry predates.
    let ada = claims(3, None);
    let memory = GenerationCache::new(A_MINUTE, 10);
    memory.remember(ada.user_id, 2, Instant::now());
    let mut users = MockUserRepository::new();
    expect_generation(&mut users, ada, 3, 1);
    let service = sessions(users, MockRefreshTokenRepository::new());

    assert_eq!(memory.admission(&ada), None);
    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
    assert_eq!(memory.fresh(ada.user_id, Instant::now()), Some(3));
}

#[test]
fn a_fresh_entry_with_an_unrecorded_use_only_writes() {
    let sid = Uuid::now_v7();
    let ada = claims(2, Some(sid));
    let memory = GenerationCache::new(A_MINUTE, 10);
    memory.remember(ada.user_id, 2, Instant::now());
    let mut refresh_tokens = MockRefreshTokenRepository::new();
    refresh_tokens.expect_record_access_use().with(eq(sid), eq(now())).times(1).returning(|_, _| Ok(()));
    let service = sessions(MockUserRepository::new(), refresh_tokens);

    assert_eq!(memory.admission(&ada), None, "the use must be recorded first");
    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
    assert!(memory.recorded_uses().contains(sid));
}

#[test]
fn an_unknown_user_is_revoked_and_nothing_is_remembered() {
    let ada = claims(0, None);
    let mut users = MockUserRepository::new();
    users.expect_token_generation().times(1).returning(|_| Ok(None));
    let memory = GenerationCache::new(A_MINUTE, 10);

    assert_eq!(sessions(users, MockRefreshTokenRepository::new()).admit_access(ada, &memory), Admission::Revoked);
    assert!(memory.is_empty());
}

#[test]
fn without_an_interval_every_check_reads() {
    let ada = claims(0, None);
    let mut users = MockUserRepository::new();
    expect_generation(&mut users, ada, 0, 2);
    let (service, memory) =
        (sessions(users, MockRefreshTokenRepository::new()), GenerationCache::new(Duration::ZERO, 10));

    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
    assert_eq!(memory.admission(&ada), None);
    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
}

#[test]
fn a_failed_read_is_never_accepted_and_tells_unreachable_from_broken() {
    let ada = claims(0, None);
    let mut users = MockUserRepository::new();
    let mut failures = [
        StoreError::Unavailable(anyhow::anyhow!("connection refused")),
        StoreError::Unexpected(anyhow::anyhow!("no such column")),
    ]
    .into_iter();
    users.expect_token_generation().times(2).returning(move |_| Err(failures.next().unwrap()));
    let (service, memory) = (sessions(users, MockRefreshTokenRepository::new()), GenerationCache::new(A_MINUTE, 10));

    assert_eq!(service.admit_access(ada, &memory), Admission::Unavailable);
    assert_eq!(service.admit_access(ada, &memory), Admission::Failed);
    assert!(memory.is_empty());
}

#[test]
fn a_use_that_cannot_be_recorded_is_not_admitted_and_is_tried_again() {
    let sid = Uuid::now_v7();
    let ada = claims(0, Some(sid));
    let mut users = MockUserRepository::new();
    expect_generation(&mut users, ada, 0, 1);
    let mut refresh_tokens = MockRefreshTokenRepository::new();
    let mut writes = [Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))), Ok(())].into_iter();
    refresh_tokens
        .expect_record_access_use()
        .with(eq(sid), eq(now()))
        .times(2)
        .returning(move |_, _| writes.next().unwrap());
    let (service, memory) = (sessions(users, refresh_tokens), GenerationCache::new(A_MINUTE, 10));

    assert_eq!(service.admit_access(ada, &memory), Admission::Unavailable);
    assert!(!memory.recorded_uses().contains(sid));
    // The generation read was remembered: only the write is repeated.
    assert_eq!(service.admit_access(ada, &memory), accepted(ada));
    assert!(memory.recorded_uses().contains(sid));
}
