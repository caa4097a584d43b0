//! # orderly-domain — the centre of the hexagon
//!
//! Owns Orderly's business rules and nothing else: entities and value objects that are valid
//! by construction ("parse, don't validate"), the authorisation rules (who may do what to whose
//! resource), the use cases (services), and the **ports** — traits that adapters implement to
//! give the rules storage, password hashing, tokens and a clock.
//!
//! Must not touch: HTTP, SQL, JSON, cryptography, async runtimes. No actix, diesel, serde_json,
//! argon2, jsonwebtoken, tokio or utoipa may ever appear in this crate's dependencies. Every
//! port of the use cases is synchronous: adapters are blocking (diesel, argon2), and the HTTP
//! layer runs a whole use case on the blocking pool. The one exception is
//! [`rate_limit::RateLimiter`], asked on every request before any use case, which returns a
//! `std` future (ADR 0017).
//!
//! Every rule here is unit-tested through mockall mocks of the ports (feature `mocks` exposes
//! them to other crates' tests).

pub mod actor;
pub mod auth;
pub mod authorisation;
pub mod error;
pub mod event;
mod id;
pub mod idempotency;
pub mod invoice;
pub mod order;
pub mod pagination;
pub mod payment;
pub mod ports;
pub mod product;
pub mod rate_limit;
pub mod services;
pub mod user;
pub mod validation;
pub mod webhook;

pub use actor::Actor;
pub use error::StoreError;
