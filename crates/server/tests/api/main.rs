//! Full-stack API tests: the real `Application` (router, services, argon2, JWT, diesel) on a
//! fresh database per test, driven over HTTP as a consumer would. Every test runs on SQLite
//! and, when `ORDERLY_TEST_POSTGRES_URL` is set, on PostgreSQL too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

mod events;
mod idempotency;
mod metrics;
mod operational;
mod orders;
mod payments;
mod products;
mod rate_limit;
mod refusals;
mod request_bodies;
mod sessions;
mod users;
