//! The token bucket, as arithmetic on one number per bucket, shared by both stores.
//!
//! A bucket holds up to `q` tokens and gains one every `w / q` (the *interval*); a request
//! takes one or is refused. Rather than a token count and a timestamp, a bucket is stored as
//! its *theoretical arrival time* (TAT, the GCRA formulation governor uses too): the instant
//! at which it will be full again. `TAT − now` is the bucket's *debt*: 0 when full, `q ×
//! interval` when empty. A request is allowed when taking one more interval of debt stays
//! within the capacity; then `TAT` moves one interval on. A refused request changes nothing.
//! An absent or past TAT is a full bucket, so a store may forget a bucket once its TAT has
//! passed — that is what makes eviction (and a TTL in Redis) safe.
//!
//! Time is in integer *ticks* of the store's clock (nanoseconds in process, microseconds from
//! Redis `TIME`), so the arithmetic is exact; the interval is rounded down to a whole tick
//! and the capacity is `q` whole intervals, so exactly `q` requests fit in an empty window.
//! The Lua script in `super::redis_store` is this function line for line; keep them together.

use std::num::NonZeroU32;
use std::time::Duration;

use orderly_domain::rate_limit::{Decision, Policy};

/// Ticks of a nanosecond clock per second.
pub(crate) const NANOS: u64 = 1_000_000_000;
/// Ticks of a microsecond clock per second.
pub(crate) const MICROS: u64 = 1_000_000;

/// One bucket's parameters, in ticks of a clock with `ticks_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenBucket {
    /// Ticks until one more token is available.
    interval: u64,
    /// Ticks of debt the bucket can take: `q` intervals.
    capacity: u64,
    ticks_per_second: u64,
}

impl TokenBucket {
    /// `policy`'s bucket on a clock with `ticks_per_second`.
    pub(crate) fn for_policy(policy: &Policy, ticks_per_second: u64) -> Self {
        Self::new(policy.limit, policy.window, ticks_per_second)
    }

    /// A bucket of `limit` tokens refilled over `window`, on a clock with `ticks_per_second`
    /// ([`NANOS`] or [`MICROS`]).
    pub(crate) fn new(limit: NonZeroU32, window: Duration, ticks_per_second: u64) -> Self {
        let window_ticks =
            u64::try_from(window.as_nanos() * u128::from(ticks_per_second) / u128::from(NANOS)).unwrap_or(u64::MAX);
        let interval = (window_ticks / u64::from(limit.get())).max(1);
        Self { interval, capacity: interval.saturating_mul(u64::from(limit.get())), ticks_per_second }
    }

