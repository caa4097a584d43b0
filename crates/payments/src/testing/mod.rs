//! Test support (feature `testing`), for this crate's tests and other crates' end-to-end tests:
//!
//! - [`LocalStripe`]: a real `localstripe` process (PyPI, a stateful stand-in for Stripe's API)
//!   per test, on a free loopback port, killed on drop. `.ci/localstripe-venv` installs it into
//!   `target/localstripe-venv`. When it cannot be found, tests that need it pass without running
//!   and the test binary says so once on stderr; `ORDERLY_TEST_REQUIRE_LOCALSTRIPE=1` (set by CI)
//!   turns that into a failure, so the coverage can never vanish silently.
//! - [`StubProvider`]: a scripted HTTP server on loopback that answers what a test tells it to
//!   (delays, statuses, headers, bodies) and records what it was sent, to inject the faults
//!   localstripe cannot: slow, wrong, malformed or failing answers. Also a receiver for
//!   localstripe's webhooks. [`StubProvider::proxy`] is the same server as a fault-injecting
//!   proxy in front of localstripe: requests take effect upstream, answers come late or wrong.
//! - [`sign_event`]: a `Stripe-Signature` header for a body, as Stripe computes it.
//!
//! Test helpers panic with a message rather than return errors: a broken fixture is a failed
//! test. Nothing here listens on, or talks to, anything but loopback, and every server and
//! loop here stops by itself.

mod localstripe;
mod stub;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

pub use localstripe::{LOCALSTRIPE_VAR, LocalStripe, REQUIRE_LOCALSTRIPE_VAR};
pub use stub::{ProxyFault, ProxyFaultKind, SeenRequest, StubProvider, StubResponse};

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp` (unix seconds)
/// with the endpoint secret `secret`: `t=<timestamp>,v1=<hex HMAC-SHA256>`.
pub fn sign_event(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|error| panic!("HMAC takes any key: {error}"));
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}
