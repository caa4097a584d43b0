//! One HTTP call to the provider, with its time bounds and bounded retries.
//!
//! Owns the `reqwest` client, the `Authorization` header, the classification of transport
//! failures into the domain's [`ProviderError`] variants, and when a retry is safe. It does not
//! interpret answers: any HTTP status comes back as an [`Answer`] for the caller to check
//! (the `answer` module), except those it retried until the attempts ran out.

use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use orderly_domain::ports::ProviderError;
use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};

use crate::metrics;
use crate::settings::StripeSettings;

/// The largest answer read: a PaymentIntent is a few KiB; anything near this is not one.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// Back-off before the first retry; it doubles per retry, up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest pause between two attempts, `Retry-After` included: a caller is waiting.
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// When a failed attempt may be repeated (with the same idempotency key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The call has no effect that a repeat could double (create, reads): retry on any
    /// transport failure, 429 and 5xx.
    Freely,
    /// The call may move money (confirm, refund): retry only when it provably had no effect —
    /// the connection was never made, or Stripe answered 429 (rate-limited requests are not
    /// processed). A timeout or a 5xx may have moved money; the domain reconciles instead.
    OnlyIfNotProcessed,
}

/// One request to send.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    /// The port operation it belongs to (metrics and logs).
    pub operation: &'static str,
    pub method: Method,
    /// Path under the API base, e.g. `/v1/payment_intents`.
    pub path: String,
    pub query: &'a [(&'a str, &'a str)],
    /// Form fields of a POST (Stripe takes `application/x-www-form-urlencoded`).
    pub form: &'a [(&'a str, String)],
    pub idempotency_key: Option<&'a str>,
    pub retry: Retry,
}

/// An HTTP answer, unchecked.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    /// Whether `Content-Type` is `application/json` (parameters such as `charset` allowed).
    pub is_json: bool,
    pub body: Vec<u8>,
    retry_after: Option<Duration>,
}

