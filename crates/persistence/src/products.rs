//! `ProductRepository` over diesel: the catalogue, its stock counters and the stock audit trail.
//!
//! ## Stock
//!
//! `on_hand` changes only in [`ProductRepository::adjust_stock`], by one conditional statement,
//! `UPDATE products SET on_hand = on_hand + d, ... WHERE id = ? AND on_hand + d >= reserved`:
//! the check and the write are one step of the database, never a read-modify-write here, so
//! concurrent adjustments (and, later, reservations) cannot lose an update or take `on_hand`
//! below `reserved` on either backend. On PostgreSQL a second writer waits for the row lock and
//! then re-evaluates the `WHERE` against the committed row; on SQLite writers are serialised
//! by `BEGIN IMMEDIATE`. When the statement matches nothing, a follow-up read says why (no such
//! product, or the counters that refuse it), and reruns the statement in the rare case where
//! the counters moved on in between (see `apply_delta`). The table's
//! `CHECK (reserved >= 0 AND on_hand >= reserved)` is only a last line of defence.
//!
//! Every adjustment writes a `stock_adjustments` row (who, when, delta, reason, `on_hand`
//! after) and a `stock.adjusted` event (built by the domain's `StockAdjustment::event`) in the
//! same transaction. A product created with stock
//! also gets a first adjustment, reason `"initial stock"`, by the admin named in its
//! `product.created` event, so the trail explains every unit from the start (its
//! `product.created` event already carries `on_hand`, so no `stock.adjusted` event is added).
//!
//! ## Listing
//!
//! Keyset pagination on `(sort key, id)`, ascending or descending, never `OFFSET`; every order
//! is backed by an index on `(key, id)` and, for the status filter, `(status, key, id)` (see the
//! migration). Names compare byte-wise on both backends (`COLLATE "C"` on PostgreSQL, SQLite's
//! default `BINARY`). The case-insensitive `q` filter matches `name_folded`, a lower-cased copy
//! of the name kept by this module with the same Rust folding as the needle, because SQLite's
//! `lower()` folds ASCII only.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use orderly_domain::StoreError;
use orderly_domain::event::DomainEvent;
use orderly_domain::pagination::SortDirection;
use orderly_domain::ports::{InsertProductError, ProductRepository, StockAdjustmentError, UpdateError};
use orderly_domain::product::{
    AdjustmentQuery, AdjustmentReason, Currency, Description, Money, NewProduct, Product, ProductCursor, ProductId,
    ProductName, ProductQuery, ProductSortKey, ProductStatus, ProductUpdate, Sku, Stock, StockAdjustment, StockDelta,
};
use orderly_domain::user::UserId;
use uuid::Uuid;

use crate::connection::{AnyConnection, write_transaction};
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{products, stock_adjustments};
use crate::{events, timestamps};

/// The unique constraint on `products.sku`, named in both migrations. PostgreSQL reports the
/// name; SQLite reports "UNIQUE constraint failed: products.sku".
const SKU_CONSTRAINT: &str = "products_sku_key";
const SKU_COLUMN: &str = "products.sku";

/// The reason of the adjustment that records a new product's initial stock.
pub const INITIAL_STOCK_REASON: &str = "initial stock";

