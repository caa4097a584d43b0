//! Choosing the backend from the database URL.
//!
//! diesel's `MultiConnection::establish` tries every backend in turn and throws the errors
//! away: a mistyped PostgreSQL URL reports only "Invalid connection url for multiconnection",
//! and any other string silently becomes a new SQLite file. So the backend is decided here,
//! from the scheme alone, and an unknown scheme is a start-up error naming the accepted forms.

use std::fmt;
use std::path::{Path, PathBuf};

/// The database engines Orderly runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database location whose backend is known. `Display` and `Debug` hide any password, so
/// the value can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A libpq connection URI (`postgres://` or `postgresql://`).
    Postgres(PostgresUrl),
    /// A SQLite database file, created on first connection if missing (its directory is not).
    Sqlite(PathBuf),
}

/// A PostgreSQL connection URI, passed to libpq unchanged. Only [`DatabaseUrl::parse`] makes
/// one; its `Display` and `Debug` redact the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The full URI, password included. Pass it to a driver; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URI to hand libpq: the operator's own, plus [`LIBPQ_DEFAULTS`] for every parameter
    /// the operator did not set (in the URI, or for `connect_timeout` in `PGCONNECT_TIMEOUT`,
    /// which a URI parameter would silently override).
    pub(crate) fn with_connection_defaults(&self) -> String {
        let connect_timeout_from_env = std::env::var_os("PGCONNECT_TIMEOUT").is_some();
        add_missing_parameters(&self.0, connect_timeout_from_env)
    }
}

/// libpq parameters that bound how long a dead or unreachable server can hold a thread. libpq's
/// own defaults wait forever: no connect timeout, and on a half-open connection (the server's
/// host vanished without closing the socket) a query waits on the kernel's TCP retransmission
/// and keep-alive timers, which take minutes to hours.
///
/// - `connect_timeout`: a connection attempt gives up after 5 s (per host address);
/// - `keepalives*`: an idle connection is probed after 15 s, every 5 s, and declared dead after
///   3 unanswered probes, ~30 s in all — the pool's check-out ping then fails fast;
/// - `tcp_user_timeout`: data sent but unacknowledged for 30 s (a request to a vanished host)
///   fails the connection, where keep-alives alone do not apply.
pub const LIBPQ_DEFAULTS: [(&str, &str); 6] = [
    ("connect_timeout", "5"),
    ("keepalives", "1"),
    ("keepalives_idle", "15"),
    ("keepalives_interval", "5"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
];

/// Appends each of [`LIBPQ_DEFAULTS`] whose key the URI's query does not already name.
fn add_missing_parameters(url: &str, connect_timeout_from_env: bool) -> String {
    // A fragment means nothing to libpq; keep it last, where it was.
    let (url, fragment) = match url.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (url, None),
    };
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let set_by_operator = |key: &str| {
        query.split('&').any(|pair| pair.split('=').next().is_some_and(|name| name.eq_ignore_ascii_case(key)))
            || (key == "connect_timeout" && connect_timeout_from_env)
    };
    let mut with_defaults = url.to_owned();
    for (key, value) in LIBPQ_DEFAULTS.into_iter().filter(|(key, _)| !set_by_operator(key)) {
        if !with_defaults.contains('?') {
            with_defaults.push('?');
        } else if !with_defaults.ends_with(['?', '&']) {
            with_defaults.push('&');
        }
        with_defaults.push_str(key);
        with_defaults.push('=');
        with_defaults.push_str(value);
    }
    if let Some(fragment) = fragment {
        with_defaults.push('#');
        with_defaults.push_str(fragment);
    }
    with_defaults
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_postgres_url(&self.0))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl").field(&redact_postgres_url(&self.0)).finish()
    }
}

/// The URL names no backend Orderly supports. The message lists the accepted forms; it never
/// repeats the URL itself, which may carry a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported database URL ({reason}); use postgres://USER:PASSWORD@HOST:PORT/DATABASE (or \
     postgresql://...) for PostgreSQL, or sqlite://PATH or a plain file path for SQLite"
)]
pub struct UnsupportedDatabaseUrl {
    reason: String,
}

impl UnsupportedDatabaseUrl {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

impl DatabaseUrl {
    /// Accepts `postgres://…` / `postgresql://…` (PostgreSQL), `sqlite://PATH` or a bare file
    /// path without a `scheme://` (SQLite). Anything else is refused rather than guessed.
    pub fn parse(raw: &str) -> Result<Self, UnsupportedDatabaseUrl> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(UnsupportedDatabaseUrl::new("it is empty"));
        }
        if let Some((scheme, rest)) = trimmed.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => {
                    // Normalise the scheme case only; libpq parses the rest.
                    Ok(Self::Postgres(PostgresUrl(format!("{}://{rest}", scheme.to_ascii_lowercase()))))
                }
                "sqlite" => Self::parse_sqlite_path(rest),
                // Only the scheme is echoed: the rest may hold credentials.
                other => Err(UnsupportedDatabaseUrl::new(format!("unknown scheme `{other}://`"))),
            };
        }
        // `postgres:foo` or `sqlite:foo.db` look like URLs with a typo; treating them as file
        // names would quietly create a stray SQLite database.
        if let Some((scheme, _)) = trimmed.split_once(':')
            && ["postgres", "postgresql", "sqlite"].contains(&scheme.to_ascii_lowercase().as_str())
        {
            return Err(UnsupportedDatabaseUrl::new(format!("`{scheme}:` must be followed by `//`")));
        }
        Self::parse_sqlite_path(trimmed)
    }

    fn parse_sqlite_path(path: &str) -> Result<Self, UnsupportedDatabaseUrl> {
        if path.is_empty() {
            return Err(UnsupportedDatabaseUrl::new("the SQLite path is empty"));
        }
        // Every pooled connection would open its own, empty, private database.
        if path == ":memory:" || path.starts_with("file:") || path.contains("mode=memory") {
            return Err(UnsupportedDatabaseUrl::new("in-memory and URI-style SQLite databases are not supported"));
        }
        if path.contains('\0') {
            return Err(UnsupportedDatabaseUrl::new("the SQLite path contains a NUL byte"));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// A SQLite database at `path`.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> Self {
        Self::Sqlite(path.into())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The SQLite file, for the SQLite backend.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }

    /// The full connection string, password included. Pass it to a driver; never log it.
    pub fn expose(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Postgres(url) => url.expose().into(),
            Self::Sqlite(path) => path.to_string_lossy(),
        }
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = UnsupportedDatabaseUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => url.fmt(f),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&url.to_string()).finish(),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
        }
    }
}

