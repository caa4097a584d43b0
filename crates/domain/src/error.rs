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

/// An error with every cause in its chain, `: `-separated, for logs and stored job errors
/// (what `{:#}` prints for an `anyhow::Error`, which `StoreError` and `ProviderError` are not:
/// their own `{:#}` would print the top message only, losing the reason).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        // `#[error(transparent)]` layers repeat their source's message.
        if !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept() {
        let error = StoreError::Unavailable(anyhow::anyhow!("connection refused").context("checking out"));
        assert_eq!(with_causes(&error), "the database is unavailable: checking out: connection refused");
    }
}
