//! Path parameters. actix's own `web::Path` answers a bad value with plain text; these answer
//! 400 `invalid_parameter` naming the parameter (docs/api.md#errors).
//!
//! A resource id is accepted only in its canonical spelling, [`canonical_uuid`]: one resource,
//! one URL (docs/api.md#resource-ids), so a shared cache never holds two copies of one resource under two keys
//! and a consumer never stores two ids for one thing.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use uuid::Uuid;

use orderly_domain::invoice::InvoiceNumber;

use crate::problem::{ApiError, FieldError};

/// The `{id}` segment of a resource path, a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub Uuid);

impl PathId {
    /// The name the route template gives the segment.
    pub const PARAMETER: &'static str = "id";
}

impl FromRequest for PathId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(uuid_segment(req, Self::PARAMETER).map(PathId))
    }
}

/// The path segment `name` as a UUID, or 400 `invalid_parameter` naming it.
fn uuid_segment(req: &HttpRequest, name: &str) -> Result<Uuid, ApiError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    canonical_uuid(raw).ok_or_else(|| ApiError::invalid_parameters(vec![non_canonical_uuid(name)]))
}

/// `raw` as a UUID if it is written in the one spelling Orderly itself writes ids in: the
/// hyphenated form in lower-case hex (`0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f`), and nothing
/// else. `Uuid::parse_str` also takes braces, `urn:uuid:`, the 32-digit form without hyphens
/// and upper-case hex; each would be a second URL (or a second filter value) for one resource.
/// Every id in a path and every UUID-valued query parameter is read through this.
pub fn canonical_uuid(raw: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(raw).ok()?;
    let mut canonical = Uuid::encode_buffer();
    (*id.hyphenated().encode_lower(&mut canonical) == *raw).then_some(id)
}

/// [`canonical_uuid`]'s spelling as a regular expression, for the OpenAPI document.
pub const CANONICAL_UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// The fault of a parameter `name` that is not a UUID in its canonical spelling.
pub fn non_canonical_uuid(name: &str) -> FieldError {
    FieldError::parameter(name, "invalid_format", "must be a UUID in canonical form (lower-case, hyphenated)")
}

/// The `{payment_id}` segment of a payment's path (`/v1/orders/{id}/payments/{payment_id}`), a
/// UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPaymentId(pub Uuid);

impl PathPaymentId {
    /// The name the route template gives the segment.
    pub const PARAMETER: &'static str = "payment_id";
}

impl FromRequest for PathPaymentId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(uuid_segment(req, Self::PARAMETER).map(PathPaymentId))
    }
}

/// The `{delivery_id}` segment of a webhook delivery's path
/// (`/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retries`), a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathDeliveryId(pub Uuid);

impl PathDeliveryId {
    /// The name the route template gives the segment.
    pub const PARAMETER: &'static str = "delivery_id";
}

impl FromRequest for PathDeliveryId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(uuid_segment(req, Self::PARAMETER).map(PathDeliveryId))
    }
}

/// The `{number}` segment of an invoice's path, `YYYY-NNNNNN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInvoiceNumber(pub InvoiceNumber);

impl PathInvoiceNumber {
    /// The name the route template gives the segment.
    pub const PARAMETER: &'static str = "number";
}

impl FromRequest for PathInvoiceNumber {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get(Self::PARAMETER).unwrap_or_default();
        ready(
            InvoiceNumber::parse(raw).map(PathInvoiceNumber).map_err(|fault| {
                ApiError::invalid_parameters(vec![FieldError::invalid_parameter(Self::PARAMETER, fault)])
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{CANONICAL_UUID_PATTERN, canonical_uuid};

    const CANONICAL: &str = "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f";

    #[test]
    fn only_the_lower_case_hyphenated_spelling_is_an_id() {
        let pattern = regex::Regex::new(CANONICAL_UUID_PATTERN).expect("a regular expression");
        let id = canonical_uuid(CANONICAL).expect("the canonical spelling");
        assert_eq!(id.to_string(), CANONICAL);
        assert!(pattern.is_match(CANONICAL), "the documented pattern agrees");
        for other in [
            "{0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f}",
            "urn:uuid:0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
            "0192f5c25a4b7c3d8e9f0a1b2c3d4e5f",
            "0192F5C2-5A4B-7C3D-8E9F-0A1B2C3D4E5F",
            "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5F",
            " 0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
            "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5",
            "",
            "not-a-uuid",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other:?}");
            assert!(!pattern.is_match(other), "the documented pattern refuses {other:?}");
        }
    }
}
