//! The background job worker: every `ORDERLY_JOB_POLL_INTERVAL_MS`, work the durable jobs
//! that are due (payment reconciliation, refunds) until none is left, on the blocking pool.
//!
//! Every instance runs it; the queue hands each job to one worker at a time (see
//! `JobQueue::claim_due`), so that is safe without coordination. Jobs live in the database,
//! so a restart loses none: they are simply due again.
//!
//! Metrics (described in `crate::metrics`): [`JOBS_RUN_TOTAL`] by kind and outcome;
//! [`JOB_QUEUE_DEPTH`] and [`JOB_QUEUE_OLDEST_DUE_SECONDS`] after each round.

use std::time::Duration;

use orderly_domain::services::{JobOutcome, JobWorker};

/// Counter, labels `kind` (`reconcile_payment`, `refund_payment`) and `outcome` (`done`,
/// `retried`, `failed`, `lost_claim`: the job outlived its lease and another worker has it): jobs
/// worked.
pub const JOBS_RUN_TOTAL: &str = "jobs_run_total";
/// Gauge: jobs in the queue, due or not.
pub const JOB_QUEUE_DEPTH: &str = "job_queue_depth";
/// Gauge: how long the oldest due job has been waiting, seconds (0 when none is due).
pub const JOB_QUEUE_OLDEST_DUE_SECONDS: &str = "job_queue_oldest_due_seconds";

/// The most jobs one round works before waiting for the next tick, so that one instance
/// cannot be kept busy forever by a queue another instance is also draining.
const MAX_PER_ROUND: usize = 100;

/// Runs until the process stops. A failing round (database down) is logged and retried at
/// the next tick; it never stops the server.
pub async fn run(worker: JobWorker, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        run_once(&worker).await;
    }
}

/// Works due jobs until none is left (or [`MAX_PER_ROUND`]). Returns how many it worked.
pub async fn run_once(worker: &JobWorker) -> usize {
    let mut worked = 0;
    while worked < MAX_PER_ROUND {
        let this = worker.clone();
        match actix_web::rt::task::spawn_blocking(move || this.work_one()).await {
            Ok(Ok(Some(report))) => {
                worked += 1;
                let outcome = match report.outcome {
                    JobOutcome::Done => "done",
                    JobOutcome::Retried => "retried",
                    JobOutcome::Failed => "failed",
                    JobOutcome::LostClaim => "lost_claim",
                };
                metrics::counter!(JOBS_RUN_TOTAL, "kind" => report.kind.as_str(), "outcome" => outcome).increment(1);
            }
            Ok(Ok(None)) => break,
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "could not work the job queue; retrying at the next tick");
                break;
            }
            Err(error) => {
                tracing::error!(%error, "job worker task failed");
                break;
            }
        }
    }
    let this = worker.clone();
    if let Ok(Ok(stats)) = actix_web::rt::task::spawn_blocking(move || this.stats()).await {
        metrics::gauge!(JOB_QUEUE_DEPTH).set(stats.depth as f64);
        let oldest = stats.oldest_due_age.map_or(0.0, |age| age.num_milliseconds() as f64 / 1000.0);
        metrics::gauge!(JOB_QUEUE_OLDEST_DUE_SECONDS).set(oldest);
    }
    worked
}
