//! The database handle: the connection pool for the chosen backend, and its migrations.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use orderly_domain::StoreError;

use crate::connection::{AnyConnection, AnyConnectionManager, ConnectTarget, SqliteConnectionSetup};
use crate::error::{pool_unavailable, query_failed};
use crate::url::{Backend, DatabaseUrl};

/// One folder per backend, with the same migration names; both are compiled into the binary.
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Serialises migration runs of several instances starting at once against one PostgreSQL
/// database (diesel's harness does not lock). Any constant unique to Orderly will do.
const POSTGRES_MIGRATION_LOCK: i64 = 0x006f_7264_6572_6c79; // "orderly" in ASCII

/// Pool sizing and patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the pool opens.
    pub max_size: u32,
    /// How long a caller waits for a free connection before getting `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_size: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// A snapshot of the pool, for metrics gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: u32,
    /// Connections open now, idle or in use.
    pub connections: u32,
    pub idle_connections: u32,
}

pub(crate) type Connection = PooledConnection<AnyConnectionManager>;

/// The database: a pool of connections to one backend. Cheap to clone (clones share the pool).
///
/// All work is synchronous; callers on an async runtime run it on a blocking pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AnyConnectionManager>,
    backend: Backend,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("backend", &self.backend).field("status", &self.status()).finish()
    }
}

impl Database {
    /// Opens a pool on the backend that `url` names. One connection is made at once, so a
    /// wrong host, password or path fails here with the driver's own explanation; SQLite
    /// creates the file if it is missing (but not its directory) and is switched to WAL.
    pub fn connect(url: &DatabaseUrl, options: PoolOptions) -> anyhow::Result<Database> {
        let target = match url.backend() {
            Backend::Postgres => ConnectTarget::Postgres(url.expose().into_owned()),
            Backend::Sqlite => ConnectTarget::Sqlite(url.expose().into_owned()),
        };
        let manager = AnyConnectionManager::new(target);

        let mut first = manager.connect().with_context(|| match url.backend() {
            Backend::Postgres => format!("could not connect to PostgreSQL at {url}"),
            Backend::Sqlite => format!("could not open the SQLite database {url} (does its directory exist?)"),
        })?;
        if url.backend() == Backend::Sqlite {
            SqliteConnectionSetup::apply(&mut first).context("could not configure the SQLite connection")?;
            // WAL lets readers run beside the writer; the mode is stored in the file, so once
            // is enough. It needs a moment of exclusive access, hence before the pool exists.
            first.batch_execute("PRAGMA journal_mode = WAL").context("could not switch SQLite to WAL mode")?;
        }
        drop(first);

        let pool = Pool::builder()
            .max_size(options.max_size)
            .connection_timeout(options.acquire_timeout)
            // A cheap query before each use, so connections that died (PostgreSQL restarted,
            // a proxy timed them out) are replaced instead of failing a request: the service
            // recovers without a restart.
            .test_on_check_out(true)
            .connection_customizer(Box::new(SqliteConnectionSetup))
            .error_handler(Box::new(LogPoolErrors))
            // The first connection above proved the settings; the rest open in the background.
            .build_unchecked(manager);
        tracing::info!(database = %url, backend = %url.backend(), max_size = options.max_size, "database pool ready");
        Ok(Database { pool, backend: url.backend() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle_connections: state.idle_connections,
        }
    }

    /// Applies the pending migrations of this backend, returning how many ran.
    pub fn run_migrations(&self) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().context("no database connection available to run migrations")?;
        let applied = match &mut *conn {
            AnyConnection::Postgresql(pg) => {
                diesel::sql_query("SELECT pg_advisory_lock($1)")
                    .bind::<BigInt, _>(POSTGRES_MIGRATION_LOCK)
                    .execute(pg)
                    .context("could not take the migration lock")?;
                let result = pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|versions| versions.len());
                let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                    .bind::<BigInt, _>(POSTGRES_MIGRATION_LOCK)
                    .execute(pg);
                let applied = result.map_err(|error| anyhow::anyhow!(error))?;
                unlocked.context("could not release the migration lock")?;
                applied
            }
            AnyConnection::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.len())
                .map_err(|error| anyhow::anyhow!(error))?,
        };
        if applied > 0 {
            tracing::info!(applied, backend = %self.backend, "database migrations applied");
        }
        Ok(applied)
    }

    /// How many migrations compiled into this binary the database has not applied yet.
    pub fn pending_migrations(&self) -> Result<usize, StoreError> {
        let mut conn = self.connection()?;
        pending_migrations(&mut conn)
    }

    /// A connection from the pool, or `Unavailable` after the acquire timeout.
    pub(crate) fn connection(&self) -> Result<Connection, StoreError> {
        self.pool.get().map_err(pool_unavailable)
    }
}

pub(crate) fn pending_migrations(conn: &mut AnyConnection) -> Result<usize, StoreError> {
    let pending = match conn {
        AnyConnection::Postgresql(pg) => pg.pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.len()),
        AnyConnection::Sqlite(sqlite) => sqlite.pending_migrations(SQLITE_MIGRATIONS).map(|m| m.len()),
    };
    pending.map_err(|error| match error.downcast::<diesel::result::Error>() {
        Ok(error) => query_failed(*error, "listing pending migrations"),
        Err(other) => StoreError::Unexpected(anyhow::anyhow!(other).context("listing pending migrations")),
    })
}

/// r2d2 reports failures to open background connections here; the default handler writes to
/// the `log` crate, which this service does not collect.
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<r2d2::Error> for LogPoolErrors {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}