/// A product as stored, without `name_folded` (which only serves the `q` filter).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = products)]
pub(crate) struct ProductRow {
    id: String,
    sku: String,
    name: String,
    description: Option<String>,
    unit_price_amount: i64,
    currency: String,
    on_hand: i64,
    reserved: i64,
    status: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// `ProductRow`'s columns in its field order, for `RETURNING` (which cannot take
/// `ProductRow::as_returning()` through `MultiConnection`).
const PRODUCT_COLUMNS: (
    products::id,
    products::sku,
    products::name,
    products::description,
    products::unit_price_amount,
    products::currency,
    products::on_hand,
    products::reserved,
    products::status,
    products::version,
    products::created_at,
    products::updated_at,
) = (
    products::id,
    products::sku,
    products::name,
    products::description,
    products::unit_price_amount,
    products::currency,
    products::on_hand,
    products::reserved,
    products::status,
    products::version,
    products::created_at,
    products::updated_at,
);

#[derive(Insertable)]
#[diesel(table_name = products)]
struct NewProductRow<'a> {
    id: String,
    sku: &'a str,
    name: &'a str,
    name_folded: String,
    description: Option<&'a str>,
    unit_price_amount: i64,
    currency: &'a str,
    on_hand: i64,
    reserved: i64,
    status: &'a str,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// The columns a `ProductUpdate` may change; `None` leaves a column alone, and
/// `description: Some(None)` sets it to NULL.
#[derive(AsChangeset)]
#[diesel(table_name = products)]
struct ProductChangeset<'a> {
    name: Option<&'a str>,
    name_folded: Option<String>,
    description: Option<Option<&'a str>>,
    unit_price_amount: Option<i64>,
    currency: Option<&'a str>,
    status: Option<&'a str>,
    updated_at: NaiveDateTime,
}

/// One row of the stock audit trail, read or written.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = stock_adjustments)]
struct AdjustmentRow {
    id: String,
    product_id: String,
    delta: i64,
    reason: String,
    actor_id: String,
    on_hand_after: i64,
    created_at: NaiveDateTime,
}

impl ProductRow {
    fn into_domain(self) -> Result<Product, StoreError> {
        let corrupt = |detail: String| corrupt_row("product", detail);
        let id = Uuid::parse_str(&self.id).map_err(|error| corrupt(error.to_string()))?;
        let sku = Sku::parse(&self.sku).map_err(|error| corrupt(error.message))?;
        let name = ProductName::parse(&self.name).map_err(|error| corrupt(error.message))?;
        let description =
            self.description.as_deref().map(Description::parse).transpose().map_err(|error| corrupt(error.message))?;
        let currency = Currency::parse(&self.currency).map_err(|error| corrupt(error.message))?;
        let stock = Stock::new(self.on_hand, self.reserved).map_err(|error| corrupt(error.to_string()))?;
        let status = ProductStatus::parse(&self.status).map_err(|error| corrupt(error.message))?;
        Ok(Product {
            id: ProductId::from_uuid(id),
            sku,
            name,
            description,
            unit_price: Money::from_stored(self.unit_price_amount, currency),
            stock,
            status,
            version: self.version,
            created_at: timestamps::from_db(self.created_at),
            updated_at: timestamps::from_db(self.updated_at),
        })
    }
}

impl AdjustmentRow {
    fn into_domain(self) -> Result<StockAdjustment, StoreError> {
        let corrupt = |detail: String| corrupt_row("stock adjustment", detail);
        let parse = |id: &str| Uuid::parse_str(id).map_err(|error| corrupt(error.to_string()));
        Ok(StockAdjustment {
            id: parse(&self.id)?,
            product_id: ProductId::from_uuid(parse(&self.product_id)?),
            delta: self.delta,
            reason: AdjustmentReason::parse(&self.reason).map_err(|error| corrupt(error.message))?,
            actor_id: UserId::from_uuid(parse(&self.actor_id)?),
            on_hand_after: self.on_hand_after,
            created_at: timestamps::from_db(self.created_at),
        })
    }
}

