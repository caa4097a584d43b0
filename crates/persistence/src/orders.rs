//! `OrderRepository` and `InvoiceRepository` over diesel: orders with their snapshotted lines,
//! stock reservations, status changes with their stock effects, and invoices.
//!
//! ## Invariants and how each is kept
//!
//! - **Never oversold, never negative.** A line is reserved by one conditional statement,
//!   `UPDATE products SET reserved = reserved + q ... WHERE id = ? AND status = 'active' AND
//!   on_hand - reserved >= q` (the check and the write in one step of the database, as in
//!   `products::apply_delta`). On PostgreSQL a second writer waits for the row lock and then
//!   re-evaluates the `WHERE` against the committed row; on SQLite writers are serialised by
//!   `BEGIN IMMEDIATE`. The table's `CHECK (reserved >= 0 AND on_hand >= reserved)` is a last
//!   line of defence only.
//! - **All lines or none.** Every line of an order is reserved in the one transaction that also
//!   inserts the order; any short or unavailable line aborts that transaction, so the
//!   reservations already made in it vanish with it. Every line is still tried first, so the
//!   answer lists every fault at once; which fault is reported is the domain's rule
//!   (`PlaceOrderError::for_unreserved_lines`), applied inside the transaction.
//! - **One customer cannot corner the stock.** With a reservation cap, placing first locks the
//!   customer's user row (`SELECT ... FOR NO KEY UPDATE` on PostgreSQL: it does not conflict
//!   with the `FOR KEY SHARE` that foreign keys to the user take, so rows pointing at the user
//!   are still written freely; only a change of the user row itself waits, for one placement),
//!   then sums the quantities of the customer's pending orders, and asks the domain's
//!   `ReservationCap::admit`. Two placements of one customer therefore run one after the other
//!   from that point, and the second's sum (a new statement, so under READ COMMITTED a new
//!   snapshot) sees the first's order. Only placing adds to what a customer holds; a
//!   cancellation or confirmation racing with the sum can only make it too large, never too
//!   small. On SQLite writers are serialised anyway. Refused before any product row is touched.
//! - **No deadlocks.** Placing takes the customer's row first, then product row locks in
//!   product-id order, whatever the order of the request's lines; the commit and release of a
//!   status change take the order's own row, then products in the same order, and never a
//!   user's row. The invoice counter row is always locked last. One global order means no
//!   cycle of waits on PostgreSQL.
//! - **`reserved` = Σ quantities of pending orders, no double release.** A status change starts
//!   with `UPDATE orders SET status = to ... WHERE id = ? AND status = from [AND version = ?]`;
//!   only the transaction that matched the row touches stock. A second cancellation (another
//!   sweep instance, the customer) matches nothing and changes nothing: `Conflict`.
//! - **The sweep never expires an order whose payment is `processing`** (docs/api.md#payments).
//!   `expired_pending` skips such orders (`NOT EXISTS` a processing payment), and a change with
//!   `CancelReason::Expired` checks again after its `UPDATE` holds the order's row lock, and
//!   rolls back as `Conflict` if one exists (see `change_in`).
//! - **Gapless, unique invoice numbers.** The confirming transaction takes the next number from
//!   a per-year counter row with `INSERT ... ON CONFLICT (year) DO UPDATE SET last_number =
//!   last_number + 1 RETURNING last_number`: the row lock serialises concurrent confirmations
//!   until commit, and a rolled-back confirmation takes its increment with it. Not a sequence:
//!   sequences are not transactional and leave gaps.
//!
//! Every change writes its events in its own transaction (`order.placed`; `order.<status>`;
//! `invoice.issued`), as the domain builds them (`Order::placed_event`, `StatusChange::events`),
//! see [`crate::events`].

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use orderly_domain::StoreError;
use orderly_domain::invoice::{Invoice, InvoiceNumber, InvoiceQuery};
use orderly_domain::order::{
    CancelReason, LineRequest, Order, OrderId, OrderLine, OrderQuery, OrderStatus, PlaceOrderError, ProductSnapshot,
    Quantity, Shortfall, TransitionEffect, price_lines,
};
use orderly_domain::pagination::SortDirection;
use orderly_domain::payment::PaymentStatus;
use orderly_domain::ports::{InvoiceRepository, NewOrder, OrderRepository, StatusChange, StatusChangeError};
use orderly_domain::product::{Currency, Money, ProductId, ProductStatus};
use orderly_domain::user::UserId;
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{invoice_counters, invoices, order_lines, orders, payments, products, users};
use crate::{events, timestamps};

