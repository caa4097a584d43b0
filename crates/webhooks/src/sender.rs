//! [`HttpWebhookSender`]: the domain's `WebhookSender` port over HTTP.
//!
//! Owns one attempt from start to outcome: the destination check of the URL, the body, the
//! signature headers, the request with its time bounds, and the translation of whatever
//! happened into a [`SendOutcome`] with a reason fit for an admin, counted in [`metrics`].
//! Must not touch: retries and their schedule, what is stored about the attempt (the domain's),
//! the answer's body (never read).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use orderly_domain::ports::{SendOutcome, SendReport, WebhookMessage, WebhookSender};
use orderly_domain::webhook::{DestinationPolicy, DestinationRefused, WebhookSecret};
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::body::render_body;
use crate::metrics;
use crate::resolve::{GuardedResolver, Lookup, ResolveError, system_lookup};
use crate::settings::SenderSettings;
use crate::signing::{self, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};

/// The webhook sender. Cheap to share (`Arc`). Build it, drop it and call it only on threads
/// that may block, never on an async runtime's worker (see the crate docs).
pub struct HttpWebhookSender {
    client: Client,
    policy: DestinationPolicy,
    timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for HttpWebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpWebhookSender")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpWebhookSender {
    /// Builds the client, resolving names with the system resolver. Fails on settings that
    /// cannot work: a zero timeout, a connect timeout longer than the timeout, a user agent
    /// that is empty or not a valid header value.
    pub fn new(settings: SenderSettings) -> anyhow::Result<Self> {
        Self::build(settings, system_lookup())
    }

    /// Like [`new`](Self::new), but host names resolve through `names` (name, addresses)
    /// instead of the system resolver; a name not listed does not resolve. Every address is
    /// still checked against the policy. For tests that need a name to resolve to an address
    /// of their choosing without DNS.
    #[cfg(feature = "testing")]
    pub fn with_names(settings: SenderSettings, names: Vec<(String, Vec<std::net::IpAddr>)>) -> anyhow::Result<Self> {
        let names: Vec<(String, Vec<std::net::IpAddr>)> =
            names.into_iter().map(|(name, addresses)| (normalise_name(&name), addresses)).collect();
        let lookup: Lookup = Arc::new(move |name: &str| {
            let name = normalise_name(name);
            names
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, addresses)| addresses.clone())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not in the test's table"))
        });
        Self::build(settings, lookup)
    }

    fn build(settings: SenderSettings, lookup: Lookup) -> anyhow::Result<Self> {
        if settings.timeout.is_zero() || settings.connect_timeout.is_zero() {
            anyhow::bail!("the webhook sender's timeouts must be positive");
        }
        if settings.connect_timeout > settings.timeout {
            anyhow::bail!("the webhook sender's connect timeout must not exceed its timeout");
        }
        if settings.user_agent.trim().is_empty() {
            anyhow::bail!("the webhook sender's user agent is empty");
        }
        let user_agent = HeaderValue::from_str(&settings.user_agent).map_err(|_| {
            anyhow!("the webhook sender's user agent {:?} is not a valid header value", settings.user_agent)
        })?;
        let client = Client::builder()
            // The whole attempt up to the answer's head: resolving, connecting, TLS, sending,
            // waiting. The body is never read, so nothing comes after.
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            // A redirect is an answer (a rejection), never followed: it could lead anywhere,
            // past every check made here.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect to the destination instead of us, unchecked.
            .no_proxy()
            // No connection outlives its attempt: each delivery resolves and checks afresh.
            .pool_max_idle_per_host(0)
            .user_agent(user_agent)
            // The only resolver: every address a name resolves to is checked before connecting.
            .dns_resolver(Arc::new(GuardedResolver::new(settings.policy.clone(), lookup)))
            .build()
            .map_err(|error| anyhow!("cannot build the webhook sender's HTTP client: {error}"))?;
        Ok(Self {
            client,
            policy: settings.policy,
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// One attempt, and the metrics label of its outcome.
    fn attempt(&self, message: &WebhookMessage<'_>) -> (SendOutcome, &'static str) {
        // IP literals and `localhost` never reach the resolver: this is their check (and the
        // scheme's, the credentials', ...), against the URL exactly as it will be requested.
        let url = match self.policy.check_url(message.url.as_str()) {
            Ok(url) => url,
            Err(refused) => return refused_outcome(&refusal_reason(&refused)),
        };
        let body = match render_body(message.event) {
            Ok(body) => body,
            Err(_) => return no_answer("not sent: the event's payload is not a JSON object"),
        };
        let signed = match sign(message.secret, &message.event.id.to_string(), &body) {
            Ok(signed) => signed,
            Err(error) => return no_answer(&format!("not sent: {error}")),
        };
        let request = self
            .client
            .post(url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_WEBHOOK_ID, signed.id)
            .header(HEADER_WEBHOOK_TIMESTAMP, signed.timestamp.to_string())
            .header(HEADER_WEBHOOK_SIGNATURE, signed.signature)
            .body(body);
        match request.send() {
            // Only the status counts; the body is dropped unread, and the connection with it.
            Ok(response) => {
                let status = response.status().as_u16();
                if response.status().is_success() {
                    (SendOutcome::Delivered { status }, metrics::OUTCOME_DELIVERED)
                } else {
                    (SendOutcome::Rejected { status }, metrics::OUTCOME_REJECTED)
                }
            }
            Err(error) => self.failure(&error),
        }
    }

    /// The outcome of a request that got no answer.
    fn failure(&self, error: &reqwest::Error) -> (SendOutcome, &'static str) {
        if let Some(resolve) = find_in_chain::<ResolveError>(error) {
            return match resolve {
                ResolveError::Refused { name, refused: DestinationRefused::Address(address, kind) } => {
                    refused_outcome(&format!("refused destination: {name} resolved to {address}, a {kind} address"))
                }
                ResolveError::Refused { refused, .. } => refused_outcome(&refusal_reason(refused)),
                ResolveError::NotFound => no_answer("name did not resolve"),
                ResolveError::Unavailable => no_answer("name could not be resolved"),
            };
        }
        if error.is_timeout() {
            if error.is_connect() {
                return no_answer(&format!("could not connect within {}", words(self.connect_timeout)));
            }
            return no_answer(&format!("timed out after {}", words(self.timeout)));
        }
        if find_in_chain::<std::io::Error>(error).is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return no_answer("connection refused");
        }
        if error.is_connect() {
            // TCP or TLS: reqwest does not tell them apart in a way worth showing.
            return no_answer("connection failed");
        }
        tracing::debug!(error = %DisplayChain(error), "webhook request failed without an answer");
        no_answer("the connection closed without a valid answer")
    }
}

impl WebhookSender for HttpWebhookSender {
    fn new_secret(&self) -> anyhow::Result<WebhookSecret> {
        signing::new_secret()
    }

    fn send<'a>(&self, message: WebhookMessage<'a>) -> SendReport {
        let started = Instant::now();
        let (outcome, label) = self.attempt(&message);
        let duration = started.elapsed();
        metrics::record_attempt(label, duration);
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        // Never the URL (receivers put tokens in query strings), the secret or the signature.
        match &outcome {
            SendOutcome::Delivered { status } | SendOutcome::Rejected { status } => tracing::debug!(
                event_id = %message.event.id,
                outcome = label,
                status,
                duration_ms,
                "webhook attempt answered"
            ),
            SendOutcome::NoAnswer { reason } => tracing::info!(
                event_id = %message.event.id,
                outcome = label,
                reason = reason.as_str(),
                duration_ms,
                "webhook attempt got no answer"
            ),
        }
        SendReport { outcome, duration }
    }
}

