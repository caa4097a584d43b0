//! `PaymentRepository` over diesel: payment attempts (docs/api.md#payments) and the provider events already
//! applied.
//!
//! ## Invariants and how each is kept
//!
//! - **An attempt only for a `pending` order, serialised with the expiry sweep.** `insert`
//!   first runs a no-op `UPDATE orders SET updated_at = updated_at WHERE id = ? AND status =
//!   'pending'` in its transaction: nothing matched is `OrderNotPending`; otherwise the order's
//!   row is locked until the (enclosing) transaction ends. The sweep's cancellation takes the
//!   same lock first and then looks for a `processing` attempt with a new statement (see
//!   `orders::change_in`), so either the attempt commits first and the sweep sees it, or the
//!   sweep commits first and the insert finds the order cancelled.
//! - **At most one `processing` attempt per order.** A unique partial index,
//!   `payments_one_processing_per_order ON payments (order_id) WHERE status = 'processing'`,
//!   refuses the second one; [`is_already_processing`] recognises that refusal (by the index's
//!   name on PostgreSQL, by SQLite's "UNIQUE constraint failed: payments.order_id", the only
//!   unique key of `payments` on `order_id` alone) and `insert` answers `AlreadyProcessing`. On
//!   PostgreSQL a concurrent second insert waits for the first to commit or roll back, so the
//!   rule holds across instances. The insert runs in its own savepoint when the caller's
//!   transaction is open, so a refusal does not abort that transaction.
//! - **Settled exactly once.** `settle` is `UPDATE payments SET status = :to, ... WHERE id = ?
//!   AND status = :from` in one write transaction with its event: of two
//!   settlements racing from `processing` (the provider's answer, its event, the reconciliation
//!   job), exactly one matches the row; the other updates nothing, writes no event and gets
//!   `None`. The event is the transaction's last write, through `events::insert_events`.
//! - **The reference is recorded before money can move, and never replaced.**
//!   `record_reference` sets it only while the attempt is `processing` and its reference is
//!   unset or the same. A settlement that learns a reference keeps the stored one when it
//!   learns none, and a recorded one is never replaced (`COALESCE(provider_reference, :new)`).
//! - **A provider event is applied at most once.** `mark_provider_event_applied` inserts
//!   `(provider, event_id)` with `ON CONFLICT DO NOTHING`: the first delivery inserts the row
//!   (`true`), every later one inserts nothing (`false`). No error is raised, so it is safe
//!   inside the caller's transaction on PostgreSQL too.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Nullable, Text};
use orderly_domain::StoreError;
use orderly_domain::event::DomainEvent;
use orderly_domain::order::{OrderId, OrderStatus};
use orderly_domain::payment::{
    NewPayment, Payment, PaymentFailure, PaymentId, PaymentQuery, PaymentSettlement, PaymentStatus,
};
use orderly_domain::ports::{InsertPaymentError, PaymentRepository};
use orderly_domain::product::Currency;
use orderly_domain::user::UserId;
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{orders, payments, provider_events};
use crate::{events, timestamps};

/// The unique partial index that allows one `processing` attempt per order (PostgreSQL name).
const PROCESSING_INDEX: &str = "payments_one_processing_per_order";
/// What SQLite says when that index refuses a row: it names the columns, not the index.
const PROCESSING_INDEX_SQLITE_MESSAGE: &str = "UNIQUE constraint failed: payments.order_id";

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable texts: the first that is not NULL.
    fn coalesce(first: Nullable<Text>, second: Nullable<Text>) -> Nullable<Text>;
}

type BoxedPayments = payments::BoxedQuery<'static, crate::connection::MultiBackend>;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = payments)]
struct PaymentRow {
    id: String,
    order_id: String,
    customer_id: String,
    status: String,
    amount: i64,
    currency: String,
    provider: String,
    provider_reference: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    request_key: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = provider_events)]
struct ProviderEventRow<'a> {
    provider: &'a str,
    event_id: &'a str,
    applied_at: NaiveDateTime,
}

fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|error| corrupt_row("payment", error))
}

impl PaymentRow {
    /// A new attempt: always `processing`, with no reference or failure yet.
    fn new(payment: &NewPayment) -> Self {
        let created_at = timestamps::to_db(payment.created_at);
        Self {
            id: payment.id.to_string(),
            order_id: payment.order_id.to_string(),
            customer_id: payment.customer_id.to_string(),
            status: PaymentStatus::Processing.as_str().to_owned(),
            amount: payment.amount,
            currency: payment.currency.as_str().to_owned(),
            provider: payment.provider.clone(),
            provider_reference: None,
            failure_code: None,
            failure_message: None,
            request_key: payment.request_key.clone(),
            created_at,
            updated_at: created_at,
        }
    }

