//! Idempotency-Key records (docs/api.md#retries-idempotency-key) in `idempotency_keys`: the
//! [`IdempotentExecutor`] port.
//!
//! One row per (scope, key). The protocol of [`orderly_domain::idempotency`], statement by
//! statement:
//!
//! 1. **Claim**, before any work, in one-statement transactions of its own (autocommit). On
//!    SQLite the row is read first without a lock (in WAL mode this does not wait behind a
//!    request that is executing, so a repeat learns "in progress" at once); on PostgreSQL the
//!    insert comes first (a new key, the common case, then costs one statement) and the row is
//!    read when it fails. A different fingerprint is `KeyReused`, a completed row is
//!    `Replayed`, an unexpired `in_progress` row is `InProgress`. No row: `INSERT` with state
//!    `in_progress` and `locked_until = now + lease`; of racing inserts exactly one writes a
//!    row (the primary key), the others read again and see it. An `in_progress` row whose lease ran out belongs to a request
//!    that died: it is taken over with `UPDATE ... SET locked_until = now + lease WHERE ...
//!    AND state = 'in_progress' AND locked_until <= now`, which only one taker can win.
//!    The `locked_until` a claim was given identifies it from then on.
//! 2. **Execute** in one write transaction (SQLite: `BEGIN IMMEDIATE`): the use case is handed
//!    the repositories bound to it (see [`crate::unit_of_work`]), so every repository call it
//!    makes joins it. `Committed` completes the row (`UPDATE ... SET state = 'completed',
//!    response_... WHERE ... AND state = 'in_progress' AND locked_until = <ours>`) in that same
//!    transaction and commits: the change and its stored response exist together or not at all.
//!    `Refused` rolls the work back and stores the response in a transaction of its own.
//!    `Failed` rolls back and deletes the claim, so a retry executes again.
//! 3. If the completion or the commit fails, everything is rolled back, the claim is deleted
//!    and the error returned. If the claim was lost meanwhile (its lease expired and another
//!    request took it over, or it was purged), the work is rolled back and the answer is
//!    `InProgress`: the other request is the one that executes.
//!
//! A use case that runs in phases of its own (paying: no transaction may be open while the
//! provider is called) uses [`IdempotentExecutor::run_in_phases`] instead: the same claim, the
//! use case runs with no transaction open, and its response is stored afterwards in a short
//! transaction of its own. Between its last phase and that record a crash can leave the key
//! claimed without a response; a retry after the lease takes it over and runs the use case
//! again, which finds its own recovery point (the payment attempt recorded under the request's
//! key) and answers from it instead of starting over.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use orderly_domain::StoreError;
use orderly_domain::idempotency::{Execution, IdempotencyClaim, IdempotentOutcome, StoredResponse};
use orderly_domain::ports::{IdempotentExecutor, Repositories};

