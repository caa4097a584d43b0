//! Rate limiting at the HTTP edge (docs/api.md#rate-limiting): the [`enforce`] middleware, run
//! on every request, decides which buckets the request draws from and turns the limiter's
//! verdict into the response's fields of the IETF RateLimit draft, or into a 429.
//!
//! The rules (policies, verdicts, which refusal a client waits out) are the domain's
//! (`orderly_domain::rate_limit`); the buckets (GCRA, in process or in Redis, failing open)
//! are the `orderly-rate-limit` adapter's, reached through the domain's port
//! [`RateLimiter`](orderly_domain::rate_limit::RateLimiter) (`ApiState::rate_limits`, built once
//! per process by the server). This module owns only what needs the request:
//!
//! - **Which buckets.** `default`, per caller: the user id of a *valid* bearer token, otherwise
//!   the client address ([`crate::client_address`]), so a user keeps one bucket across
//!   addresses and an invalid token buys no fresh one. `login`, per client address, on
//!   `POST /v1/auth/tokens` and `POST /v1/users` only (one bucket for both), in addition to
//!   `default` — what it slows down is password guessing, and the argon2 hash each of those
//!   requests costs (a flood of registrations would otherwise slow every login down). Every
//!   request counts, whatever its route or outcome (404s and probes too).
//! - **Headers.** `RateLimit-Policy: "default";q=600;w=60` and `RateLimit: "default";r=599;t=1`
//!   on every response (both policies, comma-separated, on the login and registration routes),
//!   where `r` is the tokens left after this request and `t` the whole seconds (rounded up)
//!   until the bucket is full again; none for a policy whose store could not answer. A refused
//!   request is 429 `rate_limited` with `Retry-After` (whole seconds, at least 1, until a token
//!   is available) and never reaches its handler; [`REFUSED_REQUESTS_METRIC`] counts it under
//!   the policy that refused it.

mod middleware;

pub use middleware::{LOGIN_PATH, REGISTRATION_PATH, enforce};

/// Counter of requests refused with 429, labelled `policy` (`default` or `login`).
pub const REFUSED_REQUESTS_METRIC: &str = "rate_limited_requests_total";
