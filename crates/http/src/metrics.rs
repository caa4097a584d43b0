//! Metrics: the names of what this adapter measures, and the seam through which `GET /metrics`
//! (`crate::routes::health::metrics`) serves them.
//!
//! Measurements go through the `metrics` facade, which is a no-op until a recorder is
//! installed. Installing one (the Prometheus exporter) is process-wide state, so it is the
//! binary's job: this crate only emits, and serves whatever [`MetricsSource`] it is given in
//! `ApiState::metrics` — `None` (tests, or metrics turned off) makes `/metrics` a 404.
//!
//! The names are constants so that the binary, which describes every metric for the `# HELP`
//! lines, cannot drift from what is emitted. Where each is emitted:
//!
//! | metric | labels | emitted by |
//! |---|---|---|
//! | [`HTTP_REQUESTS_TOTAL`] | `method`, `route`, `status` | `crate::middleware::metrics` |
//! | [`HTTP_REQUEST_DURATION_SECONDS`] | `method`, `route`, `status` | `crate::middleware::metrics` |
//! | [`AUTH_FAILED_LOGINS_TOTAL`] | — | `crate::routes::auth::login` |
//! | [`crate::rate_limit::REFUSED_REQUESTS_METRIC`] | `policy` | `crate::rate_limit` |
//! | [`crate::rate_limit::BACKEND_ERRORS_METRIC`] | — | `crate::rate_limit` |

use std::sync::Arc;

/// Counter: responses sent, by method, route template and status.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram, seconds: from the request reaching the router to its response head, by method,
/// route template and status.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// Counter: logins refused for a wrong email, password or a deactivated account.
pub const AUTH_FAILED_LOGINS_TOTAL: &str = "auth_failed_logins_total";

/// The `route` label of requests that matched no route. One value for all of them, so that a
/// client scanning random paths cannot create a time series per path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The media type of the Prometheus text exposition format that `/metrics` serves.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the process's metrics in the Prometheus text format. The binary installs the
/// recorder and provides this; the HTTP adapter only serves what it renders.
pub trait MetricsSource: Send + Sync {
    fn render(&self) -> String;
}

/// What `ApiState` carries: `None` when no recorder is installed (then `/metrics` is 404).
pub type SharedMetrics = Option<Arc<dyn MetricsSource>>;
