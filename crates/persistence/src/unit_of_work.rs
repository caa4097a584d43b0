//! Units of work: the domain's [`UnitOfWork`] port, and the one place that builds the set of
//! [`Repositories`] over a database handle — the pool's, or one bound to a transaction.
//!
//! A unit of work checks a connection out, begins a write transaction on it (SQLite:
//! `BEGIN IMMEDIATE`), and hands the use case repositories bound to that connection
//! ([`Database::bound_to`]). When the use case returns, the connection is taken back from the
//! repositories and the transaction committed or rolled back. Repositories that outlive it
//! (a clone kept by mistake) find no connection and fail, rather than writing outside it.
//!
//! Must not touch: business decisions (what to commit is the use case's answer), provider or
//! any other remote calls (nothing here may wait on another service while a transaction is
//! open; the port's contract says so to its callers).

use std::sync::{Arc, Mutex, PoisonError};

use orderly_domain::StoreError;
use orderly_domain::ports::{Repositories, UnitOfWork};

use crate::connection::{begin_write, commit, rollback};
use crate::database::{Connection, Database};
use crate::error::query_failed;
use crate::{
    DieselInvoiceRepository, DieselJobQueue, DieselOrderRepository, DieselPaymentRepository, DieselProductRepository,
    DieselRefreshTokenRepository, DieselUserRepository, DieselWebhookRepository,
};

/// Every repository over `db`: over the pool when `db` is the pool's handle, inside one
/// transaction when it is bound to one.
pub fn repositories(db: &Database) -> Repositories {
    Repositories {
        users: Arc::new(DieselUserRepository::new(db.clone())),
        refresh_tokens: Arc::new(DieselRefreshTokenRepository::new(db.clone())),
        products: Arc::new(DieselProductRepository::new(db.clone())),
        orders: Arc::new(DieselOrderRepository::new(db.clone())),
        invoices: Arc::new(DieselInvoiceRepository::new(db.clone())),
        payments: Arc::new(DieselPaymentRepository::new(db.clone())),
        jobs: Arc::new(DieselJobQueue::new(db.clone())),
        webhooks: Arc::new(DieselWebhookRepository::new(db.clone())),
    }
}

/// Runs `work` with repositories bound to `connection` (already in a transaction), then hands
/// the connection back. A panic in `work` drops the connection with it, and the pool discards
/// a connection dropped while panicking, so its transaction dies with it.
pub(crate) fn with_bound_repositories<T>(
    db: &Database,
    connection: Connection,
    work: impl FnOnce(&Repositories) -> T,
) -> (T, Result<Connection, StoreError>) {
    let slot = Arc::new(Mutex::new(Some(connection)));
    let bound = db.bound_to(slot.clone());
    let output = work(&repositories(&bound));
    let connection = slot.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!("a unit of work's connection was not returned by its repositories"))
    });
    (output, connection)
}

/// The [`UnitOfWork`] over one database.
#[derive(Debug, Clone)]
pub struct DieselUnitOfWork {
    db: Database,
}

impl DieselUnitOfWork {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl UnitOfWork for DieselUnitOfWork {
    fn run(&self, work: &mut dyn FnMut(&Repositories) -> Result<bool, StoreError>) -> Result<(), StoreError> {
        let mut connection = self.db.pooled_connection()?;
        begin_write(&mut connection).map_err(|error| query_failed(error, "beginning a unit of work"))?;
        let (outcome, connection) = with_bound_repositories(&self.db, connection, work);
        let mut connection = connection?;
        match outcome {
            Ok(true) => commit(&mut connection).map_err(|error| {
                // diesel ends the transaction or marks it for rollback: nothing was committed.
                let _ = rollback(&mut connection);
                query_failed(error, "committing a unit of work")
            }),
            Ok(false) | Err(_) => {
                if let Err(error) = rollback(&mut connection) {
                    tracing::warn!(error = %error, "could not roll back a unit of work");
                }
                outcome.map(|_| ())
            }
        }
    }
}