/// Lower-cases `text` for the case-insensitive name filter, character by character
/// (`char::to_lowercase`), so a letter folds the same wherever it stands: `str::to_lowercase`
/// would turn a word-final `Σ` into `ς` in a name but into `σ` in a one-letter needle.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// The `LIKE` pattern (with `ESCAPE '\'`) matching names that contain `needle`, folded, with
/// `%`, `_` and `\` taken literally.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in fold(needle).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The rows of one catalogue page (up to `limit + 1`). Separate from the repository so that
/// the test support can run it on a connection of its own and read the query plan.
pub(crate) fn list_rows(conn: &mut AnyConnection, query: &ProductQuery) -> Result<Vec<ProductRow>, StoreError> {
    let mut select = products::table.select(ProductRow::as_select()).into_boxed();
    if let Some(status) = query.status {
        select = select.filter(products::status.eq(status.as_str()));
    }
    if let Some(needle) = &query.name_contains {
        // PostgreSQL refuses NUL in text, SQLite would store it; no name holds a control
        // character, so such a needle matches nothing, on both backends alike.
        if needle.contains('\0') {
            return Ok(Vec::new());
        }
        select = select.filter(products::name_folded.like(contains_pattern(needle)).escape('\\'));
    }
    if query.in_stock {
        select = select.filter(products::on_hand.gt(products::reserved));
    }

    // Keyset pagination on (key, id): `key >= k AND (key > k OR id > i)` is the same set as
    // `key > k OR (key = k AND id > i)`, written so that its first term bounds an index range
    // scan on both backends (mirrored for descending order). Never OFFSET: a page costs the
    // same wherever it is, and rows inserted meanwhile cannot shift it.
    let descending = query.direction == Some(SortDirection::Descending);
    macro_rules! keyset {
        ($column:expr, $after:expr) => {{
            if let Some((key, id)) = $after {
                select = if descending {
                    select.filter($column.le(key).and($column.lt(key).or(products::id.lt(id))))
                } else {
                    select.filter($column.ge(key).and($column.gt(key).or(products::id.gt(id))))
                };
            }
            if descending {
                select.order(($column.desc(), products::id.desc()))
            } else {
                select.order(($column.asc(), products::id.asc()))
            }
        }};
    }
    let mismatch = |cursor: &ProductCursor| {
        // The HTTP adapter must refuse a cursor of another sort order (a 400); reaching here
        // with one is a bug.
        StoreError::Unexpected(
            anyhow::anyhow!("{cursor:?} given for sort {:?}", query.sort)
                .context("listing products: the cursor belongs to another sort order"),
        )
    };
    select = match query.sort {
        ProductSortKey::CreatedAt => {
            let after = match &query.after {
                None => None,
                Some(ProductCursor::CreatedAt(created_at, id)) => {
                    Some((timestamps::to_db(*created_at), id.to_string()))
                }
                Some(other) => return Err(mismatch(other)),
            };
            keyset!(products::created_at, after)
        }
        ProductSortKey::Name => {
            let after = match &query.after {
                None => None,
                Some(ProductCursor::Name(name, id)) => Some((name.as_str(), id.to_string())),
                Some(other) => return Err(mismatch(other)),
            };
            keyset!(products::name, after)
        }
        ProductSortKey::Price => {
            let after = match &query.after {
                None => None,
                Some(ProductCursor::Price(amount, id)) => Some((*amount, id.to_string())),
                Some(other) => return Err(mismatch(other)),
            };
            keyset!(products::unit_price_amount, after)
        }
    };
    select
        .limit(i64::from(query.limit.get()) + 1)
        .load::<ProductRow>(conn)
        .map_err(|error| query_failed(error, "listing products"))
}

/// Why an adjustment was refused by the conditional `UPDATE`, as the follow-up read explains it.
enum Refusal {
    NotFound,
    BelowReserved { on_hand: i64, reserved: i64 },
    AboveMaximum,
    Contended,
}

/// How many times [`apply_delta`] runs its conditional `UPDATE` when the follow-up read says the
/// change fits after all. Every extra round needs yet another writer to commit in between.
const ADJUST_ATTEMPTS: usize = 8;

