//! One typed configuration, read from `ORDERLY_*` environment variables (README.md#configuration).
//!
//! Reading is separated from the environment (`Config::from_lookup`) so every rule is unit
//! tested without touching the process environment. All problems are reported at once, each
//! naming its variable. Secrets are `SecretString`s: their `Debug` prints nothing.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use orderly_domain::order::TaxRate;
use orderly_domain::product::Currency;
use orderly_http::{DEFAULT_CURRENCY, DEFAULT_PROBLEM_TYPE_BASE};
use orderly_persistence::DatabaseUrl;
use secrecy::{ExposeSecret, SecretString};

/// `ORDERLY_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// `ORDERLY_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the JWT secret came from: a generated one is fine for a laptop, and is warned about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    GeneratedForDevelopment,
}

/// The first admin, created at start-up if absent.
#[derive(Debug, Clone)]
pub struct AdminBootstrapConfig {
    pub email: String,
    pub name: String,
    pub password: SecretString,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    /// How long a request waits for a database connection before answering 503.
    pub database_acquire_timeout: Duration,
    pub jwt_secret: SecretString,
    pub jwt_secret_source: SecretSource,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long an instance trusts a user's token generation it has read: the bound within
    /// which a revocation made elsewhere reaches it (ADR 0015). Zero reads it on every request.
    pub revocation_check_interval: Duration,
    /// How long after a refresh token was spent presenting it again is taken for a retry
    /// rather than reuse (ADR 0015). Zero turns the leeway off.
    pub refresh_reuse_leeway: Duration,
    pub environment: Environment,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub admin: Option<AdminBootstrapConfig>,
    /// `ORDERLY_ADMIN_PASSWORD` even without an email: `orderly users create-admin` reads it.
    pub admin_password: Option<SecretString>,
    /// Requests per minute per caller; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Logins and registrations (one bucket) per minute per client address; 0 turns the limit off.
    pub login_rate_limit_per_minute: u32,
    pub currency: Currency,
    pub tax_rate: TaxRate,
    pub reservation_ttl: Duration,
    /// Units one customer's pending orders may hold at once (docs/api.md#orders); 0 = no cap.
    pub max_reserved_units_per_customer: u32,
    /// How often this instance sweeps for lapsed reservations.
    pub sweep_interval: Duration,
    /// Where shared rate-limit buckets live; `None` keeps them in this process.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key this deployment writes (several deployments may share a Redis).
    pub redis_key_prefix: String,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed by CORS; empty = CORS off (no `Access-Control-*` headers).
    pub cors_origins: Vec<String>,
    /// PostgreSQL `statement_timeout`: no statement runs longer than this.
    pub statement_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// How long a client has to send its request head before the connection is closed (408).
    pub client_request_timeout: Duration,
    /// Longest request line accepted (414 past it; ADR 0016).
    pub max_request_line_bytes: usize,
    /// Longest header section accepted (431 past it; ADR 0016).
    pub max_header_bytes: usize,
    pub problem_type_base: String,
    /// actix worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Password hashes computed at once; defaults to the number of cores.
    pub password_hash_concurrency: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// The payment provider (docs/api.md#payments); `None` turns payments off.
    pub payments: Option<StripeConfig>,
    /// Each provider call gives up after this long (`ORDERLY_PAYMENT_TIMEOUT_MS`).
    pub payment_timeout: Duration,
    /// How often each instance looks for due background jobs.
    pub job_poll_interval: Duration,
    /// Webhook deliveries (docs/api.md#webhooks).
    pub webhooks: WebhookConfig,
}

/// `ORDERLY_WEBHOOK_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// One attempt's whole budget: connect, send, answer.
    pub timeout: Duration,
    /// Waits between attempts; after the last one fails the delivery is `failed`.
    pub retry_schedule: Vec<Duration>,
    pub allow_http: bool,
    /// Networks webhooks may reach although they are loopback, private, link-local, ...
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Deliveries this instance sends at once; 0: it dispatches and sends none.
    pub workers: usize,
}

/// Standard Webhooks' suggested schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (~27.6 h).
pub const DEFAULT_WEBHOOK_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// `ORDERLY_PAYMENT_PROVIDER=stripe` and its settings.
#[derive(Clone)]
pub struct StripeConfig {
    pub api_base: String,
    pub secret_key: SecretString,
    pub webhook_secret: SecretString,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"***")
            .field("webhook_secret", &"***")
            .finish()
    }
}

