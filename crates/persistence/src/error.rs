//! Turning driver and pool failures into the domain's `StoreError`.
//!
//! Two questions only: is the database out of reach (worth a retry: 503), or did something
//! unexpected happen (a bare 500)? The driver's message, which may quote SQL or data, stays in
//! the `anyhow` cause chain for the logs; the top-level message is always the fixed operation
//! description given here, so it is safe anywhere.

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

/// Failures that mean "the database cannot be talked to right now", not "this query is wrong".
fn is_connection_failure(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        // A transaction whose connection died cannot even be rolled back.
        DieselError::BrokenTransactionManager => true,
        // SQLite's busy timeout ran out behind another writer: transient, like a pool timeout.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_others_unexpected() {
        let closed =
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new("server closed".to_owned()));
        assert!(matches!(query_failed(closed, "reading"), StoreError::Unavailable(_)));
        let locked = DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new("database is locked".to_owned()));
        assert!(matches!(query_failed(locked, "writing"), StoreError::Unavailable(_)));
        let syntax = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error at or near \"SELEC\"".to_owned()),
        );
        let error = query_failed(syntax, "listing users");
        assert!(matches!(error, StoreError::Unexpected(_)));
        // The message a caller might show is the operation, never the driver's text.
        assert_eq!(error.to_string(), "listing users");
        assert!(matches!(query_failed(DieselError::NotFound, "x"), StoreError::Unexpected(_)));
    }
}
