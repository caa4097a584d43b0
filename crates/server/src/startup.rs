//! From a `Config` to a running server: pool → migrations → adapters → services → admin
//! bootstrap → HTTP server. Each step's failure says which step failed.

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use orderly_auth::{Argon2PasswordHasher, JwtSettings, JwtTokenService};
use orderly_domain::order::ReservationCap;
use orderly_domain::ports::{
    Clock, IdempotentExecutor, PasswordHasher, PaymentProvider, Readiness, Repositories, SystemClock, TokenService,
    UnitOfWork,
};
use orderly_domain::services::users::AdminBootstrap;
use orderly_domain::services::{
    EventService, GenerationCache, JobWorker, OrderPolicy, OrderService, PaymentPolicy, PaymentService, ProductService,
    SessionService, UserService, WebhookPolicy, WebhookService,
};
use orderly_domain::user::{Email, Password, Role, UserName};
use orderly_domain::webhook::{DestinationPolicy, RetrySchedule};
use orderly_http::blocking::BlockingPool;
use orderly_http::{ApiState, HttpSettings};
use orderly_payments::{StripeProvider, StripeSettings};
use orderly_persistence::{
    Database, DieselEventFeed, DieselIdempotentExecutor, DieselReadiness, DieselUnitOfWork, PoolOptions,
};
use secrecy::ExposeSecret;

use crate::config::{AdminBootstrapConfig, Config, SecretSource};

/// The domain services, wired to their adapters.
#[derive(Clone)]
pub struct Services {
    pub users: UserService,
    pub sessions: SessionService,
    pub products: ProductService,
    pub orders: OrderService,
    pub events: EventService,
    pub payments: PaymentService,
    pub jobs: JobWorker,
    pub webhooks: WebhookService,
    /// Works webhook deliveries only (its own loops: a slow receiver never delays a payment job).
    pub webhook_jobs: JobWorker,
    /// The repositories over the pool (each call its own transaction).
    pub repositories: Repositories,
    pub idempotency: Arc<dyn IdempotentExecutor>,
    pub readiness: Arc<dyn Readiness>,
}

/// A bound, not-yet-running server.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
}

