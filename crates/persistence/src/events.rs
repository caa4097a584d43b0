//! The transactional outbox and the event feed (docs/api.md#events).
//!
//! Domain events become rows of `events` inside the transaction of the change that caused them,
//! so the feed never shows a change that was rolled back, nor misses one that was committed.
//! Every repository writes them through [`insert_events`], the one place that inserts into
//! `events`.
//!
//! ## The ordering key: `position`, which no later commit can get behind
//!
//! The feed is served by `position`, and a consumer resumes with `position > last seen`. That
//! is only correct if no event can ever commit *behind* a position a reader has already seen.
//! A sequence taken at insert time does not give that on PostgreSQL: T1 takes 5, T2 takes 6
//! and commits first, a reader sees 6 and moves past 5, then T1 commits 5, which that reader
//! never sees. Each backend closes that race its own way, without changing what the feed
//! promises (every event exactly once, events of one transaction together, in order).
//!
//! - **PostgreSQL: a sequence, and readers that wait for the writers in flight.** A writer
//!   takes a block of positions from the sequence `event_positions_seq` in the one statement
//!   that inserts its events (`orderly_insert_events`, a PL/pgSQL function of the migration),
//!   having first *announced* itself with a shared advisory lock held until its transaction
//!   ends. A reader ([`DieselEventFeed`]) notes the sequence's last value `L`, lists the
//!   writers announced at that moment (`pg_locks`), waits until they have all ended, and then
//!   reads positions up to `L` only. Every writer that took a position at or below `L` took it
//!   after announcing itself and before `L` was noted, so it was among those waited for: by
//!   the time the rows are read, nothing can commit at or below `L` any more, and a writer that
//!   announces itself later takes a position above `L`. Sequences and shared locks make no
//!   writer wait for another: the global row lock that used to serialise every write is gone
//!   (ADR 0012).
//!
//!   Why positions are taken *with the events*, the last write of every change: a change that
//!   had to wait for another change's row (a stock adjustment behind an order reserving the
//!   same product) takes its positions after that other change committed, so the feed shows
//!   the two in the order they happened to that row, and a consumer replaying it sees every
//!   product's and order's states in their real order. (Ordering by transaction id, taken at a
//!   transaction's first write, would not: a transaction can get its id and then wait behind a
//!   younger one.)
//!
//!   The price: a reader waits until the writers in flight when it asked have committed
//!   (milliseconds: the announcement is made in the last statement before the commit), at most
//!   [`DieselEventFeed::WRITER_WAIT`]; a writer stuck for longer between writing its events and
//!   committing makes the reader serve nothing new until it ends (never lose or reorder
//!   anything). Positions have gaps (a block per batch; rolled-back writers), which nobody
//!   sees: cursors are opaque.
//! - **SQLite: one counter, in commit order.** One writer at a time (`BEGIN IMMEDIATE`), so the
//!   one-row counter `event_positions`, taken as the last step of the write transaction, costs
//!   nothing extra and hands out 1, 2, 3, ... in commit order; WAL readers see whole commits.
//!   A rolled-back transaction rolls its counter update back too, so SQLite's positions have no
//!   gaps.
//!
//! The ordering key matters for reading the feed *in order*. One event looked up by id
//! ([`EventFeed::find`], which webhook deliveries use to send an event the dispatcher read from
//! the feed) is a plain read of a committed row on either backend.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use orderly_domain::StoreError;
use orderly_domain::event::{DomainEvent, EventQuery, FeedEvent};
use orderly_domain::ports::EventFeed;
use serde_json::json;
use uuid::Uuid;

use crate::connection::AnyConnection;
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{event_positions, events};
use crate::timestamps;

/// A domain event in its stored form. `data` is a JSON object, the `data` of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedEvent {
    pub event_type: &'static str,
    pub subject_type: &'static str,
    pub subject_id: String,
    pub data: String,
}