/// Stripe's own API.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Every variable Orderly reads, for the README table and for `--help`.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("ORDERLY_BIND", "127.0.0.1:8080", "address and port to listen on"),
    (
        "ORDERLY_DATABASE_URL",
        "orderly.db",
        "`postgres://…`/`postgresql://…` for PostgreSQL; `sqlite://PATH` or a bare path for SQLite",
    ),
    ("ORDERLY_DATABASE_POOL_SIZE", "8", "connections in the pool (1–256)"),
    ("ORDERLY_DATABASE_TIMEOUT_MS", "5000", "wait for a pooled connection before answering 503"),
    ("ORDERLY_JWT_SECRET", "(random in development)", "HS256 signing key, ≥ 32 bytes; required in production"),
    ("ORDERLY_JWT_ISSUER", "orderly", "`iss` claim issued and required"),
    ("ORDERLY_JWT_AUDIENCE", "orderly-api", "`aud` claim issued and required"),
    ("ORDERLY_ACCESS_TOKEN_TTL", "900", "access-token lifetime, seconds"),
    ("ORDERLY_REFRESH_TOKEN_TTL", "2592000", "refresh-token lifetime, seconds (30 days)"),
    (
        "ORDERLY_REVOCATION_CHECK_INTERVAL",
        "1",
        "seconds an instance trusts a user's token generation it read (0–60): the bound within which a revoked access token stops working on every instance; 0 reads it on every request",
    ),
    (
        "ORDERLY_REFRESH_REUSE_LEEWAY",
        "30",
        "seconds after a refresh during which presenting the spent refresh token again is a retry, not reuse (0–300; 0 = off)",
    ),
    ("ORDERLY_ENV", "development", "`development` or `production`"),
    ("ORDERLY_LOG", "info", "log filter (tracing `EnvFilter` syntax, e.g. `info,orderly_http=debug`)"),
    ("ORDERLY_LOG_FORMAT", "pretty (json in production)", "`json` or `pretty`"),
    ("ORDERLY_ADMIN_EMAIL", "—", "first admin's email, created at start-up if absent (needs the password)"),
    ("ORDERLY_ADMIN_PASSWORD", "—", "first admin's password (12–128 characters)"),
    ("ORDERLY_ADMIN_NAME", "Administrator", "first admin's display name"),
    ("ORDERLY_RATE_LIMIT", "600", "requests per minute per caller (user id, else client address); 0 = off"),
    ("ORDERLY_LOGIN_RATE_LIMIT", "10", "logins and registrations per minute per client address; 0 = off"),
    ("ORDERLY_CURRENCY", DEFAULT_CURRENCY, "the deployment's ISO 4217 currency"),
    ("ORDERLY_TAX_RATE_BPS", "0", "tax rate in basis points (0–10000)"),
    ("ORDERLY_RESERVATION_TTL", "1800", "seconds before a pending order's reservation expires"),
    (
        "ORDERLY_MAX_RESERVED_UNITS_PER_CUSTOMER",
        "1000",
        "units one customer's (or admin's) pending orders may hold at once; past it 409 `reservation_limit_exceeded`; 0 = no cap",
    ),
    (
        "ORDERLY_SWEEP_INTERVAL",
        "30",
        "seconds between this instance's sweeps for expired reservations (safe on every instance)",
    ),
    (
        "ORDERLY_REDIS_URL",
        "— (buckets in process)",
        "`redis://…`: rate-limit buckets shared by every instance; unreachable = limits fail open",
    ),
    ("ORDERLY_REDIS_KEY_PREFIX", "orderly:", "prefix of every Redis key Orderly writes"),
    (
        "ORDERLY_TRUSTED_PROXIES",
        "— (none)",
        "comma-separated IPs/CIDRs of reverse proxies whose `X-Forwarded-*` headers are believed",
    ),
    (
        "ORDERLY_CORS_ORIGINS",
        "— (CORS off)",
        "comma-separated browser origins allowed by CORS, e.g. `https://app.example`",
    ),
    ("ORDERLY_STATEMENT_TIMEOUT_MS", "5000", "PostgreSQL `statement_timeout`: the longest any statement may run"),
    ("ORDERLY_KEEP_ALIVE", "75", "seconds an idle keep-alive connection stays open (keep above the proxy's)"),
    (
        "ORDERLY_CLIENT_TIMEOUT_MS",
        "10000",
        "time a client has to send its request head (slow-loris guard); past it 408",
    ),
    (
        "ORDERLY_MAX_REQUEST_LINE_BYTES",
        "8192",
        "longest request line (method, target, version), 1024–32768; past it 414",
    ),
    ("ORDERLY_MAX_HEADER_BYTES", "32768", "longest header section (all header lines), 1024–65536; past it 431"),
    ("ORDERLY_PROBLEM_BASE_URI", DEFAULT_PROBLEM_TYPE_BASE, "base of problem `type` URIs"),
    ("ORDERLY_WORKERS", "number of cores", "HTTP worker threads"),
    (
        "ORDERLY_PASSWORD_HASH_CONCURRENCY",
        "number of cores",
        "password hashes (argon2id: ~30 ms of a core and 19 MiB each) computed at once; further logins and registrations wait their turn",
    ),
    ("ORDERLY_SHUTDOWN_TIMEOUT", "30", "seconds in-flight requests get to finish on SIGTERM/SIGINT"),
    ("ORDERLY_PAYMENT_PROVIDER", "none", "`none` (payments off: 409 `payments_disabled`) or `stripe`"),
    ("ORDERLY_STRIPE_API_BASE", STRIPE_API_BASE, "base URL of Stripe's API (tests: a localstripe)"),
    ("ORDERLY_STRIPE_SECRET_KEY", "—", "Stripe secret key (`sk_…`); required with `stripe`"),
    (
        "ORDERLY_STRIPE_WEBHOOK_SECRET",
        "—",
        "secret of `Stripe-Signature` on `POST /v1/payment-events`; required with `stripe`",
    ),
    ("ORDERLY_PAYMENT_TIMEOUT_MS", "10000", "total time one provider call may take before it is given up as unknown"),
    (
        "ORDERLY_JOB_POLL_INTERVAL_MS",
        "1000",
        "how often each instance looks for due background jobs (reconciliation, refunds, webhook deliveries)",
    ),
    (
        "ORDERLY_WEBHOOK_TIMEOUT_MS",
        "10000",
        "one webhook attempt's whole budget (connect, send, answer); slower is a failed attempt",
    ),
    (
        "ORDERLY_WEBHOOK_RETRY_SCHEDULE",
        DEFAULT_WEBHOOK_RETRY_SCHEDULE,
        "waits between a delivery's attempts (`500ms`, `5s`, `5m`, `2h`; a bare number is seconds); after the last the delivery is `failed`",
    ),
    (
        "ORDERLY_WEBHOOK_ALLOW_HTTP",
        "false",
        "`true` accepts plain `http://` endpoint URLs (development, tests); otherwise https only",
    ),
    (
        "ORDERLY_WEBHOOK_ALLOWED_NETWORKS",
        "— (none)",
        "comma-separated CIDRs webhooks may reach although loopback, private, link-local, … (e.g. an internal receiver's `10.1.0.0/16`)",
    ),
    (
        "ORDERLY_WEBHOOK_WORKERS",
        "4",
        "webhook deliveries this instance sends at once; `0`: it dispatches and sends none (others do)",
    ),
];