use crate::connection::{AnyConnection, begin_write, commit, rollback, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::idempotency_keys;
use crate::timestamps;
use crate::unit_of_work::with_bound_repositories;
use crate::url::Backend;

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// How often a claim re-reads a row that changed under it (inserted, taken over, released)
/// before answering `InProgress`.
const CLAIM_ATTEMPTS: usize = 5;

/// The [`IdempotentExecutor`] over `idempotency_keys`.
#[derive(Debug, Clone)]
pub struct DieselIdempotentExecutor {
    db: Database,
    /// How long a claim is its holder's before another request may take it over.
    lease: chrono::Duration,
}

impl DieselIdempotentExecutor {
    /// `lease` must outlast any request (e.g. 60 s): a claim older than that is presumed dead
    /// and may be taken over by a retry. Non-positive leases are treated as one second.
    pub fn new(db: Database, lease: chrono::Duration) -> Self {
        let lease = if lease <= chrono::Duration::zero() { chrono::Duration::seconds(1) } else { lease };
        Self { db, lease }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
struct KeyRow {
    fingerprint: String,
    state: String,
    response_status: Option<i32>,
    response_headers: Option<String>,
    response_body: Option<Vec<u8>>,
    locked_until: NaiveDateTime,
}

/// The claim this request holds: the row and the lease it was given.
struct Held {
    scope: String,
    key: String,
    locked_until: NaiveDateTime,
}

enum Claimed {
    Held(Held),
    Answer(IdempotentOutcome),
}

enum Seen {
    Answer(IdempotentOutcome),
    /// In progress, but its lease ran out.
    Abandoned,
}

impl KeyRow {
    fn judge(self, fingerprint: &str, now: NaiveDateTime) -> Result<Seen, StoreError> {
        if self.fingerprint != fingerprint {
            return Ok(Seen::Answer(IdempotentOutcome::KeyReused));
        }
        match self.state.as_str() {
            COMPLETED => Ok(Seen::Answer(IdempotentOutcome::Replayed(self.into_response()?))),
            IN_PROGRESS if self.locked_until > now => Ok(Seen::Answer(IdempotentOutcome::InProgress)),
            IN_PROGRESS => Ok(Seen::Abandoned),
            other => Err(corrupt_row("idempotency key", format!("unknown state {other:?}"))),
        }
    }

    fn into_response(self) -> Result<StoredResponse, StoreError> {
        let (Some(status), Some(headers), Some(body)) =
            (self.response_status, self.response_headers, self.response_body)
        else {
            return Err(corrupt_row("idempotency key", "a completed key without its response"));
        };
        let status = u16::try_from(status).map_err(|error| corrupt_row("idempotency key", error))?;
        let headers: Vec<(String, String)> =
            serde_json::from_str(&headers).map_err(|error| corrupt_row("idempotency key", error))?;
        Ok(StoredResponse { status, headers, body })
    }
}

fn find(conn: &mut AnyConnection, scope: &str, key: &str) -> QueryResult<Option<KeyRow>> {
    idempotency_keys::table
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key))
        .select(KeyRow::as_select())
        .first(conn)
        .optional()
}

/// `idempotency_keys` filtered to one key, as `held_row` selects it.
type HeldRow<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            diesel::dsl::Filter<idempotency_keys::table, diesel::dsl::Eq<idempotency_keys::scope, &'a str>>,
            diesel::dsl::Eq<idempotency_keys::key, &'a str>,
        >,
        diesel::dsl::Eq<idempotency_keys::state, &'static str>,
    >,
    diesel::dsl::Eq<idempotency_keys::locked_until, NaiveDateTime>,
>;

/// The row of the held claim, only while it is still in progress under our lease.
fn held_row(held: &Held) -> HeldRow<'_> {
    idempotency_keys::table
        .filter(idempotency_keys::scope.eq(held.scope.as_str()))
        .filter(idempotency_keys::key.eq(held.key.as_str()))
        .filter(idempotency_keys::state.eq(IN_PROGRESS))
        .filter(idempotency_keys::locked_until.eq(held.locked_until))
}

/// Stores `response` on the held claim; the number of rows updated (0: the claim was lost).
fn complete(conn: &mut AnyConnection, held: &Held, response: &StoredResponse) -> Result<usize, StoreError> {
    let headers = serde_json::to_string(&response.headers)
        .map_err(|error| StoreError::Unexpected(anyhow::Error::new(error).context("encoding response headers")))?;
    complete_with(conn, held, response, headers).map_err(|error| query_failed(error, "storing an idempotent response"))
}

fn complete_with(
    conn: &mut AnyConnection,
    held: &Held,
    response: &StoredResponse,
    headers: String,
) -> QueryResult<usize> {
    diesel::update(held_row(held))
        .set((
            idempotency_keys::state.eq(COMPLETED),
            idempotency_keys::response_status.eq(Some(i32::from(response.status))),
            idempotency_keys::response_headers.eq(Some(headers)),
            idempotency_keys::response_body.eq(Some(response.body.as_slice())),
        ))
        .execute(conn)
}

