//! # orderly-http — the HTTP adapter
//!
//! Owns everything a REST consumer sees: routes, request and response bodies, status codes,
//! headers, problem details and the OpenAPI document (contract: `docs/api.md`). It turns HTTP
//! into calls of the domain's use cases (its driving ports, `orderly_domain::services::use_cases`,
//! held in [`ApiState`]) and the results back into HTTP, and owns no
//! business rule: who may do what, and what is valid beyond the shape of the input, is the
//! domain's call.
//!
//! Must not touch: SQL, password hashing, token cryptography (those are the persistence and
//! auth adapters, reached only through the domain's use cases), process-wide state (everything
//! arrives in [`ApiState`]), or the server's configuration and runtime (the binary serves
//! [`app`] behind its connection guard, and has [`refusals`] render what that guard refuses
//! before routing).
//!
//! ## Following a request
//!
//! 1. [`middleware`] — request id, security headers, request metrics, telemetry span, rate
//!    limiting ([`rate_limit`]: a refused request ends here, as a 429), problem rendering, HEAD;
//! 2. [`routes`] — the handler for the route (registered with its OpenAPI description);
//! 3. [`extract`] — the handler's inputs: caller (required or optional), path id, query,
//!    conditional headers, body;
//! 4. [`dto`] — request bodies and query strings become domain values (`try_into_domain`);
//! 5. [`blocking`] — the one use-case call runs on the blocking pool once admitted (a
//!    permit per connection, or per password hash); a `POST` that creates something runs it
//!    through [`idempotency`], which honours `Idempotency-Key`;
//! 6. [`dto`] again — the domain result becomes a response body; [`pagination`] wraps
//!    collections; [`caching`] sets `Cache-Control` and answers conditional GETs;
//! 7. on failure: domain error → [`problem::ApiError`] → problem+json ([`problem`],
//!    [`middleware::problem_responses`]);
//! 8. no route at all: [`fallback`] (404, or 405 with `Allow`).
//!
//! [`openapi`] assembles the document from the same route registrations, so it cannot drift.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;

use orderly_domain::ports::{IdempotentExecutor, Readiness, Repositories};
use orderly_domain::services::{
    EventUseCases, OrderUseCases, PaymentUseCases, ProductUseCases, SessionUseCases, UserUseCases, WebhookUseCases,
};

pub mod blocking;
pub mod caching;
pub mod client_address;
pub mod dto;
pub mod extract;
pub mod fallback;
pub mod field_rules;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod rate_limit;
pub mod refusals;
pub mod revocation;
pub mod routes;

/// The default base of problem `type` URIs.
pub const DEFAULT_PROBLEM_TYPE_BASE: &str = "https://orderly.example/problems/";

/// Settings of the HTTP adapter that come from configuration.
#[derive(Clone)]
pub struct HttpSettings {
    /// Base URI of problem `type`s; the code in kebab-case is appended.
    pub problem_type_base: String,
    /// HMAC-SHA256 key that signs pagination cursors. Keep it secret and stable across
    /// instances, or cursors issued by one instance are refused by another.
    pub cursor_key: Vec<u8>,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed; empty = the TCP peer is the
    /// client and forwarding headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed by CORS; empty = CORS off.
    pub cors_origins: Vec<String>,
}

