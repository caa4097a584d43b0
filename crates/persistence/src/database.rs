//! The database handle: the connection pool for the chosen backend, and its migrations; and
//! the one place every repository gets its connection from ([`Database::with_connection`]).
//!
//! ## Bound to a unit of work
//!
//! A `Database` is either the pool itself — each repository call checks a connection out —
//! or a handle **bound to one transaction** ([`Database::bound_to`]), made by
//! [`crate::DieselUnitOfWork`] and [`crate::DieselIdempotentExecutor`] for the repositories
//! they hand a use case: every call through such a handle borrows that transaction's
//! connection, so its reads see the transaction's writes and its own `write_transaction`
//! becomes a savepoint inside it. Which one a repository has is decided where it is built,
//! never found in hidden per-thread state: a use case sees the unit of work it was handed.
//!
//! ## Borrowed for a closure, not handed out
//!
//! A repository call does its work inside [`Database::with_connection`], which lends it
//! `&mut AnyConnection` for the closure's duration: a connection of its own from the pool
//! (back to the pool when the closure returns), or the transaction's, taken out of the
//! unit of work's [`TransactionSlot`] and put back when the closure returns — with `Ok`,
//! with `Err`, or through an early `return` or `?` alike, since all of those are a return.
//! While the closure runs, the slot is empty: a second borrow through the same unit of work
//! (nested, or from another thread) gets an error instead of a second handle that would
//! escape the transaction, as does a repository that outlived its unit of work.
//!
//! The lent connection lives in a local variable of `with_connection`, never in a handle
//! that must give it back from `Drop`: a handle owning it would need an `Option` that is
//! empty only after its own drop, and accessors that could not honestly handle `None`.
//!
//! If the closure panics, the lent connection is not put back: it is dropped during the
//! unwinding, and the pool discards a connection returned while panicking, so the
//! transaction dies with it (rolled back by the server as the connection closes). The slot
//! stays empty, so anything that still borrows through it — and the unit of work taking the
//! connection back — gets an error, never a connection whose transaction is half done.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, Pool, PooledConnection};
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use orderly_domain::StoreError;

use crate::connection::{
    AnyConnection, AnyConnectionManager, ConnectTarget, ConnectionSetup, VALIDATE_AFTER_IDLE, statement_timeout_sql,
};
use crate::error::{pool_unavailable, query_failed};
use crate::metrics::{PoolEventMetrics, publish_pool_gauges};
use crate::url::{Backend, DatabaseUrl};

/// One folder per backend, with the same migration names; both are compiled into the binary.
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Serialises migration runs of several instances starting at once against one PostgreSQL
/// database (diesel's harness does not lock). Any constant unique to Orderly will do.
const POSTGRES_MIGRATION_LOCK: i64 = 0x006f_7264_6572_6c79; // "orderly" in ASCII

/// Pool sizing and patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the pool opens.
    pub max_size: u32,
    /// How long a caller waits for a free connection before getting `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout` of every pooled connection: a statement running longer
    /// is cancelled and the call fails as `StoreError::Unavailable`. `None` keeps the server's
    /// setting. Ignored on SQLite, whose only wait (for the write lock) is the busy timeout.
    /// Migrations run without it (see [`Database::run_migrations`]).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_size: 10, acquire_timeout: Duration::from_secs(5), statement_timeout: Some(Duration::from_secs(5)) }
    }
}

/// A snapshot of the pool, for metrics gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: u32,
    /// Connections open now, idle or in use.
    pub connections: u32,
    pub idle_connections: u32,
}

/// A connection of its own from the pool; back to the pool when dropped. Derefs to the
/// connection.
pub(crate) struct Connection(PooledConnection<AnyConnectionManager>);

impl Deref for Connection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.0
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.0
    }
}

/// The connection of a unit of work's transaction, shared by the repositories bound to it.
/// `None` while lent to a repository call (see [`Database::with_connection`]), after a call
/// that had it panicked, and once the unit of work has taken it back.
pub(crate) type TransactionSlot = Arc<Mutex<Option<Connection>>>;

