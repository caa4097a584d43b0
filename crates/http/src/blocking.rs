//! Running the synchronous domain on actix's blocking thread pool.
//!
//! Domain services are synchronous (diesel, argon2), so every handler hands its one service
//! call to `web::block`; running it inline would stall an async worker and every request it
//! serves. The closure runs inside the request's tracing span, so whatever the adapters log
//! carries the request id.

use actix_web::web;

use crate::problem::ApiError;

/// Runs `work` on the blocking pool inside the current span. A pool failure or a panic in
/// `work` becomes a bare 500.
pub async fn run<F, T>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    Ok(web::block(move || span.in_scope(work)).await?)
}
