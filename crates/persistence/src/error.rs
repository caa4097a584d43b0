//! Turning driver and pool failures into the domain's `StoreError`.
//!
//! Two questions only: is the database out of reach or too slow right now (down, restarting,
//! failing over, a statement timeout: worth a retry, 503), or did something unexpected happen
//! (a bare 500)? The driver's message, which may quote SQL or data, stays in the `anyhow`
//! cause chain for the logs; the top-level message is always the fixed operation description
//! given here, so it is safe anywhere.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use orderly_domain::StoreError;

/// A pool check-out failed: no connection could be had within the acquire timeout.
pub(crate) fn pool_unavailable(error: diesel::r2d2::PoolError) -> StoreError {
    StoreError::Unavailable(anyhow::Error::new(error).context("no database connection available"))
}

/// A statement failed while doing `operation` (e.g. "inserting a user").
pub(crate) fn query_failed(error: DieselError, operation: &'static str) -> StoreError {
    if is_connection_failure(&error) {
        StoreError::Unavailable(anyhow::Error::new(error).context(operation))
    } else {
        StoreError::Unexpected(anyhow::Error::new(error).context(operation))
    }
}

/// A stored row that the domain refuses (e.g. an id that is not a UUID): a bug or a manual edit.
pub(crate) fn corrupt_row(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("{detail}").context(format!("corrupt {what} row")))
}

/// Failures that mean "the database cannot serve this right now, try again", not "this query
/// is wrong": the server is down, restarting, failing over, or too slow.
fn is_connection_failure(error: &DieselError) -> bool {
    match error {
        // diesel's PostgreSQL driver says `ClosedConnection` when libpq reports the connection
        // bad or the SQLSTATE is class 08; `UnableToSendCommand` when libpq could not send
        // the query or returned no result (typically a dead socket).
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        // A write reached a read-only server: during a failover the old primary's address
        // briefly points at a standby. Orderly never opens read-only transactions itself.
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => true,
        // A transaction whose connection died cannot even be rolled back.
        DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => is_transient_message(info.message()),
        _ => false,
    }
}

/// What the server or libpq says when it is unreachable or cannot serve for now, for the
/// errors diesel files under `Unknown`: diesel exposes no SQLSTATE, only the message, so the
/// message is matched. (PostgreSQL translates server messages when `lc_messages` is not
/// English; then only the `ClosedConnection` cases above are recognised. libpq's own
/// messages are not translated by the bundled build.)
const TRANSIENT_MESSAGES: [&str; 16] = [
    // SQLSTATE 57P01 admin_shutdown: a fast shutdown or `pg_terminate_backend`.
    "terminating connection due to administrator command",
    // 57P02 crash_shutdown: another backend crashed and the server is resetting.
    "terminating connection because of crash of another server process",
    // 57P03 cannot_connect_now, and the start-up / shutdown / recovery refusals.
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    // 57014 query_canceled by `statement_timeout` (see `PoolOptions::statement_timeout`):
    // the database is too busy to answer in time; a retry may well succeed.
    "canceling statement due to statement timeout",
    // 40001 on a hot standby whose replay needed the rows this query read.
    "canceling statement due to conflict with recovery",
    // libpq, when the socket dies under a query.
    "server closed the connection unexpectedly",
    "no connection to the server",
    "could not connect to server",
    "could not receive data from server",
    "could not send data to server",
    "ssl connection has been closed unexpectedly",
    // SQLite's busy timeout ran out behind another writer: transient, like a pool timeout.
    "database is locked",
    "database is busy",
];

