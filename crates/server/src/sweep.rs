//! The background sweep: every `ORDERLY_SWEEP_INTERVAL`, cancel pending orders whose
//! reservation has lapsed (`ORDERLY_RESERVATION_TTL`) and release their stock, and purge
//! idempotency records older than 24 hours (§1.4).
//!
//! Every instance runs it. That is safe by construction, not by coordination: each
//! cancellation is a conditional update on the order still being pending (see
//! `OrderRepository::change_status`), so when two sweeps reach the same order one applies and
//! the other finds nothing to do.

use std::sync::Arc;
use std::time::Duration;

use orderly_domain::ports::IdempotentExecutor;
use orderly_domain::services::OrderService;

/// How long an idempotency record is kept (§1.4).
const IDEMPOTENCY_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Orders cancelled per batch; a sweep repeats batches until one comes back short.
const BATCH: u16 = 100;

/// Runs until the process stops. A failing sweep (database down) is logged and retried at the
/// next tick; it never stops the server.
pub async fn run(orders: OrderService, idempotency: Arc<dyn IdempotentExecutor>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let _ = sweep_once(&orders).await;
        purge_idempotency_records(&idempotency).await;
    }
}

/// Deletes idempotency records past their 24 hours. Idempotent, so every instance may run it.
async fn purge_idempotency_records(idempotency: &Arc<dyn IdempotentExecutor>) {
    let store = Arc::clone(idempotency);
    let cutoff = chrono::Utc::now() - IDEMPOTENCY_RETENTION;
    match actix_web::rt::task::spawn_blocking(move || store.purge(cutoff)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(purged)) => tracing::info!(purged, "expired idempotency records purged"),
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "idempotency purge failed; retrying at the next tick")
        }
        Err(error) => tracing::error!(%error, "idempotency purge task failed"),
    }
}

/// One sweep: batches until no lapsed reservation is left. Returns how many orders it cancelled.
pub async fn sweep_once(orders: &OrderService) -> Option<usize> {
    let mut total = 0;
    loop {
        let service = orders.clone();
        match actix_web::rt::task::spawn_blocking(move || service.expire_reservations(BATCH)).await {
            Ok(Ok(cancelled)) => {
                total += cancelled;
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
