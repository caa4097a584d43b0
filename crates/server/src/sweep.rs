//! The background sweep: every `ORDERLY_SWEEP_INTERVAL`, cancel pending orders whose
//! reservation has lapsed (`ORDERLY_RESERVATION_TTL`) and release their stock, and purge
//! idempotency records older than 24 hours (docs/api.md#retries-idempotency-key).
//!
//! Every instance runs it. That is safe by construction, not by coordination: each
//! cancellation is a conditional update on the order still being pending (see
//! `OrderRepository::change_status`), so when two sweeps reach the same order one applies and
//! the other finds nothing to do.
//!
//! Metrics (described in `crate::metrics`): [`SWEEP_RUNS_TOTAL`] per run, by outcome;
//! [`SWEEP_CANCELLED_ORDERS_TOTAL`] and [`IDEMPOTENCY_RECORDS_PURGED_TOTAL`] as work is done,
//! so that a sweep failing half-way still counts the batches it finished.

use std::sync::Arc;
use std::time::Duration;

use orderly_domain::ports::IdempotentExecutor;
use orderly_domain::services::OrderService;

/// How long an idempotency record is kept (docs/api.md#retries-idempotency-key).
const IDEMPOTENCY_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Orders cancelled per batch; a sweep repeats batches until one comes back short.
const BATCH: u16 = 100;

/// Counter, label `outcome` (`ok`, `failed`): sweeps run; `failed` when either part failed.
pub const SWEEP_RUNS_TOTAL: &str = "sweep_runs_total";
/// Counter: pending orders the sweep cancelled (and whose reserved stock it released).
pub const SWEEP_CANCELLED_ORDERS_TOTAL: &str = "sweep_cancelled_orders_total";
/// Counter: idempotency records deleted after their 24 hours.
pub const IDEMPOTENCY_RECORDS_PURGED_TOTAL: &str = "idempotency_records_purged_total";

/// Runs until the process stops. A failing sweep (database down) is logged and retried at the
/// next tick; it never stops the server.
pub async fn run(orders: OrderService, idempotency: Arc<dyn IdempotentExecutor>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        run_once(&orders, &idempotency).await;
    }
}

/// One whole sweep: lapsed reservations, then old idempotency records; counted in
/// [`SWEEP_RUNS_TOTAL`]. Returns whether both parts succeeded.
pub async fn run_once(orders: &OrderService, idempotency: &Arc<dyn IdempotentExecutor>) -> bool {
    let expired = sweep_once(orders).await.is_some();
    let purged = purge_idempotency_records(idempotency).await.is_some();
    let succeeded = expired && purged;
    metrics::counter!(SWEEP_RUNS_TOTAL, "outcome" => if succeeded { "ok" } else { "failed" }).increment(1);
    succeeded
}

/// Deletes idempotency records past their 24 hours. Idempotent, so every instance may run it.
/// Returns how many it deleted, `None` if it failed.
async fn purge_idempotency_records(idempotency: &Arc<dyn IdempotentExecutor>) -> Option<usize> {
    let store = Arc::clone(idempotency);
    let cutoff = chrono::Utc::now() - IDEMPOTENCY_RETENTION;
    match actix_web::rt::task::spawn_blocking(move || store.purge(cutoff)).await {
        Ok(Ok(purged)) => {
            if purged > 0 {
                tracing::info!(purged, "expired idempotency records purged");
                metrics::counter!(IDEMPOTENCY_RECORDS_PURGED_TOTAL).increment(count(purged));
            }
            Some(purged)
        }
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "idempotency purge failed; retrying at the next tick");
            None
        }
        Err(error) => {
            tracing::error!(%error, "idempotency purge task failed");
            None
        }
    }
}

/// A count as a counter increment (`usize` to `u64` never truncates on supported targets).
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One sweep: batches until no lapsed reservation is left. Returns how many orders it cancelled.
pub async fn sweep_once(orders: &OrderService) -> Option<usize> {
    let mut total = 0;
    loop {
        let service = orders.clone();
        match actix_web::rt::task::spawn_blocking(move || service.expire_reservations(BATCH)).await {
            Ok(Ok(cancelled)) => {
                total += cancelled;
                metrics::counter!(SWEEP_CANCELLED_ORDERS_TOTAL).increment(count(cancelled));
                if cancelled < usize::from(BATCH) {
                    break;
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "reservation sweep failed; retrying at the next tick");
                return None;
            }
            Err(error) => {
                tracing::error!(%error, "reservation sweep task failed");
                return None;
            }
        }
    }
    if total > 0 {
        tracing::info!(cancelled = total, "reservation sweep cancelled expired orders");
    }
    Some(total)
}
