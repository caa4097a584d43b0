//! The process's metrics recorder: the Prometheus exporter, installed once, and the
//! [`MetricsSource`] that `GET /metrics` renders.
//!
//! The adapters emit through the `metrics` facade and know nothing of Prometheus; a recorder is
//! process-wide state, so installing it is the binary's job. It is installed once per process
//! ([`install`] keeps its handle in a `OnceLock`): `Application::build` runs many times in one
//! test process, and a second installation would fail. Every application built in the process
//! then shares the recorder, so counters and histograms are per process, as a scraper expects.
//!
//! Every metric is described here, in one place, so `/metrics` has a `# HELP` line for each,
//! including those emitted elsewhere (by name constants, so the two cannot drift).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use orderly_http::metrics::{
    AUTH_FAILED_LOGINS_TOTAL, HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, MetricsSource,
};
use orderly_persistence::Database;
use orderly_persistence::metrics::{
    DB_POOL_CONNECTIONS, DB_POOL_IDLE_CONNECTIONS, DB_POOL_MAX_CONNECTIONS, DB_POOL_TIMEOUTS_TOTAL,
    DB_POOL_WAIT_SECONDS,
};
use orderly_rate_limit::BACKEND_ERRORS_METRIC;

use orderly_payments::metrics::{
    PAYMENT_PROVIDER_EVENTS_TOTAL, PAYMENT_PROVIDER_REQUEST_DURATION_SECONDS, PAYMENT_PROVIDER_REQUESTS_TOTAL,
    PAYMENT_PROVIDER_RETRIES_TOTAL,
};

use crate::jobs::{JOB_QUEUE_DEPTH, JOB_QUEUE_OLDEST_DUE_SECONDS, JOBS_RUN_TOTAL};
use crate::sweep::{IDEMPOTENCY_RECORDS_PURGED_TOTAL, SWEEP_CANCELLED_ORDERS_TOTAL, SWEEP_RUNS_TOTAL};
use crate::webhooks::{WEBHOOK_DELIVERIES_PENDING, WEBHOOK_OLDEST_PENDING_DELIVERY_SECONDS};

/// Request latency buckets, in seconds: from 1 ms (a cached read) to 10 s (past any client's
/// patience), roughly ×2.5 apart so that p50/p90/p99 can be told apart at every scale.
const HTTP_DURATION_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Pool check-out buckets, in seconds: a free connection is handed out in microseconds, so the
/// scale starts at 100 µs; the top end covers the acquire timeout (5 s by default).
const POOL_WAIT_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histogram samples are folded into their buckets when nobody scrapes. Rendering
/// does it too; this only bounds the memory that samples take between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first call. `None` if it could not be
/// installed (another recorder was installed first, which Orderly never does): the server
/// then runs without metrics, and says so, rather than not at all.
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| match build_and_install() {
            Ok(handle) => {
                describe_all();
                register_counters_at_zero();
                spawn_upkeep(handle.clone());
                Some(handle)
            }
            Err(error) => {
                tracing::error!(%error, "cannot install the metrics recorder; /metrics will answer 404");
                None
            }
        })
        .clone()
}

fn build_and_install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()), &HTTP_DURATION_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(DB_POOL_WAIT_SECONDS.to_owned()), &POOL_WAIT_BUCKETS)?
        .install_recorder()
}

