//! `WebhookRepository` over diesel: webhook endpoints (docs/api.md#webhooks), the deliveries of feed events to
//! them, and how far the dispatcher has read the feed.
//!
//! ## Invariants and how each is kept
//!
//! - **An endpoint changes only at the version its writer read.** `update_endpoint` and
//!   `delete_endpoint` check the version in the statement itself (`UPDATE`/`DELETE ... WHERE
//!   id = ? AND version = ?`, no version condition when the caller expects none), so of two
//!   writers holding the same version only one matches. When nothing matched, a read in the same
//!   transaction tells a missing endpoint (`NotFound`) from a stale version
//!   (`VersionMismatch`). Deleting an endpoint deletes its deliveries (`ON DELETE CASCADE`).
//! - **One delivery per (endpoint, event).** `UNIQUE (endpoint_id, event_id)`, and
//!   `insert_deliveries` inserts with `ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING
//!   id` (one statement on PostgreSQL; row by row in one write transaction on SQLite, see
//!   `insert_new`): a stretch of the feed dispatched again creates nothing twice and raises no
//!   error (so it is safe inside the dispatcher's transaction on PostgreSQL), and only the ids
//!   of the rows actually inserted come back, so only they get a job. A new delivery is
//!   `pending`, due at once (`next_attempt_at = created_at`).
//! - **An attempt is recorded once.** `record_attempt` is one `UPDATE ... WHERE id = ? AND
//!   status = 'pending' AND attempts = :before`: of two workers recording on the same delivery
//!   state, one matches and the other gets `false`, changing nothing. An attempt that sent a
//!   request counts (`attempts = attempts + 1`) and becomes the latest attempt
//!   (`response_status`, `duration_ms`). One that sent nothing (the endpoint was disabled, the
//!   event is gone) is no attempt: it leaves the count and the latest attempt's answer and
//!   duration as they were, and records only the outcome (status, error, next attempt). Only a
//!   pending delivery may have a next attempt (a `CHECK` of the table refuses anything else).
//! - **A manual retry keeps the history.** `reopen_delivery` makes the delivery `pending`, due
//!   now, and keeps its attempts and its last error (the log still says what went wrong).
//! - **A stretch of the feed is dispatched once.** The one-row `webhook_dispatch` holds the
//!   position of the last event dispatched. `advance_dispatch_position(from, to)` is `UPDATE
//!   webhook_dispatch SET position = :to WHERE id = 1 AND position IS NOT DISTINCT FROM :from`,
//!   spelled portably (`position IS NULL` when `from` is `None`, else `position = :from`). The
//!   dispatcher runs it in the unit of work that inserts the deliveries and their jobs: on
//!   PostgreSQL a second dispatcher from the same position waits for the first's row lock,
//!   then re-checks the condition against the committed row, finds the position moved and gets
//!   `false`; on SQLite write transactions are serialised (`BEGIN IMMEDIATE`) and the second
//!   one reads the moved position.
//!
//! ## Stored forms
//!
//! An endpoint's event-type filter is `NULL` for every type, otherwise the type names
//! comma-separated in the filter's order (`order.placed,order.confirmed`): names are
//! lower-case words and dots, never a comma. Reading one back runs it through the domain's own
//! `EventTypeFilter::parse`, so an unknown or repeated type is a corrupt row. Counts and
//! durations are `INTEGER`: a duration beyond `i32::MAX` ms (24 days, far past any timeout) is
//! stored as that maximum.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use orderly_domain::StoreError;
use orderly_domain::ports::{UpdateError, WebhookRepository};
use orderly_domain::webhook::{
    DeliveryAttempt, DeliveryBacklog, DeliveryQuery, DeliveryStatus, EndpointUrl, EventTypeFilter, NewWebhookDelivery,
    NewWebhookEndpoint, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId, WebhookEndpointQuery,
    WebhookEndpointUpdate, WebhookSecret,
};
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{webhook_deliveries, webhook_dispatch, webhook_endpoints};
use crate::timestamps;

/// Between the type names of a stored event-type filter.
const EVENT_TYPE_SEPARATOR: &str = ",";

