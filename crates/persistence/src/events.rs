//! The transactional outbox and the event feed (§2.5).
//!
//! Domain events become rows of `events` inside the transaction of the change that caused them,
//! so the feed never shows a change that was rolled back, nor misses one that was committed.
//! Every repository writes them through [`insert_events`], the one place that inserts into
//! `events`.
//!
//! ## The ordering key: `position`, handed out in commit order
//!
//! The feed is served by `position` (1, 2, 3, ...), and a consumer resumes with `position >
//! last seen`. That is only correct if no event can ever commit *behind* a position a reader has
//! already seen. A sequence or autoincrement taken at insert time does not give that on
//! PostgreSQL: T1 takes 5, T2 takes 6 and commits first, a reader sees 6 and moves past 5, then
//! T1 commits 5, which that reader never sees.
//!
//! So positions come from a one-row counter, `event_positions`, taken as the **last step** of
//! the writer's transaction:
//!
//! ```sql
//! UPDATE event_positions SET last_position = last_position + :n WHERE id = 1 RETURNING last_position
//! ```
//!
//! and the transaction's `n` events get the `n` consecutive positions ending there.
//!
//! - **PostgreSQL**: the UPDATE row-locks the counter until the writer commits or rolls back. A
//!   second writer's UPDATE waits for that lock and, under READ COMMITTED, then re-reads the
//!   committed counter. PostgreSQL makes a transaction visible to new snapshots before it
//!   releases its locks, so by the time the second writer holds a position, every lower position
//!   is committed and visible (or was rolled back, and the counter with it). A reader's
//!   statement that sees position p therefore sees everything below p, and nothing can commit
//!   at or below p afterwards.
//! - **SQLite**: one writer at a time (`BEGIN IMMEDIATE`), and WAL readers see whole commits, so
//!   positions are handed out in commit order by construction; the same statement serves.
//!
//! A rolled-back transaction rolls its counter update back too, so positions have no gaps.
//!
//! Taking the counter last keeps its lock short (it serialises only the tail of each writing
//! transaction, never its conditional updates) and keeps one global lock order: rows (users,
//! products, orders) → the invoice counter → the event counter. No transaction waits for
//! anything while holding the event counter, so it cannot be part of a deadlock.

use diesel::prelude::*;
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

/// Writes `events`, in this order, with fresh UUIDv7 ids and consecutive positions, and returns
/// the positions they got (empty for no events).
///
/// Call it inside the write transaction of the change, as its **last write**: it takes the
/// event counter's lock, which is held until that transaction ends (see the module docs for why
/// this makes positions follow commit order).
pub(crate) fn insert_events(conn: &mut AnyConnection, events: &[DomainEvent]) -> QueryResult<Vec<i64>> {
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if count == 0 {
        return Ok(Vec::new());
    }
    let last = diesel::update(event_positions::table.filter(event_positions::id.eq(1)))
        .set(event_positions::last_position.eq(event_positions::last_position + count))
        .returning(event_positions::last_position)
        .get_result::<i64>(conn)?;
    let first = last - count + 1;
    for (position, event) in (first..=last).zip(events) {
        let serialized = serialize_event(event);
        let row = NewEventRow {
            id: Uuid::now_v7().to_string(),
            event_type: serialized.event_type,
            subject_type: serialized.subject_type,
            subject_id: serialized.subject_id,
            data: &serialized.data,
            occurred_at: timestamps::to_db(event.occurred_at()),
            position,
        };
        // One statement per event: `MultiConnection` cannot send a multi-row insert.
        diesel::insert_into(events::table).values(&row).execute(conn)?;
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

/// The outbox read as a feed, in position (commit) order. Served by the unique index on
/// `position`, or `(type, position)` with the type filter.
#[derive(Debug, Clone)]
pub struct DieselEventFeed {
    db: Database,
}

impl DieselEventFeed {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl EventFeed for DieselEventFeed {
    fn list(&self, query: &EventQuery) -> Result<Vec<FeedEvent>, StoreError> {
        let mut select = events::table.select(EventRow::as_select()).into_boxed();
        if let Some(type_name) = query.type_name {
            select = select.filter(events::event_type.eq(type_name));
        }
        if let Some(after) = query.after {
            select = select.filter(events::position.gt(after));
        }
        let mut conn = self.db.connection()?;
        let rows = select
            .order(events::position.asc())
            .limit(i64::from(query.limit.get()) + 1)
            .load::<EventRow>(&mut *conn)
            .map_err(|error| query_failed(error, "reading the event feed"))?;
        rows.into_iter().map(EventRow::into_feed).collect()
    }
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
