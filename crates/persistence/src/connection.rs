//! One connection type over both backends, and how the pool makes and checks connections.
//!
//! This module holds only `AnyConnection` and its pool plumbing: `#[derive(MultiConnection)]`
//! generates `MultiBackend` and friends next to the enum, so nothing else lives here.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};
use orderly_domain::user::Email;

/// A connection to whichever database the URL named. Queries are written once against
/// `MultiBackend`; each variant runs them in its own SQL dialect.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// How SQLite waits for a competing writer before giving up with "database is locked".
/// Without it, concurrent writers fail at once (measured: ~1,500 errors in 8 × 200 inserts).
pub(crate) const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// A PostgreSQL connection that sat in the pool at least this long is checked with a round
/// trip (`SELECT 1`) before it is handed out; one used more recently gets only the free check
/// (see [`AnyConnectionManager::is_valid`]). HikariCP's rule, with its default of one second.
pub(crate) const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(1);

/// What the pool holds: a connection, and since when it has been idle (opened, or last
/// returned to the pool). Derefs to the connection.
pub(crate) struct PooledAny {
    connection: AnyConnection,
    idle_since: Instant,
}

impl Deref for PooledAny {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.connection
    }
}

impl DerefMut for PooledAny {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }
}

/// Opens connections for the pool with the backend chosen from the URL scheme, never by
/// `MultiConnection::establish`, which guesses and discards the real error; and decides on
/// check-out whether a connection is still good.
#[derive(Clone)]
pub(crate) struct AnyConnectionManager {
    target: ConnectTarget,
    /// How long a PostgreSQL connection may sit idle before a check-out pings it.
    validate_after_idle: Duration,
    /// How many check-out pings were sent (for tests; one relaxed increment per ping).
    pings: Arc<AtomicU64>,
}

#[derive(Clone)]
pub(crate) enum ConnectTarget {
    Postgres(String),
    Sqlite(String),
}

impl AnyConnectionManager {
    pub(crate) fn new(target: ConnectTarget, validate_after_idle: Duration) -> Self {
        Self { target, validate_after_idle, pings: Arc::default() }
    }

    /// The counter of check-out pings, shared with the pool's manager.
    pub(crate) fn pings(&self) -> Arc<AtomicU64> {
        self.pings.clone()
    }

    /// A connection outside the pool (the first one `Database::connect` opens to prove the
    /// URL and the settings).
    pub(crate) fn open(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.target {
            ConnectTarget::Postgres(url) => diesel::PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            ConnectTarget::Sqlite(path) => diesel::SqliteConnection::establish(path)
                .map(AnyConnection::Sqlite)
                .map_err(r2d2::Error::ConnectionError),
        }
    }
}

impl ManageConnection for AnyConnectionManager {
    type Connection = PooledAny;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PooledAny, r2d2::Error> {
        self.open().map(|connection| PooledAny { connection, idle_since: Instant::now() })
    }

    /// Runs on every check-out (`test_on_check_out`), so that connections PostgreSQL dropped
    /// (it restarted, an administrator or a proxy ended them) are replaced instead of failing
    /// a request, and the service recovers by itself. Two checks, in this order:
    ///
    /// 1. **Free**: whatever the socket holds is read without sending anything (libpq's
    ///    `PQconsumeInput`, through diesel's `notifications_iter`; Orderly never `LISTEN`s, so
    ///    there is nothing else to receive). A server that ended the session has sent its
    ///    goodbye and closed the socket: reading finds the end of the stream and fails. Twice,
    ///    because the first read may only take the server's last message, and the second finds
    ///    the end. Costs a few non-blocking system calls, no round trip.
    /// 2. **A round trip** (`SELECT 1`), only for a connection that sat idle at least
    ///    [`VALIDATE_AFTER_IDLE`]: under load connections are reused within milliseconds and
    ///    never pay it (it was 17 % of the server's time on reads, and as much again in the
    ///    PostgreSQL backend); after a quiet spell, when a restart or an idle timeout of a
    ///    proxy may have happened unseen, they do.
    ///
    /// What this leaves: a connection the server ended so recently that its goodbye had not
    /// arrived when the free check read the socket (a restart or `pg_terminate_backend` less
    /// than a second after the connection was last used, or while it is being checked out)
    /// fails its request with a retryable 503, and is then discarded (see [`has_broken`]):
    /// each killed connection costs at most one request.
    ///
    /// An SQLite connection is a handle on a local file, with no server that could go away,
    /// and `SELECT 1` does not even read the file: the check would prove nothing, so SQLite
    /// connections are not checked.
    ///
    /// [`has_broken`]: Self::has_broken
    fn is_valid(&self, conn: &mut PooledAny) -> Result<(), r2d2::Error> {
        let idle_for = conn.idle_since.elapsed();
        match &mut conn.connection {
            AnyConnection::Sqlite(_) => Ok(()),
            AnyConnection::Postgresql(pg) => {
                closed_by_server(pg).map_err(r2d2::Error::QueryError)?;
                if idle_for >= self.validate_after_idle {
                    self.pings.fetch_add(1, Ordering::Relaxed);
                    conn.connection.ping().map_err(r2d2::Error::QueryError)?;
                }
                Ok(())
            }
        }
    }