/// The one place that decides how each event is stored. The match is exhaustive on purpose:
/// a new event variant does not compile until it has a stored form.
pub fn serialize_event(event: &DomainEvent) -> SerializedEvent {
    let (subject_type, subject_id) = event.subject();
    let data = match event {
        DomainEvent::UserRegistered { user_id, email, role, occurred_at: _ } => {
            json!({ "user_id": user_id.to_string(), "email": email, "role": role.as_str() })
        }
        // `unit_price` is the bare amount in minor units: the event does not carry the
        // currency, which is the deployment's one currency (`ORDERLY_CURRENCY`).
        DomainEvent::ProductCreated { product_id, sku, name, unit_price, on_hand, actor_id, occurred_at: _ } => {
            json!({
                "product_id": product_id.to_string(),
                "sku": sku,
                "name": name,
                "unit_price": unit_price,
                "on_hand": on_hand,
                "actor_id": actor_id.to_string(),
            })
        }
        // `status` appears only when the change set one (archiving, or reactivating).
        DomainEvent::ProductUpdated { product_id, fields, status, actor_id, occurred_at: _ } => {
            let mut data = json!({
                "product_id": product_id.to_string(),
                "fields": fields,
                "actor_id": actor_id.to_string(),
            });
            if let (Some(status), Some(object)) = (status, data.as_object_mut()) {
                object.insert("status".to_owned(), json!(status.as_str()));
            }
            data
        }
        DomainEvent::StockAdjusted {
            product_id,
            adjustment_id,
            delta,
            reason,
            on_hand,
            reserved,
            actor_id,
            occurred_at: _,
        } => json!({
            "product_id": product_id.to_string(),
            "adjustment_id": adjustment_id.to_string(),
            "delta": delta,
            "reason": reason,
            "on_hand": on_hand,
            "reserved": reserved,
            "available": on_hand - reserved,
            "actor_id": actor_id.to_string(),
        }),
        // What was reserved, line by line, and the order's total in minor units.
        DomainEvent::OrderPlaced { order_id, customer_id, lines, total, occurred_at: _ } => json!({
            "order_id": order_id.to_string(),
            "customer_id": customer_id.to_string(),
            "lines": lines
                .iter()
                .map(|(product_id, quantity)| json!({ "product_id": product_id.to_string(), "quantity": quantity }))
                .collect::<Vec<_>>(),
            "total": total,
        }),
        // `actor_id` is null for the server's expiry sweep; `reason` appears on cancellations.
        DomainEvent::OrderStatusChanged { order_id, customer_id, from, to, actor_id, reason, occurred_at: _ } => {
            let mut data = json!({
                "order_id": order_id.to_string(),
                "customer_id": customer_id.to_string(),
                "from": from.as_str(),
                "to": to.as_str(),
                "actor_id": actor_id.map(|actor| actor.to_string()),
            });
            if let (Some(reason), Some(object)) = (reason, data.as_object_mut()) {
                object.insert("reason".to_owned(), json!(reason.as_str()));
            }
            data
        }
        DomainEvent::InvoiceIssued { number, order_id, customer_id, total, occurred_at: _ } => json!({
            "number": number.to_string(),
            "order_id": order_id.to_string(),
            "customer_id": customer_id.to_string(),
            "total": total,
        }),
        // `amount` in minor units of the order's currency. `failure_code` is always present:
        // the failure's code for `payment.failed`, null otherwise (one shape for every
        // payment event, as `actor_id` is on order events).
        DomainEvent::PaymentSettled {
            payment_id,
            order_id,
            customer_id,
            status,
            amount,
            failure_code,
            occurred_at: _,
        } => json!({
            "payment_id": payment_id.to_string(),
            "order_id": order_id.to_string(),
            "customer_id": customer_id.to_string(),
            "status": status.as_str(),
            "amount": amount,
            "failure_code": failure_code,
        }),
    };
    SerializedEvent { event_type: event.type_name(), subject_type, subject_id, data: data.to_string() }
}

#[derive(Insertable)]
#[diesel(table_name = events)]
struct NewEventRow<'a> {
    id: String,
    event_type: &'a str,
    subject_type: &'a str,
    subject_id: String,
    data: &'a str,
    occurred_at: chrono::NaiveDateTime,
    position: i64,
}