/// The one row of `webhook_dispatch`.
const DISPATCH_ROW: i32 = 1;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointRow {
    id: String,
    url: String,
    event_types: Option<String>,
    description: Option<String>,
    active: bool,
    secret: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// `EndpointRow`'s columns in its field order, for `RETURNING` (which cannot take
/// `EndpointRow::as_returning()` through `MultiConnection`).
const ENDPOINT_COLUMNS: (
    webhook_endpoints::id,
    webhook_endpoints::url,
    webhook_endpoints::event_types,
    webhook_endpoints::description,
    webhook_endpoints::active,
    webhook_endpoints::secret,
    webhook_endpoints::version,
    webhook_endpoints::created_at,
    webhook_endpoints::updated_at,
) = (
    webhook_endpoints::id,
    webhook_endpoints::url,
    webhook_endpoints::event_types,
    webhook_endpoints::description,
    webhook_endpoints::active,
    webhook_endpoints::secret,
    webhook_endpoints::version,
    webhook_endpoints::created_at,
    webhook_endpoints::updated_at,
);

/// The columns a `WebhookEndpointUpdate` may change; `None` leaves a column alone, and
/// `Some(None)` sets it to NULL.
#[derive(AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointChangeset<'a> {
    url: Option<&'a str>,
    event_types: Option<Option<String>>,
    description: Option<Option<&'a str>>,
    active: Option<bool>,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
struct DeliveryRow {
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i32,
    response_status: Option<i32>,
    duration_ms: Option<i32>,
    error: Option<String>,
    next_attempt_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// `DeliveryRow`'s columns in its field order, for `RETURNING`.
const DELIVERY_COLUMNS: (
    webhook_deliveries::id,
    webhook_deliveries::endpoint_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event_type,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::response_status,
    webhook_deliveries::duration_ms,
    webhook_deliveries::error,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
) = (
    webhook_deliveries::id,
    webhook_deliveries::endpoint_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event_type,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::response_status,
    webhook_deliveries::duration_ms,
    webhook_deliveries::error,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
);

/// A new delivery: pending, no attempt yet, due at once.
#[derive(Insertable)]
#[diesel(table_name = webhook_deliveries)]
struct NewDeliveryRow<'a> {
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: &'a str,
    status: &'static str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl<'a> NewDeliveryRow<'a> {
    fn new(delivery: &'a NewWebhookDelivery) -> Self {
        let created_at = timestamps::to_db(delivery.created_at);
        Self {
            id: delivery.id.to_string(),
            endpoint_id: delivery.endpoint_id.to_string(),
            event_id: delivery.event_id.to_string(),
            event_type: &delivery.event_type,
            status: DeliveryStatus::Pending.as_str(),
            attempts: 0,
            next_attempt_at: created_at,
            created_at,
            updated_at: created_at,
        }
    }
}

/// The stored form of an event-type filter (see the module docs).
fn stored_event_types(filter: &EventTypeFilter) -> Option<String> {
    filter.types().map(|types| types.join(EVENT_TYPE_SEPARATOR))
}

fn parse_uuid(what: &'static str, raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|error| corrupt_row(what, error))
}

impl EndpointRow {
    fn new(endpoint: &NewWebhookEndpoint) -> Self {
        let created_at = timestamps::to_db(endpoint.created_at);
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.as_str().to_owned(),
            event_types: stored_event_types(&endpoint.event_types),
            description: endpoint.description.clone(),
            active: true,
            secret: endpoint.secret.expose().to_owned(),
            version: 1,
            created_at,
            updated_at: created_at,
        }
    }

    fn into_domain(self) -> Result<WebhookEndpoint, StoreError> {
        const WHAT: &str = "webhook endpoint";
        let event_types = match &self.event_types {
            None => EventTypeFilter::All,
            Some(raw) => {
                let names: Vec<String> = raw.split(EVENT_TYPE_SEPARATOR).map(str::to_owned).collect();
                EventTypeFilter::parse(Some(&names)).map_err(|violations| {
                    let faults: Vec<&str> = violations.iter().map(|violation| violation.message.as_str()).collect();
                    corrupt_row(WHAT, format!("event types {raw:?}: {}", faults.join("; ")))
                })?
            }
        };
        Ok(WebhookEndpoint {
            id: WebhookEndpointId::from_uuid(parse_uuid(WHAT, &self.id)?),
            url: EndpointUrl::from_stored(self.url),
            event_types,
            description: self.description,
            active: self.active,
            secret: WebhookSecret::from_stored(self.secret),
            version: self.version,
            created_at: timestamps::from_db(self.created_at),
            updated_at: timestamps::from_db(self.updated_at),
        })
    }
}

