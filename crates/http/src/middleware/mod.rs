//! Cross-cutting request/response processing, outermost first:
//!
//! 1. [`request_id`] — gives every request an id and echoes it on every response;
//! 2. [`security_headers`] — the headers every response carries;
//! 3. [`telemetry`] — one tracing span per request (via `tracing-actix-web`);
//! 4. [`problem_responses`] — turns every failure into a problem+json body with the request's
//!    context, and logs server faults;
//! 5. [`head`] — answers `HEAD` with the matching `GET` route.
//!
//! `crate::app` registers them in that order; the order matters (each relies on the ones
//! outside it), so it is kept in one place.

pub mod head;
pub mod problem_responses;
pub mod request_id;
pub mod security_headers;
pub mod telemetry;