    /// Runs every time a connection goes back to the pool (r2d2 calls it on each return), so it
    /// also starts the connection's idle time. A connection is discarded when it is returned
    /// during a panic (its transaction may be half done), or when diesel reports it broken:
    /// still in a transaction, or its transaction state in error — which includes every
    /// connection whose statement failed because the server went away (diesel reads libpq's
    /// transaction status after each statement, and a lost connection's is "unknown").
    fn has_broken(&self, conn: &mut PooledAny) -> bool {
        conn.idle_since = Instant::now();
        std::thread::panicking() || conn.connection.is_broken()
    }
}

/// The free check of [`AnyConnectionManager::is_valid`]: reads what the socket holds, without
/// sending anything, and fails if the server has closed the connection.
fn closed_by_server(pg: &mut diesel::PgConnection) -> QueryResult<()> {
    for _ in 0..2 {
        // Each step reads the socket once (`PQconsumeInput`), then returns any notification;
        // there are none, so this is one read per pass.
        for received in pg.notifications_iter() {
            received?;
        }
    }
    Ok(())
}

diesel::define_sql_function! {
    /// The domain's email rule ([`Email::normalise`]) as an SQLite function, for the migration
    /// that brings stored emails into that spelling (`*_normalise_emails`): SQLite has no
    /// Unicode normaliser of its own (PostgreSQL's `normalize` serves there).
    fn orderly_normalise_email(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Settings every pooled connection gets when it is opened, because they live in the session,
/// not in the database.
///
/// - SQLite: only `journal_mode` persists in the file (set once, at start-up); the busy
///   timeout, foreign keys and sync mode must be repeated on every connection, and so must the
///   application-defined function `orderly_normalise_email` the migrations call.
/// - PostgreSQL: `statement_timeout`, so that no statement (a runaway query, one stuck behind a
///   lock) holds a pooled connection and a request thread longer than that; it fails instead,
///   and the failure is a retryable 503 (see `error.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSetup {
    /// `None` leaves the server's own setting (by default: no limit).
    pub(crate) statement_timeout: Option<Duration>,
}

impl ConnectionSetup {
    pub(crate) fn apply(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        match conn {
            AnyConnection::Sqlite(sqlite) => {
                sqlite.batch_execute(&format!(
                    // Foreign keys are off by default in SQLite builds other than the bundled one.
                    // NORMAL is durable with WAL except for the last commits on power loss.
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
                ))?;
                orderly_normalise_email_utils::register_impl(sqlite, |email: String| Email::normalise(&email))
            }
            AnyConnection::Postgresql(pg) => match self.statement_timeout {
                Some(timeout) => pg.batch_execute(&statement_timeout_sql(timeout)),
                None => Ok(()),
            },
        }
    }
}

impl CustomizeConnection<PooledAny, r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut PooledAny) -> Result<(), r2d2::Error> {
        self.apply(conn).map_err(r2d2::Error::QueryError)
    }
}

/// `SET statement_timeout` in whole milliseconds. Zero means no limit (as in PostgreSQL); a
/// shorter-than-a-millisecond timeout rounds up to 1 ms rather than down to "no limit".
pub(crate) fn statement_timeout_sql(timeout: Duration) -> String {
    let millis = if timeout.is_zero() { 0 } else { timeout.as_millis().clamp(1, i32::MAX as u128) };
    format!("SET statement_timeout = {millis}")
}

/// Runs `work` in one transaction that intends to write.
///
/// On SQLite it begins with `BEGIN IMMEDIATE`, taking the write lock up front (waiting up to the
/// busy timeout): a deferred transaction that reads first and writes later can fail with
/// `SQLITE_BUSY` at once, since SQLite cannot upgrade a stale read snapshot. On PostgreSQL it is
/// an ordinary `BEGIN`; correctness there comes from conditional statements and row locks.
///
/// On a connection that is already in a transaction (the ambient transaction of an idempotent
/// request, see `idempotency.rs`) it is a savepoint inside it: `work` commits or rolls back
/// with the enclosing transaction, and a failure rolls back only `work`'s own statements.
pub(crate) fn write_transaction<T, E, F>(conn: &mut AnyConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    begin_write(conn)?;
    // The same tail as diesel's own `transaction`: the state lives in the inner connection, so
    // the multi-connection's commit and rollback apply to either kind of begin.
    match work(&mut *conn) {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        Err(work_error) => match rollback(conn) {
            // A broken manager after a failure: the original error says more.
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(work_error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}

/// Begins what [`write_transaction`] runs in: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on
/// PostgreSQL, or a savepoint when `conn` is already in a transaction. End it with [`commit`]
/// or [`rollback`].
pub(crate) fn begin_write(conn: &mut AnyConnection) -> QueryResult<()> {
    let nested = <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    match conn {
        AnyConnection::Sqlite(sqlite) if !nested => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        }
        _ => <AnyConnection as Connection>::TransactionManager::begin_transaction(conn),
    }
}

/// Commits the innermost transaction (or releases the savepoint) begun by [`begin_write`].
pub(crate) fn commit(conn: &mut AnyConnection) -> QueryResult<()> {
    <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)
}

/// Rolls back the innermost transaction (or to the savepoint) begun by [`begin_write`].
pub(crate) fn rollback(conn: &mut AnyConnection) -> QueryResult<()> {
    <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn)
}
