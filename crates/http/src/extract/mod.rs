//! Extractors: how a handler gets its inputs, each already checked and each failing with the
//! problem the contract prescribes, so that handlers only ever see valid values.
//!
//! - [`caller`] — the authenticated caller (401s), or an optional one for public reads, or one
//!   whose role may perform an operation ([`caller::Authorised`], 403);
//! - [`path`] — path parameters: resource ids, invoice numbers (400 `invalid_parameter`);
//! - [`query`] — query strings (400 `invalid_parameter`);
//! - [`conditional`] — `If-Match` / `If-None-Match` and the ETag they compare with (428 where
//!   `If-Match` is required);
//! - [`idempotency_key`] — the `Idempotency-Key` header (400 `invalid_parameter`);
//! - [`json`] — request bodies (415, 413, 400 `malformed_json`, 422), checked against their
//!   published schemas by [`body_schema`];
//! - [`shape`] — a DTO's declared field names (used by [`query`]) and serde error paths (used by [`json`]);
//! - [`duplicates`] — parsing a body while finding members named twice in one object (used by
//!   [`json`]).
//!
//! A handler lists the caller first, so that an unauthenticated request is refused before its
//! body is read — and, for an operation some role may never perform, the `Authorised` caller,
//! so that a forbidden one is refused before any parameter, header or body is validated.

pub mod body_schema;
pub mod caller;
pub mod conditional;
pub mod duplicates;
pub mod idempotency_key;
pub mod json;
pub mod path;
pub mod query;
pub mod shape;

pub use caller::{Authorised, Caller, OptionalCaller, operation};
pub use conditional::{ETag, IfMatch, IfNoneMatch, RequiredIfMatch};
pub use idempotency_key::IdempotencyKeyHeader;
pub use json::{BodyContext, RawBody, RequestBody, ValidJson};
pub use path::{PathDeliveryId, PathId, PathInvoiceNumber, PathPaymentId};
pub use query::{QueryDto, ValidQuery};