impl Application {
    /// Connects and migrates the database, bootstraps the admin and binds the listener.
    /// Binding `127.0.0.1:0` picks a free port (tests); `port()` tells which.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.jwt_secret_source == SecretSource::GeneratedForDevelopment {
            tracing::warn!(
                "ORDERLY_JWT_SECRET is not set: using a random secret for this process. Tokens will not \
                 survive a restart or be accepted by other instances. Set it for anything but local development."
            );
        }
        let database = connect_and_migrate(&config).await?;
        // Once per process; every application built in it shares the recorder.
        let metrics: orderly_http::metrics::SharedMetrics = crate::metrics::install()
            .map(|handle| crate::metrics::PrometheusMetrics::new(handle, database.clone()) as _);
        // Off the async thread: the payment provider's blocking HTTP client must not be made
        // (or used) on a runtime worker.
        let services = {
            let config = config.clone();
            actix_web::rt::task::spawn_blocking(move || build_services(&config, database))
                .await
                .context("building the services failed")??
        };
        if let Some(admin) = config.admin.clone() {
            let users = services.users.clone();
            actix_web::rt::task::spawn_blocking(move || bootstrap_admin(&users, &admin))
                .await
                .context("admin bootstrap task failed")??;
        }

        let listener = TcpListener::bind(config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
        let address = listener.local_addr()?;
        let state = ApiState {
            body_context: orderly_http::extract::BodyContext {
                currency: services.products.currency().clone(),
                destinations: services.webhooks.destinations().clone(),
            },
            users: Arc::new(services.users),
            sessions: Arc::new(services.sessions),
            products: Arc::new(services.products),
            orders: Arc::new(services.orders.clone()),
            events: Arc::new(services.events),
            payments: Arc::new(services.payments),
            webhooks: Arc::new(services.webhooks.clone()),
            repositories: services.repositories,
            idempotency: services.idempotency.clone(),
            readiness: services.readiness,
            // Built once, outside the worker factory, so every worker shares the same buckets.
            rate_limits: Arc::new({
                use orderly_rate_limit::{Quotas, RateLimits};
                let quotas = Quotas {
                    requests_per_minute: config.rate_limit_per_minute,
                    logins_per_minute: config.login_rate_limit_per_minute,
                };
                match &config.redis_url {
                    // Lazily connected: Redis may be down now; checks fail open until it is up.
                    Some(url) => RateLimits::redis(quotas, url.expose_secret(), &config.redis_key_prefix)
                        .context("ORDERLY_REDIS_URL is not a usable Redis URL")?,
                    None => RateLimits::in_process(quotas),
                }
            }),
            // As many database calls on the blocking pool as the pool has connections, as many
            // hashing calls as hashes may run; the rest wait as futures (ADR 0011).
            blocking: BlockingPool::new(
                config.database_pool_size as usize,
                password_hash_concurrency(&config).get(),
                config.database_acquire_timeout,
            ),
            revocations: GenerationCache::new(config.revocation_check_interval, GenerationCache::DEFAULT_CAPACITY),
            metrics,
            settings: HttpSettings {
                problem_type_base: config.problem_type_base.clone(),
                cursor_key: config.cursor_key(),
                trusted_proxies: config.trusted_proxies.clone(),
                cors_origins: config.cors_origins.clone(),
            },
        };
        // Every connection passes through the head guard first (ADR 0016).
        let server = crate::http_server::serve(
            listener,
            state,
            crate::http_server::ServerSettings {
                workers: config.workers,
                shutdown_timeout: config.shutdown_timeout,
                // Longer than the proxy's upstream keep-alive, so the proxy, not Orderly, closes
                // idle connections and never sends a request on a connection Orderly is closing.
                keep_alive: config.keep_alive,
                limits: orderly_head_guard::Limits {
                    max_request_line: config.max_request_line_bytes,
                    max_header_section: config.max_header_bytes,
                    max_header_fields: orderly_head_guard::Limits::ACTIX_MAX_HEADER_FIELDS,
                    // A client gets this long to send its request head; slow-loris
                    // connections are answered 408 and cut.
                    head_timeout: config.client_request_timeout,
                },
            },
        )?;
        actix_web::rt::spawn(crate::sweep::run(services.orders, services.idempotency, config.sweep_interval));
        actix_web::rt::spawn(crate::jobs::run(services.jobs, config.job_poll_interval));
        crate::webhooks::spawn(
            services.webhooks,
            services.webhook_jobs,
            config.webhooks.workers,
            config.job_poll_interval,
        );
        tracing::info!(%address, database = %config.database_url, environment = ?config.environment, "orderly is listening");
        Ok(Self { port: address.port(), server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting connections and lets in-flight
    /// requests finish (up to `ORDERLY_SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(signal, "shutting down gracefully");
            handle.stop(true).await;
        });
        self.server.await
    }
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT will stop the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Opens the pool and applies pending migrations, off the async thread.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Database> {
    let url = config.database_url.clone();
    let options = PoolOptions {
        max_size: config.database_pool_size,
        acquire_timeout: config.database_acquire_timeout,
        statement_timeout: Some(config.statement_timeout),
    };
    actix_web::rt::task::spawn_blocking(move || {
        let database =
            Database::connect(&url, options).with_context(|| format!("cannot connect to the database at {url}"))?;
        let applied = database.run_migrations().context("cannot apply database migrations")?;
        tracing::info!(applied, "database migrations up to date");
        Ok(database)
    })
    .await
    .context("database start-up task failed")?
}