/// How many times a line's reservation `UPDATE` runs when the follow-up read says the line
/// fits after all (see [`reserve_line`]). Every extra round needs yet another writer to commit
/// in between.
const RESERVE_ATTEMPTS: usize = 8;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: String,
    customer_id: String,
    status: String,
    subtotal: i64,
    tax: i64,
    total: i64,
    currency: String,
    invoice_number: Option<String>,
    version: i64,
    placed_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_lines)]
struct OrderLineRow {
    order_id: String,
    line_no: i32,
    product_id: String,
    sku: String,
    name: String,
    quantity: i64,
    unit_price_amount: i64,
    line_total_amount: i64,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = invoices)]
struct InvoiceRow {
    number: String,
    order_id: String,
    customer_id: String,
    issued_at: NaiveDateTime,
    subtotal: i64,
    tax: i64,
    total: i64,
    currency: String,
}

fn parse_uuid(what: &'static str, raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|error| corrupt_row(what, error))
}

fn parse_currency(what: &'static str, raw: &str) -> Result<Currency, StoreError> {
    Currency::parse(raw).map_err(|error| corrupt_row(what, error.message))
}

fn lines_into_domain(rows: Vec<OrderLineRow>, currency: &Currency) -> Result<Vec<OrderLine>, StoreError> {
    rows.into_iter()
        .map(|row| {
            Ok(OrderLine {
                product_id: ProductId::from_uuid(parse_uuid("order line", &row.product_id)?),
                sku: row.sku,
                name: row.name,
                quantity: Quantity::parse(row.quantity).map_err(|error| corrupt_row("order line", error.message))?,
                unit_price: Money::from_stored(row.unit_price_amount, currency.clone()),
                line_total: Money::from_stored(row.line_total_amount, currency.clone()),
            })
        })
        .collect()
}

impl OrderRow {
    fn into_domain(self, lines: Vec<OrderLineRow>) -> Result<Order, StoreError> {
        let currency = parse_currency("order", &self.currency)?;
        let invoice_number = self
            .invoice_number
            .as_deref()
            .map(InvoiceNumber::parse)
            .transpose()
            .map_err(|error| corrupt_row("order", error.message))?;
        Ok(Order {
            id: OrderId::from_uuid(parse_uuid("order", &self.id)?),
            customer_id: UserId::from_uuid(parse_uuid("order", &self.customer_id)?),
            status: OrderStatus::parse(&self.status).map_err(|error| corrupt_row("order", error.message))?,
            items: lines_into_domain(lines, &currency)?,
            subtotal: Money::from_stored(self.subtotal, currency.clone()),
            tax: Money::from_stored(self.tax, currency.clone()),
            total: Money::from_stored(self.total, currency),
            invoice_number,
            version: self.version,
            placed_at: timestamps::from_db(self.placed_at),
            updated_at: timestamps::from_db(self.updated_at),
            expires_at: self.expires_at.map(timestamps::from_db),
        })
    }
}

impl InvoiceRow {
    fn into_domain(self, lines: Vec<OrderLineRow>) -> Result<Invoice, StoreError> {
        let currency = parse_currency("invoice", &self.currency)?;
        Ok(Invoice {
            number: InvoiceNumber::parse(&self.number).map_err(|error| corrupt_row("invoice", error.message))?,
            order_id: OrderId::from_uuid(parse_uuid("invoice", &self.order_id)?),
            customer_id: UserId::from_uuid(parse_uuid("invoice", &self.customer_id)?),
            issued_at: timestamps::from_db(self.issued_at),
            lines: lines_into_domain(lines, &currency)?,
            subtotal: Money::from_stored(self.subtotal, currency.clone()),
            tax: Money::from_stored(self.tax, currency.clone()),
            total: Money::from_stored(self.total, currency),
        })
    }
}