/// Writes `events`, in this order, with fresh UUIDv7 ids and increasing positions, and returns
/// the positions they got (empty for no events).
///
/// Call it inside the write transaction of the change. On SQLite make it the **last write**:
/// it takes the event counter, which serialises nothing there (one writer at a time) but keeps
/// positions in commit order. On PostgreSQL it takes no lock (see the module docs).
pub(crate) fn insert_events(conn: &mut AnyConnection, events: &[DomainEvent]) -> QueryResult<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, SerializedEvent, chrono::NaiveDateTime)> = events
        .iter()
        .map(|event| (Uuid::now_v7().to_string(), serialize_event(event), timestamps::to_db(event.occurred_at())))
        .collect();
    match conn {
        AnyConnection::Postgresql(pg) => insert_in_transaction_order(pg, &rows),
        AnyConnection::Sqlite(sqlite) => insert_with_counter(sqlite, &rows),
    }
}

diesel::define_sql_function! {
    /// `orderly_insert_events` (migration `2026-12-02-010000_event_feed_without_a_global_lock`):
    /// announces the writer, takes a block of positions and inserts one batch of events, and
    /// returns their positions in order. A function call is a statement diesel prepares once
    /// per connection, and PL/pgSQL plans the statements inside once per connection too.
    fn orderly_insert_events(
        ids: Array<Text>,
        types: Array<Text>,
        subject_types: Array<Text>,
        subject_ids: Array<Text>,
        payloads: Array<Text>,
        occurred: Array<Timestamp>,
    ) -> Array<BigInt>;
}

/// PostgreSQL: one round trip for all of a transaction's events (see `orderly_insert_events`).
fn insert_in_transaction_order(
    pg: &mut diesel::PgConnection,
    rows: &[(String, SerializedEvent, chrono::NaiveDateTime)],
) -> QueryResult<Vec<i64>> {
    let texts = |pick: fn(&(String, SerializedEvent, chrono::NaiveDateTime)) -> String| -> Vec<String> {
        rows.iter().map(pick).collect()
    };
    diesel::select(orderly_insert_events(
        texts(|row| row.0.clone()),
        texts(|row| row.1.event_type.to_owned()),
        texts(|row| row.1.subject_type.to_owned()),
        texts(|row| row.1.subject_id.clone()),
        texts(|row| row.1.data.clone()),
        rows.iter().map(|row| row.2).collect::<Vec<_>>(),
    ))
    .get_result::<Vec<i64>>(pg)
}

