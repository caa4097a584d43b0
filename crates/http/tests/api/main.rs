//! The HTTP adapter as a consumer sees it: `app(state)` driven through actix's test service,
//! over mocks of the domain's use-case ports (ADR 0019; `support::UseCases`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod auth;
mod cors;
mod events;
mod idempotency;
mod ids;
mod invoices;
mod machinery;
mod observability;
mod openapi;
mod order_of_checks;
mod orders;
mod payments;
mod products;
mod rate_limit;
mod request_bodies;
mod revocation;
mod support;
mod unrouted;
mod users;
mod webhooks;
mod wire;
