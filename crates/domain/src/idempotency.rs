//! Safe retries (docs/api.md#retries-idempotency-key). A POST carrying an `Idempotency-Key`
//! executes once per (caller, key); a repeat with the same request gets the first outcome again,
//! byte for byte.
//!
//! The protocol, which the `IdempotentExecutor` port implements:
//! 1. **Claim** the key in a short transaction of its own: a new key is recorded as in progress
//!    (with a lease); an existing one answers at once — replay (same fingerprint, completed),
//!    mismatch (different fingerprint), or in progress (lease still running).
//! 2. **Execute** the use case and **record its outcome in the same transaction** as the
//!    change, so either both are committed or neither is: a crash cannot leave an order
//!    without its stored response, which a retry would otherwise place again.
//! 3. Outcomes that changed nothing but are final (4xx) are stored too; server failures (5xx)
//!    release the claim, so a retry can succeed.
//!
//! Records expire after 24 hours and are purged by the background sweep.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::validation::InvalidValue;

/// 1–255 printable ASCII characters (docs/api.md#retries-idempotency-key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_CHARS || !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(InvalidValue::new("invalid_format", "must be 1 to 255 printable ASCII characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose key it is: keys of different callers never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdempotencyScope {
    User(crate::user::UserId),
    /// Requests without a token (registration). Replaying one requires the identical request,
    /// password included, so only its sender can obtain the stored answer.
    Anonymous,
}

impl fmt::Display for IdempotencyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdempotencyScope::User(id) => write!(f, "user:{id}"),
            IdempotencyScope::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// A response as it went out, to be replayed verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// The headers that belong to the outcome (`Location`, `ETag`, `Content-Type`), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A claim on a key, as the inbound adapter asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub key: IdempotencyKey,
    /// A digest of method, path and body: what "the same request" means.
    pub fingerprint: String,
    pub now: DateTime<Utc>,
}

/// What the execution closure hands back: a response to send, and whether the change it
/// made must be committed (2xx) or there was nothing to commit (4xx), or the attempt failed
/// and must leave no trace (5xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The change succeeded: commit it together with this response.
    Committed(StoredResponse),
    /// A final refusal (4xx): nothing to commit; store the response for replays.
    Refused(StoredResponse),
    /// A server-side failure (5xx): roll back, release the claim, do not store.
    Failed(StoredResponse),
}

/// How a claimed request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotentOutcome {
    /// Executed now; send this response.
    Executed(StoredResponse),
    /// Executed before; send this stored response again, marked as a replay.
    Replayed(StoredResponse),
    /// The key was used with a different request (→ 422 `idempotency_key_reused`).
    KeyReused,
    /// The first request with this key is still executing (→ 409 `idempotency_in_progress`).
    InProgress,
}
