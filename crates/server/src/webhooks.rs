//! The webhook loops (docs/api.md#webhooks) of one instance: a dispatcher that turns new feed events into
//! deliveries, and `ORDERLY_WEBHOOK_WORKERS` workers that make the deliveries' attempts.
//!
//! Every instance runs them; nothing needs coordinating. Dispatching moves the shared dispatch
//! position conditionally (two instances never dispatch the same events twice), and each
//! delivery attempt is a job the queue gives to one worker at a time. They run on the blocking
//! pool, never on an HTTP worker, and hold a database connection only between attempts: a slow
//! receiver holds a blocking thread, never a request or a pooled connection.
//!
//! Metrics (described in `crate::metrics`): [`WEBHOOK_DELIVERIES_PENDING`],
//! [`WEBHOOK_OLDEST_PENDING_DELIVERY_SECONDS`]; the sender counts attempts and their latency
//! (`orderly_webhooks`), the job loop counts jobs (`crate::jobs`).

use std::time::Duration;

use orderly_domain::services::{JobWorker, WebhookService};

/// Gauge: deliveries not yet succeeded or failed.
pub const WEBHOOK_DELIVERIES_PENDING: &str = "webhook_deliveries_pending";
/// Gauge: age of the oldest pending delivery, seconds (0 when none is pending).
pub const WEBHOOK_OLDEST_PENDING_DELIVERY_SECONDS: &str = "webhook_oldest_pending_delivery_seconds";

/// Starts the dispatcher and `workers` delivery workers, polling every `every`. With no
/// workers this instance neither dispatches nor delivers (another one does).
pub fn spawn(service: WebhookService, worker: JobWorker, workers: usize, every: Duration) {
    if workers == 0 {
        tracing::info!("ORDERLY_WEBHOOK_WORKERS=0: this instance sends no webhooks");
        return;
    }
    actix_web::rt::spawn(dispatch(service, every));
    for _ in 0..workers {
        actix_web::rt::spawn(crate::jobs::run(worker.clone(), every));
    }
}

/// Runs until the process stops. A failing round (database down) is logged and retried at
/// the next tick.
async fn dispatch(service: WebhookService, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        dispatch_once(&service).await;
    }
}

/// Dispatches what the feed has, then refreshes the gauges.
pub async fn dispatch_once(service: &WebhookService) {
    let this = service.clone();
    match actix_web::rt::task::spawn_blocking(move || this.dispatch()).await {
        Ok(Ok(created)) if created > 0 => tracing::debug!(created, "webhook deliveries created"),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "could not dispatch webhooks; retrying at the next tick")
        }
        Err(error) => tracing::error!(%error, "webhook dispatcher task failed"),
    }
    let this = service.clone();
    if let Ok(Ok(backlog)) = actix_web::rt::task::spawn_blocking(move || this.backlog()).await {
        metrics::gauge!(WEBHOOK_DELIVERIES_PENDING).set(backlog.pending as f64);
        let oldest = backlog.oldest_pending_age.map_or(0.0, |age| age.num_milliseconds() as f64 / 1000.0);
        metrics::gauge!(WEBHOOK_OLDEST_PENDING_DELIVERY_SECONDS).set(oldest);
    }
}
