//! Test support (feature `testing`), for this crate's tests and other crates' end-to-end tests:
//!
//! - [`Receiver`]: a real HTTP receiver on a free loopback port that records every request
//!   (method, target, headers, body) and answers from a script of [`Reply`]s (status, optional
//!   `Location`, optional delay, optional huge body); once the script is used up it answers its
//!   default reply (200 unless changed).
//! - [`verify`]: checks a received delivery as a Standard Webhooks 1.0 receiver would — with
//!   the spec's own library (`standardwebhooks::Webhook::verify`, which also checks the
//!   timestamp is within 5 minutes) *and* by recomputing the HMAC-SHA256 independently with
//!   `hmac`/`sha2` and requiring the header to be exactly one full `v1,` signature, so a
//!   lenient library cannot hide a truncated or malformed signature.
//!
//! Test helpers panic with a message on a broken fixture rather than return errors; [`verify`]
//! returns an error, since a failed verification is what some tests expect. Nothing here
//! listens on, or talks to, anything but loopback, and every server and loop stops by itself.
//!
//! A policy for tests that deliver to a `Receiver`: [`loopback_policy`] (plain `http`,
//! `127.0.0.0/8` and `::1`). Use `http://127.0.0.1:<port>` URLs ([`Receiver::url`]): the
//! receiver listens on IPv4 only.

mod receiver;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use orderly_domain::webhook::DestinationPolicy;
use sha2::Sha256;

pub use receiver::{ReceivedRequest, Receiver, Reply};

/// Plain `http` allowed, and loopback (`127.0.0.0/8`, `::1`): what tests delivering to a
/// [`Receiver`] need, and nothing more.
pub fn loopback_policy() -> DestinationPolicy {
    DestinationPolicy {
        allow_http: true,
        allowed_networks: ["127.0.0.0/8", "::1/128"]
            .into_iter()
            .map(|network| network.parse().unwrap_or_else(|error| panic!("{network} is a network: {error}")))
            .collect(),
    }
}

/// A delivery that passed [`verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The body, parsed.
    pub body: serde_json::Value,
}

/// Why a delivery failed [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the secret is not `whsec_` + base64")]
    BadSecret,
    #[error("header {0} is missing or not text")]
    MissingHeader(&'static str),
    #[error("content-type is {0:?}, not application/json")]
    ContentType(Option<String>),
    #[error("the standardwebhooks library refused it: {0}")]
    Library(String),
    #[error("webhook-timestamp is not an integer")]
    BadTimestamp,
    #[error("webhook-signature is not exactly one `v1,<base64 of 32 bytes>`: {0:?}")]
    MalformedSignature(String),
    #[error("the recomputed HMAC-SHA256 does not match")]
    SignatureMismatch,
    #[error("the body is not JSON: {0}")]
    BodyNotJson(String),
}

/// Checks `request` as a Standard Webhooks receiver holding `secret` would (see the module
/// docs): both the library and an independent recomputation must accept it.
pub fn verify(secret: &str, request: &ReceivedRequest) -> Result<Verified, VerifyError> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
        .ok_or(VerifyError::BadSecret)?;
    let header = |name: &'static str| request.header(name).ok_or(VerifyError::MissingHeader(name));
    let id = header("webhook-id")?.to_owned();
    let timestamp_text = header("webhook-timestamp")?;
    let signature = header("webhook-signature")?.to_owned();
    let content_type = request.header("content-type");
    if content_type.and_then(|value| value.split(';').next()).map(str::trim) != Some("application/json") {
        return Err(VerifyError::ContentType(content_type.map(str::to_owned)));
    }

    // The spec's own library.
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|_| VerifyError::BadSecret)?;
    webhook.verify(&request.body, &request.header_map()).map_err(|error| VerifyError::Library(error.to_string()))?;

    // Independently: exactly one full v1 signature, the HMAC of `id.timestamp.body`.
    let timestamp: i64 = timestamp_text.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let encoded = signature
        .strip_prefix("v1,")
        .filter(|encoded| !encoded.contains([' ', ',']))
        .ok_or_else(|| VerifyError::MalformedSignature(signature.clone()))?;
    let claimed = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| VerifyError::MalformedSignature(signature.clone()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| VerifyError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    mac.verify_slice(&claimed).map_err(|_| VerifyError::SignatureMismatch)?;

    let body = serde_json::from_slice(&request.body).map_err(|error| VerifyError::BodyNotJson(error.to_string()))?;
    Ok(Verified { id, timestamp, signature, body })
}
