//! Errors shared by every port: the store is either unreachable or failed unexpectedly.
//! Operation-specific errors (e.g. `RegisterError`) live beside their use case and wrap this.

/// A storage failure that is not a business outcome.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached (pool timeout, connection refused). Worth retrying:
    /// inbound adapters answer 503 with `Retry-After`.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or an unexpected database answer. Answered as a bare 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