/// Replaces the password in the user-info part and any `password=` query parameter by `***`.
fn redact_postgres_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".to_owned() };
    // The authority ends at the first `/`, `?` or `#`; user info ends at its last `@`.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_schemes_choose_postgres() {
        for raw in ["postgres://u:p@localhost:5432/db", "postgresql://localhost/db", "POSTGRES://h/db"] {
            let url = DatabaseUrl::parse(raw).unwrap();
            assert_eq!(url.backend(), Backend::Postgres, "{raw}");
        }
        assert_eq!(DatabaseUrl::parse("POSTGRES://h/db").unwrap().expose(), "postgres://h/db");
    }

    #[test]
    fn sqlite_urls_and_bare_paths_choose_sqlite() {
        let cases = [
            ("sqlite://orderly.db", "orderly.db"),
            ("sqlite:///var/lib/orderly/orderly.db", "/var/lib/orderly/orderly.db"),
            ("orderly.db", "orderly.db"),
            ("./data/orderly.db", "./data/orderly.db"),
            ("/tmp/x.sqlite3", "/tmp/x.sqlite3"),
            (" orderly.db ", "orderly.db"),
        ];
        for (raw, path) in cases {
            let url = DatabaseUrl::parse(raw).unwrap();
            assert_eq!(url.backend(), Backend::Sqlite, "{raw}");
            assert_eq!(url.sqlite_path(), Some(Path::new(path)), "{raw}");
        }
    }

    #[test]
    fn other_schemes_are_refused_with_the_accepted_forms() {
        for raw in ["mysql://root:secret@db/orderly", "http://x", "redis://h", "mariadb://x"] {
            let message = DatabaseUrl::parse(raw).unwrap_err().to_string();
            assert!(message.contains("postgres://"), "{message}");
            assert!(message.contains("sqlite://PATH"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        assert!(DatabaseUrl::parse("mysql://x").unwrap_err().to_string().contains("mysql://"));
    }

    #[test]
    fn malformed_or_ambiguous_inputs_are_refused() {
        for raw in ["", "   ", "sqlite://", ":memory:", "sqlite://:memory:", "file:x.db?mode=memory", "sqlite:x.db"] {
            assert!(DatabaseUrl::parse(raw).is_err(), "{raw:?}");
        }
        assert!(DatabaseUrl::parse("postgres:localhost/db").is_err());
    }

    #[test]
    fn libpq_defaults_are_added_unless_the_operator_set_them() {
        let all = "connect_timeout=5&keepalives=1&keepalives_idle=15&keepalives_interval=5&keepalives_count=3\
                   &tcp_user_timeout=30000";
        assert_eq!(add_missing_parameters("postgres://u:p@h/db", false), format!("postgres://u:p@h/db?{all}"));
        assert_eq!(
            add_missing_parameters("postgres://h/db?sslmode=require", false),
            format!("postgres://h/db?sslmode=require&{all}")
        );
        assert_eq!(add_missing_parameters("postgres://h/db?", false), format!("postgres://h/db?{all}"));

        let operator = "postgres://h/db?Connect_Timeout=20&keepalives_idle=300&tcp_user_timeout=0";
        assert_eq!(
            add_missing_parameters(operator, false),
            format!("{operator}&keepalives=1&keepalives_interval=5&keepalives_count=3")
        );
        // `PGCONNECT_TIMEOUT` would lose to a URI parameter, so none is added.
        assert!(!add_missing_parameters("postgres://h/db", true).contains("connect_timeout"));
        assert_eq!(add_missing_parameters("postgres://h/db#x", false), format!("postgres://h/db?{all}#x"));
    }

    #[test]
    fn display_and_debug_redact_the_password() {
        let url = DatabaseUrl::parse("postgres://orderly:s3cr3t@db.internal:5432/orderly?sslmode=require").unwrap();
        assert_eq!(url.to_string(), "postgres://orderly:***@db.internal:5432/orderly?sslmode=require");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        let DatabaseUrl::Postgres(inner) = &url else { panic!("expected PostgreSQL") };
        assert!(!format!("{inner:?}").contains("s3cr3t"));
        assert!(!inner.to_string().contains("s3cr3t"));
        assert!(url.expose().contains("s3cr3t"));

        let url = DatabaseUrl::parse("postgresql://h/db?user=u&password=s3cr3t&sslmode=disable").unwrap();
        assert_eq!(url.to_string(), "postgresql://h/db?user=u&password=***&sslmode=disable");

        // An unencoded `@` in the password still ends up hidden: user info ends at the last `@`.
        let url = DatabaseUrl::parse("postgres://u:p@ss@h/db").unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");

        let url = DatabaseUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(url.to_string(), "postgres://u@h/db");
        assert_eq!(DatabaseUrl::parse("data/o.db").unwrap().to_string(), "sqlite://data/o.db");
    }
}