/// The lines of the given orders, in one query (never one per order), grouped by order and in
/// line order.
fn lines_of(conn: &mut AnyConnection, order_ids: &[&str]) -> QueryResult<HashMap<String, Vec<OrderLineRow>>> {
    let mut grouped: HashMap<String, Vec<OrderLineRow>> = HashMap::new();
    if order_ids.is_empty() {
        return Ok(grouped);
    }
    let rows = order_lines::table
        .filter(order_lines::order_id.eq_any(order_ids))
        .order((order_lines::order_id.asc(), order_lines::line_no.asc()))
        .select(OrderLineRow::as_select())
        .load::<OrderLineRow>(conn)?;
    for row in rows {
        grouped.entry(row.order_id.clone()).or_default().push(row);
    }
    Ok(grouped)
}

/// Orders as stored, each with its lines.
fn with_lines(conn: &mut AnyConnection, rows: Vec<OrderRow>) -> QueryResult<Vec<(OrderRow, Vec<OrderLineRow>)>> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut lines = lines_of(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = lines.remove(&row.id).unwrap_or_default();
            (row, own)
        })
        .collect())
}

/// One order with its lines, in one query (one round trip: this is every order read's path):
/// the order's columns come once per line, and an order always has lines, but a left join
/// keeps the order even if it had none.
fn find_order(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<(OrderRow, Vec<OrderLineRow>)>> {
    let rows = orders::table
        .left_join(order_lines::table)
        .filter(orders::id.eq(id))
        .order(order_lines::line_no.asc())
        .select((OrderRow::as_select(), Option::<OrderLineRow>::as_select()))
        .load::<(OrderRow, Option<OrderLineRow>)>(conn)?;
    let mut rows = rows.into_iter();
    let Some((order, first_line)) = rows.next() else { return Ok(None) };
    let lines = first_line.into_iter().chain(rows.filter_map(|(_, line)| line)).collect();
    Ok(Some((order, lines)))
}

/// What a line's reservation found.
enum Reservation {
    /// Reserved; the product's `(sku, name, unit_price_amount, currency)` at this moment.
    Reserved((String, String, i64, String)),
    /// No such product, or it is archived.
    Unavailable,
    /// Not enough stock: what is available now.
    Short { available: i64 },
    /// The stock kept changing between the `UPDATE` and the read that explains its refusal.
    Contended,
}

/// Reserves `quantity` units of `product_id` by one conditional `UPDATE`, returning the price
/// snapshot, or says why not.
///
/// When nothing matched, a follow-up read tells a missing or archived product from short
/// stock. On PostgreSQL (READ COMMITTED) that read may see a later commit than the one the
/// `UPDATE` re-checked against (a cancellation released units in between), and then contradict
/// the refusal; the `UPDATE` runs again rather than report a shortfall that no longer exists.
/// On SQLite the transaction holds the write lock and the read always confirms the refusal.
fn reserve_line(
    conn: &mut AnyConnection,
    product_id: &str,
    quantity: i64,
    now: NaiveDateTime,
) -> QueryResult<Reservation> {
    for _ in 0..RESERVE_ATTEMPTS {
        let reserved = diesel::update(
            products::table
                .filter(products::id.eq(product_id))
                .filter(products::status.eq(ProductStatus::Active.as_str()))
                .filter((products::on_hand - products::reserved).ge(quantity)),
        )
        .set((
            products::reserved.eq(products::reserved + quantity),
            products::version.eq(products::version + 1),
            products::updated_at.eq(now),
        ))
        .returning((products::sku, products::name, products::unit_price_amount, products::currency))
        .get_result::<(String, String, i64, String)>(conn)
        .optional()?;
        if let Some(snapshot) = reserved {
            return Ok(Reservation::Reserved(snapshot));
        }
        let state = products::table
            .filter(products::id.eq(product_id))
            .select((products::status, products::on_hand, products::reserved))
            .first::<(String, i64, i64)>(conn)
            .optional()?;
        match state {
            None => return Ok(Reservation::Unavailable),
            Some((status, _, _)) if status != ProductStatus::Active.as_str() => return Ok(Reservation::Unavailable),
            Some((_, on_hand, reserved)) if on_hand - reserved < quantity => {
                return Ok(Reservation::Short { available: on_hand - reserved });
            }
            // The stock moved on since the UPDATE decided: try again against the new values.
            Some(_) => {}
        }
    }
    Ok(Reservation::Contended)
}

/// Why a transaction was abandoned (its writes are rolled back): a refusal to report, a store
/// error, or a failed statement.
enum Abort<E> {
    Refused(E),
    Store(StoreError),
    Query(DieselError),
}

impl<E> From<DieselError> for Abort<E> {
    fn from(error: DieselError) -> Self {
        Abort::Query(error)
    }
}

impl<E> Abort<E> {
    fn unexpected(message: String) -> Self {
        Abort::Store(StoreError::Unexpected(anyhow::anyhow!(message)))
    }
}

/// Orders in `orders` and `order_lines`; their reservations in `products.reserved`.
#[derive(Debug, Clone)]
pub struct DieselOrderRepository {
    db: Database,
}

impl DieselOrderRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Units held by `customer`'s pending orders, read after locking the customer's row so that the
/// customer's other placements wait until this transaction ends (see the module docs).
fn lock_customer_and_count_held(conn: &mut AnyConnection, customer: &str) -> QueryResult<i64> {
    match conn {
        AnyConnection::Postgresql(pg) => {
            // No row (an unknown customer) locks nothing; the order's foreign key refuses it.
            users::table
                .filter(users::id.eq(customer))
                .select(users::id)
                .for_no_key_update()
                .first::<String>(pg)
                .optional()?;
        }
        // `BEGIN IMMEDIATE` holds the database's one write lock already.
        AnyConnection::Sqlite(_) => {}
    }
    // `SUM` of a BIGINT is NUMERIC on PostgreSQL, which `MultiConnection` cannot read: cast back.
    // Served by `orders_pending_by_customer_idx`, then the lines' primary key.
    order_lines::table
        .inner_join(orders::table)
        .filter(orders::customer_id.eq(customer))
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .select(diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(COALESCE(SUM(order_lines.quantity), 0) AS BIGINT)"))
        .first::<i64>(conn)
}

/// Places `order` inside an open write transaction. Any fault aborts with the refusal to report.
fn place_in(conn: &mut AnyConnection, order: &NewOrder) -> Result<Order, Abort<PlaceOrderError>> {
    // The cap first: it depends on the customer's own orders alone, so it is decided before
    // any product row is locked, and a refused order adds no contention on the stock.
    if order.reservation_cap.limit().is_some() {
        let held = lock_customer_and_count_held(conn, &order.customer_id.to_string())?;
        if let Err(exceeded) = order.reservation_cap.admit(held, order.request.units()) {
            return Err(Abort::Refused(PlaceOrderError::ReservationLimitExceeded(exceeded)));
        }
    }
    let now = timestamps::to_db(order.placed_at);
    let requested = order.request.lines();
    // One global lock order (product id), whatever the order of the request's lines.
    let mut snapshots: Vec<Option<ProductSnapshot>> = vec![None; requested.len()];
    // Each line with its index in the request and its snapshot's slot.
    let mut by_product: Vec<(usize, &LineRequest, &mut Option<ProductSnapshot>)> = requested
        .iter()
        .zip(snapshots.iter_mut())
        .enumerate()
        .map(|(index, (line, snapshot))| (index, line, snapshot))
        .collect();
    by_product.sort_by_key(|(_, line, _)| line.product_id);

    let (mut unavailable, mut short) = (Vec::new(), Vec::new());
    for (index, line, snapshot) in by_product {
        match reserve_line(conn, &line.product_id.to_string(), line.quantity.get(), now)? {
            Reservation::Reserved((sku, name, unit_price, currency)) => {
                let currency = parse_currency("product", &currency).map_err(Abort::Store)?;
                *snapshot = Some(ProductSnapshot {
                    product_id: line.product_id,
                    sku,
                    name,
                    unit_price: Money::from_stored(unit_price, currency),
                });
            }
            Reservation::Unavailable => unavailable.push(index),
            Reservation::Short { available } => short.push(Shortfall {
                line: index,
                product_id: line.product_id,
                requested: line.quantity.get(),
                available,
            }),
            // Transient, like a busy database: worth a retry (503).
            Reservation::Contended => {
                return Err(Abort::Store(StoreError::Unavailable(anyhow::anyhow!(
                    "the stock kept changing during {RESERVE_ATTEMPTS} attempts to reserve it"
                ))));
            }
        }
    }
    // Which fault is reported (every line was tried, so it lists them all) is the domain's
    // rule; reporting it rolls back every reservation made above.
    if let Some(refusal) = PlaceOrderError::for_unreserved_lines(unavailable, short) {
        return Err(Abort::Refused(refusal));
    }

    let priced: Vec<(LineRequest, ProductSnapshot)> = requested
        .iter()
        .zip(snapshots)
        .map(|(line, snapshot)| {
            snapshot.map(|snapshot| (*line, snapshot)).ok_or_else(|| {
                Abort::unexpected(format!("line for {} was neither reserved nor refused", line.product_id))
            })
        })
        .collect::<Result<_, _>>()?;
    let (lines, totals) = price_lines(&priced, order.tax_rate, &order.currency);

    let order_id = order.id.to_string();
    let row = OrderRow {
        id: order_id.clone(),
        customer_id: order.customer_id.to_string(),
        status: OrderStatus::Pending.as_str().to_owned(),
        subtotal: totals.subtotal.amount(),
        tax: totals.tax.amount(),
        total: totals.total.amount(),
        currency: order.currency.as_str().to_owned(),
        invoice_number: None,
        version: 1,
        placed_at: now,
        updated_at: now,
        expires_at: Some(timestamps::to_db(order.expires_at)),
    };
    diesel::insert_into(orders::table).values(&row).execute(conn)?;
    let line_rows = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            Ok(OrderLineRow {
                order_id: order_id.clone(),
                line_no: i32::try_from(index).map_err(|_| Abort::unexpected(format!("line index {index}")))?,
                product_id: line.product_id.to_string(),
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: line.quantity.get(),
                unit_price_amount: line.unit_price.amount(),
                line_total_amount: line.line_total.amount(),
            })
        })
        .collect::<Result<Vec<_>, Abort<PlaceOrderError>>>()?;
    // One statement for all lines (at most 50). `MultiConnection` cannot send a multi-row
    // insert, so the statement goes to the inner connection, which holds this transaction.
    macro_rules! insert_lines {
        ($conn:expr) => {
            diesel::insert_into(order_lines::table).values(&line_rows).execute($conn)
        };
    }
    match conn {
        AnyConnection::Postgresql(pg) => insert_lines!(pg)?,
        AnyConnection::Sqlite(sqlite) => insert_lines!(sqlite)?,
    };
    let placed = row.into_domain(line_rows).map_err(Abort::Store)?;
    // Last write (on SQLite it takes the event counter, after every row lock; see `events`).
    events::insert_events(conn, &[placed.placed_event()])?;
    Ok(placed)
}