/// Adds `delta` to `on_hand` if the result stays within `reserved..=Stock::MAX_UNITS`, by one
/// conditional `UPDATE` (the check and the write in one statement), and returns the changed row;
/// otherwise says why not.
///
/// The upper bound keeps a row the domain can read back when two large additions race past the
/// service's own check. When nothing matched, a follow-up read tells a missing product from
/// refusing counters. On PostgreSQL (READ COMMITTED) an `UPDATE` that waited for a concurrent
/// writer re-checks its condition against that writer's result; by the time of the read a
/// third writer may have committed a change after which the delta fits, so the read
/// contradicts the refusal. Reporting those counters as `BelowReserved` would be wrong, so the
/// `UPDATE` runs again. On SQLite the transaction holds the write lock and the read always
/// confirms the refusal.
fn apply_delta(
    conn: &mut AnyConnection,
    product_id: &str,
    delta: i64,
    now: NaiveDateTime,
) -> QueryResult<Result<ProductRow, Refusal>> {
    for _ in 0..ADJUST_ATTEMPTS {
        let updated = diesel::update(
            products::table
                .filter(products::id.eq(product_id))
                .filter((products::on_hand + delta).ge(products::reserved))
                .filter((products::on_hand + delta).le(Stock::MAX_UNITS)),
        )
        .set((
            products::on_hand.eq(products::on_hand + delta),
            products::version.eq(products::version + 1),
            products::updated_at.eq(now),
        ))
        .returning(PRODUCT_COLUMNS)
        .get_result::<ProductRow>(conn)
        .optional()?;
        if let Some(product) = updated {
            return Ok(Ok(product));
        }
        let counters = products::table
            .filter(products::id.eq(product_id))
            .select((products::on_hand, products::reserved))
            .first::<(i64, i64)>(conn)
            .optional()?;
        match counters {
            None => return Ok(Err(Refusal::NotFound)),
            Some((on_hand, reserved)) if on_hand + delta < reserved => {
                return Ok(Err(Refusal::BelowReserved { on_hand, reserved }));
            }
            Some((on_hand, _)) if on_hand + delta > Stock::MAX_UNITS => return Ok(Err(Refusal::AboveMaximum)),
            // The stock moved on since the UPDATE decided: try again against the new values.
            Some(_) => {}
        }
    }
    Ok(Err(Refusal::Contended))
}

/// Products in `products`, their audit trail in `stock_adjustments`.
#[derive(Debug, Clone)]
pub struct DieselProductRepository {
    db: Database,
}

impl DieselProductRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn is_sku_taken(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name() == Some(SKU_CONSTRAINT) || info.message().contains(SKU_COLUMN)
        }
        _ => false,
    }
}

impl ProductRepository for DieselProductRepository {
    /// Inserts the product, its initial-stock adjustment when `on_hand > 0` (by the actor of
    /// `event`, which must then be `ProductCreated`) and `event`, in one transaction.
    fn insert(&self, product: &NewProduct, event: &DomainEvent) -> Result<Product, InsertProductError> {
        let unexpected = |error: anyhow::Error| InsertProductError::Store(StoreError::Unexpected(error));
        let stock = Stock::new(product.on_hand, 0)
            .map_err(|error| unexpected(anyhow::Error::new(error).context("the new product's stock is invalid")))?;
        let created_at = timestamps::to_db(product.created_at);
        let row = NewProductRow {
            id: product.id.to_string(),
            sku: product.sku.as_str(),
            name: product.name.as_str(),
            name_folded: fold(product.name.as_str()),
            description: product.description.as_ref().map(Description::as_str),
            unit_price_amount: product.unit_price.amount(),
            currency: product.unit_price.currency().as_str(),
            on_hand: stock.on_hand(),
            reserved: stock.reserved(),
            status: ProductStatus::Active.as_str(),
            version: 1,
            created_at,
            updated_at: created_at,
        };
        let initial_stock = if stock.on_hand() > 0 {
            let DomainEvent::ProductCreated { actor_id, .. } = event else {
                return Err(unexpected(anyhow::anyhow!(
                    "a product with initial stock needs its product.created event, which names the actor"
                )));
            };
            Some(AdjustmentRow {
                id: Uuid::now_v7().to_string(),
                product_id: product.id.to_string(),
                delta: stock.on_hand(),
                reason: INITIAL_STOCK_REASON.to_owned(),
                actor_id: actor_id.to_string(),
                on_hand_after: stock.on_hand(),
                created_at,
            })
        } else {
            None
        };
        self.db.with_connection(|conn| {
            // The insert comes first so that on SQLite the write lock is taken before anything else.
            write_transaction(conn, |conn| {
                diesel::insert_into(products::table).values(&row).execute(conn)?;
                if let Some(adjustment) = &initial_stock {
                    diesel::insert_into(stock_adjustments::table).values(adjustment).execute(conn)?;
                }
                events::insert_events(conn, std::slice::from_ref(event)).map(drop)
            })
            .map_err(|error| {
                if is_sku_taken(&error) {
                    InsertProductError::SkuTaken
                } else {
                    InsertProductError::Store(query_failed(error, "inserting a product"))
                }
            })?;
            Ok(Product {
                id: product.id,
                sku: product.sku.clone(),
                name: product.name.clone(),
                description: product.description.clone(),
                unit_price: product.unit_price.clone(),
                stock,
                status: ProductStatus::Active,
                version: 1,
                created_at: timestamps::from_db(created_at),
                updated_at: timestamps::from_db(created_at),
            })
        })
    }

