//! Test support (feature `testing`): a fresh, migrated database per test, on SQLite always and
//! on PostgreSQL when `ORDERLY_TEST_POSTGRES_URL` names a server, plus [`backend_tests!`] to
//! write a test once and run it on both.
//!
//! PostgreSQL tests need a server URL with the right to create databases, e.g.
//! `ORDERLY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres`. Without it they
//! pass without running and the test binary says so once on stderr. CI sets
//! `ORDERLY_TEST_REQUIRE_POSTGRES=1` as well, which turns a missing or unreachable server into
//! a failure, so PostgreSQL coverage can never vanish silently.
//!
//! [`backend_tests!`]: crate::backend_tests

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use orderly_domain::product::ProductQuery;
use uuid::Uuid;

use orderly_domain::event::DomainEvent;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::{Database, PoolOptions};
use crate::schema::{event_positions, events};
pub use crate::url::Backend;
use crate::url::DatabaseUrl;

/// The PostgreSQL server tests create their databases on (any database of it will do).
pub const POSTGRES_URL_VAR: &str = "ORDERLY_TEST_POSTGRES_URL";
/// Set to `1` to make PostgreSQL tests fail, rather than skip, when the server is missing.
pub const REQUIRE_POSTGRES_VAR: &str = "ORDERLY_TEST_REQUIRE_POSTGRES";

/// Enough connections for the concurrency tests (8 racing threads) to each hold one.
const TEST_POOL: PoolOptions = PoolOptions {
    max_size: 8,
    acquire_timeout: Duration::from_secs(30),
    statement_timeout: Some(Duration::from_secs(30)),
};

/// A database that exists for one test: created empty, migrated, and removed on drop (the
/// SQLite file with its temporary directory; the PostgreSQL database with `DROP DATABASE ...
/// WITH (FORCE)`).
pub struct TestDatabase {
    /// Declared before `cleanup`, so it is dropped first: the pool must close before the
    /// database goes.
    database: Database,
    url: String,
    cleanup: Cleanup,
}

/// What removes the database when dropped.
enum Cleanup {
    /// Deleting the directory deletes the file and its WAL companions.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// A migrated SQLite database in a fresh temporary directory. Panics if that fails.
    pub fn sqlite() -> TestDatabase {
        Self::create_sqlite(true)
    }

    /// A migrated database of its own on the PostgreSQL server named by
    /// `ORDERLY_TEST_POSTGRES_URL`, or `None` when that is unset (see the module docs).
    /// Panics if the variable is set but the server cannot be used, or if it is unset and
    /// `ORDERLY_TEST_REQUIRE_POSTGRES=1`.
    pub fn postgres() -> Option<TestDatabase> {
        Self::create_postgres(true)
    }

