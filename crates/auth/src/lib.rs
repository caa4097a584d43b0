//! # orderly-auth — credential adapters
//!
//! Owns the cryptography behind two domain ports:
//!
//! - [`Argon2PasswordHasher`] implements `PasswordHasher`: argon2id at the OWASP minimum cost,
//!   PHC strings out, constant work for unknown accounts via a precomputed dummy hash;
//! - [`JwtTokenService`] implements `TokenService`: HS256 access tokens whose every claim is set
//!   and checked, and opaque refresh tokens (random secrets handed to the client, SHA-256 digests
//!   stored).
//!
//! Must not touch: storage, HTTP, configuration sources or business rules. Whether a login
//! succeeds, when refresh tokens rotate and who may do what are the domain's decisions; this
//! crate only answers "does this password match this hash" and "is this token genuine". Every
//! input it needs (secret, issuer, audience, lifetimes, the current time) is passed in, so the
//! server owns the defaults and tests own the clock. Nothing here logs: the values it handles are
//! passwords, hashes and tokens.

mod access_token;
mod password;
mod permits;
mod refresh_token;

pub use access_token::{JwtSettings, JwtTokenService};
pub use password::{Argon2PasswordHasher, default_max_concurrent};
