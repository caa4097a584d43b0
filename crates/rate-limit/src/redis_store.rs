//! The Redis store: buckets shared by every instance of a deployment, so a limit holds however
//! many instances serve the traffic (`ORDERLY_REDIS_URL`).
//!
//! One check is one atomic Lua script ([`TAKE_TOKEN`], sent as `EVALSHA`; `redis::Script`
//! loads it again after a Redis restart): the arithmetic of `super::bucket` on the bucket's
//! TAT, with Redis `TIME` as the clock every instance shares (instances' own clocks drift), and
//! a TTL that expires the key once the bucket is full again — an absent key *is* a full
//! bucket, so Redis never holds more than the buckets in use. Keys are
//! `{prefix}ratelimit:{policy}:{caller}`.
//!
//! The connection is made lazily, on the first check, and remade after a failure
//! (`ConnectionManager`), so Orderly starts and serves while Redis is down. Every round trip
//! has a short timeout: a check that cannot be answered quickly is an error, which the caller
//! turns into "let the request through" (fail open), never into a slow or failed request.
//! After a failure the store does not ask Redis again for [`BACK_OFF`]: while Redis is
//! unreachable (a black-holed address makes every attempt wait for its timeout), requests
//! fail open at once instead of each waiting up to [`CHECK_TIMEOUT`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Policy;
use orderly_domain::rate_limit::Decision;

use super::bucket::{MICROS, TokenBucket};

/// How long connecting to Redis may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis may take to answer one command.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a whole check may take: normally one `EVALSHA`, after a Redis restart also the
/// `SCRIPT LOAD` and the retried `EVALSHA`.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed check, how long checks fail open without trying Redis.
pub(crate) const BACK_OFF: Duration = Duration::from_secs(1);

/// `super::bucket::TokenBucket::take` in Lua, with Redis `TIME` in microseconds as `now`.
/// KEYS[1]: the bucket; ARGV: its interval and capacity in microseconds.
/// Returns `{allowed (1|0), remaining, reset_after, retry_after}`, times in microseconds.
/// Microseconds since the epoch (~1.8e15) are exact in Lua's doubles (up to 2^53); the TAT is
/// written with `%.0f` so that it is stored as the exact integer.
pub(crate) const TAKE_TOKEN: &str = r"
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local debt = tat - now
local debt_after = debt + interval
if debt_after > capacity then
  return {0, 0, debt, debt_after - capacity}
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil(debt_after / 1000) + 1000)
return {1, math.floor((capacity - debt_after) / interval), debt_after, 0}
";

/// Buckets in Redis, shared by every instance configured with the same URL and key prefix.
pub(crate) struct RedisStore {
    client: redis::Client,
    key_prefix: String,
    /// Created on the first check, inside a worker's runtime (creating it spawns a task).
    connection: OnceLock<ConnectionManager>,
    script: redis::Script,
    /// When this store was made: the origin of `retry_redis_at_ms`.
    created: Instant,
    /// Milliseconds after `created` before which Redis is not asked (0: ask).
    retry_redis_at_ms: AtomicU64,
}

impl RedisStore {
    /// A store on the Redis at `url`; connects on the first check. Fails only for a URL that
    /// is not a Redis URL.
    pub(crate) fn new(url: &str, key_prefix: &str) -> redis::RedisResult<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            key_prefix: key_prefix.to_owned(),
            connection: OnceLock::new(),
            script: redis::Script::new(TAKE_TOKEN),
            created: Instant::now(),
            retry_redis_at_ms: AtomicU64::new(0),
        })
    }

    /// The Redis key of `caller`'s bucket under `policy`.
    pub(crate) fn key(&self, policy: &Policy, caller: &str) -> String {
        format!("{}ratelimit:{}:{caller}", self.key_prefix, policy.name.as_str())
    }

    /// Takes a token from `caller`'s bucket under `policy`.
    pub(crate) async fn take(&self, policy: &Policy, caller: &str) -> anyhow::Result<Decision> {
        let now_ms = self.elapsed_ms();
        if now_ms < self.retry_redis_at_ms.load(Ordering::Relaxed) {
            anyhow::bail!("Redis failed less than {} ms ago; not asked", BACK_OFF.as_millis());
        }
        let result = self.ask_redis(policy, caller).await;
        if result.is_err() {
            let back_off_ms = u64::try_from(BACK_OFF.as_millis()).unwrap_or(u64::MAX);
            self.retry_redis_at_ms.store(self.elapsed_ms().saturating_add(back_off_ms), Ordering::Relaxed);
        }
        result
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn ask_redis(&self, policy: &Policy, caller: &str) -> anyhow::Result<Decision> {
        let bucket = TokenBucket::for_policy(policy, MICROS);
        let mut connection = self.connection().context("cannot set up the Redis connection")?;
        let mut invocation = self.script.key(self.key(policy, caller));
        invocation.arg(bucket.interval()).arg(bucket.capacity());
        let (allowed, remaining, reset_after, retry_after): (i64, i64, i64, i64) =
            tokio::time::timeout(CHECK_TIMEOUT, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| anyhow::anyhow!("Redis did not answer within {} ms", CHECK_TIMEOUT.as_millis()))?
                .context("the rate-limit script failed")?;
        let ticks = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(bucket.decision(allowed == 1, u32::try_from(remaining).unwrap_or(0), ticks(reset_after), ticks(retry_after)))
    }

    fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One attempt per check: retrying with back-off would hold the request up. The
            // next check tries again.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Two first checks may race here; one manager wins, the other (never connected) is dropped.
        Ok(self.connection.get_or_init(|| connection).clone())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::PolicyName;

    #[tokio::test]
    async fn after_a_failure_redis_is_not_asked_again_until_the_back_off_ends() {
        // Nothing listens on port 1: the first check fails on the connection.
        let store = RedisStore::new("redis://127.0.0.1:1", "test:").unwrap();
        let policy = Policy::per_minute(PolicyName::Default, NonZeroU32::new(10).unwrap());
        let first = store.take(&policy, "user:a").await.unwrap_err();
        assert!(!first.to_string().contains("not asked"), "{first:#}");
        let second = store.take(&policy, "user:b").await.unwrap_err();
        assert!(second.to_string().contains("not asked"), "{second:#}");

        // Once the back-off has passed, Redis is asked again (and fails again here).
        store.retry_redis_at_ms.store(0, Ordering::Relaxed);
        let third = store.take(&policy, "user:a").await.unwrap_err();
        assert!(!third.to_string().contains("not asked"), "{third:#}");
    }
}
