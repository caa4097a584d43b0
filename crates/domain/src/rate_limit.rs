//! Rate limits (docs/api.md#rate-limiting, ADR 0009, ADR 0017): the policies, what checking a
//! request's buckets decided ([`Verdict`]), and the port [`RateLimiter`] the HTTP edge asks.
//!
//! Owns the rules that do not depend on where buckets live: a policy is `limit` requests per
//! one-minute window per key; `default` is drawn from per caller, `login` per client address
//! and only by the requests that hash a password; a refused request takes no token; when
//! several policies refuse, the client waits out the longest refusal; `Retry-After` is whole
//! seconds, at least one. Must not touch: how a bucket is stored or computed (the
//! `orderly-rate-limit` adapter: GCRA in process or in Redis), how a verdict is written on a
//! response (the HTTP adapter), which bucket keys a request has (the HTTP adapter knows the
//! caller's token and address; here a key is an opaque string).

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

/// The window of every policy: what "per minute" means, and the draft's `w`.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The name of a policy, as the response fields and the metrics write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyName {
    /// Every request, per caller.
    Default,
    /// Requests that hash a password (logging in, registering), per client address.
    Login,
}

impl PolicyName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Login => "login",
        }
    }
}

/// One policy: `limit` requests per `window`, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: PolicyName,
    pub limit: NonZeroU32,
    pub window: Duration,
}

impl Policy {
    pub fn per_minute(name: PolicyName, limit: NonZeroU32) -> Self {
        Self { name, limit, window: WINDOW }
    }
}

/// What taking a token from one bucket decided, and the bucket's state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// Until the next token is available: zero when allowed.
    pub retry_after: Duration,
}

impl Decision {
    /// Whole seconds, rounded up, until the bucket is full again (the draft's `t`).
    pub fn seconds_until_full(&self) -> u64 {
        whole_seconds_up(self.reset_after)
    }
}

/// One policy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub policy: Policy,
    pub decision: Decision,
}

impl Outcome {
    /// `Retry-After` for a refusal: whole seconds until a token is available, at least 1 (a
    /// client told 0 would retry at once and be refused again).
    pub fn retry_after_seconds(&self) -> u32 {
        u32::try_from(whole_seconds_up(self.decision.retry_after).max(1)).unwrap_or(u32::MAX)
    }
}

/// The decisions of every policy that applied and could be checked. A policy whose store
/// could not answer is absent: the request was not limited by it (failing open, ADR 0009).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    outcomes: Vec<Outcome>,
}

impl Verdict {
    pub fn new(outcomes: Vec<Outcome>) -> Self {
        Self { outcomes }
    }

    /// The refusal a client has to wait out, if any policy refused: the one with the longest
    /// wait, so that retrying after its `Retry-After` is not refused by another policy.
    pub fn refusal(&self) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .filter(|outcome| !outcome.decision.allowed)
            .max_by_key(|outcome| outcome.decision.retry_after)
    }

    /// Every policy that answered, in the order they were checked (`default` first).
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The decision of the policy `name`, if it answered.
    pub fn outcome(&self, name: PolicyName) -> Option<&Outcome> {
        self.outcomes.iter().find(|outcome| outcome.policy.name == name)
    }

    /// No policy answered: none applies, or none could be checked.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

/// The bucket keys of one request, chosen by the HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerKeys {
    /// The `default` bucket's: `user:{id}` for a valid bearer token, else the address key.
    pub caller: String,
    /// The `login` bucket's: `ip:{address}` (an IPv6 client's /64), or `ip:unknown`.
    pub address: String,
}

/// A check in flight. The one port that is not synchronous (ADR 0017): it is asked on every
/// request before any use case runs, and its shared store (Redis) answers over the network,
/// so it must not hold a blocking thread; the future is `std`'s, no runtime is named here.
pub type Checking<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// The rate limiter: token buckets for the configured policies, in whatever store the
/// operator chose. Promises: a refused request takes no token; each bucket is shared by every
/// worker (and, with a shared store, every instance); a check waits a bounded time and a
/// store that cannot answer leaves its policy out of the verdict rather than failing the
/// request.
pub trait RateLimiter: Send + Sync {
    /// Whether any policy is active; when none is, a request need not be checked at all.
    fn is_active(&self) -> bool;
    /// Takes a token from every bucket that applies: `keys.caller`'s `default` bucket and, when
    /// the request hashes a password, `keys.address`'s `login` bucket.
    fn check<'a>(&'a self, keys: &'a CallerKeys, hashes_a_password: bool) -> Checking<'a>;
}

/// The limiter when rate limiting is off: no policy, no fields on responses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRateLimits;

impl RateLimiter for NoRateLimits {
    fn is_active(&self) -> bool {
        false
    }

    fn check<'a>(&'a self, _keys: &'a CallerKeys, _hashes_a_password: bool) -> Checking<'a> {
        Box::pin(std::future::ready(Verdict::default()))
    }
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: PolicyName, allowed: bool, reset_ms: u64, retry_ms: u64) -> Outcome {
        Outcome {
            policy: Policy::per_minute(name, NonZeroU32::MIN),
            decision: Decision {
                allowed,
                remaining: 0,
                reset_after: Duration::from_millis(reset_ms),
                retry_after: Duration::from_millis(retry_ms),
            },
        }
    }

    #[test]
    fn the_longest_wait_is_the_refusal_and_retry_after_is_at_least_a_second() {
        let verdict = Verdict::new(vec![
            outcome(PolicyName::Default, false, 60_000, 100),
            outcome(PolicyName::Login, false, 60_000, 4_500),
        ]);
        let refusal = verdict.refusal().unwrap();
        assert_eq!(refusal.policy.name, PolicyName::Login);
        assert_eq!(refusal.retry_after_seconds(), 5);
        assert_eq!(verdict.outcome(PolicyName::Default).unwrap().retry_after_seconds(), 1);
        assert_eq!(outcome(PolicyName::Default, false, 0, 0).retry_after_seconds(), 1);
    }

    #[test]
    fn an_allowed_request_has_no_refusal_and_seconds_round_up() {
        let verdict = Verdict::new(vec![outcome(PolicyName::Default, true, 100, 0)]);
        assert!(verdict.refusal().is_none());
        assert_eq!(verdict.outcomes().first().map(|o| o.decision.seconds_until_full()), Some(1));
        assert_eq!(outcome(PolicyName::Default, true, 6_000, 0).decision.seconds_until_full(), 6);
        assert_eq!(outcome(PolicyName::Default, true, 0, 0).decision.seconds_until_full(), 0);
    }

    #[test]
    fn no_limits_is_inactive_and_answers_an_empty_verdict() {
        let keys = CallerKeys { caller: "ip:192.0.2.1".into(), address: "ip:192.0.2.1".into() };
        assert!(!NoRateLimits.is_active());
        let mut check = NoRateLimits.check(&keys, true);
        let waker = std::task::Waker::noop();
        let polled = check.as_mut().poll(&mut std::task::Context::from_waker(waker));
        assert!(matches!(polled, std::task::Poll::Ready(verdict) if verdict.is_empty()));
    }
}