/// Applies `change` inside an open write transaction; `Refused` aborts without writing.
fn change_in(
    conn: &mut AnyConnection,
    change: &StatusChange,
) -> Result<(OrderRow, Vec<OrderLineRow>), Abort<StatusChangeError>> {
    let id = change.order_id.to_string();
    let now = timestamps::to_db(change.now);
    // The decisive statement: of several transactions moving this order from `from`, exactly
    // one matches; the others change nothing (and so release or commit nothing).
    let mut update = diesel::update(orders::table)
        .filter(orders::id.eq(&id))
        .filter(orders::status.eq(change.from.as_str()))
        .into_boxed();
    if let Some(version) = change.expected_version {
        update = update.filter(orders::version.eq(version));
    }
    let customer_id = update
        .set((
            orders::status.eq(change.to.as_str()),
            orders::version.eq(orders::version + 1),
            orders::updated_at.eq(now),
            orders::expires_at.eq(None::<NaiveDateTime>),
        ))
        .returning(orders::customer_id)
        .get_result::<String>(conn)
        .optional()?;
    let Some(customer_id) = customer_id else {
        let exists = diesel::select(diesel::dsl::exists(orders::table.filter(orders::id.eq(&id)))).get_result(conn)?;
        let refusal = if exists { StatusChangeError::Conflict } else { StatusChangeError::NotFound };
        return Err(Abort::Refused(refusal));
    };
    // The expiry sweep never expires an order whose payment is `processing` (docs/api.md#payments): money may
    // be moving for it. Checked by a new statement after the UPDATE above holds the order's row
    // lock: inserting an attempt takes that lock first (`payments::insert_in`), so on
    // PostgreSQL (READ COMMITTED: each statement sees what committed before it) this sees every
    // attempt whose transaction got the lock first, and one that comes later finds the order
    // cancelled. On SQLite there is one writer. The rollback releases nothing, writes no event.
    if change.cancel_reason == Some(CancelReason::Expired) {
        let processing = diesel::select(diesel::dsl::exists(
            payments::table
                .filter(payments::order_id.eq(&id))
                .filter(payments::status.eq(PaymentStatus::Processing.as_str())),
        ))
        .get_result::<bool>(conn)?;
        if processing {
            return Err(Abort::Refused(StatusChangeError::Conflict));
        }
    }
    let customer = UserId::from_uuid(parse_uuid("order", &customer_id).map_err(Abort::Store)?);

    let mut invoice = None;
    if change.effect != TransitionEffect::None {
        // Product rows in id order, as reservations take them.
        let lines = order_lines::table
            .filter(order_lines::order_id.eq(&id))
            .order(order_lines::product_id.asc())
            .select((order_lines::product_id, order_lines::quantity))
            .load::<(String, i64)>(conn)?;
        let commit = change.effect == TransitionEffect::CommitReservationAndInvoice;
        for (product_id, quantity) in &lines {
            let target = products::table.filter(products::id.eq(product_id)).filter(products::reserved.ge(*quantity));
            let common = (products::version.eq(products::version + 1), products::updated_at.eq(now));
            let updated = if commit {
                diesel::update(target)
                    .set((
                        products::on_hand.eq(products::on_hand - *quantity),
                        products::reserved.eq(products::reserved - *quantity),
                        common,
                    ))
                    .execute(conn)?
            } else {
                diesel::update(target)
                    .set((products::reserved.eq(products::reserved - *quantity), common))
                    .execute(conn)?
            };
            // A pending order's units are always reserved (the invariant this module keeps):
            // anything else is a bug or a manual edit, and must not be papered over.
            if updated != 1 {
                return Err(Abort::unexpected(format!(
                    "order {id} holds {quantity} of product {product_id}, which has fewer reserved"
                )));
            }
        }
        if commit {
            let number = issue_invoice(conn, &id, change.now)?;
            let total = orders::table.filter(orders::id.eq(&id)).select(orders::total).first::<i64>(conn)?;
            invoice = Some((number, total));
        }
    }
    // Last write (on SQLite it takes the event counter, after every row lock; see `events`).
    events::insert_events(conn, &change.events(customer, invoice))?;
    find_order(conn, &id)?.ok_or_else(|| Abort::unexpected(format!("order {id} vanished while it was changed")))
}