    /// The database for `backend`; `None` only for PostgreSQL when it is not configured.
    pub fn for_backend(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(Self::create_sqlite(true)),
            Backend::Postgres => Self::create_postgres(true),
        }
    }

    /// Like [`for_backend`](Self::for_backend), but empty: no migration has run. For testing
    /// migrations, readiness and the `migrate` command.
    pub fn unmigrated(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(Self::create_sqlite(false)),
            Backend::Postgres => Self::create_postgres(false),
        }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn backend(&self) -> Backend {
        match self.cleanup {
            Cleanup::Sqlite { .. } => Backend::Sqlite,
            Cleanup::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A URL for this database (`sqlite://PATH` or `postgres://.../orderly_test_...`), e.g. for
    /// `ORDERLY_DATABASE_URL` when a test launches the real binary.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Runs `work` on a connection of this database (see `Database::with_connection`),
    /// panicking if none can be had.
    fn with_test_connection<T>(&self, work: impl FnOnce(&mut AnyConnection) -> T) -> T {
        self.database()
            .with_connection(|conn| Ok::<_, orderly_domain::StoreError>(work(conn)))
            .unwrap_or_else(|error| panic!("no test connection: {error:#}"))
    }

    /// Every row of the event outbox, in position (commit) order.
    pub fn recorded_events(&self) -> Vec<RecordedEvent> {
        self.with_test_connection(|conn| {
            let rows = events::table
                .order(events::position.asc())
                .select((
                    events::id,
                    events::event_type,
                    events::subject_type,
                    events::subject_id,
                    events::data,
                    events::occurred_at,
                    events::position,
                ))
                .load::<(String, String, String, String, String, chrono::NaiveDateTime, i64)>(conn)
                .unwrap_or_else(|error| panic!("cannot read the events table: {error}"));
            rows.into_iter()
                .map(|(id, event_type, subject_type, subject_id, data, occurred_at, position)| RecordedEvent {
                    id,
                    event_type,
                    subject_type,
                    subject_id,
                    data: serde_json::from_str(&data).unwrap_or_else(|error| panic!("event data is not JSON: {error}")),
                    occurred_at: occurred_at.and_utc(),
                    position,
                })
                .collect()
        })
    }

    /// SQLite only: the last event position handed out (the `event_positions` counter, which
    /// PostgreSQL no longer has: see `events.rs`).
    pub fn last_event_position(&self) -> i64 {
        assert_eq!(self.backend(), Backend::Sqlite, "only SQLite keeps an event counter");
        self.with_test_connection(|conn| {
            event_positions::table
                .filter(event_positions::id.eq(1))
                .select(event_positions::last_position)
                .first::<i64>(conn)
                .unwrap_or_else(|error| panic!("cannot read the event counter: {error}"))
        })
    }

    /// A write transaction that writes no events is open while `while_open` runs: on
    /// PostgreSQL it has taken its transaction id (as any writer has after its first write) but
    /// has not announced itself as an event writer, so it must hold the event feed back in
    /// nothing; on SQLite it holds the write lock.
    pub fn hold_open_write_transaction(&self, while_open: impl FnOnce()) {
        self.with_test_connection(|conn| {
            write_transaction(conn, |conn| {
                if let AnyConnection::Postgresql(pg) = conn {
                    pg.batch_execute("SELECT pg_current_xact_id()")?;
                }
                while_open();
                Ok::<_, diesel::result::Error>(())
            })
            .unwrap_or_else(|error| panic!("holding a transaction open failed: {error}"));
        })
    }

    /// A slow writer, to provoke the race the feed's ordering key must survive: in one write
    /// transaction, writes `events` exactly as every repository does (the same
    /// `insert_events`, as the last write), then runs `while_open` (e.g. a sleep, or checks of
    /// what other connections see meanwhile) before committing, as a transaction delayed
    /// between its last statement and its commit would be. Returns the positions the events got.
    pub fn write_events_holding(&self, events: &[DomainEvent], while_open: impl FnOnce()) -> Vec<i64> {
        self.with_test_connection(|conn| {
            write_transaction(conn, |conn| {
                let positions = crate::events::insert_events(conn, events)?;
                while_open();
                Ok::<_, diesel::result::Error>(positions)
            })
            .unwrap_or_else(|error| panic!("writing events slowly failed: {error}"))
        })
    }

    /// A writer that fails after writing its events: `insert_events` in a write transaction
    /// that then rolls back. Returns the positions the events had been given.
    pub fn write_events_then_roll_back(&self, events: &[DomainEvent]) -> Vec<i64> {
        self.with_test_connection(|conn| {
            let mut given = Vec::new();
            let outcome = write_transaction(conn, |conn| {
                given = crate::events::insert_events(conn, events)?;
                Err::<(), _>(diesel::result::Error::RollbackTransaction)
            });
            assert!(matches!(outcome, Err(diesel::result::Error::RollbackTransaction)), "{outcome:?}");
            given
        })
    }

    /// How many rows `table` holds (`table` is trusted test input).
    pub fn count_rows(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.with_test_connection(|conn| {
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<Count>(conn)
                .unwrap_or_else(|error| panic!("cannot count the rows of {table}: {error}"))
                .n
        })
    }

    /// Runs one SQL statement (e.g. to set up state no port can create yet, such as
    /// `products.reserved` before orders exist) and returns the number of rows it touched.
    pub fn execute(&self, sql: &str) -> usize {
        self.with_test_connection(|conn| {
            diesel::sql_query(sql).execute(conn).unwrap_or_else(|error| panic!("`{sql}` failed: {error}"))
        })
    }

    /// The statement [`ProductRepository::list`](orderly_domain::ports::ProductRepository::list)
    /// runs for `query`, exactly as diesel sends it, and the plan this database makes for it.
    ///
    /// On PostgreSQL the plan is the generic one (parameters unknown) with sorts and sequential
    /// scans priced out (`enable_sort`/`enable_seqscan` off), so it answers "can an index serve
    /// this order and filter?" whatever the table's size and statistics: a plan that still sorts
    /// or scans the table means no index can. On SQLite it is `EXPLAIN QUERY PLAN`.
    pub fn explain_product_list(&self, query: &ProductQuery) -> QueryPlan {
        self.with_test_connection(|conn| {
            let statements = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&statements);
            conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event
                    && let Ok(mut statements) = sink.lock()
                {
                    statements.push(query.to_string());
                }
            });
            let listed = crate::products::list_rows(conn, query);
            conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
            if let Err(error) = listed {
                panic!("listing products failed: {error:#}");
            }
            let statements = statements.lock().map(|statements| statements.clone()).unwrap_or_default();
            let [statement] = statements.as_slice() else {
                panic!("expected one statement, saw {statements:?}");
            };
            // diesel's debug form is `SQL -- binds: [...]`.
            let sql = statement.split(" -- binds: ").next().unwrap_or(statement).to_owned();
            let plan = match conn {
                AnyConnection::Sqlite(sqlite) => {
                    // Unbound parameters are NULL; the plan does not depend on their values.
                    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                        .load::<SqlitePlanRow>(sqlite)
                        .unwrap_or_else(|error| panic!("EXPLAIN QUERY PLAN failed: {error}"))
                        .into_iter()
                        .map(|row| row.detail)
                        .collect::<Vec<_>>()
                }
                AnyConnection::Postgresql(pg) => {
                    let parameters = (1..).take_while(|n| sql.contains(&format!("${n}"))).count();
                    let nulls = vec!["NULL"; parameters].join(", ");
                    pg.batch_execute(&format!(
                        "SET plan_cache_mode = force_generic_plan; SET enable_sort = off; SET enable_seqscan = off; \
                         PREPARE orderly_explained AS {sql}"
                    ))
                    .unwrap_or_else(|error| panic!("cannot prepare the statement to explain: {error}"));
                    let execute = if parameters == 0 { String::new() } else { format!("({nulls})") };
                    let plan = diesel::sql_query(format!("EXPLAIN (COSTS OFF) EXECUTE orderly_explained{execute}"))
                        .load::<PostgresPlanRow>(pg)
                        .unwrap_or_else(|error| panic!("EXPLAIN failed: {error}"))
                        .into_iter()
                        .map(|row| row.line)
                        .collect::<Vec<_>>();
                    pg.batch_execute(
                        "DEALLOCATE orderly_explained; RESET plan_cache_mode; RESET enable_sort; RESET enable_seqscan",
                    )
                    .unwrap_or_else(|error| panic!("cannot reset the connection after EXPLAIN: {error}"));
                    plan
                }
            };
            QueryPlan { sql, plan: plan.join("\n") }
        })
    }

    /// PostgreSQL only: closes every open connection to this database and refuses new ones
    /// until [`end_outage`](Self::end_outage), as if the server had gone away.
    pub fn begin_outage(&self) {
        let name = self.postgres_name("begin_outage");
        self.admin_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"));
        self.terminate_connections();
    }

    /// PostgreSQL only: accepts connections again after [`begin_outage`](Self::begin_outage).
    pub fn end_outage(&self) {
        let name = self.postgres_name("end_outage");
        self.admin_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"));
    }

    /// PostgreSQL only: kills every open connection to this database (as a server restart
    /// would); new ones are still accepted.
    pub fn terminate_connections(&self) {
        let name = self.postgres_name("terminate_connections");
        self.admin_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ));
    }

    fn postgres_name(&self, what: &str) -> &str {
        match &self.cleanup {
            Cleanup::Postgres { name, .. } => name,
            Cleanup::Sqlite { .. } => panic!("TestDatabase::{what} needs PostgreSQL"),
        }
    }

    fn admin_execute(&self, sql: &str) {
        let Cleanup::Postgres { admin_url, .. } = &self.cleanup else { panic!("needs PostgreSQL") };
        let mut admin = PgConnection::establish(admin_url)
            .unwrap_or_else(|error| panic!("cannot reach the PostgreSQL server: {error}"));
        diesel::sql_query(sql).execute(&mut admin).unwrap_or_else(|error| panic!("`{sql}` failed: {error}"));
    }

    fn create_sqlite(migrate: bool) -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("orderly-test-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory for a test database: {error}"));
        let path: PathBuf = dir.path().join("orderly.db");
        let url = format!("sqlite://{}", path.display());
        let database = Database::connect(&DatabaseUrl::sqlite_file(path), TEST_POOL)
            .unwrap_or_else(|error| panic!("cannot open the test SQLite database: {error:#}"));
        let db = TestDatabase { database, url, cleanup: Cleanup::Sqlite { _dir: dir } };
        if migrate {
            db.migrate();
        }
        db
    }

    fn create_postgres(migrate: bool) -> Option<TestDatabase> {
        let admin_url = match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => {
                if postgres_required() {
                    panic!(
                        "{REQUIRE_POSTGRES_VAR}=1 but {POSTGRES_URL_VAR} is not set: set it to a PostgreSQL server URL \
                         such as postgres://postgres@127.0.0.1:5432/postgres"
                    );
                }
                announce_postgres_skipped();
                return None;
            }
        };
        let shown = match DatabaseUrl::parse(&admin_url) {
            Ok(url) if url.backend() == Backend::Postgres => url.to_string(),
            _ => panic!("{POSTGRES_URL_VAR} must be a postgres:// or postgresql:// URL"),
        };
        let name = format!("orderly_test_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|error| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL at {shown} cannot be reached: {error}")
        });
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .unwrap_or_else(|error| panic!("cannot create test database {name} on {shown}: {error}"));
        drop(admin);

        let url = url_with_database(&admin_url, &name);
        // From here on, dropping `cleanup` removes the database, even if setup fails below.
        let cleanup = Cleanup::Postgres { admin_url, name };
        let parsed = DatabaseUrl::parse(&url)
            .unwrap_or_else(|error| panic!("the test database URL derived from {shown} is invalid: {error}"));
        let database = Database::connect(&parsed, TEST_POOL)
            .unwrap_or_else(|error| panic!("cannot connect to the test database: {error:#}"));
        let db = TestDatabase { database, url, cleanup };
        if migrate {
            db.migrate();
        }
        Some(db)
    }

    fn migrate(&self) {
        if let Err(error) = self.database().run_migrations() {
            panic!("cannot migrate the test database: {error:#}");
        }
    }
}

