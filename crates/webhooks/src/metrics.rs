//! The webhook sender's metrics: how each delivery attempt ended and how long it took.
//!
//! Emitted through the `metrics` facade: without an installed recorder (tests of this crate)
//! every call is a no-op. The names and label values are constants so that the binary, which
//! installs the recorder, cannot drift from what is emitted here; [`describe_metrics`] words
//! them.
//!
//! Labels of [`WEBHOOK_DELIVERY_ATTEMPTS_TOTAL`]: `outcome` — [`OUTCOME_DELIVERED`] (a 2xx),
//! [`OUTCOME_REJECTED`] (any other status, redirects included), [`OUTCOME_NO_ANSWER`] (the
//! name did not resolve, the connection failed, the timeout passed, or nothing could be
//! sent), [`OUTCOME_REFUSED`] (the destination policy refused the URL or an address its host
//! resolved to; nothing was sent).

/// Counter: delivery attempts, by `outcome`.
pub const WEBHOOK_DELIVERY_ATTEMPTS_TOTAL: &str = "webhook_delivery_attempts_total";
/// Histogram, seconds: how long an attempt took, from its start to the head of the answer (or
/// the failure). Attempts refused by the destination policy are counted but not timed: they
/// end before anything is sent and would only drag the quantiles down.
pub const WEBHOOK_DELIVERY_ATTEMPT_DURATION_SECONDS: &str = "webhook_delivery_attempt_duration_seconds";

pub const OUTCOME_DELIVERED: &str = "delivered";
pub const OUTCOME_REJECTED: &str = "rejected";
pub const OUTCOME_NO_ANSWER: &str = "no_answer";
pub const OUTCOME_REFUSED: &str = "refused";

/// Describes this crate's metrics to the installed recorder (once, by the binary).
pub fn describe_metrics() {
    metrics::describe_counter!(
        WEBHOOK_DELIVERY_ATTEMPTS_TOTAL,
        "Webhook delivery attempts, by outcome (delivered, rejected, no_answer, refused)"
    );
    metrics::describe_histogram!(
        WEBHOOK_DELIVERY_ATTEMPT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from the start of a webhook delivery attempt to the head of the answer or the failure \
         (attempts refused by the destination policy excluded)"
    );
}

/// Counts one attempt and, unless it was refused, records its duration.
pub(crate) fn record_attempt(outcome: &'static str, duration: std::time::Duration) {
    metrics::counter!(WEBHOOK_DELIVERY_ATTEMPTS_TOTAL, "outcome" => outcome).increment(1);
    if outcome != OUTCOME_REFUSED {
        metrics::histogram!(WEBHOOK_DELIVERY_ATTEMPT_DURATION_SECONDS).record(duration);
    }
}
