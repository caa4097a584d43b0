//! The HTTP adapter as a consumer sees it: `app(state)` driven through actix's test service,
//! with the real domain services wired to the domain's mockall mocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod events;
mod idempotency;
mod invoices;
mod machinery;
mod openapi;
mod orders;
mod products;
mod support;
mod users;
mod wire;