/// SQLite: the counter, taken as the transaction's last write, then one insert per event.
fn insert_with_counter(
    sqlite: &mut diesel::SqliteConnection,
    rows: &[(String, SerializedEvent, chrono::NaiveDateTime)],
) -> QueryResult<Vec<i64>> {
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let last = diesel::update(event_positions::table.filter(event_positions::id.eq(1)))
        .set(event_positions::last_position.eq(event_positions::last_position + count))
        .returning(event_positions::last_position)
        .get_result::<i64>(sqlite)?;
    let first = last - count + 1;
    for (position, (id, serialized, occurred_at)) in (first..=last).zip(rows) {
        let row = NewEventRow {
            id: id.clone(),
            event_type: serialized.event_type,
            subject_type: serialized.subject_type,
            subject_id: serialized.subject_id.clone(),
            data: &serialized.data,
            occurred_at: *occurred_at,
            position,
        };
        diesel::insert_into(events::table).values(&row).execute(sqlite)?;
    }
    Ok((first..=last).collect())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
struct EventRow {
    id: String,
    event_type: String,
    subject_type: String,
    subject_id: String,
    data: String,
    occurred_at: chrono::NaiveDateTime,
    position: i64,
}

impl EventRow {
    fn into_feed(self) -> Result<FeedEvent, StoreError> {
        let id = Uuid::parse_str(&self.id).map_err(|error| corrupt_row("event", error))?;
        Ok(FeedEvent {
            id,
            position: self.position,
            type_name: self.event_type,
            occurred_at: timestamps::from_db(self.occurred_at),
            subject_type: self.subject_type,
            subject_id: self.subject_id,
            data_json: self.data,
        })
    }
}

/// The outbox read as a feed, in position order. Served by the unique index on `position`, or
/// `(type, position)` with the type filter.
#[derive(Debug, Clone)]
pub struct DieselEventFeed {
    db: Database,
    writer_wait: Duration,
}

impl DieselEventFeed {
    /// How long a PostgreSQL read waits, at most, for the writers in flight when it asked to
    /// commit (see the module docs). They are in their last statement or their commit, so this
    /// is normally milliseconds; a writer stuck for longer makes the read serve nothing new.
    pub const WRITER_WAIT: Duration = Duration::from_secs(1);

    pub fn new(db: Database) -> Self {
        Self { db, writer_wait: Self::WRITER_WAIT }
    }

    /// The same feed with another bound on the wait (tests use zero to see what is final).
    pub fn with_writer_wait(self, writer_wait: Duration) -> Self {
        Self { writer_wait, ..self }
    }
}

/// The page of `query` from a boxed select of `events`: the filters, position order, and one
/// more row than the limit, so the caller can tell there is more.
macro_rules! page_of {
    ($select:expr, $query:expr) => {{
        let (mut select, query): (_, &EventQuery) = ($select, $query);
        if let Some(type_name) = query.type_name {
            select = select.filter(events::event_type.eq(type_name));
        }
        if let Some(after) = query.after {
            select = select.filter(events::position.gt(after));
        }
        select.order(events::position.asc()).limit(i64::from(query.limit.get()) + 1)
    }};
}

impl EventFeed for DieselEventFeed {
    fn list(&self, query: &EventQuery) -> Result<Vec<FeedEvent>, StoreError> {
        self.db.with_connection(|conn| {
            let rows = match conn {
                AnyConnection::Postgresql(pg) => read_final(pg, query, self.writer_wait),
                AnyConnection::Sqlite(sqlite) => {
                    page_of!(events::table.select(EventRow::as_select()).into_boxed(), query)
                        .load::<EventRow>(sqlite)
                        .map_err(|error| query_failed(error, "reading the event feed"))
                }
            }?;
            rows.into_iter().map(EventRow::into_feed).collect()
        })
    }

    /// One event by id, read directly (no wait for writers in flight): a committed row is all
    /// it asks for, and a caller looks up an event it has already seen in the feed.
    fn find(&self, id: Uuid) -> Result<Option<FeedEvent>, StoreError> {
        self.db.with_connection(|conn| {
            let row = events::table
                .filter(events::id.eq(id.to_string()))
                .select(EventRow::as_select())
                .first::<EventRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading an event"))?;
            row.map(EventRow::into_feed).transpose()
        })
    }
}

/// The highest position handed out so far: the last block's start, plus the block (`NULL`
/// before the first). Read from the sequence itself, which shows every `nextval` at once.
const CEILING: &str = "SELECT CASE WHEN is_called THEN last_value + 1023 END AS ceiling FROM event_positions_seq";

/// The writers announced in this database now (see `orderly_insert_events`), by transaction.
const ANNOUNCED_WRITERS: &str = "SELECT virtualtransaction AS writer FROM pg_locks \
    WHERE locktype = 'advisory' AND classid = 1869767794 AND objid = 1 AND objsubid = 2 AND granted \
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

#[derive(QueryableByName)]
struct Ceiling {
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    ceiling: Option<i64>,
}

#[derive(QueryableByName)]
struct Writer {
    #[diesel(sql_type = Text)]
    writer: String,
}

/// PostgreSQL: the page of what is final (see the module docs): notes the ceiling, waits up to
/// `wait` for the writers announced after that to end, then reads up to the ceiling. If they
/// do not end in time, serves nothing new: what they hold may lie anywhere below the ceiling.
fn read_final(pg: &mut diesel::PgConnection, query: &EventQuery, wait: Duration) -> Result<Vec<EventRow>, StoreError> {
    let failed = |error| query_failed(error, "reading the event feed");
    // First the ceiling, then the writers: a writer that took a position at or below the
    // ceiling had announced itself before, so it is listed unless it has already ended.
    let Some(ceiling) = diesel::sql_query(CEILING).get_result::<Ceiling>(pg).map_err(failed)?.ceiling else {
        return Ok(Vec::new());
    };
    let mut in_flight: Vec<String> = diesel::sql_query(ANNOUNCED_WRITERS)
        .load::<Writer>(pg)
        .map_err(failed)?
        .into_iter()
        .map(|w| w.writer)
        .collect();
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    while !in_flight.is_empty() {
        if Instant::now() >= deadline {
            tracing::warn!(
                writers = in_flight.len(),
                "event feed: writers did not commit within the wait; serving nothing new"
            );
            return Ok(Vec::new());
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(20));
        // Still announced: the same transaction (a virtual transaction id is never reused
        // while its transaction runs) still holds the lock.
        let still = diesel::sql_query(format!("{ANNOUNCED_WRITERS} AND virtualtransaction = ANY($1)"))
            .bind::<Array<Text>, _>(&in_flight)
            .load::<Writer>(pg)
            .map_err(failed)?;
        in_flight = still.into_iter().map(|w| w.writer).collect();
    }
    page_of!(events::table.select(EventRow::as_select()).filter(events::position.le(ceiling)).into_boxed(), query)
        .load::<EventRow>(pg)
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use orderly_domain::product::{ProductId, ProductStatus};
    use orderly_domain::user::{Role, UserId};

    use super::*;

    #[test]
    fn user_registered_is_stored_with_its_subject_and_payload() {
        let user_id = UserId::new();
        let event = DomainEvent::UserRegistered {
            user_id,
            email: "ada@example.com".to_owned(),
            role: Role::Customer,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&event);
        assert_eq!(stored.event_type, "user.registered");
        assert_eq!(stored.subject_type, "user");
        assert_eq!(stored.subject_id, user_id.to_string());
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(data, json!({"user_id": user_id.to_string(), "email": "ada@example.com", "role": "customer"}));
    }

    #[test]
    fn product_created_carries_the_price_as_minor_units_and_the_actor() {
        let (product_id, actor_id) = (ProductId::new(), UserId::new());
        let event = DomainEvent::ProductCreated {
            product_id,
            sku: "MUG-1".to_owned(),
            name: "Mug".to_owned(),
            unit_price: 1999,
            on_hand: 12,
            actor_id,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&event);
        assert_eq!((stored.event_type, stored.subject_type), ("product.created", "product"));
        assert_eq!(stored.subject_id, product_id.to_string());
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({
                "product_id": product_id.to_string(),
                "sku": "MUG-1",
                "name": "Mug",
                "unit_price": 1999,
                "on_hand": 12,
                "actor_id": actor_id.to_string(),
            })
        );
    }

    #[test]
    fn product_updated_names_the_fields_and_the_status_only_when_set() {
        let (product_id, actor_id) = (ProductId::new(), UserId::new());
        let renamed = DomainEvent::ProductUpdated {
            product_id,
            fields: vec!["name", "unit_price"],
            status: None,
            actor_id,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&renamed);
        assert_eq!((stored.event_type, stored.subject_id), ("product.updated", product_id.to_string()));
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({"product_id": product_id.to_string(), "fields": ["name", "unit_price"], "actor_id": actor_id.to_string()})
        );

        let archived = DomainEvent::ProductUpdated {
            product_id,
            fields: vec!["status"],
            status: Some(ProductStatus::Archived),
            actor_id,
            occurred_at: Utc::now(),
        };
        let data: serde_json::Value = serde_json::from_str(&serialize_event(&archived).data).unwrap();
        assert_eq!(data["status"], "archived");
        assert_eq!(data["fields"], json!(["status"]));
    }

    #[test]
    fn stock_adjusted_carries_the_counters_after_the_change_and_what_is_available() {
        let (product_id, actor_id, adjustment_id) = (ProductId::new(), UserId::new(), Uuid::now_v7());
        let event = DomainEvent::StockAdjusted {
            product_id,
            adjustment_id,
            delta: -3,
            reason: "breakage".to_owned(),
            on_hand: 10,
            reserved: 4,
            actor_id,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&event);
        assert_eq!((stored.event_type, stored.subject_type), ("stock.adjusted", "product"));
        assert_eq!(stored.subject_id, product_id.to_string());
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({
                "product_id": product_id.to_string(),
                "adjustment_id": adjustment_id.to_string(),
                "delta": -3,
                "reason": "breakage",
                "on_hand": 10,
                "reserved": 4,
                "available": 6,
                "actor_id": actor_id.to_string(),
            })
        );
    }

    #[test]
    fn order_events_carry_the_move_the_actor_or_null_and_the_reason_only_when_set() {
        use orderly_domain::invoice::InvoiceNumber;
        use orderly_domain::order::{CancelReason, OrderId, OrderStatus};

        let (order_id, customer_id, product_id) = (OrderId::new(), UserId::new(), ProductId::new());
        let placed = DomainEvent::OrderPlaced {
            order_id,
            customer_id,
            lines: vec![(product_id, 3)],
            total: 1347,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&placed);
        assert_eq!(
            (stored.event_type, stored.subject_type, stored.subject_id),
            ("order.placed", "order", order_id.to_string())
        );
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({
                "order_id": order_id.to_string(),
                "customer_id": customer_id.to_string(),
                "lines": [{"product_id": product_id.to_string(), "quantity": 3}],
                "total": 1347,
            })
        );

        let expired = DomainEvent::OrderStatusChanged {
            order_id,
            customer_id,
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            actor_id: None,
            reason: Some(CancelReason::Expired),
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&expired);
        assert_eq!(stored.event_type, "order.cancelled");
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({
                "order_id": order_id.to_string(),
                "customer_id": customer_id.to_string(),
                "from": "pending",
                "to": "cancelled",
                "actor_id": null,
                "reason": "expired",
            })
        );

        let admin = UserId::new();
        let shipped = DomainEvent::OrderStatusChanged {
            order_id,
            customer_id,
            from: OrderStatus::Confirmed,
            to: OrderStatus::Shipped,
            actor_id: Some(admin),
            reason: None,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&shipped);
        assert_eq!(stored.event_type, "order.shipped");
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(data["actor_id"], admin.to_string());
        assert!(data.get("reason").is_none());

        let number = InvoiceNumber::new(2026, 42).unwrap();
        let issued = DomainEvent::InvoiceIssued { number, order_id, customer_id, total: 1347, occurred_at: Utc::now() };
        let stored = serialize_event(&issued);
        assert_eq!(
            (stored.event_type, stored.subject_type, stored.subject_id.as_str()),
            ("invoice.issued", "invoice", "2026-000042")
        );
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({"number": "2026-000042", "order_id": order_id.to_string(), "customer_id": customer_id.to_string(), "total": 1347})
        );
    }

    #[test]
    fn payment_settled_is_stored_under_its_status_with_the_failure_code_or_null() {
        use orderly_domain::order::OrderId;
        use orderly_domain::payment::{PaymentId, PaymentStatus};

        let (payment_id, order_id, customer_id) = (PaymentId::new(), OrderId::new(), UserId::new());
        let settled = |status: PaymentStatus, failure_code: Option<&str>| DomainEvent::PaymentSettled {
            payment_id,
            order_id,
            customer_id,
            status,
            amount: 1347,
            failure_code: failure_code.map(str::to_owned),
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&settled(PaymentStatus::Succeeded, None));
        assert_eq!(
            (stored.event_type, stored.subject_type, stored.subject_id.clone()),
            ("payment.succeeded", "payment", payment_id.to_string())
        );
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(
            data,
            json!({
                "payment_id": payment_id.to_string(),
                "order_id": order_id.to_string(),
                "customer_id": customer_id.to_string(),
                "status": "succeeded",
                "amount": 1347,
                "failure_code": null,
            })
        );

        let stored = serialize_event(&settled(PaymentStatus::Failed, Some("card_declined")));
        assert_eq!(stored.event_type, "payment.failed");
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!((data["status"].as_str(), data["failure_code"].as_str()), (Some("failed"), Some("card_declined")));
        assert_eq!(serialize_event(&settled(PaymentStatus::Refunded, None)).event_type, "payment.refunded");
    }
}
