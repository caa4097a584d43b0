//! Request ids (docs/api.md#request-ids-and-logs): a valid incoming `X-Request-Id` (1–128 chars of `[A-Za-z0-9._-]`) is kept,
//! anything else is replaced by a new UUIDv7. The id is stored in the request's extensions
//! (for the telemetry span and problem bodies) and echoed as `X-Request-Id` on every response,
//! including failures produced by inner middleware.

use std::fmt;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};

/// The header carrying the request id both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Keeps a client-supplied id only if it is safe to echo and to log verbatim.
    pub fn from_client(value: &str) -> Option<Self> {
        let valid = (1..=MAX_LEN).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        valid.then(|| Self(value.to_owned()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of `req`, or an empty string outside the middleware (tests of single pieces).
    pub fn of(req: &HttpRequest) -> String {
        req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The outermost middleware: assigns the id before anything else runs and echoes it after
/// everything else has.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    // Failures arrive here as responses (`problem_responses` sees to that), so the id is
    // echoed on them too.
    let mut response = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_safe() {
        assert!(RequestId::from_client("abc-DEF_1.2").is_some());
        assert!(RequestId::from_client(&"a".repeat(128)).is_some());
        assert!(RequestId::from_client(&"a".repeat(129)).is_none());
        assert!(RequestId::from_client("").is_none());
        assert!(RequestId::from_client("a b").is_none());
        assert!(RequestId::from_client("a\nb").is_none());
        assert!(RequestId::from_client("é").is_none());
    }
}
