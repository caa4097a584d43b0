//! What the webhook sender is configured with. No secrets: each endpoint's signing secret
//! travels with its message.

use std::time::Duration;

use orderly_domain::webhook::DestinationPolicy;

/// How patient the sender is, where it may send, and how it introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSettings {
    /// The most one attempt may take, from its start (name resolution included) to the head of
    /// the answer. Any 2xx that has not arrived by then is not a success.
    pub timeout: Duration,
    /// The most establishing the TCP connection may take; at most `timeout`.
    pub connect_timeout: Duration,
    /// Where deliveries may go: checked against the URL before every send, and against every
    /// address its host resolves to.
    pub policy: DestinationPolicy,
    /// The `User-Agent` of every delivery, e.g. `Orderly-Webhooks/0.1.0`.
    pub user_agent: String,
}

impl SenderSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

    /// Settings with the default time bounds and `Orderly-Webhooks/<version>` as user agent.
    pub fn new(policy: DestinationPolicy) -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            policy,
            user_agent: concat!("Orderly-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}
