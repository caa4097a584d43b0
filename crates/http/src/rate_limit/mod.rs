//! Rate limiting (docs/api.md#rate-limiting): token buckets per caller and, stricter, for logins per client address,
//! enforced by the [`enforce`] middleware on every request and reported in the headers of the
//! IETF RateLimit fields draft.
//!
//! Owns the policies, the choice of bucket for a request, where buckets live, and the headers:
//!
//! - **Policies.** `default`: `ORDERLY_RATE_LIMIT` requests per minute per caller — the user id
//!   of a *valid* bearer token, otherwise the client address ([`crate::client_address`]), so
//!   a user keeps one bucket across addresses and an invalid token buys no fresh one. `login`:
//!   `ORDERLY_LOGIN_RATE_LIMIT` per client address, on `POST /v1/auth/tokens` and
//!   `POST /v1/users` only (one bucket for both), in addition to `default` — what it slows
//!   down is password guessing, and the argon2 hash each of those requests costs (a flood of
//!   registrations would otherwise slow every login down). A limit of 0 turns that
//!   policy off. Every request counts, whatever its route or outcome (404s and probes too); a
//!   refused request takes no token.
//! - **Buckets** (`bucket`): `q` tokens refilled evenly over `w` = 60 s, as one number per
//!   bucket (the time it is full again), so both stores share exact arithmetic.
//! - **Stores.** In process (`in_process`, governor's keyed state store; the default) or in
//!   Redis (`redis_store`, one atomic script per check, shared by every instance). Either is
//!   built once, outside `HttpServer::new`, and shared by every worker: built per worker, each
//!   worker would have its own buckets and a limit would be multiplied by the number of workers.
//! - **Failing open.** When Redis cannot answer quickly, the request goes through unchecked (no
//!   RateLimit fields for that policy): an outage of the limiter must not become an outage of
//!   the API. The counter [`BACKEND_ERRORS_METRIC`] counts such checks; a warning is logged at
//!   most every 10 s.
//! - **Headers** (`verdict`): `RateLimit-Policy: "default";q=600;w=60` and
//!   `RateLimit: "default";r=599;t=1` on every response (both policies, comma-separated, on the
//!   login and registration routes), where `r` is the tokens left after this request and `t`
//!   the whole seconds (rounded up) until the bucket is full again. A refused request is 429 `rate_limited` with
//!   `Retry-After` (whole seconds, at least 1, until a token is available) and never reaches
//!   its handler; [`REFUSED_REQUESTS_METRIC`] counts it under the policy that refused it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod bucket;
mod in_process;
mod middleware;
mod redis_store;
mod verdict;

pub use middleware::{LOGIN_PATH, REGISTRATION_PATH, enforce};

use in_process::InProcessStore;
use redis_store::RedisStore;
use verdict::{Outcome, Verdict};

/// Counter of requests refused with 429, labelled `policy` (`default` or `login`).
pub const REFUSED_REQUESTS_METRIC: &str = "rate_limited_requests_total";
/// Counter of checks the store could not answer (Redis down, slow or failing); each such
/// request was let through unchecked.
pub const BACKEND_ERRORS_METRIC: &str = "rate_limit_backend_errors_total";

/// The window of every policy: the draft's `w`, and what "per minute" means.
const WINDOW: Duration = Duration::from_secs(60);
/// At most one warning about an unavailable store per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Describes this module's metrics to the installed recorder (call once, after installing it).
pub fn describe_metrics() {
    metrics::describe_counter!(REFUSED_REQUESTS_METRIC, "Requests refused with 429 rate_limited, by policy.");
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

/// The name of a policy, as the headers and the metric label write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyName {
    Default,
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

    /// The policy's bucket on a clock with `ticks_per_second`.
    fn bucket(&self, ticks_per_second: u64) -> bucket::TokenBucket {
        bucket::TokenBucket::new(self.limit, self.window, ticks_per_second)
    }
}

/// The configured policies and the store their buckets live in; what `ApiState` carries.
/// Cheap to clone: clones share the buckets. Build it once per process, outside the worker
/// factory.
#[derive(Clone, Default)]
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
    /// No limit at all (and no RateLimit headers).
    pub fn off() -> Self {
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

    /// Whether any policy is active.
    pub fn is_active(&self) -> bool {
        self.limiter.is_some()
    }

    /// Takes a token from every bucket that applies: the caller's `default` bucket, and on the
    /// login and registration routes (`hashes_a_password`) the address's `login` bucket. A
    /// store failure leaves that policy out.
    async fn check(&self, callers: &CallerKeys, hashes_a_password: bool) -> Verdict {
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

impl Store {
    async fn take(&self, policy: &Policy, key: &str) -> anyhow::Result<bucket::Decision> {
        match self {
            Self::InProcess(store) => Ok(store.take(policy, key)),
            Self::Redis(store) => store.take(policy, key).await,
        }
    }
}

/// The bucket keys of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallerKeys {
    /// `user:{id}` for a valid bearer token, else the address key.
    caller: String,
    /// `ip:{address}` (an IPv6 client's /64), or `ip:unknown` without an IP peer.
    address: String,
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

    #[actix_web::test]
    async fn a_quota_of_zero_turns_its_policy_off() {
        let quotas = |requests_per_minute, logins_per_minute| Quotas { requests_per_minute, logins_per_minute };
        assert!(!RateLimits::in_process(quotas(0, 0)).is_active());
        assert!(!RateLimits::off().is_active());

        let only_logins = RateLimits::in_process(quotas(0, 3));
        let at = keys("ip:192.0.2.1", "ip:192.0.2.1");
        assert!(only_logins.check(&at, false).await.is_empty(), "no default policy");
        let names: Vec<_> = only_logins.check(&at, true).await.policies().collect();
        assert_eq!(names, [PolicyName::Login]);

        let only_default = RateLimits::in_process(quotas(5, 0));
        let names: Vec<_> = only_default.check(&at, true).await.policies().collect();
        assert_eq!(names, [PolicyName::Default]);
    }

    #[actix_web::test]
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

    #[actix_web::test]
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