pub(crate) struct Transport {
    client: Client,
    api_base: Url,
    secret_key: SecretString,
    timeout: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api_base", &self.api_base.as_str())
            .field("secret_key", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(settings: &StripeSettings) -> anyhow::Result<Self> {
        let api_base = parse_api_base(&settings.api_base)?;
        if settings.secret_key.expose_secret().trim().is_empty() {
            anyhow::bail!("the Stripe secret key is empty");
        }
        if settings.timeout.is_zero() || settings.connect_timeout.is_zero() {
            anyhow::bail!("the payment provider's timeouts must be positive");
        }
        if settings.connect_timeout > settings.timeout {
            // Otherwise the total timeout fires first on a connection that is never made, and
            // a request that was never sent would be reported as one that may have moved money.
            anyhow::bail!("the payment provider's connect timeout must not exceed its timeout");
        }
        if settings.max_attempts == 0 {
            anyhow::bail!("the payment provider needs at least one attempt per call");
        }
        let client = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            // A redirect is not an answer Stripe gives; following it would resend the key.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orderly/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow!("cannot build the payment provider's HTTP client: {error}"))?;
        Ok(Self {
            client,
            api_base,
            secret_key: settings.secret_key.clone(),
            timeout: settings.timeout,
            max_attempts: settings.max_attempts,
        })
    }

    pub(crate) fn api_base(&self) -> &Url {
        &self.api_base
    }

    /// Sends `call`, repeating it (same key) while its [`Retry`] rule allows and attempts
    /// remain. The last answer is returned whatever its status, even a 429 or 5xx that ran out
    /// of attempts; transport failures are errors.
    pub(crate) fn send(&self, call: &Call<'_>) -> Result<Answer, ProviderError> {
        let mut attempt = 1;
        loop {
            let result = self.attempt(call);
            let retry = match &result {
                Ok(answer) => retry_reason_for_status(answer.status, call.retry),
                Err(error) => retry_reason_for_error(error, call.retry),
            };
            let Some(reason) = retry.filter(|_| attempt < self.max_attempts) else {
                return result;
            };
            let retry_after = result.as_ref().ok().and_then(|answer| answer.retry_after);
            let pause = backoff(attempt, retry_after);
            metrics::record_retry(call.operation, reason);
            tracing::warn!(
                operation = call.operation,
                attempt,
                reason,
                pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "payment provider call failed; retrying with the same idempotency key"
            );
            std::thread::sleep(pause);
            attempt += 1;
        }
    }

    fn attempt(&self, call: &Call<'_>) -> Result<Answer, ProviderError> {
        let url = self
            .api_base
            .join(&call.path)
            .map_err(|error| ProviderError::Untrustworthy(anyhow!("bad provider path {:?}: {error}", call.path)))?;
        let mut request = self
            .client
            .request(call.method.clone(), url)
            // `bearer_auth` marks the header sensitive, so reqwest never prints it either.
            .bearer_auth(self.secret_key.expose_secret())
            .header(ACCEPT, "application/json");
        if let Some(key) = call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if call.method == Method::POST {
            request = request.form(call.form);
        }
        let started = Instant::now();
        let response = request.send().map_err(classify_send_error)?;
        let status = response.status();
        let is_json = is_json(response.headers());
        let retry_after = retry_after(response.headers());
        let body = read_body(response, started + self.timeout)?;
        tracing::debug!(
            operation = call.operation,
            status = status.as_u16(),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "payment provider answered"
        );
        Ok(Answer { status, is_json, body, retry_after })
    }
}

fn parse_api_base(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).map_err(|error| anyhow!("the Stripe API base {raw:?} is not a URL: {error}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        anyhow::bail!("the Stripe API base {raw:?} must be an http(s) URL with a host");
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!(
            "the Stripe API base {raw:?} must have no path, query or credentials (e.g. https://api.stripe.com)"
        );
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        tracing::warn!(api_base = %url, "the Stripe API base is plain http: the secret key travels unencrypted");
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Which [`ProviderError`] a failure to get an answer is.
fn classify_send_error(error: reqwest::Error) -> ProviderError {
    if error.is_connect() {
        // Connection refused, DNS, TLS handshake, connect timeout: the request was not sent.
        ProviderError::Unreachable(error.into())
    } else if error.is_timeout() {
        ProviderError::TimedOut(error.into())
    } else {
        // The connection broke after the request may have been sent.
        ProviderError::Untrustworthy(error.into())
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`], giving up at `deadline` (each read is itself bounded by
/// the client's timeout, so a trickling body ends at most one timeout after the deadline).
fn read_body(response: reqwest::blocking::Response, deadline: Instant) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    let mut reader = response.take(MAX_ANSWER_BYTES + 1);
    let mut chunk = [0_u8; 16 * 1024];
    loop {
        let read = reader.read(&mut chunk).map_err(|error| {
            let timed_out = error.kind() == std::io::ErrorKind::TimedOut
                || error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
            if timed_out {
                ProviderError::TimedOut(anyhow!("reading the answer: {error}"))
            } else {
                ProviderError::Untrustworthy(anyhow!("reading the answer: {error}"))
            }
        })?;
        if read == 0 {
            break;
        }
        let Some(read) = chunk.get(..read) else {
            return Err(ProviderError::Untrustworthy(anyhow!(
                "reading the answer: {read} bytes read into a smaller buffer"
            )));
        };
        body.extend_from_slice(read);
        if body.len() as u64 > MAX_ANSWER_BYTES {
            return Err(ProviderError::Untrustworthy(anyhow!("the answer is larger than {MAX_ANSWER_BYTES} bytes")));
        }
        if Instant::now() > deadline {
            return Err(ProviderError::TimedOut(anyhow!("the answer did not arrive in full in time")));
        }
    }
    Ok(body)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

/// `Retry-After` in seconds (Stripe's form); an HTTP date is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

fn retry_reason_for_status(status: StatusCode, retry: Retry) -> Option<&'static str> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Some(metrics::REASON_RATE_LIMITED)
    } else if status.is_server_error() && retry == Retry::Freely {
        Some(metrics::REASON_SERVER_ERROR)
    } else {
        None
    }
}

fn retry_reason_for_error(error: &ProviderError, retry: Retry) -> Option<&'static str> {
    match (error, retry) {
        (ProviderError::Unreachable(_), _) => Some(metrics::REASON_UNREACHABLE),
        (ProviderError::TimedOut(_), Retry::Freely) => Some(metrics::REASON_TIMEOUT),
        (ProviderError::Untrustworthy(_), Retry::Freely) => Some(metrics::REASON_CONNECTION),
        (_, Retry::OnlyIfNotProcessed) => None,
    }
}

/// Exponential back-off with full jitter (a random pause up to `base * 2^(attempt-1)`, capped),
/// but never shorter than the provider's `Retry-After` (itself capped).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1_u32 << attempt.saturating_sub(1).min(16)).min(BACKOFF_CAP);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    // Without randomness the full pause is still a correct (if less spread) back-off.
    let jittered = getrandom::u64().map_or(ceiling_ms, |random| random % (ceiling_ms + 1));
    let pause = Duration::from_millis(jittered);
    match retry_after {
        Some(asked) => pause.max(asked.min(BACKOFF_CAP)),
        None => pause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_cap_and_honours_retry_after_within_it() {
        for attempt in 1..40 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << (attempt - 1).min(16)).min(BACKOFF_CAP);
            assert!(backoff(attempt, None) <= ceiling, "attempt {attempt}");
        }
        assert_eq!(backoff(1, Some(Duration::from_secs(30))), BACKOFF_CAP);
        assert!(backoff(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700));
    }

    #[test]
    fn only_calls_without_effect_are_retried() {
        let timed_out = ProviderError::TimedOut(anyhow!("t"));
        let unreachable = ProviderError::Unreachable(anyhow!("u"));
        assert_eq!(retry_reason_for_error(&timed_out, Retry::OnlyIfNotProcessed), None);
        assert_eq!(retry_reason_for_error(&timed_out, Retry::Freely), Some(metrics::REASON_TIMEOUT));
        assert_eq!(retry_reason_for_error(&unreachable, Retry::OnlyIfNotProcessed), Some(metrics::REASON_UNREACHABLE));
        assert_eq!(retry_reason_for_status(StatusCode::SERVICE_UNAVAILABLE, Retry::OnlyIfNotProcessed), None);
        assert_eq!(retry_reason_for_status(StatusCode::SERVICE_UNAVAILABLE, Retry::Freely), Some("server_error"));
        assert_eq!(
            retry_reason_for_status(StatusCode::TOO_MANY_REQUESTS, Retry::OnlyIfNotProcessed),
            Some("rate_limited")
        );
        assert_eq!(retry_reason_for_status(StatusCode::BAD_REQUEST, Retry::Freely), None);
    }

    #[test]
    fn the_api_base_is_a_bare_http_origin() {
        assert!(parse_api_base("https://api.stripe.com").is_ok());
        assert!(parse_api_base("http://127.0.0.1:8420/").is_ok());
        for bad in
            ["api.stripe.com", "ftp://x", "https://api.stripe.com/v1", "https://u:p@api.stripe.com", "https://x/?a=1"]
        {
            assert!(parse_api_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_media_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(CONTENT_TYPE, "text/html".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