    fn into_domain(self) -> Result<Payment, StoreError> {
        let status = PaymentStatus::from_stored(&self.status)
            .ok_or_else(|| corrupt_row("payment", format!("unknown status {:?}", self.status)))?;
        let currency = Currency::parse(&self.currency).map_err(|error| corrupt_row("payment", error.message))?;
        let failure = match (self.failure_code, self.failure_message) {
            (None, None) => None,
            (Some(code), Some(message)) => Some(PaymentFailure { code, message }),
            (code, message) => {
                return Err(corrupt_row(
                    "payment",
                    format!("failure code {code:?} and message {message:?} must be set together"),
                ));
            }
        };
        Ok(Payment {
            id: PaymentId::from_uuid(parse_uuid(&self.id)?),
            order_id: OrderId::from_uuid(parse_uuid(&self.order_id)?),
            customer_id: UserId::from_uuid(parse_uuid(&self.customer_id)?),
            status,
            amount: self.amount,
            currency,
            provider: self.provider,
            provider_reference: self.provider_reference,
            failure,
            request_key: self.request_key,
            created_at: timestamps::from_db(self.created_at),
            updated_at: timestamps::from_db(self.updated_at),
        })
    }
}

/// Whether `error` is the refusal of a second `processing` attempt for an order (and not, say,
/// a reused request key or provider reference, which are bugs).
fn is_already_processing(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name() == Some(PROCESSING_INDEX) || info.message() == PROCESSING_INDEX_SQLITE_MESSAGE
        }
        _ => false,
    }
}

/// Payment attempts in `payments`; applied provider events in `provider_events`.
#[derive(Debug, Clone)]
pub struct DieselPaymentRepository {
    db: Database,
}

impl DieselPaymentRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The first attempt matching `filter`, read as the domain sees it.
    fn find_one<F>(&self, operation: &'static str, filter: F) -> Result<Option<Payment>, StoreError>
    where
        F: FnOnce(BoxedPayments) -> BoxedPayments,
    {
        self.db.with_connection(|conn| {
            let row = filter(payments::table.into_boxed())
                .select(PaymentRow::as_select())
                .first::<PaymentRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, operation))?;
            row.map(PaymentRow::into_domain).transpose()
        })
    }
}

/// Why an insert was abandoned.
enum InsertAbort {
    OrderNotPending,
    Query(DieselError),
}

impl From<DieselError> for InsertAbort {
    fn from(error: DieselError) -> Self {
        InsertAbort::Query(error)
    }
}

/// Locks the order's row while it is `pending` (a no-op `UPDATE`, which takes the row lock on
/// PostgreSQL until the transaction ends), then inserts the attempt.
fn insert_in(conn: &mut AnyConnection, row: &PaymentRow) -> Result<(), InsertAbort> {
    let locked = diesel::update(
        orders::table.filter(orders::id.eq(&row.order_id)).filter(orders::status.eq(OrderStatus::Pending.as_str())),
    )
    .set(orders::updated_at.eq(orders::updated_at))
    .execute(conn)?;
    if locked == 0 {
        return Err(InsertAbort::OrderNotPending);
    }
    diesel::insert_into(payments::table).values(row).execute(conn)?;
    Ok(())
}

/// `UPDATE ... WHERE id = ? AND status = from`, then the row and its event if it moved.
fn settle_in(
    conn: &mut AnyConnection,
    settlement: &PaymentSettlement,
    event: &DomainEvent,
) -> QueryResult<Option<PaymentRow>> {
    let (failure_code, failure_message) = match &settlement.failure {
        Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
        None => (None, None),
    };
    let settled = diesel::update(
        payments::table
            .filter(payments::id.eq(settlement.payment_id.to_string()))
            .filter(payments::status.eq(settlement.from.as_str())),
    )
    .set((
        payments::status.eq(settlement.to.as_str()),
        payments::failure_code.eq(failure_code),
        payments::failure_message.eq(failure_message),
        // The recorded reference wins: a settlement only fills in a missing one.
        payments::provider_reference
            .eq(coalesce(payments::provider_reference, settlement.provider_reference.as_deref())),
        payments::updated_at.eq(timestamps::to_db(settlement.now)),
    ))
    .execute(conn)?;
    if settled == 0 {
        return Ok(None);
    }
    // The row as settled: this transaction holds it (row lock, or SQLite's one writer), so the
    // read sees exactly what the UPDATE wrote. (`RETURNING` a whole row struct does not go
    // through `MultiConnection`.)
    let row = payments::table
        .filter(payments::id.eq(settlement.payment_id.to_string()))
        .select(PaymentRow::as_select())
        .first::<PaymentRow>(conn)?;
    // Last write (on SQLite it takes the event counter; see `events`).
    events::insert_events(conn, std::slice::from_ref(event))?;
    Ok(Some(row))
}

impl PaymentRepository for DieselPaymentRepository {
    fn insert(&self, payment: &NewPayment) -> Result<Payment, InsertPaymentError> {
        let row = PaymentRow::new(payment);
        self.db.with_connection(|conn| {
            // In its own transaction, or a savepoint inside the caller's: a refused insert must not
            // leave an enclosing PostgreSQL transaction aborted. The order's row lock, though, is
            // held until the enclosing transaction ends.
            write_transaction(conn, |conn| insert_in(conn, &row)).map_err(|error| match error {
                InsertAbort::OrderNotPending => InsertPaymentError::OrderNotPending,
                InsertAbort::Query(error) if is_already_processing(&error) => InsertPaymentError::AlreadyProcessing,
                InsertAbort::Query(error) => InsertPaymentError::Store(query_failed(error, "inserting a payment")),
            })?;
            Ok(row.into_domain()?)
        })
    }

