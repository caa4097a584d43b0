//! What the Stripe adapter is configured with. Secrets are `SecretString`s, so `Debug` (and
//! with it any log of the settings) shows `[REDACTED]` in their place.

use std::time::Duration;

use secrecy::SecretString;

/// How to reach Stripe (or a stand-in such as localstripe) and how patient to be.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// Scheme, host and optional port, no path: `https://api.stripe.com` in production.
    pub api_base: String,
    /// The API key (`sk_live_…`/`sk_test_…`), sent as `Authorization: Bearer`.
    pub secret_key: SecretString,
    /// The endpoint secret (`whsec_…`) that signs inbound events.
    pub webhook_secret: SecretString,
    /// The most one attempt may take, from sending the request to the last byte of the answer.
    pub timeout: Duration,
    /// The most establishing a connection may take; at most `timeout`, so that a connection
    /// that could not be made is always told apart from a request that got no answer.
    pub connect_timeout: Duration,
    /// Attempts per call, the first included (1 = no retry).
    pub max_attempts: u32,
    /// How old (or how far in the future) a signed event's timestamp may be.
    pub signature_tolerance: chrono::Duration,
}

impl StripeSettings {
    pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Stripe's own libraries' default.
    pub const DEFAULT_SIGNATURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

    /// Settings for Stripe itself with the default time bounds.
    pub fn new(secret_key: SecretString, webhook_secret: SecretString) -> Self {
        Self {
            api_base: Self::DEFAULT_API_BASE.to_owned(),
            secret_key,
            webhook_secret,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            signature_tolerance: Self::DEFAULT_SIGNATURE_TOLERANCE,
        }
    }
}
