//! Request and response bodies (and query strings) as the contract spells them, with their
//! OpenAPI schemas. Not domain types: request DTOs convert into domain values with
//! `try_into_domain` (reporting every rule they break), response DTOs are built from domain
//! values with `From`.
//!
//! Request DTO fields are `Option` at the serde level, so that a missing field is reported
//! like any other fault instead of stopping deserialization; their schemas still say
//! `required` and non-nullable where the contract does.

pub mod auth;
pub mod events;
pub mod health;
pub mod invoices;
pub mod money;
pub mod orders;
pub mod patch_field;
pub mod payments;
pub mod products;
pub mod timestamp;
pub mod users;
pub mod webhooks;

pub use patch_field::PatchField;

use orderly_domain::validation::FieldViolation;

/// The violation for a required field that is absent or `null`.
pub(crate) fn required(field: &str) -> FieldViolation {
    FieldViolation::new(field, "required", "is required")
}