/// Takes the next number of `now`'s year from the counter row, writes the invoice of order `id`
/// and links it to the order.
fn issue_invoice(
    conn: &mut AnyConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<InvoiceNumber, Abort<StatusChangeError>> {
    let year = InvoiceNumber::year_of(now);
    // `MultiConnection` has no `ON CONFLICT`; both backends have the same one (SQLite ≥ 3.35
    // with `RETURNING`), so the statement is written once and sent to the inner connection,
    // which holds this transaction.
    macro_rules! next_number {
        ($conn:expr) => {
            diesel::insert_into(invoice_counters::table)
                .values((invoice_counters::year.eq(year), invoice_counters::last_number.eq(1_i64)))
                .on_conflict(invoice_counters::year)
                .do_update()
                .set(invoice_counters::last_number.eq(invoice_counters::last_number + 1))
                .returning(invoice_counters::last_number)
                .get_result::<i64>($conn)
        };
    }
    let last = match conn {
        AnyConnection::Postgresql(pg) => next_number!(pg)?,
        AnyConnection::Sqlite(sqlite) => next_number!(sqlite)?,
    };
    let number = u32::try_from(last)
        .ok()
        .and_then(|sequence| InvoiceNumber::new(year, sequence))
        .ok_or_else(|| Abort::unexpected(format!("invoice number {last} of {year} is out of range")))?;
    let (customer_id, subtotal, tax, total, currency) = orders::table
        .filter(orders::id.eq(id))
        .select((orders::customer_id, orders::subtotal, orders::tax, orders::total, orders::currency))
        .first::<(String, i64, i64, i64, String)>(conn)?;
    let row = InvoiceRow {
        number: number.to_string(),
        order_id: id.to_owned(),
        customer_id,
        issued_at: timestamps::to_db(now),
        subtotal,
        tax,
        total,
        currency,
    };
    diesel::insert_into(invoices::table).values(&row).execute(conn)?;
    diesel::update(orders::table.filter(orders::id.eq(id)))
        .set(orders::invoice_number.eq(Some(&row.number)))
        .execute(conn)?;
    Ok(number)
}

impl OrderRepository for DieselOrderRepository {
    fn place(&self, order: &NewOrder) -> Result<Order, PlaceOrderError> {
        self.db.with_connection(|conn| match write_transaction(conn, |conn| place_in(conn, order)) {
            Ok(placed) => Ok(placed),
            Err(Abort::Refused(refusal)) => Err(refusal),
            Err(Abort::Store(error)) => Err(error.into()),
            Err(Abort::Query(error)) => Err(query_failed(error, "placing an order").into()),
        })
    }

    fn find(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.db.with_connection(|conn| {
            let found = find_order(conn, &id.to_string()).map_err(|error| query_failed(error, "reading an order"))?;
            found.map(|(row, lines)| row.into_domain(lines)).transpose()
        })
    }

    fn list(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        let mut select = orders::table.select(OrderRow::as_select()).into_boxed();
        if let Some(status) = query.status {
            select = select.filter(orders::status.eq(status.as_str()));
        }
        if let Some(customer) = query.customer_id {
            select = select.filter(orders::customer_id.eq(customer.to_string()));
        }
        // Keyset on (placed_at, id), written as in `products::list_rows` so that its first
        // term bounds an index range scan; never OFFSET.
        let descending = query.sort.0 == SortDirection::Descending;
        if let Some(after) = &query.after {
            let (key, id) = (timestamps::to_db(after.placed_at), after.id.to_string());
            select = if descending {
                select.filter(orders::placed_at.le(key).and(orders::placed_at.lt(key).or(orders::id.lt(id))))
            } else {
                select.filter(orders::placed_at.ge(key).and(orders::placed_at.gt(key).or(orders::id.gt(id))))
            };
        }
        select = if descending {
            select.order((orders::placed_at.desc(), orders::id.desc()))
        } else {
            select.order((orders::placed_at.asc(), orders::id.asc()))
        };
        self.db.with_connection(|conn| {
            let rows = select
                .limit(i64::from(query.limit.get()) + 1)
                .load::<OrderRow>(conn)
                .and_then(|rows| with_lines(conn, rows))
                .map_err(|error| query_failed(error, "listing orders"))?;
            rows.into_iter().map(|(row, lines)| row.into_domain(lines)).collect()
        })
    }

    fn change_status(&self, change: &StatusChange) -> Result<Order, StatusChangeError> {
        self.db.with_connection(|conn| match write_transaction(conn, |conn| change_in(conn, change)) {
            Ok((row, lines)) => Ok(row.into_domain(lines)?),
            Err(Abort::Refused(refusal)) => Err(refusal),
            Err(Abort::Store(error)) => Err(error.into()),
            Err(Abort::Query(error)) => Err(query_failed(error, "changing an order's status").into()),
        })
    }

    fn expired_pending(&self, now: DateTime<Utc>, limit: u16) -> Result<Vec<OrderId>, StoreError> {
        self.db.with_connection(|conn| {
            let ids = orders::table
                .filter(orders::status.eq(OrderStatus::Pending.as_str()))
                .filter(orders::expires_at.le(timestamps::to_db(now)))
                // Not while a payment is `processing` (docs/api.md#payments); `change_status` checks again.
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    payments::table
                        .filter(payments::order_id.eq(orders::id))
                        .filter(payments::status.eq(PaymentStatus::Processing.as_str())),
                )))
                .order((orders::expires_at.asc(), orders::id.asc()))
                .limit(i64::from(limit))
                .select(orders::id)
                .load::<String>(conn)
                .map_err(|error| query_failed(error, "listing expired orders"))?;
            ids.iter().map(|id| parse_uuid("order", id).map(OrderId::from_uuid)).collect()
        })
    }
}

