//! `Readiness` over diesel: can the database be reached, and is its schema current?

use diesel::prelude::*;
use diesel::sql_types::Integer;
use orderly_domain::StoreError;
use orderly_domain::ports::{NotReady, Readiness};

use crate::connection::AnyConnection;
use crate::database::{Database, pending_migrations};

/// Answers `/readyz` for the pool's database.
#[derive(Debug, Clone)]
pub struct DieselReadiness {
    db: Database,
}

impl DieselReadiness {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn unreachable(error: StoreError) -> NotReady {
    match error {
        StoreError::Unavailable(error) | StoreError::Unexpected(error) => NotReady::DatabaseUnreachable(error),
    }
}

impl Readiness for DieselReadiness {
    fn check(&self) -> Result<(), NotReady> {
        // Two results: the outer one says whether a connection was had, the inner one what the
        // probe on it found (`with_connection` reports the first as a `StoreError`, which
        // `NotReady` is not).
        match self.db.with_connection(|conn| Ok(probe(conn))).map_err(unreachable)?? {
            0 => Ok(()),
            pending => Err(NotReady::MigrationsPending { pending }),
        }
    }
}

/// `SELECT 1`, then how many migrations are pending.
fn probe(conn: &mut AnyConnection) -> Result<usize, NotReady> {
    diesel::select(1.into_sql::<Integer>())
        .get_result::<i32>(conn)
        .map_err(|error| NotReady::DatabaseUnreachable(anyhow::Error::new(error).context("SELECT 1 failed")))?;
    pending_migrations(conn).map_err(unreachable)
}
