//! Request and response bodies (and query strings) as the contract spells them, with their
//! OpenAPI schemas. Not domain types: request DTOs convert into domain values with
//! `try_into_domain` (reporting every rule they break), response DTOs are built from domain
//! values with `From`.
//!
//! A request DTO's `ToSchema` is what its body is checked against before the DTO is read
//! (`crate::extract::body_schema`, ADR 0018), so its fields are real types: a required field is
//! a plain one, an optional one an `Option`, a merge-patch one a [`PatchField`].

/// The conversions between a wire enum (serde names and an OpenAPI schema) and the domain's
/// enum of the same variants, each variant named once: `Wire <=> Domain { .. }` both ways,
/// `Domain => Wire { .. }` for an enum the contract only shows. Either match is exhaustive, so
/// a variant added on one side and not the other does not compile.
macro_rules! mirror_enum {
    ($domain:ident => $wire:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$domain> for $wire {
            fn from(value: $domain) -> Self {
                match value {
                    $($domain::$variant => Self::$variant,)+
                }
            }
        }
    };
    ($wire:ident <=> $domain:ident { $($variant:ident),+ $(,)? }) => {
        mirror_enum!($domain => $wire { $($variant),+ });
        mirror_enum!($wire => $domain { $($variant),+ });
    };
}

/// Declares `$schema`, the published schema of a collection's `sort` parameter (the component
/// `$component`): a string `enum` of `$names`, the very names its query parsing accepts (a
/// [`crate::pagination::Collection`] table's), so the document cannot offer a sort the
/// service refuses, nor leave one out.
macro_rules! sort_parameter {
    ($schema:ident as $component:literal, $description:literal, $names:expr) => {
        #[doc = $description]
        pub struct $schema;

        impl utoipa::PartialSchema for $schema {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::pagination::sort_schema($description, $names)
            }
        }

        impl utoipa::ToSchema for $schema {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($component)
            }
        }
    };
}

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