/// Issued invoices in `invoices`, their lines in `order_lines` (the order's immutable snapshot).
#[derive(Debug, Clone)]
pub struct DieselInvoiceRepository {
    db: Database,
}

impl DieselInvoiceRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn invoices_with_lines(
    conn: &mut AnyConnection,
    rows: Vec<InvoiceRow>,
) -> QueryResult<Vec<(InvoiceRow, Vec<OrderLineRow>)>> {
    let ids: Vec<&str> = rows.iter().map(|row| row.order_id.as_str()).collect();
    let mut lines = lines_of(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = lines.remove(&row.order_id).unwrap_or_default();
            (row, own)
        })
        .collect())
}

impl InvoiceRepository for DieselInvoiceRepository {
    fn find(&self, number: InvoiceNumber) -> Result<Option<Invoice>, StoreError> {
        self.db.with_connection(|conn| {
            let found = invoices::table
                .filter(invoices::number.eq(number.to_string()))
                .select(InvoiceRow::as_select())
                .first::<InvoiceRow>(conn)
                .optional()
                .and_then(|row| invoices_with_lines(conn, row.into_iter().collect()))
                .map_err(|error| query_failed(error, "reading an invoice"))?;
            found.into_iter().next().map(|(row, lines)| row.into_domain(lines)).transpose()
        })
    }

    fn list(&self, query: &InvoiceQuery) -> Result<Vec<Invoice>, StoreError> {
        // Newest first: `YYYY-NNNNNN` has fixed width, so the text order of numbers is their
        // (year, sequence) order, which is issue order; the number is unique, so it is the
        // whole keyset.
        let mut select = invoices::table.select(InvoiceRow::as_select()).into_boxed();
        if let Some(customer) = query.customer_id {
            select = select.filter(invoices::customer_id.eq(customer.to_string()));
        }
        if let Some(after) = query.after {
            select = select.filter(invoices::number.lt(after.to_string()));
        }
        self.db.with_connection(|conn| {
            let rows = select
                .order(invoices::number.desc())
                .limit(i64::from(query.limit.get()) + 1)
                .load::<InvoiceRow>(conn)
                .and_then(|rows| invoices_with_lines(conn, rows))
                .map_err(|error| query_failed(error, "listing invoices"))?;
            rows.into_iter().map(|(row, lines)| row.into_domain(lines)).collect()
        })
    }
}