impl DieselIdempotentExecutor {
    fn claim(&self, conn: &mut AnyConnection, claim: &IdempotencyClaim) -> Result<Claimed, StoreError> {
        let scope = claim.scope.to_string();
        let key = claim.key.as_str();
        let now = timestamps::to_db(claim.now);
        let locked_until = timestamps::to_db(claim.now + self.lease);
        let held = || Held { scope: scope.clone(), key: key.to_owned(), locked_until };
        let insert = |conn: &mut AnyConnection| {
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::scope.eq(&scope),
                    idempotency_keys::key.eq(key),
                    idempotency_keys::fingerprint.eq(&claim.fingerprint),
                    idempotency_keys::state.eq(IN_PROGRESS),
                    idempotency_keys::created_at.eq(now),
                    idempotency_keys::locked_until.eq(locked_until),
                ))
                .execute(conn)
        };
        // Each claim statement is a transaction of its own (autocommit): one statement needs no
        // `BEGIN`/`COMMIT` around it, and saves their two round trips.
        for attempt in 0..CLAIM_ATTEMPTS {
            // PostgreSQL inserts first: a new key is the common case, and a taken one fails the
            // insert at once (or once its inserter commits), so the read is needed only then.
            // SQLite reads first: its insert would wait for the write lock behind a request
            // that is executing, where the read answers "in progress" at once.
            let insert_first = attempt == 0 && self.db.backend() == Backend::Postgres;
            if insert_first {
                match insert(conn) {
                    Ok(_) => return Ok(Claimed::Held(held())),
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                    Err(error) => return Err(query_failed(error, "claiming an idempotency key")),
                }
            }
            let seen = find(conn, &scope, key).map_err(|error| query_failed(error, "reading an idempotency key"))?;
            match seen.map(|row| row.judge(&claim.fingerprint, now)).transpose()? {
                Some(Seen::Answer(outcome)) => return Ok(Claimed::Answer(outcome)),
                Some(Seen::Abandoned) => {
                    let taken = diesel::update(
                        idempotency_keys::table
                            .filter(idempotency_keys::scope.eq(&scope))
                            .filter(idempotency_keys::key.eq(key))
                            .filter(idempotency_keys::fingerprint.eq(&claim.fingerprint))
                            .filter(idempotency_keys::state.eq(IN_PROGRESS))
                            .filter(idempotency_keys::locked_until.le(now)),
                    )
                    .set(idempotency_keys::locked_until.eq(locked_until))
                    .execute(conn)
                    .map_err(|error| query_failed(error, "taking over an idempotency key"))?;
                    if taken == 1 {
                        tracing::info!(scope = %scope, "took over an idempotency key whose request died");
                        return Ok(Claimed::Held(held()));
                    }
                }
                // No row (or gone since the insert failed: released by its holder).
                None => match insert(conn) {
                    Ok(_) => return Ok(Claimed::Held(held())),
                    // Another request inserted it first (on PostgreSQL after waiting for its
                    // commit): read it again.
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                    Err(error) => return Err(query_failed(error, "claiming an idempotency key")),
                },
            }
        }
        // The row keeps changing under us: another request is busy with this key.
        Ok(Claimed::Answer(IdempotentOutcome::InProgress))
    }

    /// Deletes the held claim, so that a retry executes again. Best effort: if it fails, the
    /// lease runs out and a retry takes the claim over.
    fn release(conn: &mut AnyConnection, held: &Held) {
        let released = diesel::delete(held_row(held)).execute(conn);
        if let Err(error) = released {
            tracing::warn!(error = %error, "could not release an idempotency key; it frees itself when its lease ends");
        }
    }

    /// Rolls back the work transaction, logging a failure (the connection is then discarded
    /// by the pool as broken).
    fn roll_back(conn: &mut AnyConnection) {
        if let Err(error) = rollback(conn) {
            tracing::warn!(error = %error, "could not roll back an idempotent request");
        }
    }
}

