//! `JobQueue` over diesel: durable background jobs in `jobs`, worked by any instance.
//!
//! ## Invariants and how each is kept
//!
//! - **One job per `(kind, subject)`.** `UNIQUE (kind, subject)`, and `enqueue` inserts with
//!   `ON CONFLICT DO NOTHING`: enqueueing a job that is queued already changes nothing (and
//!   raises no error, so it is safe inside the caller's transaction on PostgreSQL).
//!   `enqueue_due_by` (a manual webhook retry: "now") inserts with `ON CONFLICT (kind, subject)
//!   DO UPDATE`, in one statement: a queued job that no live lease holds is made due earlier,
//!   never later (`LEAST(jobs.run_at, excluded.run_at)`; SQLite: the two-argument scalar
//!   `MIN`). A job a worker holds right now loses that claim (`locked_until = NULL`), so the
//!   worker's `complete`/`retry_at` match nothing and cannot delete or push back the job the
//!   retry relies on; it is due when the lost claim's lease would have ended, so the attempt in
//!   flight is still never doubled.
//! - **Each job by one worker at a time.** A claim is one statement that sets the job's lease,
//!   `locked_until = now + lease`, and counts the attempt, on the earliest due job of the
//!   claimer's kinds that no live lease holds:
//!
//!   ```sql
//!   UPDATE jobs SET locked_until = :until, attempts = attempts + 1
//!   WHERE id = (SELECT id FROM jobs
//!               WHERE run_at <= :now AND (locked_until IS NULL OR locked_until <= :now)
//!                 AND kind IN (:kind, ...)
//!               ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
//!   RETURNING id, kind, subject, attempts, created_at, locked_until
//!   ```
//!
//!   On PostgreSQL `FOR UPDATE SKIP LOCKED` makes concurrent claimers (on any instance) pass over
//!   a row another claim is taking instead of waiting for it, and the row lock re-checks the
//!   lease against the committed row, so two claims never return the same job. The scalar
//!   subquery (`=`, not `IN`) runs once. SQLite has no row locks: the same statement without the
//!   locking clause runs in a write transaction (`BEGIN IMMEDIATE`, one writer at a time).
//!   Each job loop claims only its own kinds (the payment loop its two, the webhook loop
//!   `deliver_webhook`), one placeholder bound per kind; `jobs (kind, run_at)` serves that
//!   search, so a long backlog of one kind does not slow the other loop's claims. No kinds, no
//!   claim (and no statement); a job of a kind no loop names is never claimed.
//! - **A dead worker loses its job, and its attempt counts.** Nothing but the lease marks a job
//!   as taken: when `locked_until` has passed, the job is due again for anyone. The attempt was
//!   counted when claimed, so a job that kills its worker still grows its back-off.
//! - **A worker that outlived its lease changes nothing.** `complete` (delete) and `retry_at`
//!   (reschedule, lease cleared) act only on the claim they were given:
//!   `WHERE id = :id AND locked_until = :lease_until AND attempts = :attempts`. Once another
//!   worker has claimed the job, `attempts` has grown (and `locked_until` moved on), so the late
//!   worker's statement matches no row and reports `false`; after its own `retry_at`/`complete`
//!   nothing matches either. (`locked_until` alone would do for any positive lease, as a new
//!   claim's lease ends after the old one's; `attempts` keeps claims apart even for a zero or
//!   sub-microsecond lease.)

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};
use orderly_domain::StoreError;
use orderly_domain::ports::{Job, JobKind, JobQueue, JobQueueStats, NewJob};
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::jobs;
use crate::timestamps;

/// How much of a failure's text `retry_at` keeps, in characters.
pub(crate) const LAST_ERROR_MAX_CHARS: usize = 500;

/// The claim on PostgreSQL (see the module docs): `$1` the lease's end, `$2` now, `$3…` the
/// kinds.
fn claim_postgres(kinds: usize) -> String {
    let kinds = (3..3 + kinds).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    format!(
        "UPDATE jobs SET locked_until = $1, attempts = attempts + 1 \
         WHERE id = (SELECT id FROM jobs WHERE run_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
         AND kind IN ({kinds}) ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, subject, attempts, created_at, locked_until"
    )
}

/// The same claim on SQLite, which has no row locks (the write transaction serialises it).
fn claim_sqlite(kinds: usize) -> String {
    let kinds = (3..3 + kinds).map(|n| format!("?{n}")).collect::<Vec<_>>().join(", ");
    format!(
        "UPDATE jobs SET locked_until = ?1, attempts = attempts + 1 \
         WHERE id = (SELECT id FROM jobs WHERE run_at <= ?2 AND (locked_until IS NULL OR locked_until <= ?2) \
         AND kind IN ({kinds}) ORDER BY run_at, id LIMIT 1) \
         RETURNING id, kind, subject, attempts, created_at, locked_until"
    )
}