/// The database: a pool of connections to one backend. Cheap to clone (clones share the pool).
///
/// All work is synchronous; callers on an async runtime run it on a blocking pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AnyConnectionManager>,
    backend: Backend,
    /// What every pooled connection is set up with; migrations lift the statement timeout.
    setup: ConnectionSetup,
    /// Set on a handle bound to a unit of work's transaction (see the module docs).
    transaction: Option<TransactionSlot>,
    /// How many check-outs validated their connection with a round trip (see
    /// `AnyConnectionManager::is_valid`).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by this crate's tests only"))]
    pings: Arc<AtomicU64>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("backend", &self.backend).field("status", &self.status()).finish()
    }
}

impl Database {
    /// Opens a pool on the backend that `url` names. One connection is made at once, so a
    /// wrong host, password or path fails here with the driver's own explanation; SQLite
    /// creates the file if it is missing (but not its directory) and is switched to WAL.
    ///
    /// A PostgreSQL URL gets libpq's connect timeout and TCP keep-alives unless it sets them
    /// ([`crate::LIBPQ_DEFAULTS`]), so a dead server is noticed in bounded time.
    ///
    /// A PostgreSQL connection is checked before each use: for free when it was used less than
    /// a second ago, with a `SELECT 1` round trip otherwise (see `connection.rs`).
    pub fn connect(url: &DatabaseUrl, options: PoolOptions) -> anyhow::Result<Database> {
        Self::connect_with(url, options, VALIDATE_AFTER_IDLE)
    }