impl DeliveryRow {
    fn into_domain(self) -> Result<WebhookDelivery, StoreError> {
        const WHAT: &str = "webhook delivery";
        let status = DeliveryStatus::from_stored(&self.status)
            .ok_or_else(|| corrupt_row(WHAT, format!("unknown status {:?}", self.status)))?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| corrupt_row(WHAT, format!("negative attempts {}", self.attempts)))?;
        let response_status = self
            .response_status
            .map(|status| u16::try_from(status).map_err(|_| corrupt_row(WHAT, format!("response status {status}"))))
            .transpose()?;
        let duration_ms = self
            .duration_ms
            .map(|millis| u32::try_from(millis).map_err(|_| corrupt_row(WHAT, format!("negative duration {millis}"))))
            .transpose()?;
        Ok(WebhookDelivery {
            id: WebhookDeliveryId::from_uuid(parse_uuid(WHAT, &self.id)?),
            endpoint_id: WebhookEndpointId::from_uuid(parse_uuid(WHAT, &self.endpoint_id)?),
            event_id: parse_uuid(WHAT, &self.event_id)?,
            event_type: self.event_type,
            status,
            attempts,
            response_status,
            duration_ms,
            error: self.error,
            next_attempt_at: self.next_attempt_at.map(timestamps::from_db),
            created_at: timestamps::from_db(self.created_at),
            updated_at: timestamps::from_db(self.updated_at),
        })
    }
}

/// Endpoints in `webhook_endpoints`, deliveries in `webhook_deliveries`, the dispatch position
/// in `webhook_dispatch`.
#[derive(Debug, Clone)]
pub struct DieselWebhookRepository {
    db: Database,
}

impl DieselWebhookRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn load_endpoints(
        &self,
        operation: &'static str,
        select: webhook_endpoints::BoxedQuery<'static, crate::connection::MultiBackend>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.db.with_connection(|conn| {
            let rows = select
                .select(EndpointRow::as_select())
                .load::<EndpointRow>(conn)
                .map_err(|error| query_failed(error, operation))?;
            rows.into_iter().map(EndpointRow::into_domain).collect()
        })
    }
}

/// Inserts the deliveries that do not exist yet for their (endpoint, event) and returns the
/// ids of those inserted.
///
/// `MultiConnection` has no `ON CONFLICT`; both backends have the same one (SQLite ≥ 3.35 with
/// `RETURNING`), so the statement is written once and sent to the inner connection. PostgreSQL
/// takes every row in one statement. diesel sends a batch to SQLite one row at a time and
/// expects each to return its row, so there every row is a statement of its own (no round
/// trip: SQLite runs in this process), and a skipped one returns nothing.
fn insert_new(conn: &mut AnyConnection, rows: &[NewDeliveryRow<'_>]) -> QueryResult<Vec<String>> {
    macro_rules! insert_new {
        ($conn:expr, $rows:expr) => {
            diesel::insert_into(webhook_deliveries::table)
                .values($rows)
                .on_conflict((webhook_deliveries::endpoint_id, webhook_deliveries::event_id))
                .do_nothing()
                .returning(webhook_deliveries::id)
        };
    }
    match conn {
        AnyConnection::Postgresql(pg) => insert_new!(pg, rows).get_results::<String>(pg),
        AnyConnection::Sqlite(sqlite) => {
            let mut inserted = Vec::with_capacity(rows.len());
            for row in rows {
                inserted.extend(insert_new!(sqlite, row).get_result::<String>(sqlite).optional()?);
            }
            Ok(inserted)
        }
    }
}

/// Whether endpoint `id` exists (after a conditional statement matched nothing).
fn endpoint_exists(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(webhook_endpoints::table.filter(webhook_endpoints::id.eq(id))))
        .get_result::<bool>(conn)
}

/// What a conditional statement on endpoint `id` that matched nothing means.
fn missed<T>(conn: &mut AnyConnection, id: &str) -> QueryResult<Result<T, UpdateError>> {
    Ok(Err(if endpoint_exists(conn, id)? { UpdateError::VersionMismatch } else { UpdateError::NotFound }))
}

impl WebhookRepository for DieselWebhookRepository {
    fn insert_endpoint(&self, endpoint: &NewWebhookEndpoint) -> Result<WebhookEndpoint, StoreError> {
        let row = EndpointRow::new(endpoint);
        self.db.with_connection(|conn| {
            diesel::insert_into(webhook_endpoints::table)
                .values(&row)
                .execute(conn)
                .map_err(|error| query_failed(error, "inserting a webhook endpoint"))?;
            row.into_domain()
        })
    }

    fn find_endpoint(&self, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let select = webhook_endpoints::table.filter(webhook_endpoints::id.eq(id.to_string())).into_boxed();
        Ok(self.load_endpoints("reading a webhook endpoint", select)?.pop())
    }