/// Minimum JWT secret length in production: HS256 keys shorter than the hash are weak.
pub const MIN_SECRET_BYTES: usize = 32;

/// Everything wrong with the configuration, one line per variable.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from a variable lookup. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut reader =
            Reader { lookup: &|name| lookup(name).filter(|value| !value.trim().is_empty()), problems: vec![] };

        let environment = reader.parse("ORDERLY_ENV", Environment::Development, |v| match v {
            "development" => Ok(Environment::Development),
            "production" => Ok(Environment::Production),
            _ => Err("must be `development` or `production`".into()),
        });
        let bind = reader.parse("ORDERLY_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)), |v| {
            v.parse().map_err(|_| "must be an address and port such as 0.0.0.0:8080".into())
        });
        let database_url =
            reader.parse_opt("ORDERLY_DATABASE_URL", |v| DatabaseUrl::parse(v).map_err(|e| e.to_string()));
        let database_url = database_url.unwrap_or_else(|| DatabaseUrl::Sqlite("orderly.db".into()));
        let database_pool_size = reader.number("ORDERLY_DATABASE_POOL_SIZE", 8, 1, 256);
        let database_acquire_timeout =
            Duration::from_millis(reader.number("ORDERLY_DATABASE_TIMEOUT_MS", 5000, 50, 120_000));

        let configured_secret = reader.get("ORDERLY_JWT_SECRET");
        let (jwt_secret, jwt_secret_source) = match (configured_secret, environment) {
            (Some(secret), Environment::Production) if secret.len() < MIN_SECRET_BYTES => {
                reader
                    .problem("ORDERLY_JWT_SECRET", &format!("must be at least {MIN_SECRET_BYTES} bytes in production"));
                (SecretString::from(secret), SecretSource::Configured)
            }
            (Some(secret), _) => (SecretString::from(secret), SecretSource::Configured),
            (None, Environment::Production) => {
                reader.problem("ORDERLY_JWT_SECRET", "is required in production (at least 32 random bytes)");
                (SecretString::from(String::new()), SecretSource::Configured)
            }
            (None, Environment::Development) => match random_secret() {
                Ok(secret) => (secret, SecretSource::GeneratedForDevelopment),
                Err(error) => {
                    reader.problem("ORDERLY_JWT_SECRET", &format!("is unset and no random one could be made: {error}"));
                    (SecretString::from(String::new()), SecretSource::GeneratedForDevelopment)
                }
            },
        };
        let jwt_issuer = reader.get("ORDERLY_JWT_ISSUER").unwrap_or_else(|| "orderly".into());
        let jwt_audience = reader.get("ORDERLY_JWT_AUDIENCE").unwrap_or_else(|| "orderly-api".into());
        let access_token_ttl = Duration::from_secs(reader.number("ORDERLY_ACCESS_TOKEN_TTL", 900, 10, 86_400));
        let refresh_token_ttl =
            Duration::from_secs(reader.number("ORDERLY_REFRESH_TOKEN_TTL", 2_592_000, 60, 31_536_000));
        let revocation_check_interval =
            Duration::from_secs(reader.number("ORDERLY_REVOCATION_CHECK_INTERVAL", 1, 0, 60));
        let refresh_reuse_leeway = Duration::from_secs(reader.number("ORDERLY_REFRESH_REUSE_LEEWAY", 30, 0, 300));

        let log_filter = reader.get("ORDERLY_LOG").unwrap_or_else(|| "info".into());
        let default_format = if environment == Environment::Production { LogFormat::Json } else { LogFormat::Pretty };
        let log_format = reader.parse("ORDERLY_LOG_FORMAT", default_format, |v| match v {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("must be `json` or `pretty`".into()),
        });

        let admin_password = reader.get("ORDERLY_ADMIN_PASSWORD").map(SecretString::from);
        let admin = match (reader.get("ORDERLY_ADMIN_EMAIL"), admin_password.clone()) {
            (Some(email), Some(password)) => Some(AdminBootstrapConfig {
                email,
                name: reader.get("ORDERLY_ADMIN_NAME").unwrap_or_else(|| "Administrator".into()),
                password,
            }),
            (Some(_), None) => {
                reader.problem("ORDERLY_ADMIN_PASSWORD", "is required when ORDERLY_ADMIN_EMAIL is set");
                None
            }
            (None, Some(_)) => {
                // The password alone is legitimate: `orderly users create-admin` reads it.
                None
            }
            (None, None) => None,
        };

        let rate_limit_per_minute = reader.number("ORDERLY_RATE_LIMIT", 600, 0, 1_000_000);
        let login_rate_limit_per_minute = reader.number("ORDERLY_LOGIN_RATE_LIMIT", 10, 0, 1_000_000);
        let currency = read_currency(&mut reader);
        let tax_rate =
            TaxRate::from_basis_points(reader.number("ORDERLY_TAX_RATE_BPS", 0, 0, 10_000)).unwrap_or_default();
        let reservation_ttl = Duration::from_secs(reader.number("ORDERLY_RESERVATION_TTL", 1800, 1, 31_536_000));
        let max_reserved_units_per_customer =
            reader.number("ORDERLY_MAX_RESERVED_UNITS_PER_CUSTOMER", 1000, 0, 1_000_000_000);
        let sweep_interval = Duration::from_secs(reader.number("ORDERLY_SWEEP_INTERVAL", 30, 1, 86_400));
        let redis_url = reader.parse_opt("ORDERLY_REDIS_URL", |v| {
            if v.starts_with("redis://") || v.starts_with("rediss://") || v.starts_with("redis+unix://") {
                Ok(SecretString::from(v.to_owned()))
            } else {
                Err("must be a `redis://` or `rediss://` URL".into())
            }
        });
        let redis_key_prefix = reader.get("ORDERLY_REDIS_KEY_PREFIX").unwrap_or_else(|| "orderly:".into());
        let trusted_proxies = reader.list("ORDERLY_TRUSTED_PROXIES", |item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{item}` is not an IP address or CIDR block"))
        });
        let cors_origins = reader.list("ORDERLY_CORS_ORIGINS", |origin| {
            let valid_scheme = origin.starts_with("https://") || origin.starts_with("http://");
            let host = origin.split_once("://").map_or("", |(_, rest)| rest);
            if valid_scheme && !host.is_empty() && !host.contains('/') {
                Ok(origin.to_owned())
            } else {
                Err(format!("`{origin}` is not an origin such as https://app.example (no path, no `*`)"))
            }
        });
        let statement_timeout =
            Duration::from_millis(reader.number("ORDERLY_STATEMENT_TIMEOUT_MS", 5000, 100, 3_600_000));
        let keep_alive = Duration::from_secs(reader.number("ORDERLY_KEEP_ALIVE", 75, 0, 3600));
        // Both well below actix-http's own 128 KiB head buffer, which it refuses with a bare
        // 431 (ADR 0016).
        let max_request_line_bytes = reader.number("ORDERLY_MAX_REQUEST_LINE_BYTES", 8192, 1024, 32_768);
        let max_header_bytes = reader.number("ORDERLY_MAX_HEADER_BYTES", 32_768, 1024, 65_536);
        let client_request_timeout =
            Duration::from_millis(reader.number("ORDERLY_CLIENT_TIMEOUT_MS", 10_000, 100, 600_000));
        let problem_type_base = reader.parse("ORDERLY_PROBLEM_BASE_URI", DEFAULT_PROBLEM_TYPE_BASE.to_owned(), |v| {
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(if v.ends_with('/') { v.to_owned() } else { format!("{v}/") })
            } else {
                Err("must be an absolute http(s) URI".into())
            }
        });
        let workers = reader.parse_opt("ORDERLY_WORKERS", |v| match v.parse::<usize>() {
            Ok(n) if (1..=256).contains(&n) => Ok(n),
            _ => Err("must be a whole number from 1 to 256".into()),
        });
        let password_hash_concurrency =
            reader.parse_opt("ORDERLY_PASSWORD_HASH_CONCURRENCY", |v| match v.parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 256".into()),
            });
        let shutdown_timeout = Duration::from_secs(reader.number("ORDERLY_SHUTDOWN_TIMEOUT", 30, 0, 3600));
        let payments = match reader.get("ORDERLY_PAYMENT_PROVIDER").as_deref() {
            None | Some("none") => None,
            Some("stripe") => {
                let api_base = reader.parse("ORDERLY_STRIPE_API_BASE", STRIPE_API_BASE.to_owned(), |v| {
                    if v.starts_with("https://") || v.starts_with("http://") {
                        Ok(v.trim_end_matches('/').to_owned())
                    } else {
                        Err("must be an http(s) URL".into())
                    }
                });
                let secret_key = reader.get("ORDERLY_STRIPE_SECRET_KEY");
                let webhook_secret = reader.get("ORDERLY_STRIPE_WEBHOOK_SECRET");
                if secret_key.is_none() {
                    reader.problem("ORDERLY_STRIPE_SECRET_KEY", "is required with ORDERLY_PAYMENT_PROVIDER=stripe");
                }
                if webhook_secret.is_none() {
                    reader.problem("ORDERLY_STRIPE_WEBHOOK_SECRET", "is required with ORDERLY_PAYMENT_PROVIDER=stripe");
                }
                match (secret_key, webhook_secret) {
                    (Some(secret_key), Some(webhook_secret)) => Some(StripeConfig {
                        api_base,
                        secret_key: secret_key.into(),
                        webhook_secret: webhook_secret.into(),
                    }),
                    _ => None,
                }
            }
            Some(_) => {
                reader.problem("ORDERLY_PAYMENT_PROVIDER", "must be none or stripe");
                None
            }
        };
        let payment_timeout = Duration::from_millis(reader.number("ORDERLY_PAYMENT_TIMEOUT_MS", 10_000, 100, 120_000));
        let job_poll_interval =
            Duration::from_millis(reader.number("ORDERLY_JOB_POLL_INTERVAL_MS", 1000, 10, 3_600_000));

        let webhooks = WebhookConfig {
            timeout: Duration::from_millis(reader.number("ORDERLY_WEBHOOK_TIMEOUT_MS", 10_000, 100, 120_000)),
            retry_schedule: reader.parse(
                "ORDERLY_WEBHOOK_RETRY_SCHEDULE",
                parse_schedule(DEFAULT_WEBHOOK_RETRY_SCHEDULE).unwrap_or_default(),
                parse_schedule,
            ),
            allow_http: reader.parse("ORDERLY_WEBHOOK_ALLOW_HTTP", false, |v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err("must be `true` or `false`".into()),
            }),
            allowed_networks: reader.list("ORDERLY_WEBHOOK_ALLOWED_NETWORKS", |item| {
                item.parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{item}` is not an IP address or CIDR block"))
            }),
            workers: reader.number("ORDERLY_WEBHOOK_WORKERS", 4, 0, 64),
        };

        let (Some(currency), true) = (currency, reader.problems.is_empty()) else {
            return Err(ConfigError(reader.problems));
        };
        Ok(Config {
            bind,
            database_url,
            database_pool_size,
            database_acquire_timeout,
            jwt_secret,
            jwt_secret_source,
            jwt_issuer,
            jwt_audience,
            access_token_ttl,
            refresh_token_ttl,
            revocation_check_interval,
            refresh_reuse_leeway,
            environment,
            log_filter,
            log_format,
            admin,
            admin_password,
            rate_limit_per_minute,
            login_rate_limit_per_minute,
            currency,
            tax_rate,
            reservation_ttl,
            max_reserved_units_per_customer,
            sweep_interval,
            redis_url,
            redis_key_prefix,
            trusted_proxies,
            cors_origins,
            statement_timeout,
            keep_alive,
            client_request_timeout,
            max_request_line_bytes,
            max_header_bytes,
            problem_type_base,
            workers,
            password_hash_concurrency,
            shutdown_timeout,
            payments,
            payment_timeout,
            job_poll_interval,
            webhooks,
        })
    }

    /// Only the currency (`ORDERLY_CURRENCY`), by the same rule as `from_lookup`: all that
    /// `orderly openapi` needs, so the rest of the configuration need not be valid for it.
    pub fn currency_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Currency, ConfigError> {
        let mut reader =
            Reader { lookup: &|name| lookup(name).filter(|value| !value.trim().is_empty()), problems: vec![] };
        match read_currency(&mut reader) {
            Some(currency) => Ok(currency),
            None => Err(ConfigError(reader.problems)),
        }
    }

    pub fn currency_from_env() -> Result<Currency, ConfigError> {
        Self::currency_from_lookup(|name| std::env::var(name).ok())
    }

    /// The key that signs pagination cursors, derived from the JWT secret so that every
    /// instance sharing the secret accepts every other instance's cursors, while a cursor
    /// can never be used as a token (different key, different format).
    pub fn cursor_key(&self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"orderly pagination cursor key v1\0");
        hasher.update(self.jwt_secret.expose_secret().as_bytes());
        hasher.finalize().to_vec()
    }
}

