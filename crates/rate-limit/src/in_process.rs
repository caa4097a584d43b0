//! The in-process store: buckets in this process's memory, shared by all its workers (the
//! default, right for a single instance).
//!
//! Built on governor: its keyed state store (a `DashMap` of atomic TATs, each updated by
//! compare-and-swap, so concurrent workers never lose a token), its clocks (a monotonic clock in
//! production, `FakeRelativeClock` in tests) and its eviction (`retain_recent`). Not
//! `governor::RateLimiter` itself: its outcomes hide the TAT, and the `RateLimit` header's `t`
//! (seconds until full) needs it; the arithmetic is `super::bucket`'s, which the Redis store
//! shares.
//!
//! Memory stays bounded by the callers active within a window: at most once a minute, a
//! check sweeps out every bucket whose TAT has passed (a full bucket is the same as none).

use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};

use super::Policy;
use orderly_domain::rate_limit::Decision;

use super::bucket::{NANOS, TokenBucket};

/// How often idle buckets are swept out, in nanoseconds.
const SWEEP_EVERY: u64 = 60 * NANOS;

/// Buckets in this process, keyed by `{policy}:{caller}`.
pub(crate) struct InProcessStore {
    buckets: DashMapStateStore<String>,
    /// Nanoseconds since the store was created, on its clock.
    now: Box<dyn Fn() -> u64 + Send + Sync>,
    /// When the next sweep is due, on the same scale.
    next_sweep: AtomicU64,
}

impl InProcessStore {
    /// A store on `clock`: governor's monotonic `DefaultClock` in production, its
    /// `FakeRelativeClock` in tests.
    pub(crate) fn with_clock<C>(clock: C) -> Self
    where
        C: Clock + Send + Sync + 'static,
    {
        let start = clock.now();
        Self {
            buckets: DashMapStateStore::default(),
            now: Box::new(move || clock.now().duration_since(start).as_u64()),
            next_sweep: AtomicU64::new(SWEEP_EVERY),
        }
    }

    /// Takes a token from `caller`'s bucket under `policy`.
    pub(crate) fn take(&self, policy: &Policy, caller: &str) -> Decision {
        let bucket = TokenBucket::for_policy(policy, NANOS);
        let now = (self.now)();
        self.sweep_if_due(now);
        let key = format!("{}:{caller}", policy.name.as_str());
        // Called again if another worker changed the bucket in between; a refusal writes nothing.
        let decided = self.buckets.measure_and_replace(&key, |tat| match bucket.take(tat.map(Nanos::as_u64), now) {
            (decision, Some(tat)) => Ok((decision, Nanos::new(tat))),
            (refused, None) => Err(refused),
        });
        decided.unwrap_or_else(|refused| refused)
    }

    /// How many buckets are held (full ones that were not swept yet included).
    #[cfg(test)]
    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&self.buckets)
    }

    fn sweep_if_due(&self, now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        // One check sweeps; the others carry on.
        if now < due
            || self.next_sweep.compare_exchange(due, now + SWEEP_EVERY, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        // A TAT at or before `now` is a full bucket: forgetting it changes no decision.
        self.buckets.retain_recent(Nanos::new(now));
        ShrinkableKeyedStateStore::shrink_to_fit(&self.buckets);
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::PolicyName;

    fn policy(limit: u32) -> Policy {
        Policy::per_minute(PolicyName::Default, NonZeroU32::new(limit).unwrap())
    }

    #[test]
    fn buckets_are_per_caller_and_refill_on_the_stores_clock() {
        let clock = FakeRelativeClock::default();
        let store = InProcessStore::with_clock(clock.clone());
        let policy = policy(2);
        assert!(store.take(&policy, "ip:203.0.113.7").allowed);
        assert!(store.take(&policy, "ip:203.0.113.7").allowed);
        let refused = store.take(&policy, "ip:203.0.113.7");
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(30));
        assert!(store.take(&policy, "ip:203.0.113.8").allowed, "another caller has its own bucket");

        clock.advance(Duration::from_secs(29));
        assert!(!store.take(&policy, "ip:203.0.113.7").allowed);
        clock.advance(Duration::from_secs(1));
        let refilled = store.take(&policy, "ip:203.0.113.7");
        assert!(refilled.allowed);
        assert_eq!((refilled.remaining, refilled.reset_after), (0, Duration::from_secs(60)));
    }

    #[test]
    fn policies_keep_separate_buckets_for_the_same_caller() {
        let store = InProcessStore::with_clock(FakeRelativeClock::default());
        let login = Policy::per_minute(PolicyName::Login, NonZeroU32::new(1).unwrap());
        assert!(store.take(&login, "ip:203.0.113.7").allowed);
        assert!(!store.take(&login, "ip:203.0.113.7").allowed);
        assert!(store.take(&policy(1), "ip:203.0.113.7").allowed);
    }

    #[test]
    fn full_buckets_are_swept_out_at_most_once_a_minute() {
        let clock = FakeRelativeClock::default();
        let store = InProcessStore::with_clock(clock.clone());
        let fast = policy(600);
        for caller in 0..100 {
            store.take(&fast, &format!("ip:192.0.2.{caller}"));
        }
        // Long past every fast bucket's refill (0.1 s), but before the first sweep is due.
        clock.advance(Duration::from_secs(30));
        let slow = policy(1);
        store.take(&slow, "user:busy");
        assert_eq!(store.len(), 101, "no sweep before a minute has passed");

        // The sweep drops the full buckets and keeps the one that is not full until 90 s.
        clock.advance(Duration::from_secs(30));
        store.take(&fast, "ip:192.0.2.200");
        assert_eq!(store.len(), 2, "only user:busy and the bucket just taken remain");
        assert!(!store.take(&slow, "user:busy").allowed, "a swept store still remembers a bucket in use");
    }
}
