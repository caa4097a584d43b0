//! The payment provider's metrics: how each port call ended, how long it took, how often it
//! was retried, and what became of inbound events.
//!
//! Emitted through the `metrics` facade: without an installed recorder (tests of this crate)
//! every call is a no-op. The names and label values are constants so that the binary, which
//! installs the recorder and describes every metric, cannot drift from what is emitted here.
//!
//! Labels:
//! - `operation`: [`OPERATION_CREATE`], [`OPERATION_CONFIRM`], [`OPERATION_RETRIEVE`],
//!   [`OPERATION_REFUND`] — the port method, whatever HTTP requests it took (a refund first
//!   reads the charge and its refunds).
//! - `outcome` of a call: [`OUTCOME_OK`] (a checked answer; for confirm and retrieve, any state
//!   but `Failed`), [`OUTCOME_DECLINED`] (a checked answer saying the charge failed),
//!   [`OUTCOME_UNREACHABLE`], [`OUTCOME_TIMEOUT`], [`OUTCOME_UNTRUSTWORTHY`] — one per
//!   [`ProviderError`](orderly_domain::ports::ProviderError) variant, so a dashboard shows
//!   exactly what the domain was told.
//! - `reason` of a retry: [`REASON_UNREACHABLE`], [`REASON_TIMEOUT`], [`REASON_CONNECTION`]
//!   (the connection failed in another way), [`REASON_RATE_LIMITED`] (429),
//!   [`REASON_SERVER_ERROR`] (5xx).
//! - `outcome` of an event: [`EVENT_ACCEPTED`], [`EVENT_INVALID_SIGNATURE`], [`EVENT_MALFORMED`].

/// Counter: port calls to the provider, by `operation` and final `outcome` (after retries).
pub const PAYMENT_PROVIDER_REQUESTS_TOTAL: &str = "payment_provider_requests_total";
/// Histogram, seconds: how long a port call took, retries and back-off included, by `operation`.
pub const PAYMENT_PROVIDER_REQUEST_DURATION_SECONDS: &str = "payment_provider_request_duration_seconds";
/// Counter: HTTP requests repeated after a failure that made a retry safe, by `operation` and
/// `reason`. Each retry is one more request with the same idempotency key.
pub const PAYMENT_PROVIDER_RETRIES_TOTAL: &str = "payment_provider_retries_total";
/// Counter: inbound provider events checked by `verify_event`, by `outcome`.
pub const PAYMENT_PROVIDER_EVENTS_TOTAL: &str = "payment_provider_events_total";

pub const OPERATION_CREATE: &str = "create";
pub const OPERATION_CONFIRM: &str = "confirm";
pub const OPERATION_RETRIEVE: &str = "retrieve";
pub const OPERATION_REFUND: &str = "refund";

pub const OUTCOME_OK: &str = "ok";
pub const OUTCOME_DECLINED: &str = "declined";
pub const OUTCOME_UNREACHABLE: &str = "unreachable";
pub const OUTCOME_TIMEOUT: &str = "timeout";
pub const OUTCOME_UNTRUSTWORTHY: &str = "untrustworthy";

pub const REASON_UNREACHABLE: &str = "unreachable";
pub const REASON_TIMEOUT: &str = "timeout";
pub const REASON_CONNECTION: &str = "connection";
pub const REASON_RATE_LIMITED: &str = "rate_limited";
pub const REASON_SERVER_ERROR: &str = "server_error";

pub const EVENT_ACCEPTED: &str = "accepted";
pub const EVENT_INVALID_SIGNATURE: &str = "invalid_signature";
pub const EVENT_MALFORMED: &str = "malformed";

/// Counts one finished port call and records its duration.
pub(crate) fn record_call(operation: &'static str, outcome: &'static str, duration: std::time::Duration) {
    metrics::counter!(PAYMENT_PROVIDER_REQUESTS_TOTAL, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(PAYMENT_PROVIDER_REQUEST_DURATION_SECONDS, "operation" => operation).record(duration);
}

pub(crate) fn record_retry(operation: &'static str, reason: &'static str) {
    metrics::counter!(PAYMENT_PROVIDER_RETRIES_TOTAL, "operation" => operation, "reason" => reason).increment(1);
}

pub(crate) fn record_event(outcome: &'static str) {
    metrics::counter!(PAYMENT_PROVIDER_EVENTS_TOTAL, "outcome" => outcome).increment(1);
}