impl HttpSettings {
    /// Settings with the default problem type base, no trusted proxy and CORS off.
    pub fn new(cursor_key: Vec<u8>) -> Self {
        Self {
            problem_type_base: DEFAULT_PROBLEM_TYPE_BASE.to_owned(),
            cursor_key,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("problem_type_base", &self.problem_type_base)
            .field("cursor_key", &"***")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_origins", &self.cors_origins)
            .finish()
    }
}

/// Everything the handlers need, shared by every worker (cheap to clone: `Arc`s). The use
/// cases are the domain's driving ports (ADR 0019): the server puts the services there, the
/// HTTP tests mocks of them.
#[derive(Clone)]
pub struct ApiState {
    pub users: Arc<dyn UserUseCases>,
    pub sessions: Arc<dyn SessionUseCases>,
    /// The catalogue and its stock.
    pub products: Arc<dyn ProductUseCases>,
    /// Orders and their invoices.
    pub orders: Arc<dyn OrderUseCases>,
    /// The event feed (the outbox, read in commit order).
    pub events: Arc<dyn EventUseCases>,
    /// Paying orders through the payment provider, and its events.
    pub payments: Arc<dyn PaymentUseCases>,
    /// Webhook endpoints and their deliveries (the dispatcher and the delivery jobs run
    /// outside the HTTP adapter, in the server).
    pub webhooks: Arc<dyn WebhookUseCases>,
    /// The deployment's currency and webhook destinations, which request bodies are checked
    /// against ([`extract::BodyContext`]).
    pub body_context: extract::BodyContext,
    /// The repositories over the pool: what a use case runs with when no unit of work of an
    /// idempotent request is open ([`idempotency::respond`]).
    pub repositories: Repositories,
    pub readiness: Arc<dyn Readiness>,
    /// Runs `Idempotency-Key` requests at most once per (caller, key) ([`idempotency`]).
    pub idempotency: Arc<dyn IdempotentExecutor>,
    /// Token buckets per caller and for logins, behind the domain's port ([`rate_limit`]).
    pub rate_limits: Arc<dyn orderly_domain::rate_limit::RateLimiter>,
    /// Admission to the blocking pool, where every service call runs ([`blocking`]).
    pub blocking: blocking::BlockingPool,
    /// This instance's memory of users' token generations and of recorded access-token uses,
    /// for the revocation check of access tokens (the domain's; run by [`revocation`]).
    pub revocations: orderly_domain::services::GenerationCache,
    /// What `GET /metrics` renders ([`metrics`]); `None` when no recorder is installed.
    pub metrics: metrics::SharedMetrics,
    pub settings: HttpSettings,
}

/// The whole HTTP application: routes, `/openapi.json`, `/docs`, the fallback for unknown
/// routes and methods, and the middleware stack. Call it in the server's per-worker factory.
pub fn app(
    state: ApiState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, api) = routes::register(App::new().into_utoipa_app().openapi(openapi::ApiDoc::base())).split_for_parts();
    let mut api = openapi::finish(api);
    openapi::describe_currency(&mut api, state.body_context.currency.as_str());
    let route_table = fallback::RouteTable::new(&api, &openapi::UNDOCUMENTED_ROUTES);
    let cursors = pagination::CursorCodec::new(&state.settings.cursor_key);
    let cors = middleware::cors::policy(&state.settings.cors_origins);
    // The schemas request bodies are checked against: this very document's.
    let body_schemas = extract::body_schema::BodySchemas::new(&api);
    let body_context = state.body_context.clone();

    app.app_data(web::Data::new(state))
        .app_data(web::Data::new(body_schemas))
        .app_data(web::Data::new(body_context))
        .app_data(web::Data::new(cursors))
        .app_data(web::Data::new(route_table))
        .configure(|config| openapi::serve(config, api))
        .default_service(web::to(fallback::answer))
        // Registered innermost first; see `middleware` for why this order.
        .wrap(from_fn(revocation::admit))
        .wrap(from_fn(middleware::head::route_as_get))
        .wrap(from_fn(middleware::problem_responses::render))
        .wrap(from_fn(rate_limit::enforce))
        .wrap(TracingLogger::<middleware::telemetry::OrderlyRootSpan>::new())
        .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
        .wrap(from_fn(middleware::cors::render_refusals))
        .wrap(from_fn(middleware::security_headers::apply))
        // Outside everything but the request id, so that every answer is counted, CORS
        // preflights and refusals included.
        .wrap(from_fn(middleware::metrics::record))
        .wrap(from_fn(middleware::request_id::assign))
}

/// The OpenAPI document `/openapi.json` serves on a deployment whose currency is `EUR` (the
/// default): the published contract, `docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_for_currency(DEFAULT_CURRENCY)
}

/// The currency of a deployment that does not configure one (`ORDERLY_CURRENCY`).
pub const DEFAULT_CURRENCY: &str = "EUR";

/// The OpenAPI document `/openapi.json` serves on a deployment whose currency is `currency`
/// (also printed by `orderly openapi`).
pub fn openapi_for_currency(currency: &str) -> utoipa::openapi::OpenApi {
    let (_, api) = routes::register(App::new().into_utoipa_app().openapi(openapi::ApiDoc::base())).split_for_parts();
    let mut api = openapi::finish(api);
    openapi::describe_currency(&mut api, currency);
    api
}
