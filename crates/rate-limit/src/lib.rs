//! The rate-limit adapter (docs/api.md#rate-limiting, ADR 0009, ADR 0017): token buckets for
//! the domain's policies, in process or in Redis, behind the domain's port
//! [`orderly_domain::rate_limit::RateLimiter`], which [`RateLimits`] implements. The rules
//! (policies, verdicts, which refusal a client waits out) are the domain's; which buckets a
//! request draws from and how a verdict becomes headers or a 429 are the HTTP adapter's.
//!
//! Owns:
//!
//! - **Buckets** (`bucket`): `q` tokens refilled evenly over `w` = 60 s, as one number per
//!   bucket (the time it is full again, GCRA), so both stores share exact arithmetic.
//! - **Stores.** In process (`in_process`, governor's keyed state store; the default) or in
//!   Redis (`redis_store`, one atomic Lua script per check, shared by every instance). Either is
//!   built once, outside `HttpServer::new`, and shared by every worker: built per worker, each
//!   worker would have its own buckets and a limit would be multiplied by the number of workers.
//! - **Failing open** (ADR 0009). When Redis cannot answer quickly, that policy is left out of
//!   the verdict (the request goes through unchecked, with no RateLimit fields for it): an
//!   outage of the limiter must not become an outage of the API. The counter
//!   [`BACKEND_ERRORS_METRIC`] counts such checks; a warning is logged at most every 10 s.
//!
//! Must not touch: actix, HTTP requests or responses, the database.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod bucket;
mod in_process;
mod redis_store;

use in_process::InProcessStore;
use orderly_domain::rate_limit::{CallerKeys, Checking, Decision, Outcome, Policy, PolicyName, RateLimiter, Verdict};
use redis_store::RedisStore;

/// Counter of checks the store could not answer (Redis down, slow or failing); each such
/// request was let through unchecked.
pub const BACKEND_ERRORS_METRIC: &str = "rate_limit_backend_errors_total";

/// At most one warning about an unavailable store per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Describes this module's metrics to the installed recorder (call once, after installing it).
pub fn describe_metrics() {
    metrics::describe_counter!(
        BACKEND_ERRORS_METRIC,
        "Rate-limit checks the store could not answer; those requests were let through unchecked."
    );
}

/// Requests per minute of each policy, from configuration; 0 turns a policy off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// `default`: per caller (user id, else client address).
    pub requests_per_minute: u32,
    /// `login`: `POST /v1/auth/tokens` and `POST /v1/users` together, per client address.
    pub logins_per_minute: u32,
}

/// The configured policies and the store their buckets live in: the [`RateLimiter`] the
/// server gives the HTTP adapter.
/// Cheap to clone: clones share the buckets. Build it once per process, outside the worker
/// factory.
#[derive(Clone)]
pub struct RateLimits {
    /// `None`: no policy is active.
    limiter: Option<Arc<Limiter>>,
}

struct Limiter {
    per_caller: Option<Policy>,
    login: Option<Policy>,
    store: Store,
    failures: BackendFailures,
}

enum Store {
    InProcess(InProcessStore),
    // Boxed: the store is large (client, script, connection slot) and the enum is matched per request.
    Redis(Box<RedisStore>),
}

impl RateLimits {
    /// Every quota 0: no limit and no RateLimit fields. (With no limits configured at all,
    /// the server could as well pass the domain's `NoRateLimits`; this is the same answer.)
    fn off() -> Self {
        Self { limiter: None }
    }

    /// Buckets in this process, on governor's monotonic clock.
    pub fn in_process(quotas: Quotas) -> Self {
        Self::in_process_with_clock(quotas, governor::clock::DefaultClock::default())
    }

    /// Buckets in this process on `clock`: governor's `FakeRelativeClock` lets a test move
    /// time on instead of waiting.
    pub fn in_process_with_clock<C>(quotas: Quotas, clock: C) -> Self
    where
        C: governor::clock::Clock + Send + Sync + 'static,
    {
        Self::with_store(quotas, Store::InProcess(InProcessStore::with_clock(clock)))
    }

    /// Buckets in the Redis at `url`, under keys starting with `key_prefix`, shared with every
    /// instance configured alike. Does not connect: Redis may be down now and up later. Fails
    /// only when `url` is not a Redis URL.
    pub fn redis(quotas: Quotas, url: &str, key_prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(Self::with_store(quotas, Store::Redis(Box::new(RedisStore::new(url, key_prefix)?))))
    }

    fn with_store(quotas: Quotas, store: Store) -> Self {
        let per_caller =
            NonZeroU32::new(quotas.requests_per_minute).map(|q| Policy::per_minute(PolicyName::Default, q));
        let login = NonZeroU32::new(quotas.logins_per_minute).map(|q| Policy::per_minute(PolicyName::Login, q));
        if per_caller.is_none() && login.is_none() {
            tracing::info!("rate limiting is off");
            return Self::off();
        }
        let store_name = match store {
            Store::InProcess(_) => "in process",
            Store::Redis(_) => "redis",
        };
        tracing::info!(
            requests_per_minute = quotas.requests_per_minute,
            logins_per_minute = quotas.logins_per_minute,
            store = store_name,
            "rate limiting is on"
        );
        Self { limiter: Some(Arc::new(Limiter { per_caller, login, store, failures: BackendFailures::new() })) }
    }