/// Builds every adapter and service. The only place that knows which adapter serves which port.
pub fn build_services(config: &Config, database: Database) -> anyhow::Result<Services> {
    let repositories = orderly_persistence::repositories(&database);
    let unit_of_work: Arc<dyn UnitOfWork> = Arc::new(DieselUnitOfWork::new(database.clone()));
    let feed = Arc::new(DieselEventFeed::new(database.clone()));
    let events = EventService::new(feed.clone());
    // A claimed key whose request died is taken over after this long.
    let idempotency: Arc<dyn IdempotentExecutor> =
        Arc::new(DieselIdempotentExecutor::new(database.clone(), chrono::Duration::seconds(60)));
    let readiness: Arc<dyn Readiness> = Arc::new(DieselReadiness::new(database));
    let currency = config.currency.clone();
    let hasher: Arc<dyn PasswordHasher> = Arc::new(
        Argon2PasswordHasher::with_max_concurrent(password_hash_concurrency(config))
            .context("cannot set up password hashing")?,
    );
    let tokens: Arc<dyn TokenService> = Arc::new(JwtTokenService::new(JwtSettings {
        secret: config.jwt_secret.expose_secret().as_bytes().to_vec().into(),
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        access_token_ttl: chrono::Duration::from_std(config.access_token_ttl)?,
        refresh_token_ttl: chrono::Duration::from_std(config.refresh_token_ttl)?,
    }));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let orders = OrderService::new(
        repositories.orders.clone(),
        repositories.invoices.clone(),
        clock.clone(),
        OrderPolicy {
            currency: currency.clone(),
            tax_rate: config.tax_rate,
            reservation_ttl: chrono::Duration::from_std(config.reservation_ttl)?,
            reservation_cap: ReservationCap::units(config.max_reserved_units_per_customer),
        },
    );
    let provider = payment_provider(config)?;
    // A request calls the provider at most a few times, each bounded by the timeout; the
    // first reconciliation waits well past that, so it never races a live request.
    let provider_budget = chrono::Duration::from_std(config.payment_timeout)? * (STRIPE_MAX_ATTEMPTS as i32 * 2 + 2);
    let payment_policy = PaymentPolicy { reconcile_after: provider_budget, ..PaymentPolicy::default() };
    let payments = PaymentService::new(
        repositories.clone(),
        unit_of_work.clone(),
        provider,
        orders.clone(),
        clock.clone(),
        payment_policy,
    );
    let jobs = JobWorker::new(
        repositories.jobs.clone(),
        payments.clone(),
        clock.clone(),
        // Longer than any job can take (a few provider calls), so a live job is never taken over.
        provider_budget + chrono::Duration::seconds(60),
    );
    let webhooks = webhook_service(config, &repositories, unit_of_work, feed, clock.clone())?;
    // Longer than one attempt can take (its timeout bounds the send, DNS included; the reads
    // and the record around it are a few statements), so a live attempt is never taken over;
    // short enough that a delivery whose worker died resumes soon after.
    let webhook_jobs = jobs.for_webhooks(webhooks.clone(), webhook_lease(config.webhooks.timeout)?);
    Ok(Services {
        users: UserService::new(repositories.users.clone(), hasher.clone(), clock.clone()),
        sessions: SessionService::new(
            repositories.users.clone(),
            repositories.refresh_tokens.clone(),
            hasher,
            tokens,
            clock.clone(),
        )
        .with_refresh_reuse_leeway(chrono::Duration::from_std(config.refresh_reuse_leeway)?),
        products: ProductService::new(repositories.products.clone(), clock, currency),
        orders,
        events,
        payments,
        jobs,
        webhooks,
        webhook_jobs,
        repositories,
        idempotency,
        readiness,
    })
}

/// How many password hashes run at once: `ORDERLY_PASSWORD_HASH_CONCURRENCY`, else the cores.
fn password_hash_concurrency(config: &Config) -> std::num::NonZeroUsize {
    config
        .password_hash_concurrency
        .and_then(std::num::NonZeroUsize::new)
        .unwrap_or_else(orderly_auth::default_max_concurrent)
}

/// How often the Stripe adapter tries a call that is safe to repeat.
const STRIPE_MAX_ATTEMPTS: u32 = 3;