fn is_transient_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    TRANSIENT_MESSAGES.iter().any(|fragment| message.contains(fragment))
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn connection_failures_are_unavailable_and_others_unexpected() {
        let closed = database_error(DatabaseErrorKind::ClosedConnection, "server closed");
        assert!(matches!(query_failed(closed, "reading"), StoreError::Unavailable(_)));
        let locked = database_error(DatabaseErrorKind::Unknown, "database is locked");
        assert!(matches!(query_failed(locked, "writing"), StoreError::Unavailable(_)));
        let syntax = database_error(DatabaseErrorKind::Unknown, "syntax error at or near \"SELEC\"");
        let error = query_failed(syntax, "listing users");
        assert!(matches!(error, StoreError::Unexpected(_)));
        // The message a caller might show is the operation, never the driver's text.
        assert_eq!(error.to_string(), "listing users");
        assert!(matches!(query_failed(DieselError::NotFound, "x"), StoreError::Unexpected(_)));
    }

    /// The messages PostgreSQL and libpq give while the server is down, restarting, failing
    /// over or too slow, as diesel delivers them (kind `Unknown` unless libpq already marked
    /// the connection bad).
    #[test]
    fn outage_and_timeout_messages_are_unavailable() {
        let transient = [
            (DatabaseErrorKind::Unknown, "terminating connection due to administrator command"),
            (DatabaseErrorKind::Unknown, "FATAL:  terminating connection because of crash of another server process"),
            (DatabaseErrorKind::Unknown, "the database system is starting up"),
            (DatabaseErrorKind::Unknown, "the database system is shutting down"),
            (DatabaseErrorKind::Unknown, "the database system is in recovery mode"),
            (DatabaseErrorKind::Unknown, "canceling statement due to statement timeout"),
            (DatabaseErrorKind::Unknown, "canceling statement due to conflict with recovery"),
            (
                DatabaseErrorKind::Unknown,
                "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n",
            ),
            (DatabaseErrorKind::Unknown, "no connection to the server\n"),
            (DatabaseErrorKind::Unknown, "could not receive data from server: Connection reset by peer"),
            (DatabaseErrorKind::Unknown, "could not send data to server: Broken pipe"),
            (DatabaseErrorKind::Unknown, "SSL connection has been closed unexpectedly"),
            (DatabaseErrorKind::Unknown, "database is busy"),
            (DatabaseErrorKind::UnableToSendCommand, "another command is already in progress"),
            (DatabaseErrorKind::ReadOnlyTransaction, "cannot execute INSERT in a read-only transaction"),
        ];
        for (kind, message) in transient {
            let error = query_failed(database_error(kind, message), "reading");
            assert!(matches!(error, StoreError::Unavailable(_)), "{kind:?} {message:?} → {error:?}");
        }
        assert!(matches!(query_failed(DieselError::BrokenTransactionManager, "x"), StoreError::Unavailable(_)));

        let faults = [
            (DatabaseErrorKind::Unknown, "canceling statement due to user request"),
            (DatabaseErrorKind::Unknown, "relation \"users\" does not exist"),
            (DatabaseErrorKind::Unknown, "invalid byte sequence for encoding \"UTF8\": 0x00"),
            (DatabaseErrorKind::UniqueViolation, "duplicate key value violates unique constraint"),
            (DatabaseErrorKind::CheckViolation, "new row violates check constraint"),
        ];
        for (kind, message) in faults {
            let error = query_failed(database_error(kind, message), "writing");
            assert!(matches!(error, StoreError::Unexpected(_)), "{kind:?} {message:?} → {error:?}");
        }
    }

    /// The PostgreSQL server the tests use, if configured (see `crate::testing`).
    fn postgres_url() -> Option<String> {
        match std::env::var("ORDERLY_TEST_POSTGRES_URL") {
            Ok(url) => Some(url),
            Err(_) if std::env::var("ORDERLY_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
                panic!("ORDERLY_TEST_REQUIRE_POSTGRES=1 but ORDERLY_TEST_POSTGRES_URL is not set")
            }
            Err(_) => None,
        }
    }

    /// What a real server says when a statement outlives `statement_timeout`.
    #[test]
    fn a_real_statement_timeout_is_unavailable() {
        let Some(url) = postgres_url() else { return };
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        conn.batch_execute("SET statement_timeout = 50").unwrap();
        let error = diesel::sql_query("SELECT pg_sleep(2)").execute(&mut conn).unwrap_err();
        // No SQLSTATE-specific kind: diesel files it under `Unknown`, so only the message tells.
        assert!(
            matches!(&error, DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == "canceling statement due to statement timeout"),
            "{error:?}"
        );
        let classified = query_failed(error, "sleeping");
        assert!(matches!(classified, StoreError::Unavailable(_)), "{classified:?}");
        // The connection itself is fine afterwards.
        conn.batch_execute("SELECT 1").unwrap();
    }

    /// What a real server says to a session it terminates (a fast shutdown or restart does the
    /// same to every session), on the statement that finds out.
    #[test]
    fn a_real_terminated_session_is_unavailable() {
        let Some(url) = postgres_url() else { return };
        let mut victim = diesel::PgConnection::establish(&url).unwrap();
        let mut admin = diesel::PgConnection::establish(&url).unwrap();
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let Pid { pid } = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(&mut victim).unwrap();
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid}, 5000)")).execute(&mut admin).unwrap();
        // Seen with PostgreSQL 15: `ClosedConnection`, "terminating connection due to
        // administrator command"; then `UnableToSendCommand`, "no connection to the server".
        let error = diesel::sql_query("SELECT 1").execute(&mut victim).unwrap_err();
        let classified = query_failed(error, "reading");
        assert!(matches!(classified, StoreError::Unavailable(_)), "{classified:?}");
        // And the next statement on the dead connection too.
        let error = diesel::sql_query("SELECT 1").execute(&mut victim).unwrap_err();
        assert!(matches!(query_failed(error, "reading"), StoreError::Unavailable(_)));
    }
}