    fn find(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let id = id.to_string();
        self.find_one("reading a payment", |query| query.filter(payments::id.eq(id)))
    }

    fn find_by_request_key(&self, order_id: OrderId, request_key: &str) -> Result<Option<Payment>, StoreError> {
        let (order_id, request_key) = (order_id.to_string(), request_key.to_owned());
        self.find_one("reading a payment by request key", |query| {
            query.filter(payments::order_id.eq(order_id)).filter(payments::request_key.eq(request_key))
        })
    }

    fn find_by_reference(&self, provider: &str, reference: &str) -> Result<Option<Payment>, StoreError> {
        let (provider, reference) = (provider.to_owned(), reference.to_owned());
        self.find_one("reading a payment by provider reference", |query| {
            query.filter(payments::provider.eq(provider)).filter(payments::provider_reference.eq(reference))
        })
    }

    fn list(&self, query: &PaymentQuery) -> Result<Vec<Payment>, StoreError> {
        let mut select = payments::table
            .filter(payments::order_id.eq(query.order_id.to_string()))
            .select(PaymentRow::as_select())
            .into_boxed();
        // Newest first by id (UUIDv7 ids order by creation), served by `(order_id, id)`.
        if let Some(after) = query.after {
            select = select.filter(payments::id.lt(after.to_string()));
        }
        self.db.with_connection(|conn| {
            let rows = select
                .order(payments::id.desc())
                .limit(i64::from(query.limit.get()) + 1)
                .load::<PaymentRow>(conn)
                .map_err(|error| query_failed(error, "listing payments"))?;
            rows.into_iter().map(PaymentRow::into_domain).collect()
        })
    }

    fn record_reference(&self, id: PaymentId, reference: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.db.with_connection(|conn| {
            let updated = diesel::update(
                payments::table
                    .filter(payments::id.eq(id.to_string()))
                    .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
                    .filter(payments::provider_reference.is_null().or(payments::provider_reference.eq(reference))),
            )
            .set((payments::provider_reference.eq(reference), payments::updated_at.eq(timestamps::to_db(now))))
            .execute(conn)
            .map_err(|error| query_failed(error, "recording a payment's provider reference"))?;
            Ok(updated == 1)
        })
    }

    /// A settlement never replaces a recorded provider reference:
    /// `provider_reference = COALESCE(provider_reference, :new)`. It fills in a reference the
    /// attempt has none of yet, and otherwise keeps the recorded one, even when
    /// `settlement.provider_reference` names a different charge (the recorded reference is the
    /// one the money moved under, and what a refund must name); the settlement itself still
    /// goes ahead.
    fn settle(&self, settlement: &PaymentSettlement, event: &DomainEvent) -> Result<Option<Payment>, StoreError> {
        self.db.with_connection(|conn| {
            let settled = write_transaction(conn, |conn| settle_in(conn, settlement, event))
                .map_err(|error| query_failed(error, "settling a payment"))?;
            settled.map(PaymentRow::into_domain).transpose()
        })
    }

    fn mark_provider_event_applied(
        &self,
        provider: &str,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = ProviderEventRow { provider, event_id, applied_at: timestamps::to_db(now) };
        // `MultiConnection` has no `ON CONFLICT`; both backends have the same one, so the
        // statement is written once and sent to the inner connection.
        macro_rules! insert_once {
            ($conn:expr) => {
                diesel::insert_into(provider_events::table).values(&row).on_conflict_do_nothing().execute($conn)
            };
        }
        self.db.with_connection(|conn| {
            let inserted = match conn {
                AnyConnection::Postgresql(pg) => insert_once!(pg),
                AnyConnection::Sqlite(sqlite) => insert_once!(sqlite),
            }
            .map_err(|error| query_failed(error, "recording an applied provider event"))?;
            Ok(inserted == 1)
        })
    }

    fn has_processing(&self, order_id: OrderId) -> Result<bool, StoreError> {
        self.db.with_connection(|conn| {
            diesel::select(diesel::dsl::exists(
                payments::table
                    .filter(payments::order_id.eq(order_id.to_string()))
                    .filter(payments::status.eq(PaymentStatus::Processing.as_str())),
            ))
            .get_result::<bool>(conn)
            .map_err(|error| query_failed(error, "checking for a processing payment"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_violation(message: &str) -> DieselError {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, Box::new(message.to_owned()))
    }

    #[test]
    fn only_the_processing_index_is_already_processing_on_sqlite() {
        assert!(is_already_processing(&unique_violation("UNIQUE constraint failed: payments.order_id")));
        for other in [
            "UNIQUE constraint failed: payments.order_id, payments.request_key",
            "UNIQUE constraint failed: payments.provider, payments.provider_reference",
            "UNIQUE constraint failed: payments.id",
        ] {
            assert!(!is_already_processing(&unique_violation(other)), "{other}");
        }
        assert!(!is_already_processing(&DieselError::NotFound));
    }
}
