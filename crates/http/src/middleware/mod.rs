//! Cross-cutting request/response processing, outermost first:
//!
//! 1. [`request_id`] — gives every request an id and echoes it on every response;
//! 2. [`security_headers`] — the headers every response carries;
//! 3. [`metrics`] — counts and times every response by method, route template and status;
//!    outside everything that can answer (fallback, problem rendering, rate limiting), so it
//!    records the status the client gets;
//! 4. [`telemetry`] — one tracing span per request (via `tracing-actix-web`), with the
//!    request's W3C trace id;
//! 5. `crate::rate_limit::enforce` — takes a token from the caller's buckets, refuses with a
//!    complete 429 problem before any handler runs, and writes the RateLimit fields; inside the
//!    span (its refusals are logged with the request) and outside problem rendering (so every
//!    response, problems included, carries the fields);
//! 6. [`problem_responses`] — turns every failure into a problem+json body with the request's
//!    context, and logs server faults;
//! 7. [`head`] — answers `HEAD` with the matching `GET` route.
//!
//! `crate::app` registers them in that order; the order matters (each relies on the ones
//! outside it), so it is kept in one place.

pub mod cors;
pub mod head;
pub mod metrics;
pub mod problem_responses;
pub mod request_id;
pub mod security_headers;
pub mod telemetry;