    /// [`connect`](Self::connect), with the idle time after which a check-out pings its
    /// connection (tests set it to zero or to hours).
    pub(crate) fn connect_with(
        url: &DatabaseUrl,
        options: PoolOptions,
        validate_after_idle: Duration,
    ) -> anyhow::Result<Database> {
        let target = match url {
            DatabaseUrl::Postgres(postgres) => ConnectTarget::Postgres(postgres.with_connection_defaults()),
            DatabaseUrl::Sqlite(_) => ConnectTarget::Sqlite(url.expose().into_owned()),
        };
        let setup = ConnectionSetup { statement_timeout: options.statement_timeout };
        let manager = AnyConnectionManager::new(target, validate_after_idle);
        let pings = manager.pings();

        let mut first = manager.open().with_context(|| match url.backend() {
            Backend::Postgres => format!("could not connect to PostgreSQL at {url}"),
            Backend::Sqlite => format!("could not open the SQLite database {url} (does its directory exist?)"),
        })?;
        // Proves the settings work (a bad statement timeout fails here, not on every check-out).
        setup.apply(&mut first).context("could not configure the database connection")?;
        if url.backend() == Backend::Sqlite {
            // WAL lets readers run beside the writer; the mode is stored in the file, so once
            // is enough. It needs a moment of exclusive access, hence before the pool exists.
            first.batch_execute("PRAGMA journal_mode = WAL").context("could not switch SQLite to WAL mode")?;
        }
        drop(first);

        let pool = Pool::builder()
            .max_size(options.max_size)
            .connection_timeout(options.acquire_timeout)
            // A check before each use, so connections that died (PostgreSQL restarted, a proxy
            // timed them out) are replaced instead of failing a request: the service recovers
            // without a restart. A round trip only after a second of idleness; see
            // `AnyConnectionManager::is_valid`.
            .test_on_check_out(true)
            .connection_customizer(Box::new(setup))
            .error_handler(Box::new(LogPoolErrors))
            .event_handler(Box::new(PoolEventMetrics))
            // The first connection above proved the settings; the rest open in the background.
            .build_unchecked(manager);
        tracing::info!(database = %url, backend = %url.backend(), max_size = options.max_size, "database pool ready");
        Ok(Database { pool, backend: url.backend(), setup, transaction: None, pings })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle_connections: state.idle_connections,
        }
    }

    /// Sets the pool gauges (`db_pool_connections`, `db_pool_idle_connections`,
    /// `db_pool_max_connections`) to the pool's state now. Call it right before rendering
    /// metrics: r2d2 has no event for a connection opening in the background, so the gauges
    /// are read when they are wanted rather than tracked.
    pub fn publish_pool_gauges(&self) {
        publish_pool_gauges(self.status());
    }

    /// Applies the pending migrations of this backend, returning how many ran.
    ///
    /// On PostgreSQL this runs without the pool's statement timeout: waiting for the migration
    /// lock while another instance migrates, or building an index on a large table, may
    /// rightly take longer. The connection gets the timeout back before it returns to the pool.
    pub fn run_migrations(&self) -> anyhow::Result<usize> {
        let mut conn = Connection(self.pool.get().context("no database connection available to run migrations")?);
        let applied = match &mut *conn {
            AnyConnection::Postgresql(pg) => {
                pg.batch_execute(&statement_timeout_sql(Duration::ZERO))
                    .context("could not lift the statement timeout for migrations")?;
                let migrated = migrate_postgres(pg);
                // Whatever happened, the connection goes back to the pool with its timeout.
                let restored = self.setup.apply(&mut conn);
                let applied = migrated?;
                restored.context("could not restore the statement timeout after migrating")?;
                applied
            }
            AnyConnection::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.len())
                .map_err(|error| anyhow::anyhow!(error))?,
        };
        if applied > 0 {
            tracing::info!(applied, backend = %self.backend, "database migrations applied");
        }
        Ok(applied)
    }

    /// How many migrations compiled into this binary the database has not applied yet.
    pub fn pending_migrations(&self) -> Result<usize, StoreError> {
        self.with_connection(pending_migrations)
    }

    /// Runs `work` on the connection for a repository call: the bound transaction's, or one
    /// from the pool (`Unavailable` after the acquire timeout). Either is borrowed only for
    /// the closure; the transaction's goes back to its slot when `work` returns, whatever it
    /// returns (a panic leaves the slot empty: see the module docs).
    pub(crate) fn with_connection<T, E>(&self, work: impl FnOnce(&mut AnyConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let Some(slot) = &self.transaction else {
            let mut own = self.pooled_connection()?;
            return work(&mut own);
        };
        // Owned by this frame while lent, so there is no handle that could be without it.
        let mut lent = slot.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(|| {
            // Lent out already (a second borrow would escape the transaction), or the unit of
            // work is over and a repository outlived it.
            StoreError::Unexpected(anyhow::anyhow!(
                "the unit of work's connection is in use or its transaction has ended"
            ))
        })?;
        let result = work(&mut lent);
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(lent);
        result
    }

    /// A connection of its own from the pool, also on a bound handle.
    pub(crate) fn pooled_connection(&self) -> Result<Connection, StoreError> {
        self.pool.get().map(Connection).map_err(pool_unavailable)
    }

    /// How many check-outs so far validated their connection with a round trip.
    #[cfg(test)]
    pub(crate) fn checkout_pings(&self) -> u64 {
        self.pings.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A handle on the same pool whose repository calls all use the connection in `slot`.
    pub(crate) fn bound_to(&self, slot: TransactionSlot) -> Database {
        Database { transaction: Some(slot), ..self.clone() }
    }
}

/// Applies PostgreSQL's pending migrations under an advisory lock, so that instances starting
/// together migrate one after the other (diesel's harness does not lock).
fn migrate_postgres(pg: &mut diesel::PgConnection) -> anyhow::Result<usize> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(POSTGRES_MIGRATION_LOCK)
        .execute(pg)
        .context("could not take the migration lock")?;
    let result = pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|versions| versions.len());
    let unlocked =
        diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(POSTGRES_MIGRATION_LOCK).execute(pg);
    let applied = result.map_err(|error| anyhow::anyhow!(error))?;
    unlocked.context("could not release the migration lock")?;
    Ok(applied)
}

pub(crate) fn pending_migrations(conn: &mut AnyConnection) -> Result<usize, StoreError> {
    let pending = match conn {
        AnyConnection::Postgresql(pg) => pg.pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.len()),
        AnyConnection::Sqlite(sqlite) => sqlite.pending_migrations(SQLITE_MIGRATIONS).map(|m| m.len()),
    };
    pending.map_err(|error| match error.downcast::<diesel::result::Error>() {
        Ok(error) => query_failed(*error, "listing pending migrations"),
        Err(other) => StoreError::Unexpected(anyhow::anyhow!(other).context("listing pending migrations")),
    })
}