#[derive(Insertable)]
#[diesel(table_name = jobs)]
struct NewJobRow {
    id: String,
    kind: &'static str,
    subject: String,
    run_at: NaiveDateTime,
    attempts: i32,
    locked_until: Option<NaiveDateTime>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
}

impl NewJobRow {
    /// A new job: unclaimed, no attempt yet, a fresh id.
    fn new(job: &NewJob) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            kind: job.kind.as_str(),
            subject: job.subject.to_string(),
            run_at: timestamps::to_db(job.run_at),
            attempts: 0,
            locked_until: None,
            last_error: None,
            created_at: timestamps::to_db(job.created_at),
        }
    }
}

/// What a claim returns.
#[derive(Debug, QueryableByName)]
#[diesel(table_name = jobs)]
struct ClaimedRow {
    id: String,
    kind: String,
    subject: String,
    attempts: i32,
    created_at: NaiveDateTime,
    /// Set by the claim; `NULL` would be a corrupt row.
    locked_until: Option<NaiveDateTime>,
}

impl ClaimedRow {
    fn into_domain(self) -> Result<Job, StoreError> {
        let uuid = |raw: &str| Uuid::parse_str(raw).map_err(|error| corrupt_row("job", error));
        Ok(Job {
            id: uuid(&self.id)?,
            kind: JobKind::from_stored(&self.kind)
                .ok_or_else(|| corrupt_row("job", format!("unknown kind {:?}", self.kind)))?,
            subject: uuid(&self.subject)?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| corrupt_row("job", format!("negative attempts {}", self.attempts)))?,
            created_at: timestamps::from_db(self.created_at),
            lease_until: timestamps::from_db(
                self.locked_until.ok_or_else(|| corrupt_row("job", "claimed without a lease"))?,
            ),
        })
    }
}

/// The job, while `job`'s claim still holds it (see the module docs).
#[diesel::dsl::auto_type(no_type_alias)]
fn held_by(job: &Job) -> _ {
    let id: String = job.id.to_string();
    let lease_until: NaiveDateTime = timestamps::to_db(job.lease_until);
    let attempts: i32 = i32::try_from(job.attempts).unwrap_or(i32::MAX);
    jobs::table.filter(jobs::id.eq(id)).filter(jobs::locked_until.eq(lease_until)).filter(jobs::attempts.eq(attempts))
}

/// The first `max` characters of `text`.
fn truncated(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(end, _)| &text[..end])
}

/// Jobs in `jobs`.
#[derive(Debug, Clone)]
pub struct DieselJobQueue {
    db: Database,
}

impl DieselJobQueue {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn claim_in(
    conn: &mut AnyConnection,
    until: NaiveDateTime,
    now: NaiveDateTime,
    kinds: &[JobKind],
) -> QueryResult<Option<ClaimedRow>> {
    // One statement per backend, with as many placeholders as kinds, each bound.
    macro_rules! claim {
        ($conn:expr, $backend:ty, $sql:expr) => {{
            let mut query =
                diesel::sql_query($sql).into_boxed::<$backend>().bind::<Timestamp, _>(until).bind::<Timestamp, _>(now);
            for kind in kinds {
                query = query.bind::<Text, _>(kind.as_str());
            }
            query.get_result::<ClaimedRow>($conn).optional()
        }};
    }
    match conn {
        AnyConnection::Postgresql(pg) => claim!(pg, diesel::pg::Pg, claim_postgres(kinds.len())),
        AnyConnection::Sqlite(sqlite) => claim!(sqlite, diesel::sqlite::Sqlite, claim_sqlite(kinds.len())),
    }
}

impl JobQueue for DieselJobQueue {
    fn enqueue(&self, job: &NewJob) -> Result<(), StoreError> {
        let row = NewJobRow::new(job);
        // `MultiConnection` has no `ON CONFLICT`; both backends have the same one, so the
        // statement is written once and sent to the inner connection.
        macro_rules! insert_once {
            ($conn:expr) => {
                diesel::insert_into(jobs::table)
                    .values(&row)
                    .on_conflict((jobs::kind, jobs::subject))
                    .do_nothing()
                    .execute($conn)
            };
        }
        self.db.with_connection(|conn| {
            match conn {
                AnyConnection::Postgresql(pg) => insert_once!(pg),
                AnyConnection::Sqlite(sqlite) => insert_once!(sqlite),
            }
            .map_err(|error| query_failed(error, "enqueueing a job"))?;
            Ok(())
        })
    }