impl IdempotentExecutor for DieselIdempotentExecutor {
    fn run(
        &self,
        claim: &IdempotencyClaim,
        execute: &mut dyn FnMut(&Repositories) -> Execution,
    ) -> Result<IdempotentOutcome, StoreError> {
        let mut conn = self.db.pooled_connection()?;
        let held = match self.claim(&mut conn, claim)? {
            Claimed::Held(held) => held,
            Claimed::Answer(outcome) => return Ok(outcome),
        };

        if let Err(error) = begin_write(&mut conn) {
            Self::release(&mut conn, &held);
            return Err(query_failed(error, "beginning an idempotent request"));
        }
        // Every repository call of the use case runs on `conn`, inside the transaction. A
        // panic drops the connection and with it the transaction; the claim then stays until
        // its lease ends.
        let (execution, conn) = with_bound_repositories(&self.db, conn, execute);
        let mut conn = conn?;

        match execution {
            Execution::Committed(response) => {
                match complete(&mut conn, &held, &response) {
                    Ok(1) => match commit(&mut conn) {
                        Ok(()) => Ok(IdempotentOutcome::Executed(response)),
                        Err(error) => {
                            // diesel leaves the transaction ended or marks it for rollback;
                            // either way nothing of it was committed.
                            let _ = rollback(&mut conn);
                            Self::release(&mut conn, &held);
                            Err(query_failed(error, "committing an idempotent request"))
                        }
                    },
                    Ok(_) => {
                        // Our lease expired and another request took the key over (or it was
                        // purged): that request executes; this one must leave no trace.
                        Self::roll_back(&mut conn);
                        tracing::warn!(scope = %held.scope, "an idempotent request outlived its lease; rolled back");
                        Ok(IdempotentOutcome::InProgress)
                    }
                    Err(error) => {
                        Self::roll_back(&mut conn);
                        Self::release(&mut conn, &held);
                        Err(error)
                    }
                }
            }
            Execution::Refused(response) => {
                Self::roll_back(&mut conn);
                Ok(self.store_refusal(&mut conn, &held, response))
            }
            Execution::Failed(response) => {
                Self::roll_back(&mut conn);
                Self::release(&mut conn, &held);
                Ok(IdempotentOutcome::Executed(response))
            }
        }
    }

    fn run_in_phases(
        &self,
        claim: &IdempotencyClaim,
        execute: &mut dyn FnMut() -> Execution,
    ) -> Result<IdempotentOutcome, StoreError> {
        let held = {
            let mut conn = self.db.pooled_connection()?;
            match self.claim(&mut conn, claim)? {
                Claimed::Held(held) => held,
                Claimed::Answer(outcome) => return Ok(outcome),
            }
        };
        // No connection is held while the use case runs its phases (it checks out its own).
        let execution = execute();
        let mut conn = self.db.pooled_connection()?;
        match execution {
            Execution::Committed(response) => {
                let completed = serde_json::to_string(&response.headers)
                    .map_err(|error| {
                        StoreError::Unexpected(anyhow::Error::new(error).context("encoding response headers"))
                    })
                    .and_then(|headers| {
                        write_transaction(&mut conn, |conn| complete_with(conn, &held, &response, headers))
                            .map_err(|error| query_failed(error, "storing a phased idempotent response"))
                    });
                match completed {
                    Ok(1) => {}
                    Ok(_) => tracing::warn!(scope = %held.scope, "a phased idempotent request outlived its lease"),
                    // The change is committed; only its replay is missing. The claim's lease
                    // runs out, and a retry then resumes the use case from its recovery point.
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "could not store a phased idempotent response")
                    }
                }
                Ok(IdempotentOutcome::Executed(response))
            }
            Execution::Refused(response) => Ok(self.store_refusal(&mut conn, &held, response)),
            Execution::Failed(response) => {
                Self::release(&mut conn, &held);
                Ok(IdempotentOutcome::Executed(response))
            }
        }
    }

    fn purge(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        self.db.with_connection(|conn| {
            diesel::delete(
                idempotency_keys::table.filter(idempotency_keys::created_at.lt(timestamps::to_db(older_than))),
            )
            .execute(conn)
            .map_err(|error| query_failed(error, "purging idempotency keys"))
        })
    }
}

impl DieselIdempotentExecutor {
    /// Stores a refusal for replays, in a transaction of its own; it changed nothing, so it is
    /// the answer even when storing fails (the claim is then released and a retry runs again).
    fn store_refusal(&self, conn: &mut AnyConnection, held: &Held, response: StoredResponse) -> IdempotentOutcome {
        let stored = serde_json::to_string(&response.headers)
            .map_err(|error| StoreError::Unexpected(anyhow::Error::new(error).context("encoding response headers")))
            .and_then(|headers| {
                write_transaction(conn, |conn| complete_with(conn, held, &response, headers))
                    .map_err(|error| query_failed(error, "storing a refused idempotent response"))
            });
        if let Err(error) = stored {
            tracing::warn!(error = %format!("{error:#}"), "could not store a refused idempotent response");
            Self::release(conn, held);
        }
        IdempotentOutcome::Executed(response)
    }
}