/// The configured payment provider, or `None` when payments are off.
fn payment_provider(config: &Config) -> anyhow::Result<Option<Arc<dyn PaymentProvider>>> {
    let Some(stripe) = &config.payments else { return Ok(None) };
    let provider = StripeProvider::new(StripeSettings {
        api_base: stripe.api_base.clone(),
        secret_key: stripe.secret_key.clone(),
        webhook_secret: stripe.webhook_secret.clone(),
        timeout: config.payment_timeout,
        connect_timeout: config.payment_timeout.min(std::time::Duration::from_secs(3)),
        max_attempts: STRIPE_MAX_ATTEMPTS,
        signature_tolerance: chrono::Duration::minutes(5),
    })
    .context("cannot set up the Stripe payment provider")?;
    tracing::info!(api_base = %stripe.api_base, "payments through Stripe");
    Ok(Some(Arc::new(provider)))
}

/// How long a webhook worker holds a delivery's job: twice the attempt's timeout plus 10 s.
pub fn webhook_lease(timeout: std::time::Duration) -> anyhow::Result<chrono::Duration> {
    Ok(chrono::Duration::from_std(timeout)? * 2 + chrono::Duration::seconds(10))
}

/// The webhook service over the HTTP sender, with the configured destinations and schedule.
fn webhook_service(
    config: &Config,
    repositories: &Repositories,
    unit_of_work: Arc<dyn UnitOfWork>,
    feed: Arc<DieselEventFeed>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<WebhookService> {
    let destinations = DestinationPolicy {
        allow_http: config.webhooks.allow_http,
        allowed_networks: config.webhooks.allowed_networks.clone(),
    };
    let sender = orderly_webhooks::HttpWebhookSender::new(orderly_webhooks::SenderSettings {
        timeout: config.webhooks.timeout,
        connect_timeout: config.webhooks.timeout.min(std::time::Duration::from_secs(3)),
        policy: destinations.clone(),
        user_agent: format!("Orderly-Webhooks/{}", env!("CARGO_PKG_VERSION")),
    })
    .context("cannot set up the webhook sender")?;
    let waits = config
        .webhooks
        .retry_schedule
        .iter()
        .map(|wait| chrono::Duration::from_std(*wait))
        .collect::<Result<Vec<_>, _>>()?;
    let retry_schedule = RetrySchedule::new(waits)
        .ok_or_else(|| anyhow::anyhow!("ORDERLY_WEBHOOK_RETRY_SCHEDULE waits must be positive"))?;
    Ok(WebhookService::new(
        repositories.clone(),
        unit_of_work,
        feed,
        Arc::new(sender),
        clock,
        WebhookPolicy { destinations, retry_schedule, ..WebhookPolicy::default() },
    ))
}

/// Creates the configured first admin unless an account with that email exists.
pub fn bootstrap_admin(users: &UserService, admin: &AdminBootstrapConfig) -> anyhow::Result<()> {
    let email = Email::parse(&admin.email).map_err(|v| anyhow::anyhow!("ORDERLY_ADMIN_EMAIL {}", v.message))?;
    let name = UserName::parse(&admin.name).map_err(|v| anyhow::anyhow!("ORDERLY_ADMIN_NAME {}", v.message))?;
    let password = Password::parse(admin.password.expose_secret())
        .map_err(|v| anyhow::anyhow!("ORDERLY_ADMIN_PASSWORD {}", v.message))?;
    match users.bootstrap_admin(email, name, password).context("cannot create the first admin")? {
        AdminBootstrap::Created(user) => {
            tracing::info!(user_id = %user.id, email = user.email.as_str(), "first admin created")
        }
        AdminBootstrap::AlreadyExists(user) if user.role == Role::Admin => {
            tracing::debug!(user_id = %user.id, "configured admin already exists")
        }
        AdminBootstrap::AlreadyExists(user) => tracing::warn!(
            user_id = %user.id,
            "ORDERLY_ADMIN_EMAIL belongs to an existing non-admin account; it was left unchanged"
        ),
    }
    Ok(())
}
