//! # orderly — the binary's library half
//!
//! Owns wiring and process concerns only: reading configuration, installing telemetry and the
//! metrics recorder ([`metrics`]), building the database pool, the adapters and the domain
//! services, starting the HTTP server and stopping it gracefully. It holds no business rule (those live in `orderly-domain`) and no
//! HTTP behaviour (that is `orderly-http`). `Application::build` is what both `main` and the
//! end-to-end tests call, so tests run exactly the wiring that production runs.

pub mod cli;
pub mod config;
pub mod http_server;
pub mod jobs;
pub mod metrics;
pub mod startup;
pub mod sweep;
pub mod telemetry;
pub mod webhooks;

pub use config::Config;
pub use startup::Application;