/// `ORDERLY_CURRENCY`, or the default, checked by the domain's own rule; `None` after
/// reporting the problem.
fn read_currency(reader: &mut Reader<'_>) -> Option<Currency> {
    let raw = reader.get("ORDERLY_CURRENCY").unwrap_or_else(|| DEFAULT_CURRENCY.to_owned());
    let currency = Currency::parse(raw.trim()).ok();
    if currency.is_none() {
        reader.problem(
            "ORDERLY_CURRENCY",
            &format!("must be an ISO 4217 code of three upper-case letters, e.g. {DEFAULT_CURRENCY}"),
        );
    }
    currency
}

/// A retry schedule: comma-separated waits, each a number with an optional unit (`ms`, `s`,
/// `m`, `h`; none is seconds), each positive, at most 20 of them, none over a week.
fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    const MAX_WAITS: usize = 20;
    const MAX_WAIT: Duration = Duration::from_secs(7 * 86_400);
    let waits = raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let split = item.find(|c: char| !c.is_ascii_digit()).unwrap_or(item.len());
            let (number, unit) = item.split_at(split);
            let amount: u64 =
                number.parse().map_err(|_| format!("`{item}` is not a wait such as 500ms, 5s, 5m or 2h"))?;
            let wait = match unit {
                "ms" => Duration::from_millis(amount),
                "" | "s" => Duration::from_secs(amount),
                "m" => Duration::from_secs(amount.saturating_mul(60)),
                "h" => Duration::from_secs(amount.saturating_mul(3600)),
                _ => return Err(format!("`{item}` is not a wait such as 500ms, 5s, 5m or 2h")),
            };
            if wait.is_zero() || wait > MAX_WAIT {
                return Err(format!("`{item}` must be more than 0 and at most a week"));
            }
            Ok(wait)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > MAX_WAITS {
        return Err(format!("must have at most {MAX_WAITS} waits"));
    }
    Ok(waits)
}