/// The `# HELP` text of every metric Orderly emits. Descriptions must be given after the
/// recorder is installed (before, they go to the no-op recorder).
fn describe_all() {
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP responses sent, by method, route template and status");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a request reaching the router to its response, by method, route template and status"
    );
    describe_counter!(AUTH_FAILED_LOGINS_TOTAL, "Logins refused for an unknown email, wrong password or inactive user");
    describe_counter!(
        orderly_http::rate_limit::REFUSED_REQUESTS_METRIC,
        "Requests refused with 429 rate_limited, by policy."
    );
    // `rate_limit_backend_errors_total`, worded by its owner.
    orderly_rate_limit::describe_metrics();
    describe_gauge!(DB_POOL_CONNECTIONS, "Database connections open, idle or in use");
    describe_gauge!(DB_POOL_IDLE_CONNECTIONS, "Database connections open and not in use");
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "The most database connections the pool opens");
    describe_histogram!(
        DB_POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time a successful pool check-out waited for a connection"
    );
    describe_counter!(DB_POOL_TIMEOUTS_TOTAL, "Pool check-outs that gave up after the acquire timeout (answered 503)");
    describe_counter!(SWEEP_RUNS_TOTAL, "Background sweeps run by this instance, by outcome (ok, failed)");
    describe_counter!(
        SWEEP_CANCELLED_ORDERS_TOTAL,
        "Pending orders the sweep cancelled because their reservation lapsed"
    );
    describe_counter!(IDEMPOTENCY_RECORDS_PURGED_TOTAL, "Idempotency records the sweep deleted after 24 hours");
    describe_counter!(
        JOBS_RUN_TOTAL,
        "Background jobs worked by this instance, by kind and outcome (done, retried, failed, lost_claim)"
    );
    describe_gauge!(JOB_QUEUE_DEPTH, "Background jobs waiting in the queue, due or not");
    describe_gauge!(
        JOB_QUEUE_OLDEST_DUE_SECONDS,
        Unit::Seconds,
        "How long the oldest due background job has been waiting (0 when none is due)"
    );
    describe_counter!(
        PAYMENT_PROVIDER_REQUESTS_TOTAL,
        "Calls to the payment provider, by operation (create, confirm, retrieve, refund) and outcome"
    );
    describe_histogram!(
        PAYMENT_PROVIDER_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time one call to the payment provider took, retries included, by operation"
    );
    describe_counter!(PAYMENT_PROVIDER_RETRIES_TOTAL, "Payment-provider requests sent again, by operation and reason");
    describe_counter!(
        PAYMENT_PROVIDER_EVENTS_TOTAL,
        "Inbound payment-provider events, by outcome of their verification"
    );
    orderly_webhooks::describe_metrics();
    describe_gauge!(WEBHOOK_DELIVERIES_PENDING, "Webhook deliveries still pending (not yet succeeded or failed)");
    describe_gauge!(
        WEBHOOK_OLDEST_PENDING_DELIVERY_SECONDS,
        Unit::Seconds,
        "Age of the oldest pending webhook delivery (0 when none is pending)"
    );
}

/// Counters appear on `/metrics` only once touched. Touching the ones without open-ended
/// labels now makes them scrape as 0 from the start, so `rate()` and alerts on them work
/// before the first event rather than seeing the series appear from nowhere.
fn register_counters_at_zero() {
    for name in [
        AUTH_FAILED_LOGINS_TOTAL,
        BACKEND_ERRORS_METRIC,
        DB_POOL_TIMEOUTS_TOTAL,
        SWEEP_CANCELLED_ORDERS_TOTAL,
        IDEMPOTENCY_RECORDS_PURGED_TOTAL,
    ] {
        metrics::counter!(name).increment(0);
    }
    for outcome in ["ok", "failed"] {
        metrics::counter!(SWEEP_RUNS_TOTAL, "outcome" => outcome).increment(0);
    }
}

/// A plain thread, not a task: the recorder outlives any one runtime (tests start and stop
/// many), and upkeep is a few microseconds of work every few seconds.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are folded only when scraped");
    }
}

/// What `/metrics` renders: the recorder's contents, with the pool gauges read just before.
pub struct PrometheusMetrics {
    handle: PrometheusHandle,
    database: Database,
}

impl PrometheusMetrics {
    pub fn new(handle: PrometheusHandle, database: Database) -> Arc<Self> {
        Arc::new(Self { handle, database })
    }
}

impl MetricsSource for PrometheusMetrics {
    fn render(&self) -> String {
        self.database.publish_pool_gauges();
        self.handle.render()
    }
}