    /// Ticks per token.
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }

    /// Ticks of debt an empty bucket has.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Takes a token at `now` from the bucket whose TAT is `tat` (`None`: never used or
    /// forgotten, i.e. full). Returns the decision and, when allowed, the TAT to store.
    pub(crate) fn take(&self, tat: Option<u64>, now: u64) -> (Decision, Option<u64>) {
        let tat = tat.unwrap_or(now).max(now);
        let debt = tat - now;
        let debt_after = debt.saturating_add(self.interval);
        if debt_after > self.capacity {
            let decision = self.decision(false, 0, debt, debt_after - self.capacity);
            return (decision, None);
        }
        let remaining = (self.capacity - debt_after) / self.interval;
        let remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
        (self.decision(true, remaining, debt_after, 0), Some(tat.saturating_add(self.interval)))
    }

    /// A decision from tick counts (as the Redis script returns them).
    pub(crate) fn decision(&self, allowed: bool, remaining: u32, reset_ticks: u64, retry_ticks: u64) -> Decision {
        Decision {
            allowed,
            remaining,
            reset_after: self.duration(reset_ticks),
            retry_after: self.duration(retry_ticks),
        }
    }

    fn duration(&self, ticks: u64) -> Duration {
        let nanos_per_tick = NANOS / self.ticks_per_second;
        Duration::from_secs(ticks / self.ticks_per_second)
            + Duration::from_nanos((ticks % self.ticks_per_second) * nanos_per_tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const SECOND: u64 = NANOS;

    fn bucket(limit: u32) -> TokenBucket {
        TokenBucket::new(NonZeroU32::new(limit).unwrap(), MINUTE, NANOS)
    }

    /// Takes `n` tokens at `now`, carrying the TAT along; returns the last decision and the TAT.
    fn take_n(bucket: &TokenBucket, mut tat: Option<u64>, now: u64, n: u32) -> (Decision, Option<u64>) {
        let mut last = None;
        for _ in 0..n {
            let (decision, stored) = bucket.take(tat, now);
            tat = stored.or(tat);
            last = Some(decision);
        }
        (last.unwrap(), tat)
    }

    #[test]
    fn a_fresh_bucket_lets_q_requests_through_then_refuses() {
        let bucket = bucket(600);
        let now = 5 * SECOND;
        let (first, tat) = bucket.take(None, now);
        assert_eq!(first.remaining, 599);
        assert!(first.allowed);
        assert_eq!(first.reset_after, Duration::from_millis(100), "one interval of 60 s / 600");
        assert_eq!(first.retry_after, Duration::ZERO);
        let (last, tat) = take_n(&bucket, tat, now, 599);
        assert!(last.allowed);
        assert_eq!((last.remaining, last.reset_after), (0, MINUTE));
        let (refused, stored) = bucket.take(tat, now);
        assert!(!refused.allowed);
        assert_eq!(stored, None, "a refusal changes nothing");
        assert_eq!((refused.remaining, refused.reset_after), (0, MINUTE));
        assert_eq!(refused.retry_after, Duration::from_millis(100));
    }

    #[test]
    fn tokens_come_back_one_interval_at_a_time() {
        let bucket = bucket(10); // one token every 6 s
        let (_, tat) = take_n(&bucket, None, 0, 10);
        let (refused, _) = bucket.take(tat, 5 * SECOND);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(refused.reset_after, Duration::from_secs(55));

        let (allowed, tat) = bucket.take(tat, 6 * SECOND);
        assert!(allowed.allowed);
        assert_eq!((allowed.remaining, allowed.reset_after), (0, MINUTE));

        // Half a minute later, five tokens are back (and this request takes one of them): 36 s
        // of debt, six intervals, until full again.
        let (later, _) = bucket.take(tat, 36 * SECOND);
        assert_eq!((later.remaining, later.reset_after), (4, Duration::from_secs(36)));
    }

    #[test]
    fn an_idle_bucket_is_full_and_never_holds_more_than_q() {
        let bucket = bucket(10);
        let (_, tat) = take_n(&bucket, None, 0, 3);
        let (decision, _) = bucket.take(tat, 3600 * SECOND);
        assert_eq!(decision.remaining, 9);
        assert_eq!(decision, bucket.take(None, 0).0, "a forgotten bucket is a full one");
    }

    #[test]
    fn limits_that_do_not_divide_the_window_still_allow_exactly_q() {
        for limit in [7, 13, 999_983, 1_000_000] {
            let bucket = bucket(limit);
            let (last, tat) = take_n(&bucket, None, SECOND, limit);
            assert!(last.allowed, "{limit}");
            assert!(!bucket.take(tat, SECOND).0.allowed, "{limit}");
            assert!(bucket.capacity() <= 60 * SECOND && 60 * SECOND - bucket.capacity() < u64::from(limit));
        }
    }

    #[test]
    fn microsecond_buckets_decide_the_same() {
        let micro = TokenBucket::new(NonZeroU32::new(10).unwrap(), MINUTE, MICROS);
        assert_eq!((micro.interval(), micro.capacity()), (6_000_000, 60_000_000));
        let (decision, tat) = micro.take(None, 1_700_000_000_000_000);
        assert_eq!(decision, bucket(10).take(None, 0).0);
        assert_eq!(tat, Some(1_700_000_006_000_000));
    }
}