    fn list_endpoints(&self, query: &WebhookEndpointQuery) -> Result<Vec<WebhookEndpoint>, StoreError> {
        // Oldest first by id (UUIDv7 ids order by creation), served by the primary key.
        let mut select = webhook_endpoints::table.into_boxed();
        if let Some(after) = query.after {
            select = select.filter(webhook_endpoints::id.gt(after.to_string()));
        }
        let select = select.order(webhook_endpoints::id.asc()).limit(i64::from(query.limit.get()) + 1);
        self.load_endpoints("listing webhook endpoints", select)
    }

    fn active_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let select =
            webhook_endpoints::table.filter(webhook_endpoints::active.eq(true)).order(webhook_endpoints::id.asc());
        self.load_endpoints("reading the active webhook endpoints", select.into_boxed())
    }

    fn update_endpoint(
        &self,
        id: WebhookEndpointId,
        update: &WebhookEndpointUpdate,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, UpdateError> {
        let id = id.to_string();
        let changes = (
            EndpointChangeset {
                url: update.url.as_ref().map(EndpointUrl::as_str),
                event_types: update.event_types.as_ref().map(stored_event_types),
                description: update.description.as_ref().map(Option::as_deref),
                active: update.active,
                updated_at: timestamps::to_db(now),
            },
            webhook_endpoints::version.eq(webhook_endpoints::version + 1),
        );
        self.db.with_connection(|conn| {
            let outcome = write_transaction(conn, |conn| -> QueryResult<Result<EndpointRow, UpdateError>> {
                // The version check is part of the UPDATE itself: of two writers holding the same
                // version only one matches (the other's ETag is then stale).
                let target = webhook_endpoints::table.filter(webhook_endpoints::id.eq(&id));
                let updated = match expected_version {
                    Some(version) => diesel::update(target.filter(webhook_endpoints::version.eq(version)))
                        .set(changes)
                        .returning(ENDPOINT_COLUMNS)
                        .get_result::<EndpointRow>(conn)
                        .optional()?,
                    None => {
                        diesel::update(target).set(changes).returning(ENDPOINT_COLUMNS).get_result(conn).optional()?
                    }
                };
                match updated {
                    Some(row) => Ok(Ok(row)),
                    None => missed(conn, &id),
                }
            })
            .map_err(|error| query_failed(error, "updating a webhook endpoint"))?;
            Ok(outcome?.into_domain()?)
        })
    }

    fn delete_endpoint(&self, id: WebhookEndpointId, expected_version: Option<i64>) -> Result<(), UpdateError> {
        let id = id.to_string();
        self.db.with_connection(|conn| {
            write_transaction(conn, |conn| -> QueryResult<Result<(), UpdateError>> {
                // Its deliveries go with it (`ON DELETE CASCADE`).
                let target = webhook_endpoints::table.filter(webhook_endpoints::id.eq(&id));
                let deleted = match expected_version {
                    Some(version) => {
                        diesel::delete(target.filter(webhook_endpoints::version.eq(version))).execute(conn)?
                    }
                    None => diesel::delete(target).execute(conn)?,
                };
                if deleted == 1 { Ok(Ok(())) } else { missed(conn, &id) }
            })
            .map_err(|error| query_failed(error, "deleting a webhook endpoint"))?
        })
    }

    fn insert_deliveries(&self, deliveries: &[NewWebhookDelivery]) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<NewDeliveryRow<'_>> = deliveries.iter().map(NewDeliveryRow::new).collect();
        self.db.with_connection(|conn| {
            let inserted = if matches!(*conn, AnyConnection::Sqlite(_)) {
                // Row by row (see `insert_new`): all of them or none.
                write_transaction(conn, |conn| insert_new(conn, &rows))
            } else {
                // One statement.
                insert_new(conn, &rows)
            }
            .map_err(|error| query_failed(error, "inserting webhook deliveries"))?;
            inserted.iter().map(|id| parse_uuid("webhook delivery", id).map(WebhookDeliveryId::from_uuid)).collect()
        })
    }

    fn find_delivery(&self, id: WebhookDeliveryId) -> Result<Option<WebhookDelivery>, StoreError> {
        self.db.with_connection(|conn| {
            let row = webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(id.to_string()))
                .select(DeliveryRow::as_select())
                .first::<DeliveryRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading a webhook delivery"))?;
            row.map(DeliveryRow::into_domain).transpose()
        })
    }

    fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut select = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(query.endpoint_id.to_string()))
            .select(DeliveryRow::as_select())
            .into_boxed();
        // Newest first by id (UUIDv7 ids order by creation), served by `(endpoint_id, id)`.
        if let Some(after) = query.after {
            select = select.filter(webhook_deliveries::id.lt(after.to_string()));
        }
        self.db.with_connection(|conn| {
            let rows = select
                .order(webhook_deliveries::id.desc())
                .limit(i64::from(query.limit.get()) + 1)
                .load::<DeliveryRow>(conn)
                .map_err(|error| query_failed(error, "listing webhook deliveries"))?;
            rows.into_iter().map(DeliveryRow::into_domain).collect()
        })
    }

    fn record_attempt(
        &self,
        id: WebhookDeliveryId,
        attempts_before: u32,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, StoreError> {
        // A count beyond the column's range matches no row: nothing is recorded.
        let Ok(before) = i32::try_from(attempts_before) else { return Ok(false) };
        let target = webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(id.to_string()))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::attempts.eq(before));
        let outcome = (
            webhook_deliveries::status.eq(attempt.status.as_str()),
            webhook_deliveries::error.eq(attempt.error.as_deref()),
            webhook_deliveries::next_attempt_at.eq(attempt.next_attempt_at.map(timestamps::to_db)),
            webhook_deliveries::updated_at.eq(timestamps::to_db(attempt.at)),
        );
        self.db.with_connection(|conn| {
            let updated = if attempt.sent {
                let duration_ms = i32::try_from(attempt.duration_ms).unwrap_or(i32::MAX);
                diesel::update(target)
                    .set((
                        outcome,
                        webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                        webhook_deliveries::response_status.eq(attempt.response_status.map(i32::from)),
                        webhook_deliveries::duration_ms.eq(Some(duration_ms)),
                    ))
                    .execute(conn)
            } else {
                diesel::update(target).set(outcome).execute(conn)
            }
            .map_err(|error| query_failed(error, "recording a webhook attempt"))?;
            Ok(updated == 1)
        })
    }

    fn reopen_delivery(
        &self,
        id: WebhookDeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let now = timestamps::to_db(now);
        self.db.with_connection(|conn| {
            let row = diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq(id.to_string())))
                .set((
                    webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                    webhook_deliveries::next_attempt_at.eq(Some(now)),
                    webhook_deliveries::updated_at.eq(now),
                ))
                .returning(DELIVERY_COLUMNS)
                .get_result::<DeliveryRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reopening a webhook delivery"))?;
            row.map(DeliveryRow::into_domain).transpose()
        })
    }

    /// Served by the partial index on the pending deliveries' `created_at`. An age is never
    /// negative (a delivery stamped by a clock ahead of this one is reported as new).
    fn backlog(&self, now: DateTime<Utc>) -> Result<DeliveryBacklog, StoreError> {
        self.db.with_connection(|conn| {
            let (pending, oldest) = webhook_deliveries::table
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .select((diesel::dsl::count_star(), diesel::dsl::min(webhook_deliveries::created_at)))
                .get_result::<(i64, Option<NaiveDateTime>)>(conn)
                .map_err(|error| query_failed(error, "reading the webhook delivery backlog"))?;
            Ok(DeliveryBacklog {
                pending: u64::try_from(pending).unwrap_or(0),
                oldest_pending_age: oldest
                    .map(|created_at| (now - timestamps::from_db(created_at)).max(Duration::zero())),
            })
        })
    }

    fn dispatch_position(&self) -> Result<Option<i64>, StoreError> {
        self.db.with_connection(|conn| {
            webhook_dispatch::table
                .filter(webhook_dispatch::id.eq(DISPATCH_ROW))
                .select(webhook_dispatch::position)
                .first::<Option<i64>>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading the webhook dispatch position"))?
                .ok_or_else(|| corrupt_row("webhook dispatch", "the position's row is missing"))
        })
    }

    fn advance_dispatch_position(&self, from: Option<i64>, to: i64) -> Result<bool, StoreError> {
        let row = webhook_dispatch::table.filter(webhook_dispatch::id.eq(DISPATCH_ROW));
        let moved = webhook_dispatch::position.eq(Some(to));
        self.db.with_connection(|conn| {
            // `position IS NOT DISTINCT FROM :from`, spelled so both backends take it.
            let updated = match from {
                None => diesel::update(row.filter(webhook_dispatch::position.is_null())).set(moved).execute(conn),
                Some(from) => diesel::update(row.filter(webhook_dispatch::position.eq(from))).set(moved).execute(conn),
            }
            .map_err(|error| query_failed(error, "advancing the webhook dispatch position"))?;
            Ok(updated == 1)
        })
    }
}