/// r2d2 reports failures to open background connections here; the default handler writes to
/// the `log` crate, which this service does not collect.
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<r2d2::Error> for LogPoolErrors {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;

    use super::*;
    use crate::testing::TestDatabase;

    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        statement_timeout: String,
    }

    /// Runs `work` on a connection from `db` (see [`Database::with_connection`]).
    fn on_connection<T>(db: &Database, work: impl FnOnce(&mut AnyConnection) -> T) -> T {
        db.with_connection(|conn| Ok::<_, StoreError>(work(conn))).unwrap()
    }

    fn statement_timeout_of(db: &Database) -> String {
        on_connection(db, |conn| {
            diesel::sql_query("SHOW statement_timeout").get_result::<Setting>(conn).unwrap().statement_timeout
        })
    }

    const BOUNDED: PoolOptions = PoolOptions {
        max_size: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Some(Duration::from_millis(250)),
    };

    /// Every pooled connection has the timeout, a statement that outlives it fails as
    /// `Unavailable`, and migrations (which run without it) hand the connection back with it.
    #[test]
    fn postgres_connections_carry_the_statement_timeout_except_while_migrating() {
        let Some(empty) = TestDatabase::unmigrated(Backend::Postgres) else { return };
        // One connection, so the migrating one is the one checked afterwards.
        let db = Database::connect(&DatabaseUrl::parse(&empty.url()).unwrap(), BOUNDED).unwrap();
        assert_eq!(statement_timeout_of(&db), "250ms");

        assert!(db.run_migrations().unwrap() >= 1);
        assert_eq!(statement_timeout_of(&db), "250ms");

        let slow = on_connection(&db, |conn| diesel::sql_query("SELECT pg_sleep(1)").execute(conn).unwrap_err());
        assert!(matches!(query_failed(slow, "sleeping"), StoreError::Unavailable(_)));

        let unbounded = Database::connect(
            &DatabaseUrl::parse(&empty.url()).unwrap(),
            PoolOptions { statement_timeout: None, ..BOUNDED },
        )
        .unwrap();
        assert_eq!(statement_timeout_of(&unbounded), "0");
    }

    const HOURS: Duration = Duration::from_secs(3600);

    fn checked_out_and_returned(db: &Database, times: u64) {
        for _ in 0..times {
            on_connection(db, |_| ());
        }
    }

    /// The idle rule, with the threshold injected instead of waited for: with a threshold of
    /// zero every check-out finds its connection idle long enough and pings it; with hours, a
    /// connection opened or returned just now is handed out on the free check alone.
    #[test]
    fn postgres_pings_a_connection_only_when_it_sat_idle_past_the_threshold() {
        let Some(test_db) = TestDatabase::postgres() else { return };
        let url = DatabaseUrl::parse(&test_db.url()).unwrap();

        let idle_long_enough = Database::connect_with(&url, BOUNDED, Duration::ZERO).unwrap();
        checked_out_and_returned(&idle_long_enough, 3);
        assert_eq!(idle_long_enough.checkout_pings(), 3);

        let used_just_now = Database::connect_with(&url, BOUNDED, HOURS).unwrap();
        checked_out_and_returned(&used_just_now, 3);
        assert_eq!(used_just_now.checkout_pings(), 0);
        // A connection that is handed out without a ping works.
        assert_eq!(statement_timeout_of(&used_just_now), "250ms");
    }

    /// The round trip is what makes a killed connection cost no request: past the threshold,
    /// the check-out finds it dead, discards it and opens another.
    #[test]
    fn postgres_connections_killed_while_idle_past_the_threshold_cost_no_request() {
        let Some(test_db) = TestDatabase::postgres() else { return };
        let url = DatabaseUrl::parse(&test_db.url()).unwrap();
        let db = Database::connect_with(&url, PoolOptions { max_size: 2, ..BOUNDED }, Duration::ZERO).unwrap();
        checked_out_and_returned(&db, 2);
        test_db.terminate_connections();
        for _ in 0..5 {
            assert_eq!(statement_timeout_of(&db), "250ms");
        }
        assert!(db.checkout_pings() >= 2 + 5);
    }

    /// An SQLite connection has no server to lose: it is never pinged, whatever its idle time.
    #[test]
    fn sqlite_connections_are_never_pinged() {
        let test_db = TestDatabase::sqlite();
        let db = Database::connect_with(&DatabaseUrl::parse(&test_db.url()).unwrap(), BOUNDED, Duration::ZERO).unwrap();
        checked_out_and_returned(&db, 3);
        assert_eq!(db.checkout_pings(), 0);
    }

    // --- Lending a unit of work's connection ------------------------------------------------

    fn in_use(error: &StoreError) -> bool {
        matches!(error, StoreError::Unexpected(cause) if cause.to_string().contains("in use or its transaction has ended"))
    }

    /// The lent connection is back in its slot after the closure returns, whether with `Ok` or
    /// with `Err`; while it is lent, a second borrow through the slot is refused.
    #[test]
    fn a_bound_handle_lends_the_transaction_connection_for_the_closure_only() {
        let test_db = TestDatabase::sqlite();
        let db = test_db.database();
        let slot: TransactionSlot = Arc::new(Mutex::new(Some(db.pooled_connection().unwrap())));
        let bound = db.bound_to(slot.clone());

        let nested = bound.with_connection(|_| {
            assert!(slot.lock().unwrap().is_none(), "lent while the closure runs");
            Ok::<_, StoreError>(bound.with_connection(|_| Ok::<_, StoreError>(())))
        });
        assert!(in_use(&nested.unwrap().unwrap_err()));
        assert!(slot.lock().unwrap().is_some(), "back after Ok");

        let failed = bound.with_connection(|_| Err::<(), _>(StoreError::Unexpected(anyhow::anyhow!("refused"))));
        assert!(failed.is_err());
        assert!(slot.lock().unwrap().is_some(), "back after Err");
        assert_eq!(
            on_connection(&bound, |conn| diesel::select(1.into_sql::<BigInt>()).get_result::<i64>(conn)).unwrap(),
            1
        );
    }

    /// A panic while the connection is lent drops it (the pool discards it, and its transaction
    /// with it); the slot stays empty, and later borrows fail instead of panicking.
    #[test]
    fn a_panic_while_lent_leaves_the_slot_empty_and_later_borrows_fail() {
        let test_db = TestDatabase::sqlite();
        let db = test_db.database();
        let slot: TransactionSlot = Arc::new(Mutex::new(Some(db.pooled_connection().unwrap())));
        let bound = db.bound_to(slot.clone());

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bound.with_connection(|_| -> Result<(), StoreError> { panic!("a use case panicked") })
        }));
        assert!(panicked.is_err());
        assert!(slot.lock().unwrap().is_none());
        assert!(in_use(&bound.with_connection(|_| Ok::<_, StoreError>(())).unwrap_err()));
    }

    // --- The migration that normalises stored emails ------------------------------------------

    const NORMALISE_EMAILS: &str = "normalise_emails";
    /// "jürgen@example.com" with a precomposed `ü`, the spelling the migration must leave.
    const PRECOMPOSED: &str = "j\u{fc}rgen@example.com";
    /// The same address as `u` + combining diaeresis, as a row written before NFC was the rule.
    const DECOMPOSED: &str = "ju\u{308}rgen@example.com";

    /// A database migrated up to, not including, the migration that normalises emails.
    fn migrated_until_emails_are_normalised(backend: Backend) -> Option<(TestDatabase, Database)> {
        let empty = TestDatabase::unmigrated(backend)?;
        let db = Database::connect(&DatabaseUrl::parse(&empty.url()).unwrap(), PoolOptions::default()).unwrap();
        on_connection(&db, |conn| match conn {
            AnyConnection::Postgresql(pg) => run_migrations_before(pg, || POSTGRES_MIGRATIONS, NORMALISE_EMAILS),
            AnyConnection::Sqlite(sqlite) => run_migrations_before(sqlite, || SQLITE_MIGRATIONS, NORMALISE_EMAILS),
        });
        Some((empty, db))
    }

    /// `source` hands out the (non-`Clone`) migrations afresh for each look.
    fn run_migrations_before<C, B>(conn: &mut C, source: impl Fn() -> EmbeddedMigrations, name: &str)
    where
        C: MigrationHarness<B>,
        B: diesel::backend::Backend,
    {
        loop {
            let pending = conn.pending_migrations(source()).unwrap();
            let next = pending.first().unwrap_or_else(|| panic!("no pending migration named {name}"));
            if next.name().to_string().ends_with(name) {
                return;
            }
            conn.run_migration(next.as_ref()).unwrap();
        }
    }

    fn insert_user(db: &Database, id: &str, email: &str) {
        on_connection(db, |conn| {
            diesel::sql_query(
            "INSERT INTO users (id, email, name, password_hash, role, active, version, created_at, updated_at) \
             VALUES ($1, $2, 'Jürgen', 'not-a-hash', 'customer', TRUE, 1, '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
        )
        .bind::<Text, _>(id)
        .bind::<Text, _>(email)
        .execute(conn)
        .unwrap()
        });
    }

    #[derive(QueryableByName, Debug, PartialEq)]
    struct StoredEmail {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        email: String,
        #[diesel(sql_type = BigInt)]
        version: i64,
    }

    fn stored_emails(db: &Database) -> Vec<StoredEmail> {
        on_connection(db, |conn| {
            diesel::sql_query("SELECT id, email, version FROM users ORDER BY id").load(conn).unwrap()
        })
    }

    const FIRST: &str = "0192f5c2-0000-7000-8000-000000000001";
    const SECOND: &str = "0192f5c2-0000-7000-8000-000000000002";

    fn stored_emails_are_brought_into_nfc_and_then_found_by_either_spelling(backend: Backend) {
        use orderly_domain::ports::UserRepository as _;
        use orderly_domain::user::Email;

        let Some((_test_db, db)) = migrated_until_emails_are_normalised(backend) else { return };
        insert_user(&db, FIRST, DECOMPOSED);
        insert_user(&db, SECOND, "ada@example.com");

        assert!(db.run_migrations().unwrap() >= 1);
        let expected = vec![
            // A new version, so that cached representations with the old spelling revalidate.
            StoredEmail { id: FIRST.to_owned(), email: PRECOMPOSED.to_owned(), version: 2 },
            StoredEmail { id: SECOND.to_owned(), email: "ada@example.com".to_owned(), version: 1 },
        ];
        assert_eq!(stored_emails(&db), expected);

        let users = crate::DieselUserRepository::new(db.clone());
        for spelling in [PRECOMPOSED, DECOMPOSED] {
            let found = users.find_credentials_by_email(&Email::parse(spelling).unwrap()).unwrap();
            assert_eq!(
                found.map(|credentials| credentials.user.email.as_str().to_owned()).as_deref(),
                Some(PRECOMPOSED)
            );
        }
    }

    fn two_stored_spellings_of_one_address_stop_the_migration_and_change_nothing(backend: Backend) {
        let Some((_test_db, db)) = migrated_until_emails_are_normalised(backend) else { return };
        insert_user(&db, FIRST, PRECOMPOSED);
        insert_user(&db, SECOND, DECOMPOSED);

        let error = format!("{:#}", db.run_migrations().unwrap_err());
        assert!(error.contains("normalise_emails"), "{error}");
        assert!(error.contains("one address once Unicode-normalised (NFC)"), "{error}");
        assert!(error.contains("docs/operations.md"), "{error}");
        if backend == Backend::Postgres {
            // PostgreSQL can name the users involved.
            assert!(error.contains(&format!("{FIRST}, {SECOND}")), "{error}");
        }
        let untouched = vec![
            StoredEmail { id: FIRST.to_owned(), email: PRECOMPOSED.to_owned(), version: 1 },
            StoredEmail { id: SECOND.to_owned(), email: DECOMPOSED.to_owned(), version: 1 },
        ];
        assert_eq!(stored_emails(&db), untouched);
        assert!(db.pending_migrations().unwrap() >= 1, "the migration is still pending");
    }

    #[test]
    fn sqlite_stored_emails_are_brought_into_nfc_and_then_found_by_either_spelling() {
        stored_emails_are_brought_into_nfc_and_then_found_by_either_spelling(Backend::Sqlite);
    }

    #[test]
    fn postgres_stored_emails_are_brought_into_nfc_and_then_found_by_either_spelling() {
        stored_emails_are_brought_into_nfc_and_then_found_by_either_spelling(Backend::Postgres);
    }

    #[test]
    fn sqlite_two_stored_spellings_of_one_address_stop_the_migration_and_change_nothing() {
        two_stored_spellings_of_one_address_stop_the_migration_and_change_nothing(Backend::Sqlite);
    }

    #[test]
    fn postgres_two_stored_spellings_of_one_address_stop_the_migration_and_change_nothing() {
        two_stored_spellings_of_one_address_stop_the_migration_and_change_nothing(Backend::Postgres);
    }
}