/// Signs with the current time.
fn sign(secret: &WebhookSecret, id: &str, body: &str) -> Result<signing::Signature, signing::UnusableSecret> {
    signing::sign(secret, id, chrono::Utc::now().timestamp(), body)
}

fn no_answer(reason: &str) -> (SendOutcome, &'static str) {
    (SendOutcome::NoAnswer { reason: reason.to_owned() }, metrics::OUTCOME_NO_ANSWER)
}

fn refused_outcome(reason: &str) -> (SendOutcome, &'static str) {
    (SendOutcome::NoAnswer { reason: reason.to_owned() }, metrics::OUTCOME_REFUSED)
}

/// "refused destination: 127.0.0.1 is a loopback address", "refused destination: the URL
/// must use https".
fn refusal_reason(refused: &DestinationRefused) -> String {
    match refused {
        DestinationRefused::Address(address, kind) => format!("refused destination: {address} is a {kind} address"),
        other => format!("refused destination: {other}"),
    }
}

/// "10 s", "1500 ms".
fn words(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// The first error of type `T` in `error`'s chain of sources, itself included.
fn find_in_chain<T: StdError + 'static>(error: &reqwest::Error) -> Option<&T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// An error and its sources, for debug logs; reqwest's own `Display` names the URL, which is
/// left out.
struct DisplayChain<'a>(&'a reqwest::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut current = self.0.source();
        f.write_str("request failed")?;
        while let Some(error) = current {
            write!(f, ": {error}")?;
            current = error.source();
        }
        Ok(())
    }
}

#[cfg(feature = "testing")]
fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settings() -> SenderSettings {
        SenderSettings::new(DestinationPolicy::default())
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut zero = settings();
        zero.timeout = Duration::ZERO;
        assert!(HttpWebhookSender::new(zero).is_err());
        let mut inverted = settings();
        inverted.connect_timeout = inverted.timeout + Duration::from_secs(1);
        assert!(HttpWebhookSender::new(inverted).is_err());
        let mut no_agent = settings();
        no_agent.user_agent = " ".into();
        assert!(HttpWebhookSender::new(no_agent).is_err());
        let mut bad_agent = settings();
        bad_agent.user_agent = "a\nb".into();
        assert!(HttpWebhookSender::new(bad_agent).is_err());
        assert!(HttpWebhookSender::new(settings()).is_ok());
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(words(Duration::from_secs(10)), "10 s");
        assert_eq!(words(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn refusals_in_words() {
        let loopback = DestinationPolicy::default().check_url("https://127.0.0.1/").unwrap_err();
        assert_eq!(refusal_reason(&loopback), "refused destination: 127.0.0.1 is a loopback address");
        let http = DestinationPolicy::default().check_url("http://hooks.example.com/").unwrap_err();
        assert_eq!(refusal_reason(&http), "refused destination: the URL must use https");
    }
}
