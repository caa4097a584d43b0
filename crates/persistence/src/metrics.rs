//! The connection pool's metrics: what the pool looks like now (gauges, refreshed by
//! [`Database::publish_pool_gauges`](crate::Database::publish_pool_gauges) when metrics are
//! scraped) and how long callers wait for a connection (histogram and timeout counter, fed by
//! r2d2's events as they happen).
//!
//! Emitted through the `metrics` facade: without an installed recorder (tests of this crate,
//! the CLI) every call is a no-op. The names are constants so that the binary, which installs
//! the recorder and describes every metric, cannot drift from what is emitted here.

use diesel::r2d2::{self, HandleEvent};

use crate::database::PoolStatus;

/// Gauge: connections the pool has open, idle or in use.
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Gauge: open connections not checked out.
pub const DB_POOL_IDLE_CONNECTIONS: &str = "db_pool_idle_connections";
/// Gauge: the most connections the pool opens (`ORDERLY_DATABASE_POOL_SIZE`).
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
/// Histogram, seconds: how long a successful check-out waited for a connection.
pub const DB_POOL_WAIT_SECONDS: &str = "db_pool_wait_seconds";
/// Counter: check-outs that gave up after the acquire timeout (each one a 503).
pub const DB_POOL_TIMEOUTS_TOTAL: &str = "db_pool_timeouts_total";

/// Sets the pool gauges to `status`.
pub(crate) fn publish_pool_gauges(status: PoolStatus) {
    metrics::gauge!(DB_POOL_CONNECTIONS).set(status.connections);
    metrics::gauge!(DB_POOL_IDLE_CONNECTIONS).set(status.idle_connections);
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS).set(status.max_size);
}

/// Records check-out waits and timeouts as r2d2 reports them. r2d2 calls it on the thread that
/// asked for the connection, so the cost is one histogram sample per check-out.
#[derive(Debug)]
pub(crate) struct PoolEventMetrics;

impl HandleEvent for PoolEventMetrics {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        metrics::histogram!(DB_POOL_WAIT_SECONDS).record(event.duration());
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        metrics::counter!(DB_POOL_TIMEOUTS_TOTAL).increment(1);
    }
}
