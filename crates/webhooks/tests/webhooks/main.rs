//! The webhook sender as the domain sees it, through the `WebhookSender` port, against real
//! HTTP receivers on loopback: what a delivery carries and how it is signed, how each kind of
//! answer (or no answer) ends, and the SSRF guard at delivery time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod answers;
mod destinations;
mod fixtures;
mod signing;