    fn find_by_id(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        self.db.with_connection(|conn| {
            let row = products::table
                .filter(products::id.eq(id.to_string()))
                .select(ProductRow::as_select())
                .first::<ProductRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading a product"))?;
            row.map(ProductRow::into_domain).transpose()
        })
    }

    fn list(&self, query: &ProductQuery) -> Result<Vec<Product>, StoreError> {
        self.db.with_connection(|conn| {
            let rows = list_rows(conn, query)?;
            rows.into_iter().map(ProductRow::into_domain).collect()
        })
    }

    fn update(
        &self,
        id: ProductId,
        update: &ProductUpdate,
        expected_version: i64,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<Product, UpdateError> {
        let id = id.to_string();
        let changes = (
            ProductChangeset {
                name: update.name.as_ref().map(ProductName::as_str),
                name_folded: update.name.as_ref().map(|name| fold(name.as_str())),
                description: update
                    .description
                    .as_ref()
                    .map(|description| description.as_ref().map(Description::as_str)),
                unit_price_amount: update.unit_price.as_ref().map(Money::amount),
                currency: update.unit_price.as_ref().map(|price| price.currency().as_str()),
                status: update.status.map(ProductStatus::as_str),
                updated_at: timestamps::to_db(now),
            },
            products::version.eq(products::version + 1),
        );
        self.db.with_connection(|conn| {
            let outcome = write_transaction(conn, |conn| -> QueryResult<Result<ProductRow, UpdateError>> {
                // The version check is part of the UPDATE itself, so of two writers holding the same
                // version only one can match (the other's ETag is then stale: 412).
                let updated = diesel::update(
                    products::table.filter(products::id.eq(&id)).filter(products::version.eq(expected_version)),
                )
                .set(changes)
                .returning(PRODUCT_COLUMNS)
                .get_result::<ProductRow>(conn)
                .optional()?;
                let Some(updated) = updated else {
                    // Nothing matched: tell a missing product from a stale version.
                    let exists = diesel::select(diesel::dsl::exists(products::table.filter(products::id.eq(&id))))
                        .get_result::<bool>(conn)?;
                    return Ok(Err(if exists { UpdateError::VersionMismatch } else { UpdateError::NotFound }));
                };
                events::insert_events(conn, std::slice::from_ref(event))?;
                Ok(Ok(updated))
            })
            .map_err(|error| query_failed(error, "updating a product"))?;
            Ok(outcome?.into_domain()?)
        })
    }

    fn adjust_stock(
        &self,
        id: ProductId,
        delta: StockDelta,
        reason: &AdjustmentReason,
        actor: UserId,
        now: DateTime<Utc>,
    ) -> Result<(StockAdjustment, Product), StockAdjustmentError> {
        let (product_id, delta, now) = (id.to_string(), delta.get(), timestamps::to_db(now));
        let adjustment_id = Uuid::now_v7();
        self.db.with_connection(|conn| {
            let outcome =
                write_transaction(conn, |conn| -> QueryResult<Result<(ProductRow, AdjustmentRow), Refusal>> {
                    let product = match apply_delta(conn, &product_id, delta, now)? {
                        Ok(product) => product,
                        Err(refusal) => return Ok(Err(refusal)),
                    };
                    let adjustment = AdjustmentRow {
                        id: adjustment_id.to_string(),
                        product_id: product_id.clone(),
                        delta,
                        reason: reason.as_str().to_owned(),
                        actor_id: actor.to_string(),
                        on_hand_after: product.on_hand,
                        created_at: now,
                    };
                    diesel::insert_into(stock_adjustments::table).values(&adjustment).execute(conn)?;
                    let recorded = StockAdjustment {
                        id: adjustment_id,
                        product_id: id,
                        delta,
                        reason: reason.clone(),
                        actor_id: actor,
                        on_hand_after: product.on_hand,
                        created_at: timestamps::from_db(now),
                    };
                    events::insert_events(conn, &[recorded.event(product.reserved)])?;
                    Ok(Ok((product, adjustment)))
                })
                .map_err(|error| query_failed(error, "adjusting stock"))?;
            match outcome {
                Ok((product, adjustment)) => Ok((adjustment.into_domain()?, product.into_domain()?)),
                Err(Refusal::NotFound) => Err(StockAdjustmentError::NotFound),
                Err(Refusal::BelowReserved { on_hand, reserved }) => {
                    Err(StockAdjustmentError::BelowReserved { on_hand, reserved })
                }
                // Only reachable when concurrent additions race past the service's check; the port
                // has no outcome for it, and it is not the client's fault as such.
                Err(Refusal::AboveMaximum) => Err(StoreError::Unexpected(anyhow::anyhow!(
                    "the adjustment would take on_hand above {} units",
                    Stock::MAX_UNITS
                ))
                .into()),
                // Transient, like a busy database: worth a retry (503).
                Err(Refusal::Contended) => Err(StoreError::Unavailable(anyhow::anyhow!(
                    "the stock kept changing during {ADJUST_ATTEMPTS} attempts to adjust it"
                ))
                .into()),
            }
        })
    }

    fn list_adjustments(
        &self,
        product: ProductId,
        query: &AdjustmentQuery,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        let mut select = stock_adjustments::table
            .filter(stock_adjustments::product_id.eq(product.to_string()))
            .select(AdjustmentRow::as_select())
            .into_boxed();
        // Newest first by id: UUIDv7 ids order by creation time, and ids made in the same
        // millisecond still have a total order, which is all keyset pagination needs.
        if let Some(after) = query.after {
            select = select.filter(stock_adjustments::id.lt(after.to_string()));
        }
        self.db.with_connection(|conn| {
            let rows = select
                .order(stock_adjustments::id.desc())
                .limit(i64::from(query.limit.get()) + 1)
                .load::<AdjustmentRow>(conn)
                .map_err(|error| query_failed(error, "listing stock adjustments"))?;
            rows.into_iter().map(AdjustmentRow::into_domain).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_conflicts_are_recognised_on_both_backends() {
        let sqlite = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: products.sku".to_owned()),
        );
        assert!(is_sku_taken(&sqlite));
        let id_clash = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: products.id".to_owned()),
        );
        assert!(!is_sku_taken(&id_clash));
    }

    #[test]
    fn folding_is_per_character_and_the_pattern_takes_wildcards_literally() {
        assert_eq!(fold("ÄPFEL Mug"), "äpfel mug");
        // Word-final sigma folds like any other sigma.
        assert_eq!(fold("ΟΔΟΣ"), "οδοσ");
        assert_eq!(fold("Σ"), "σ");
        assert_eq!(contains_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern(""), "%%");
    }
}
