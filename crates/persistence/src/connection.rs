//! One connection type over both backends, and how the pool makes and checks connections.
//!
//! This module holds only `AnyConnection` and its pool plumbing: `#[derive(MultiConnection)]`
//! generates `MultiBackend` and friends next to the enum, so nothing else lives here.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};

/// A connection to whichever database the URL named. Queries are written once against
/// `MultiBackend`; each variant runs them in its own SQL dialect.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// How SQLite waits for a competing writer before giving up with "database is locked".
/// Without it, concurrent writers fail at once (measured: ~1,500 errors in 8 × 200 inserts).
pub(crate) const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// Opens connections for the pool with the backend chosen from the URL scheme, never by
/// `MultiConnection::establish`, which guesses and discards the real error.
#[derive(Clone)]
pub(crate) struct AnyConnectionManager {
    target: ConnectTarget,
}

#[derive(Clone)]
pub(crate) enum ConnectTarget {
    Postgres(String),
    Sqlite(String),
}

impl AnyConnectionManager {
    pub(crate) fn new(target: ConnectTarget) -> Self {
        Self { target }
    }
}

impl ManageConnection for AnyConnectionManager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.target {
            ConnectTarget::Postgres(url) => diesel::PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            ConnectTarget::Sqlite(path) => diesel::SqliteConnection::establish(path)
                .map(AnyConnection::Sqlite)
                .map_err(r2d2::Error::ConnectionError),
        }
    }

    /// Runs on every check-out (`test_on_check_out`): after PostgreSQL restarts, the dead
    /// connections fail this cheap query and are replaced, so the service recovers by itself.
    ///
    /// An SQLite connection is a handle on a local file, with no server that could go away,
    /// and `SELECT 1` does not even read the file: the check would prove nothing, so SQLite
    /// connections are not checked.
    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        match conn {
            AnyConnection::Sqlite(_) => Ok(()),
            AnyConnection::Postgresql(_) => conn.ping().map_err(r2d2::Error::QueryError),
        }
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Settings every pooled connection gets when it is opened, because they live in the session,
/// not in the database.
///
/// - SQLite: only `journal_mode` persists in the file (set once, at start-up); the busy
///   timeout, foreign keys and sync mode must be repeated on every connection.
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
            AnyConnection::Sqlite(sqlite) => sqlite.batch_execute(&format!(
                // Foreign keys are off by default in SQLite builds other than the bundled one.
                // NORMAL is durable with WAL except for the last commits on power loss.
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
            )),
            AnyConnection::Postgresql(pg) => match self.statement_timeout {
                Some(timeout) => pg.batch_execute(&statement_timeout_sql(timeout)),
                None => Ok(()),
            },
        }
    }
}

impl CustomizeConnection<AnyConnection, r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
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