    fn enqueue_due_by(&self, job: &NewJob) -> Result<(), StoreError> {
        let row = NewJobRow::new(job);
        // See the module docs: a free job is brought forward; a held one loses its claim and
        // is due when that claim's lease would have ended.
        let sql = |earlier: &str, placeholders: [&str; 5]| {
            let [id, kind, subject, run_at, created_at] = placeholders;
            format!(
                "INSERT INTO jobs (id, kind, subject, run_at, attempts, locked_until, last_error, created_at) \
                 VALUES ({id}, {kind}, {subject}, {run_at}, 0, NULL, NULL, {created_at}) \
                 ON CONFLICT (kind, subject) DO UPDATE SET \
                 run_at = CASE WHEN jobs.locked_until > excluded.run_at THEN jobs.locked_until \
                          ELSE {earlier}(jobs.run_at, excluded.run_at) END, \
                 locked_until = CASE WHEN jobs.locked_until > excluded.run_at THEN NULL ELSE jobs.locked_until END"
            )
        };
        macro_rules! upsert {
            ($conn:expr, $sql:expr) => {
                diesel::sql_query($sql)
                    .bind::<Text, _>(&row.id)
                    .bind::<Text, _>(row.kind)
                    .bind::<Text, _>(&row.subject)
                    .bind::<Timestamp, _>(row.run_at)
                    .bind::<Timestamp, _>(row.created_at)
                    .execute($conn)
            };
        }
        self.db.with_connection(|conn| {
            match conn {
                AnyConnection::Postgresql(pg) => upsert!(pg, sql("LEAST", ["$1", "$2", "$3", "$4", "$5"])),
                AnyConnection::Sqlite(sqlite) => upsert!(sqlite, sql("MIN", ["?1", "?2", "?3", "?4", "?5"])),
            }
            .map_err(|error| query_failed(error, "enqueueing a job to be due soon"))?;
            Ok(())
        })
    }

    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        kinds: &[JobKind],
    ) -> Result<Option<Job>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let until = timestamps::to_db(now + lease);
        let now = timestamps::to_db(now);
        self.db.with_connection(|conn| {
            let claimed = if matches!(*conn, AnyConnection::Sqlite(_)) {
                // One writer at a time.
                write_transaction(conn, |conn| claim_in(conn, until, now, kinds))
            } else {
                // One statement: atomic, and row locks keep concurrent claimers apart.
                claim_in(conn, until, now, kinds)
            }
            .map_err(|error| query_failed(error, "claiming a job"))?;
            claimed.map(ClaimedRow::into_domain).transpose()
        })
    }

    fn complete(&self, job: &Job) -> Result<bool, StoreError> {
        self.db.with_connection(|conn| {
            let deleted =
                diesel::delete(held_by(job)).execute(conn).map_err(|error| query_failed(error, "completing a job"))?;
            Ok(deleted == 1)
        })
    }

    fn retry_at(&self, job: &Job, run_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        self.db.with_connection(|conn| {
            let updated = diesel::update(held_by(job))
                .set((
                    jobs::run_at.eq(timestamps::to_db(run_at)),
                    jobs::locked_until.eq(None::<NaiveDateTime>),
                    jobs::last_error.eq(truncated(error, LAST_ERROR_MAX_CHARS)),
                ))
                .execute(conn)
                .map_err(|error| query_failed(error, "rescheduling a job"))?;
            Ok(updated == 1)
        })
    }

    /// `oldest_due_age` is the age of the oldest job that could be claimed now (due, and not
    /// leased): a job a live worker holds is being worked, not waiting.
    fn stats(&self, now: DateTime<Utc>) -> Result<JobQueueStats, StoreError> {
        let at = timestamps::to_db(now);
        self.db.with_connection(|conn| {
            let (depth, oldest_due) = jobs::table
                .count()
                .get_result::<i64>(conn)
                .and_then(|depth| {
                    jobs::table
                        .filter(jobs::run_at.le(at))
                        .filter(jobs::locked_until.is_null().or(jobs::locked_until.le(at)))
                        .select(diesel::dsl::min(jobs::run_at))
                        .get_result::<Option<NaiveDateTime>>(conn)
                        .map(|oldest| (depth, oldest))
                })
                .map_err(|error| query_failed(error, "reading the job queue's state"))?;
            Ok(JobQueueStats {
                depth: u64::try_from(depth).unwrap_or(0),
                oldest_due_age: oldest_due.map(|run_at| now - timestamps::from_db(run_at)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short", 500), "short");
        assert_eq!(truncated("ééé", 2), "éé");
        assert_eq!(truncated(&"x".repeat(600), LAST_ERROR_MAX_CHARS).len(), 500);
    }
}
