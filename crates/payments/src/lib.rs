//! # orderly-payments — the payment-provider adapter
//!
//! Owns Orderly's side of Stripe's REST API (PaymentIntents and refunds) behind the domain's
//! [`PaymentProvider`](orderly_domain::ports::PaymentProvider) port: the HTTP client and its
//! time bounds ([`StripeSettings`]), bounded retries with the same idempotency key where a retry
//! is safe, the checks every answer must pass before it counts (status, media type, JSON shape,
//! reference, amount, currency, attempt id), the translation of Stripe's statuses and decline
//! codes into the domain's [`ChargeState`](orderly_domain::ports::ChargeState) and client-facing
//! failure codes, the verification of signed events (`Stripe-Signature`), and the [`metrics`]
//! of all of it.
//!
//! Must not touch: business rules (when to pay, what a failure does to the order, when to
//! reconcile or refund: `orderly-domain` decides, this crate only asks and reports), the
//! database, the HTTP server and its routes, async runtimes. Calls block their thread; callers
//! on an async runtime run them on a blocking pool (`actix_web::web::block`), never on a worker.
//!
//! ## Rules this crate follows
//!
//! - An answer that fails a check is [`ProviderError::Untrustworthy`], never a success; a
//!   decline is an answer ([`ChargeState::Failed`]), not an error.
//! - Only a request that provably had no effect is retried blindly: confirm and refund (the
//!   calls that move money) are retried only when nothing was sent or Stripe said 429.
//! - The secret key, the webhook secret, the `Authorization` header and provider bodies never
//!   reach a log or an error message; provider error *codes* and *types* may.
//!
//! [`ProviderError::Untrustworthy`]: orderly_domain::ports::ProviderError::Untrustworthy
//! [`ChargeState::Failed`]: orderly_domain::ports::ChargeState::Failed

mod answer;
mod event;
pub mod metrics;
mod provider;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;

pub use provider::StripeProvider;
pub use settings::StripeSettings;
