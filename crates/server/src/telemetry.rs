//! Logging set-up: one subscriber for the process, JSON lines or human-readable text.
//!
//! Every log line emitted while a request is handled carries that request's span (request id,
//! method, route, user id), because the fmt layers below print the current span context.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. An invalid filter falls back to `info` and says so, rather
/// than refusing to start over a log setting.
pub fn init(filter: &str, format: LogFormat) {
    let (env_filter, filter_error) = match EnvFilter::try_new(filter) {
        Ok(env_filter) => (env_filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let registry = tracing_subscriber::registry().with(env_filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer().with_target(true)).try_init(),
    };
    // Tests and repeated CLI calls may find a subscriber already installed; that one stays.
    if installed.is_ok()
        && let Some(error) = filter_error
    {
        tracing::warn!(%error, filter, "ORDERLY_LOG is not a valid filter; logging at info");
    }
}
