//! Standard Webhooks 1.0 signing, through the spec's own `standardwebhooks` library, and new
//! signing secrets.
//!
//! Owns the three signature headers and the secret format (`whsec_` + base64 of 32 random
//! bytes). Must not touch: the body (signed as given) or the transport. Never logs or returns
//! a secret or a signature in an error.

use base64::Engine as _;
use orderly_domain::webhook::WebhookSecret;
use standardwebhooks::Webhook;

/// The message id: the event id, the same on every attempt, so receivers de-duplicate.
pub const HEADER_WEBHOOK_ID: &str = standardwebhooks::HEADER_WEBHOOK_ID;
/// When the attempt was signed, unix seconds.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = standardwebhooks::HEADER_WEBHOOK_TIMESTAMP;
/// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
pub const HEADER_WEBHOOK_SIGNATURE: &str = standardwebhooks::HEADER_WEBHOOK_SIGNATURE;

/// The prefix Standard Webhooks gives secrets.
const SECRET_PREFIX: &str = "whsec_";
/// Random bytes per secret: 256 bits (the spec asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The stored secret cannot be used to sign (not base64 after `whsec_`). Says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the endpoint's signing secret is not a valid Standard Webhooks secret")]
pub(crate) struct UnusableSecret;

/// The three signature headers of one attempt.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature").field("id", &self.id).field("timestamp", &self.timestamp).finish_non_exhaustive()
    }
}

/// Signs `body` as message `id` at `timestamp` (unix seconds) with `secret`.
pub(crate) fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &str) -> Result<Signature, UnusableSecret> {
    let webhook = Webhook::new(secret.expose()).map_err(|_| UnusableSecret)?;
    let signature = webhook.sign(id, timestamp, body.as_bytes()).map_err(|_| UnusableSecret)?;
    Ok(Signature { id: id.to_owned(), timestamp, signature })
}

/// A fresh signing secret: `whsec_` and the base64 of 32 bytes from the operating system's
/// random source.
pub fn new_secret() -> anyhow::Result<WebhookSecret> {
    let mut key = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no randomness for a webhook secret: {error}"))?;
    let secret = format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key));
    Ok(WebhookSecret::from_stored(secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn signs_the_spec_example() {
        // The example of the standardwebhooks library's own tests.
        let secret = WebhookSecret::from_stored("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into());
        let signed = sign(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signed.signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn new_secrets_are_fresh_and_usable() {
        let first = new_secret().unwrap();
        let second = new_secret().unwrap();
        assert_ne!(first, second);
        let encoded = first.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap().len(), SECRET_BYTES);
        assert!(Webhook::new(first.expose()).is_ok());
        assert!(sign(&first, "id", 1, "{}").is_ok());
    }

    #[test]
    fn an_unusable_secret_is_an_error_that_shows_nothing() {
        let secret = WebhookSecret::from_stored("whsec_not*base64!".into());
        let error = sign(&secret, "id", 1, "{}").unwrap_err();
        assert!(!error.to_string().contains("base64!"));
    }
}