/// A statement and the database's plan for it (see [`TestDatabase::explain_product_list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    /// The SQL as sent, with placeholders (`$1` or `?`).
    pub sql: String,
    /// The plan, one node per line: PostgreSQL's `EXPLAIN` text or SQLite's plan details.
    pub plan: String,
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PostgresPlanRow {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// A row of the `events` table, as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub id: String,
    pub event_type: String,
    pub subject_type: String,
    pub subject_id: String,
    pub data: serde_json::Value,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// The feed position: consecutive from 1, in commit order.
    pub position: i64,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // This handle's connections are closed by now (`TestDatabase::database` is dropped
        // first). Clones held elsewhere keep theirs, which `WITH (FORCE)` then terminates.
        if let Cleanup::Postgres { admin_url, name } = self {
            let dropped =
                PgConnection::establish(admin_url).map_err(|error| error.to_string()).and_then(|mut admin| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .map_err(|error| error.to_string())
                });
            if let Err(error) = dropped {
                // Never panic in drop (it may run during a panic); say what was left behind.
                let _ = writeln!(std::io::stderr(), "warning: test database {name} was not dropped: {error}");
            }
        }
    }
}

fn postgres_required() -> bool {
    std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|value| value.trim() == "1")
}

/// Once per test binary. Written to the process's stderr directly: libtest captures
/// `eprintln!` of passing tests, but not this.
fn announce_postgres_skipped() {
    static ANNOUNCE: Once = Once::new();
    ANNOUNCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL tests NOT run: set {POSTGRES_URL_VAR}=postgres://USER@HOST:PORT/postgres to run them"
        );
    });
}

