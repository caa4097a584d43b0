//! # orderly-persistence — the database adapter
//!
//! Owns everything SQL: the choice of backend from the URL ([`DatabaseUrl`]), the connection
//! pool ([`Database`]) with its time bounds and [`metrics`], the hand-kept diesel schema, row
//! structs, the embedded migrations (`migrations/postgres` and `migrations/sqlite`, same
//! names), and the repositories that
//! implement the domain's ports ([`DieselUserRepository`], [`DieselRefreshTokenRepository`],
//! [`DieselProductRepository`], [`DieselOrderRepository`], [`DieselInvoiceRepository`],
//! [`DieselEventFeed`], [`DieselIdempotentExecutor`], [`DieselReadiness`],
//! [`DieselPaymentRepository`], [`DieselJobQueue`], [`DieselWebhookRepository`]). One code
//! path serves PostgreSQL and SQLite through `#[derive(diesel::MultiConnection)]`.
//!
//! Must not touch: HTTP, JSON beyond the stored event payload, tokens or password hashing,
//! async runtimes, business rules. Rules such as "a customer may not change their role" live
//! in `orderly-domain`; this crate only stores what it is given, atomically.
//!
//! ## Rules every repository here follows
//!
//! - Every state-changing port method is one transaction; a domain event is written in the
//!   transaction of the change (transactional outbox, [`serialize_event`]), as its last write,
//!   through `events::insert_events`, which hands out the feed's `position` so that no later
//!   commit can get behind it (see the `events` module).
//! - Concurrency is decided by the database (a conditional `UPDATE ... WHERE version = ?`,
//!   `WHERE spent_at IS NULL`, `WHERE on_hand + delta >= reserved`, `WHERE on_hand - reserved >= q`,
//!   `WHERE status = from`, a per-year invoice counter row), never by locks in this
//!   process nor by a read-modify-write, so it holds across instances.
//! - Constraint violations that are business outcomes become domain variants (a taken email is
//!   `InsertUserError::EmailTaken`), never a 500.
//! - Failures to reach the database are `StoreError::Unavailable` (a 503 the client may retry);
//!   anything else is `StoreError::Unexpected`. Top-level error messages name the operation
//!   only; the driver's text, which may quote SQL, stays in the cause chain for the logs.
//! - Repositories get their connection from `Database::with_connection`, which lends it to a
//!   closure: one from the pool, or, when the repository was built over a handle bound to a
//!   unit of work (see the `database` and [`unit_of_work`] modules), that transaction's
//!   connection; their own transactions then become savepoints inside it.
//! - All work is synchronous diesel. Async callers run it on a blocking pool
//!   (`actix_web::web::block`), never on a runtime worker.
//!
//! ## Types and times
//!
//! `MultiConnection` supports neither `Uuid`, `Timestamptz` nor `Jsonb`, so ids are `TEXT`
//! (hyphenated UUIDs), times are `TIMESTAMP` holding UTC truncated to microseconds, and event
//! data is JSON in `TEXT`. Conversions happen at the row boundary, in each repository module.
//!
//! ## Testing (feature `testing`)
//!
//! `testing::TestDatabase` gives each test its own migrated database: a temporary SQLite file,
//! or, when `ORDERLY_TEST_POSTGRES_URL` names a PostgreSQL server, a database of its own there,
//! dropped afterwards. `backend_tests!` writes a test once and runs it on both:
//!
//! ```ignore
//! use orderly_persistence::testing::TestDatabase;
//!
//! orderly_persistence::backend_tests! {
//!     fn migrations_are_applied(db: &TestDatabase) {
//!         assert_eq!(db.database().pending_migrations().unwrap(), 0);
//!     }
//!
//!     // Async tests name their runtime's test attribute themselves.
//!     #[actix_web::test]
//!     async fn registration_over_http(db: &TestDatabase) {
//!         let app = TestApp::spawn(db.url()).await;
//!         // ...
//!     }
//! }
//! ```
//!
//! `TestDatabase` also reads the event outbox (`recorded_events`), runs raw SQL for state no
//! port can create yet (`execute`), and shows the plan of a catalogue query
//! (`explain_product_list`), which the suite uses to prove every listing is index-backed.
//!
//! Tests that want to pick backends themselves can use
//! `TestDatabase::for_backend(Backend::Postgres)`, which is `None` when PostgreSQL is not
//! configured. Run the PostgreSQL half with
//! `ORDERLY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres`; CI also sets
//! `ORDERLY_TEST_REQUIRE_POSTGRES=1` so that a missing server fails instead of skipping.

mod connection;
mod database;
mod error;
mod events;
mod idempotency;
mod jobs;
pub mod metrics;
mod orders;
mod payments;
mod products;
mod readiness;
mod refresh_tokens;
mod schema;
mod timestamps;
pub mod unit_of_work;
mod url;
mod users;
mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

pub use database::{Database, PoolOptions, PoolStatus};
pub use events::{DieselEventFeed, SerializedEvent, serialize_event};
pub use idempotency::DieselIdempotentExecutor;
pub use jobs::DieselJobQueue;
pub use orders::{DieselInvoiceRepository, DieselOrderRepository};
pub use payments::DieselPaymentRepository;
pub use products::{DieselProductRepository, INITIAL_STOCK_REASON};
pub use readiness::DieselReadiness;
pub use refresh_tokens::DieselRefreshTokenRepository;
pub use unit_of_work::{DieselUnitOfWork, repositories};
pub use url::{Backend, DatabaseUrl, LIBPQ_DEFAULTS, PostgresUrl, UnsupportedDatabaseUrl};
pub use users::DieselUserRepository;
pub use webhooks::DieselWebhookRepository;
