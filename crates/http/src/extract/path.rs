//! Path parameters. actix's own `web::Path` answers a bad value with plain text; these answer
//! 400 `invalid_parameter` naming the parameter (§1.1).

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
    raw.parse::<Uuid>().map_err(|_| {
        ApiError::invalid_parameters(vec![FieldError::parameter(name, "invalid_format", "must be a UUID")])
    })
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
        ready(InvoiceNumber::parse(raw).map(PathInvoiceNumber).map_err(|violation| {
            ApiError::invalid_parameters(vec![FieldError::parameter(
                Self::PARAMETER,
                violation.code,
                violation.message,
            )])
        }))
    }
}