/// 32 random bytes, hex-encoded: a development-only signing key.
fn random_secret() -> Result<SecretString, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(SecretString::from(hex))
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn problem(&mut self, name: &str, message: &str) {
        self.problems.push(format!("{name} {message}"));
    }

    fn parse_opt<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.get(name)?;
        match parse(raw.trim()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.problem(name, &message);
                None
            }
        }
    }

    fn parse<T>(&mut self, name: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> T {
        self.parse_opt(name, parse).unwrap_or(default)
    }

    /// A comma-separated list (blank items ignored); empty when unset. One bad item is a
    /// problem naming that item.
    fn list<T>(&mut self, name: &str, parse_item: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
        self.parse_opt(name, |value| {
            value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(&parse_item).collect()
        })
        .unwrap_or_default()
    }

    fn number<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        self.parse(name, default, |v| match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!("must be a whole number from {min} to {max}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_configuration_serves_sqlite_on_localhost_8080() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert!(matches!(config.database_url, DatabaseUrl::Sqlite(ref path) if path.as_os_str() == "orderly.db"));
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.jwt_secret_source, SecretSource::GeneratedForDevelopment);
        assert!(config.jwt_secret.expose_secret().len() >= MIN_SECRET_BYTES);
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.currency.as_str(), "EUR");
        assert_eq!(config.tax_rate, TaxRate::default());
        assert_eq!(config.reservation_ttl, Duration::from_secs(1800));
        assert_eq!(config.max_reserved_units_per_customer, 1000);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!((config.max_request_line_bytes, config.max_header_bytes), (8192, 32_768));
        assert_eq!(config.revocation_check_interval, Duration::from_secs(1));
        assert_eq!(config.refresh_reuse_leeway, Duration::from_secs(30));
    }

    #[test]
    fn postgres_urls_select_postgres() {
        for url in ["postgres://u@localhost/db", "postgresql://u@localhost/db"] {
            let config = config(&[("ORDERLY_DATABASE_URL", url)]).unwrap();
            assert!(matches!(config.database_url, DatabaseUrl::Postgres(_)), "{url}");
        }
    }

    #[test]
    fn unknown_database_scheme_is_a_clear_error() {
        let error = config(&[("ORDERLY_DATABASE_URL", "mysql://localhost/db")]).unwrap_err();
        assert_eq!(error.0.len(), 1);
        assert!(error.0[0].starts_with("ORDERLY_DATABASE_URL"), "{error}");
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret() {
        let missing = config(&[("ORDERLY_ENV", "production")]).unwrap_err();
        assert!(missing.0[0].contains("ORDERLY_JWT_SECRET is required"), "{missing}");
        let short = config(&[("ORDERLY_ENV", "production"), ("ORDERLY_JWT_SECRET", "too-short")]).unwrap_err();
        assert!(short.0[0].contains("at least 32 bytes"), "{short}");
        let good = config(&[("ORDERLY_ENV", "production"), ("ORDERLY_JWT_SECRET", &"k".repeat(32))]).unwrap();
        assert_eq!(good.jwt_secret_source, SecretSource::Configured);
        assert_eq!(good.log_format, LogFormat::Json);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let error =
            config(&[("ORDERLY_BIND", "nowhere"), ("ORDERLY_DATABASE_POOL_SIZE", "0"), ("ORDERLY_LOG_FORMAT", "xml")])
                .unwrap_err();
        assert_eq!(error.0.len(), 3, "{error}");
    }

    #[test]
    fn password_hash_concurrency_defaults_to_the_cores_and_is_bounded() {
        assert_eq!(config(&[]).unwrap().password_hash_concurrency, None);
        let one = config(&[("ORDERLY_PASSWORD_HASH_CONCURRENCY", "1")]).unwrap();
        assert_eq!(one.password_hash_concurrency, Some(1));
        for bad in ["0", "257", "two"] {
            let error = config(&[("ORDERLY_PASSWORD_HASH_CONCURRENCY", bad)]).unwrap_err();
            assert!(error.0[0].starts_with("ORDERLY_PASSWORD_HASH_CONCURRENCY"), "{bad}: {error}");
        }
    }

    #[test]
    fn rate_limits_accept_zero_as_off() {
        let config = config(&[("ORDERLY_RATE_LIMIT", "0"), ("ORDERLY_LOGIN_RATE_LIMIT", "0")]).unwrap();
        assert_eq!((config.rate_limit_per_minute, config.login_rate_limit_per_minute), (0, 0));
    }

    #[test]
    fn trusted_proxies_take_addresses_and_cidr_blocks() {
        let configured = config(&[("ORDERLY_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        let proxies: Vec<String> = configured.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        let error = config(&[("ORDERLY_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")]).unwrap_err();
        assert!(error.0[0].contains("`proxy.local` is not an IP address"), "{error}");
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
    }

    #[test]
    fn cors_is_off_by_default_and_takes_exact_origins() {
        assert!(config(&[]).unwrap().cors_origins.is_empty());
        let config_with = config(&[("ORDERLY_CORS_ORIGINS", "https://app.example, http://localhost:3000")]).unwrap();
        assert_eq!(config_with.cors_origins, ["https://app.example", "http://localhost:3000"]);
        for bad in ["*", "app.example", "https://app.example/path"] {
            let error = config(&[("ORDERLY_CORS_ORIGINS", bad)]).unwrap_err();
            assert!(error.0[0].starts_with("ORDERLY_CORS_ORIGINS"), "{bad}: {error}");
        }
    }

    #[test]
    fn redis_url_must_be_a_redis_url() {
        assert!(config(&[("ORDERLY_REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap().redis_url.is_some());
        let error = config(&[("ORDERLY_REDIS_URL", "127.0.0.1:6379")]).unwrap_err();
        assert!(error.0[0].starts_with("ORDERLY_REDIS_URL"), "{error}");
    }

    #[test]
    fn webhooks_default_to_https_only_public_targets_and_a_day_long_schedule() {
        let webhooks = config(&[]).unwrap().webhooks;
        assert!(!webhooks.allow_http);
        assert!(webhooks.allowed_networks.is_empty());
        assert_eq!(webhooks.workers, 4);
        assert_eq!(webhooks.timeout, Duration::from_secs(10));
        let span: Duration = webhooks.retry_schedule.iter().sum();
        assert!(span >= Duration::from_secs(24 * 3600), "{span:?}");
    }

    #[test]
    fn webhook_settings_are_read_and_checked() {
        let configured = config(&[
            ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "200ms, 1s,2m,1h,3"),
            ("ORDERLY_WEBHOOK_ALLOW_HTTP", "true"),
            ("ORDERLY_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1"),
            ("ORDERLY_WEBHOOK_WORKERS", "0"),
        ])
        .unwrap()
        .webhooks;
        assert_eq!(
            configured.retry_schedule,
            [
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(120),
                Duration::from_secs(3600),
                Duration::from_secs(3)
            ]
        );
        assert!(configured.allow_http);
        assert_eq!(configured.allowed_networks.len(), 2);
        assert_eq!(configured.workers, 0);
        for (name, bad) in [
            ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "5x"),
            ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "0s"),
            ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "8d"),
            ("ORDERLY_WEBHOOK_ALLOW_HTTP", "yes"),
            ("ORDERLY_WEBHOOK_ALLOWED_NETWORKS", "intranet"),
            ("ORDERLY_WEBHOOK_WORKERS", "65"),
        ] {
            let error = config(&[(name, bad)]).unwrap_err();
            assert!(error.0[0].starts_with(name), "{bad}: {error}");
        }
    }

    #[test]
    fn currency_and_tax_rate_are_the_domain_types() {
        let configured = config(&[("ORDERLY_CURRENCY", "USD"), ("ORDERLY_TAX_RATE_BPS", "2000")]).unwrap();
        assert_eq!((configured.currency.as_str(), configured.tax_rate.basis_points()), ("USD", 2000));
        for (name, bad) in [("ORDERLY_CURRENCY", "eur"), ("ORDERLY_TAX_RATE_BPS", "10001")] {
            let error = config(&[(name, bad)]).unwrap_err();
            assert!(error.0[0].starts_with(name), "{bad}: {error}");
        }
        let only_currency = |value: &str| Config::currency_from_lookup(|_| Some(value.to_owned()));
        assert_eq!(only_currency("").unwrap().as_str(), "EUR");
        assert_eq!(only_currency("USD").unwrap().as_str(), "USD");
        assert!(only_currency("usd").unwrap_err().0[0].starts_with("ORDERLY_CURRENCY must be an ISO 4217"));
    }

    #[test]
    fn admin_password_alone_is_kept_for_create_admin() {
        let configured = config(&[("ORDERLY_ADMIN_PASSWORD", "admin-password-123")]).unwrap();
        assert!(configured.admin.is_none());
        assert_eq!(configured.admin_password.unwrap().expose_secret(), "admin-password-123");
    }

    #[test]
    fn admin_email_without_password_is_an_error() {
        let error = config(&[("ORDERLY_ADMIN_EMAIL", "root@example.com")]).unwrap_err();
        assert!(error.0[0].starts_with("ORDERLY_ADMIN_PASSWORD"));
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let config = config(&[("ORDERLY_JWT_SECRET", "super-secret-value-that-is-long-enough")]).unwrap();
        assert!(!format!("{config:?}").contains("super-secret"));
    }

    #[test]
    fn cursor_key_differs_from_the_jwt_secret_and_is_stable() {
        let a = config(&[("ORDERLY_JWT_SECRET", &"s".repeat(40))]).unwrap();
        let b = config(&[("ORDERLY_JWT_SECRET", &"s".repeat(40))]).unwrap();
        assert_eq!(a.cursor_key(), b.cursor_key());
        assert_ne!(a.cursor_key(), "s".repeat(40).into_bytes());
    }
}

#[cfg(test)]
mod readme_tests {
    /// The README's and the operations guide's configuration tables are the operator's
    /// reference; each must name every variable.
    #[test]
    fn readme_and_operations_guide_document_every_variable() {
        let documents = [
            ("README.md", include_str!("../../../README.md")),
            ("docs/operations.md", include_str!("../../../docs/operations.md")),
        ];
        for (document, text) in documents {
            for (name, _, _) in super::VARIABLES {
                assert!(text.contains(&format!("| `{name}` |")), "{document}'s configuration table lacks {name}");
            }
        }
    }
}
