//! The Stripe adapter as the domain sees it, through the `PaymentProvider` port: against a real
//! localstripe process (skipped, and said so, when it is not installed; required in CI) and
//! against a scripted stub that injects the faults localstripe cannot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod events;
mod fixtures;
mod localstripe;
mod stub;
