//! The persistence adapter as its callers see it: through the domain's ports, on every
//! backend. Each test runs on SQLite and, when `ORDERLY_TEST_POSTGRES_URL` is set, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod connections;
mod events;
mod fixtures;
mod idempotency;
mod jobs;
mod migrations;
mod orders;
mod payments;
mod products;
mod refresh_tokens;
mod users;
mod webhooks;