/// `admin_url` with its database (the path) replaced by `name`, keeping any query.
fn url_with_database(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").unwrap_or(("postgres", admin_url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, query)| format!("?{query}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Writes a test once and runs it on every backend: a `sqlite` test always, and a `postgres`
/// test that returns early (passing) when PostgreSQL is not configured.
///
/// Each `fn name(db: &TestDatabase) { ... }` becomes a module `name` holding the tests
/// `name::sqlite` and `name::postgres`, so `cargo test name` runs both and `cargo test
/// postgres` runs every PostgreSQL test. The module imports its parent (`use super::*`).
///
/// Synchronous tests get `#[test]` added. For `async fn`, write the runtime's test attribute
/// yourself; it is put on both generated tests:
///
/// ```ignore
/// use orderly_persistence::testing::TestDatabase;
///
/// orderly_persistence::backend_tests! {
///     fn starts_empty(db: &TestDatabase) {
///         assert_eq!(db.database().pending_migrations().unwrap(), 0);
///     }
///
///     #[actix_web::test]
///     async fn serves_over_http(db: &TestDatabase) {
///         let app = spawn_app(db.url()).await;
///         // ...
///     }
/// }
/// ```
///
/// Other attributes (`#[ignore]`, doc comments) are kept on both tests. To choose backends
/// yourself, loop over [`Backend`](crate::Backend) with
/// [`TestDatabase::for_backend`](crate::testing::TestDatabase::for_backend).
#[macro_export]
macro_rules! backend_tests {
    () => {};
    (
        $(#[$meta:meta])*
        async fn $name:ident($db:ident : $ty:ty) $body:block
        $($rest:tt)*
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn __backend_test_body($db: $ty) $body

            $(#[$meta])*
            async fn sqlite() {
                let db = $crate::testing::TestDatabase::sqlite();
                __backend_test_body(&db).await;
            }

            $(#[$meta])*
            async fn postgres() {
                let Some(db) = $crate::testing::TestDatabase::postgres() else { return };
                __backend_test_body(&db).await;
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
    (
        $(#[$meta:meta])*
        fn $name:ident($db:ident : $ty:ty) $body:block
        $($rest:tt)*
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn __backend_test_body($db: $ty) $body

            #[test]
            $(#[$meta])*
            fn sqlite() {
                let db = $crate::testing::TestDatabase::sqlite();
                __backend_test_body(&db);
            }

            #[test]
            $(#[$meta])*
            fn postgres() {
                let Some(db) = $crate::testing::TestDatabase::postgres() else { return };
                __backend_test_body(&db);
            }
        }

        $crate::backend_tests! { $($rest)* }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_in_the_url_is_replaced() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(url_with_database("postgresql://u:p@h", "t1"), "postgresql://u:p@h/t1");
        assert_eq!(url_with_database("postgres://h/db?sslmode=disable", "t1"), "postgres://h/t1?sslmode=disable");
        assert_eq!(url_with_database("postgres://h?sslmode=disable", "t1"), "postgres://h/t1?sslmode=disable");
    }
}
