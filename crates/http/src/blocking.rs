//! Running the synchronous domain on actix's blocking thread pool, admitted first.
//!
//! Domain services are synchronous (diesel, argon2), so every handler hands its one service
//! call to `web::block`; running it inline would stall an async worker and every request it
//! serves. The closure runs inside the request's tracing span, so whatever the adapters log
//! carries the request id.
//!
//! actix allows hundreds of blocking threads, far more than there are pooled connections or
//! cores to hash passwords on. Handed every call at once, the pool would park the surplus on
//! the connection pool's (or the hasher's) condition variable, a thread each, woken in no
//! particular order. So a call waits first, as a future on its async worker, for a permit of
//! the one bound it needs ([`Needs`]), first come first served, and holds it until its
//! closure has finished (`docs/decisions/0011-admission-before-the-blocking-pool.md`). A
//! call that waits longer than the connection pool's own time-out is answered 503, as one
//! waiting for a connection is.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use tokio::sync::Semaphore;

use crate::problem::ApiError;

/// What a blocking call needs, which decides the bound it is admitted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Pooled database connections, and nothing slow besides: most calls.
    Database,
    /// A password hash or verification (login, registration, password change): ~30 ms of a
    /// core. Admitted under the hashing bound instead of the database one, so that queued
    /// logins wait as futures and reads keep every database permit; the few statements such a
    /// call makes take a connection like any other.
    PasswordHash,
}

/// Admission to the blocking pool: one bound for database work, one for password hashing.
#[derive(Debug, Clone)]
pub struct BlockingPool {
    database: Arc<Semaphore>,
    hashing: Arc<Semaphore>,
    /// The longest a call waits for its permit before it is answered 503.
    wait: Duration,
}

/// Password-hashing calls admitted per hash the hasher runs at once. A login's statements
/// (find the user, store the session) take about as long as its hash under load: with one
/// call per hash the hasher would idle while they run; with two, one call's statements overlap
/// another's hash, and the second waits on the hasher's own bound, a thread each at most.
const HASHING_CALLS_PER_HASH: usize = 2;

impl BlockingPool {
    /// At most `connections` database calls and, for `hashes` hashes at once, twice as many
    /// password-hashing calls (see [`HASHING_CALLS_PER_HASH`]); a call that waits longer than
    /// `wait` for its permit is answered 503.
    pub fn new(connections: usize, hashes: usize, wait: Duration) -> Self {
        Self {
            database: Arc::new(Semaphore::new(connections.max(1))),
            hashing: Arc::new(Semaphore::new(hashes.max(1) * HASHING_CALLS_PER_HASH)),
            wait,
        }
    }

    /// Runs one use case — `work` on `use_cases` — under the database bound (see [`Self::run`]),
    /// a refusal becoming the problem it is: the one call of most handlers.
    pub async fn call<U, T, E>(
        &self,
        use_cases: &Arc<U>,
        work: impl FnOnce(&U) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        U: ?Sized + Send + Sync + 'static,
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        let use_cases = Arc::clone(use_cases);
        Ok(self.run(Needs::Database, move || work(&use_cases)).await??)
    }

    /// Runs `work` on the blocking pool inside the current span, once admitted under the bound
    /// of `needs`. Too long a wait is a 503 with `Retry-After`; a pool failure or a panic in
    /// `work` a bare 500.
    pub async fn run<F, T>(&self, needs: Needs, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let gate = match needs {
            Needs::Database => &self.database,
            Needs::PasswordHash => &self.hashing,
        };
        let permit = match actix_web::rt::time::timeout(self.wait, gate.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(ApiError::internal(anyhow::Error::new(closed))),
            Err(_) => {
                let cause = anyhow::anyhow!("no {needs:?} permit of the blocking pool within {:?}", self.wait);
                return Err(ApiError::unavailable(cause));
            }
        };
        // Released when the closure finishes (or is dropped unrun), not when this future is:
        // a request abandoned by its client still holds its connection until the work ends.
        run_unadmitted(move || {
            let _permit = permit;
            work()
        })
        .await
    }
}

/// Runs `work` on the blocking pool inside the current span, without admission: only for work
/// that holds no connection while it waits (the payment provider's calls, between a payment's
/// units of work) or uses none (rendering the metrics). A pool failure or a panic in `work`
/// becomes a bare 500.
pub async fn run_unadmitted<F, T>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    Ok(web::block(move || span.in_scope(work)).await?)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Never more closures running than permits, and a call that cannot be admitted in time
    /// is a 503.
    #[actix_web::test]
    async fn calls_run_within_their_bound_and_time_out_as_unavailable() {
        let pool = BlockingPool::new(2, 1, Duration::from_secs(5));
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (pool, inside, most) = (pool.clone(), inside.clone(), most.clone());
                actix_web::rt::spawn(async move {
                    pool.run(Needs::Database, move || {
                        most.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_ok());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);

        let impatient = BlockingPool::new(1, 1, Duration::from_millis(50));
        let holder = impatient.run(Needs::Database, || std::thread::sleep(Duration::from_millis(500)));
        let waiter = async {
            // Behind the holder for the same bound; the hashing bound is free.
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            let refused = impatient.run(Needs::Database, || ()).await;
            let admitted = impatient.run(Needs::PasswordHash, || ()).await;
            (refused, admitted)
        };
        let (held, (refused, admitted)) = tokio::join!(holder, waiter);
        assert!(held.is_ok() && admitted.is_ok());
        let refused = refused.err().map(|error| actix_web::ResponseError::status_code(&error));
        assert_eq!(refused, Some(actix_web::http::StatusCode::SERVICE_UNAVAILABLE));
    }
}
