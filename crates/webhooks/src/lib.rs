//! # orderly-webhooks — the webhook sender
//!
//! Owns Orderly's outbound side of docs/api.md#webhooks behind the domain's
//! [`WebhookSender`](orderly_domain::ports::WebhookSender) port: the body of a delivery (the
//! event exactly as `GET /v1/events` represents it, see [`render_body`]), its Standard Webhooks
//! 1.0 signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`, made with the spec's
//! own `standardwebhooks` library), fresh signing secrets, the HTTP client and its time bounds
//! ([`SenderSettings`]), the SSRF guard at delivery time, the translation of what happened into
//! a [`SendOutcome`](orderly_domain::ports::SendOutcome), and the [`metrics`] of it.
//!
//! Must not touch: which endpoints get which events, the retry schedule, what is stored about a
//! delivery (`orderly-domain` decides, this crate makes one attempt and reports), the database,
//! the HTTP server, async runtimes.
//!
//! ## Rules this crate follows
//!
//! - **One attempt, bounded.** A send never retries by itself; from its start to its outcome it
//!   takes at most the configured timeout (plus scheduling noise): name resolution, connecting,
//!   TLS, sending and waiting for the answer's head all count, and the answer's body is never
//!   read, so a slow, huge or endless body cannot hold it or fill memory.
//! - **The address connected to is the address checked.** The client resolves names only
//!   through this crate's resolver, which refuses a name if *any* address it resolves to is
//!   refused by the [`DestinationPolicy`](orderly_domain::webhook::DestinationPolicy); the URL
//!   itself (IP literals, `localhost`, scheme) is checked before every send. No proxy is used,
//!   no redirect is followed (a 3xx is a rejection), and no connection is reused, so every
//!   delivery resolves and checks afresh.
//! - **Blocking, off the async workers.** The client is reqwest's blocking one: build
//!   [`HttpWebhookSender`] and call it only on threads that may block (a blocking pool such as
//!   `actix_web::rt::task::spawn_blocking`, or a plain thread), never on an async runtime's
//!   worker — reqwest panics there in debug builds and would stall the worker in release ones.
//! - **Nothing secret in reasons or logs.** Outcomes carry short reasons fit for an admin's
//!   eyes ("timed out after 10 s", "refused destination: 10.0.0.5 is a private address"); the
//!   secret, the signature and the receiver's answer never reach a log or a reason.

mod body;
pub mod metrics;
mod resolve;
mod sender;
mod settings;
mod signing;
#[cfg(feature = "testing")]
pub mod testing;

pub use body::{InvalidPayload, render_body};
pub use metrics::describe_metrics;
pub use sender::HttpWebhookSender;
pub use settings::SenderSettings;
pub use signing::{HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, new_secret};
