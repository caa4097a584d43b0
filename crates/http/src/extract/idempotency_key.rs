//! The `Idempotency-Key` request header (docs/api.md#retries-idempotency-key): optional; when sent,
//! 1–255 printable ASCII characters (`IdempotencyKey::parse`), sent once. Anything else is a 400
//! `invalid_parameter` naming the header. What the key does is [`crate::idempotency`]'s part.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderName;
use actix_web::{FromRequest, HttpRequest};

use orderly_domain::idempotency::IdempotencyKey;

use crate::problem::{ApiError, FieldError};

/// The request header's name, as the contract and the problems spell it.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The request's `Idempotency-Key`, if it sent one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl IdempotencyKeyHeader {
    pub fn into_inner(self) -> Option<IdempotencyKey> {
        self.0
    }
}

impl FromRequest for IdempotencyKeyHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req).map(IdempotencyKeyHeader))
    }
}

fn parse(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = req.headers().get_all(HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |code: &str, message: &str| {
        ApiError::invalid_parameters(vec![FieldError::parameter(IDEMPOTENCY_KEY, code, message)])
    };
    if values.next().is_some() {
        return Err(invalid("duplicate", "must be sent once"));
    }
    // Bytes outside visible ASCII (and a value that is not text at all) fail here or in `parse`.
    let text = value.to_str().map_err(|_| invalid("invalid_format", "must be 1 to 255 printable ASCII characters"))?;
    IdempotencyKey::parse(text).map(Some).map_err(|fault| invalid(fault.code, &fault.message))
}