    /// Takes a token from every bucket that applies: the caller's `default` bucket, and on the
    /// login and registration routes (`hashes_a_password`) the address's `login` bucket. A
    /// store failure leaves that policy out.
    async fn take_tokens(&self, callers: &CallerKeys, hashes_a_password: bool) -> Verdict {
        let Some(limiter) = &self.limiter else { return Verdict::default() };
        let login = if hashes_a_password { limiter.login } else { None };
        let mut outcomes = Vec::with_capacity(2);
        for (policy, key) in [(limiter.per_caller, &callers.caller), (login, &callers.address)] {
            let Some(policy) = policy else { continue };
            match limiter.store.take(&policy, key).await {
                Ok(decision) => outcomes.push(Outcome { policy, decision }),
                Err(error) => limiter.failures.record(policy.name, &error),
            }
        }
        Verdict::new(outcomes)
    }
}

impl RateLimiter for RateLimits {
    fn is_active(&self) -> bool {
        self.limiter.is_some()
    }

    fn check<'a>(&'a self, keys: &'a CallerKeys, hashes_a_password: bool) -> Checking<'a> {
        Box::pin(self.take_tokens(keys, hashes_a_password))
    }
}

impl Store {
    async fn take(&self, policy: &Policy, key: &str) -> anyhow::Result<Decision> {
        match self {
            Self::InProcess(store) => Ok(store.take(policy, key)),
            Self::Redis(store) => store.take(policy, key).await,
        }
    }
}

/// Counts store failures and logs them without flooding the log during an outage.
struct BackendFailures {
    since: Instant,
    /// Milliseconds after `since` of the last warning; [`Self::NEVER`] before the first.
    last_warning_ms: AtomicU64,
    /// Failures since the last warning, which did not log one.
    unreported: AtomicU64,
}

impl BackendFailures {
    const NEVER: u64 = u64::MAX;

    fn new() -> Self {
        Self { since: Instant::now(), last_warning_ms: AtomicU64::new(Self::NEVER), unreported: AtomicU64::new(0) }
    }

    fn record(&self, policy: PolicyName, error: &anyhow::Error) {
        metrics::counter!(BACKEND_ERRORS_METRIC).increment(1);
        let now_ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        let due =
            last == Self::NEVER || now_ms.saturating_sub(last) >= u64::try_from(WARN_EVERY.as_millis()).unwrap_or(0);
        if due && self.last_warning_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let unreported = self.unreported.swap(0, Ordering::Relaxed);
            tracing::warn!(
                policy = policy.as_str(),
                error = format!("{error:#}"),
                unreported_failures = unreported,
                "the rate-limit store cannot be reached; requests are let through unchecked"
            );
        } else {
            self.unreported.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(caller: &str, address: &str) -> CallerKeys {
        CallerKeys { caller: caller.to_owned(), address: address.to_owned() }
    }

    #[tokio::test]
    async fn a_quota_of_zero_turns_its_policy_off() {
        let quotas = |requests_per_minute, logins_per_minute| Quotas { requests_per_minute, logins_per_minute };
        assert!(!RateLimits::in_process(quotas(0, 0)).is_active());
        assert!(!RateLimits::off().is_active());

        let only_logins = RateLimits::in_process(quotas(0, 3));
        let at = keys("ip:192.0.2.1", "ip:192.0.2.1");
        assert!(only_logins.check(&at, false).await.is_empty(), "no default policy");
        let names: Vec<_> = only_logins.check(&at, true).await.outcomes().iter().map(|o| o.policy.name).collect();
        assert_eq!(names, [PolicyName::Login]);

        let only_default = RateLimits::in_process(quotas(5, 0));
        let names: Vec<_> = only_default.check(&at, true).await.outcomes().iter().map(|o| o.policy.name).collect();
        assert_eq!(names, [PolicyName::Default]);
    }

    #[tokio::test]
    async fn the_login_bucket_is_keyed_by_address_and_the_default_one_by_caller() {
        let limits = RateLimits::in_process(Quotas { requests_per_minute: 100, logins_per_minute: 1 });
        let first = limits.check(&keys("user:ada", "ip:192.0.2.1"), true).await;
        assert!(first.refusal().is_none());
        // Another user from the same address: a fresh default bucket, the same login bucket.
        let second = limits.check(&keys("user:bob", "ip:192.0.2.1"), true).await;
        assert_eq!(second.refusal().map(|outcome| outcome.policy.name), Some(PolicyName::Login));
        let (default, login) = (second.outcome(PolicyName::Default), second.outcome(PolicyName::Login));
        assert_eq!(default.map(|o| o.decision.remaining), Some(99));
        assert_eq!(login.map(|o| o.decision.remaining), Some(0));
    }

    #[test]
    fn store_failures_warn_once_and_count_the_rest_until_the_next_warning() {
        let failures = BackendFailures::new();
        let error = anyhow::anyhow!("connection refused");
        failures.record(PolicyName::Default, &error);
        assert_ne!(failures.last_warning_ms.load(Ordering::Relaxed), BackendFailures::NEVER);
        for _ in 0..4 {
            failures.record(PolicyName::Login, &error);
        }
        // Ten seconds have not passed (the test takes milliseconds): no further warning.
        assert_eq!(failures.unreported.load(Ordering::Relaxed), 4);

        // Once they have, the next failure warns and reports the ones in between.
        let failures = BackendFailures { since: failures.since - WARN_EVERY, ..failures };
        failures.last_warning_ms.store(0, Ordering::Relaxed);
        failures.record(PolicyName::Default, &error);
        assert_eq!(failures.unreported.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_left_out_of_the_verdict() {
        let limits =
            RateLimits::redis(Quotas { requests_per_minute: 1, logins_per_minute: 1 }, "redis://127.0.0.1:1", "t:")
                .unwrap();
        let at = keys("ip:192.0.2.1", "ip:192.0.2.1");
        for _ in 0..3 {
            assert!(limits.check(&at, true).await.is_empty());
        }
        assert!(RateLimits::redis(Quotas { requests_per_minute: 1, logins_per_minute: 1 }, "http://x", "t:").is_err());
    }
}
