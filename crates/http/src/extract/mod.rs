//! Extractors: how a handler gets its inputs, each already checked and each failing with the
//! problem the contract prescribes, so that handlers only ever see valid values.
//!
//! - [`caller`] — the authenticated caller (401s);
//! - [`path`] — path parameters (400 `invalid_parameter`);
//! - [`query`] — query strings (400 `invalid_parameter`);
//! - [`conditional`] — `If-Match` / `If-None-Match` and the ETag they compare with;
//! - [`json`] — request bodies (415, 413, 400 `malformed_json`, 422);
//! - [`shape`] — collecting every serde-level fault of a body or query (used by the two above).
//!
//! A handler lists the caller first, so that an unauthenticated request is refused before its
//! body is read.

pub mod caller;
pub mod conditional;
pub mod json;
pub mod path;
pub mod query;
pub mod shape;

pub use caller::Caller;
pub use conditional::{ETag, IfMatch, IfNoneMatch};
pub use json::{RequestBody, ValidJson};
pub use path::PathId;
pub use query::{QueryDto, ValidQuery};
