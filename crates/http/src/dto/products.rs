//! Products and stock on the wire (docs/api.md#products-and-stock): the `Product` and `StockAdjustment`
//! representations, the create, merge-patch and adjustment bodies, and the query strings of
//! the catalogue and of a product's audit trail, with their cursors.
//!
//! Stock is not a field of any product body: `stock`, `reserved`, `on_hand` or `version` in a
//! create or patch body is an unknown field (422), so stock changes only through adjustments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::pagination::SortDirection;
use orderly_domain::product::{
    AdjustmentReason, Description, Money, Product, ProductCursor, ProductId, ProductName, ProductQuery, ProductSortKey,
    ProductStatus, ProductUpdate, Sku, Stock, StockAdjustment, StockDelta,
};
use orderly_domain::services::ProductDraft;
use orderly_domain::validation::{FieldViolation, Violations};

use crate::dto::money::{MoneyInput, MoneyResponse};
use crate::dto::{PatchField, timestamp};
use crate::extract::query::{self, Faults};
use crate::extract::{BodyContext, QueryDto, RequestBody};
use crate::pagination::{self, Collection, CursorCodec, CursorPosition};
use crate::problem::FieldError;

// --- representations -------------------------------------------------------------------------

/// Whether a product can be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProductStatus)]
pub enum ProductStatusDto {
    /// In the catalogue.
    Active,
    /// Withdrawn: visible to admins only; orders keep their snapshot.
    Archived,
}

mirror_enum!(ProductStatusDto <=> ProductStatus { Active, Archived });

/// A product's stock. Changed only through stock adjustments (and by orders).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Stock, example = json!({"on_hand": 10, "reserved": 4, "available": 6}))]
pub struct StockResponse {
    /// Units in the warehouse.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub on_hand: i64,
    /// Units promised to pending orders; never more than `on_hand`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub reserved: i64,
    /// `on_hand - reserved`: what can still be ordered.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub available: i64,
}

impl From<Stock> for StockResponse {
    fn from(stock: Stock) -> Self {
        Self { on_hand: stock.on_hand(), reserved: stock.reserved(), available: stock.available() }
    }
}

/// A product of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Product, example = json!({
    "id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60",
    "sku": "MUG-001",
    "name": "Enamel mug",
    "description": "Holds 350 ml.",
    "unit_price": {"amount": 1250, "currency": "EUR"},
    "stock": {"on_hand": 10, "reserved": 4, "available": 6},
    "status": "active",
    "version": 3,
    "created_at": "2026-11-23T18:04:05.123Z",
    "updated_at": "2026-11-23T18:10:00.000Z"
}))]
pub struct ProductResponse {
    /// UUIDv7: ids sort by creation time.
    pub id: Uuid,
    /// Unique; upper-cased letters, digits and `-`.
    #[schema(pattern = "^[A-Z0-9-]{1,64}$", example = "MUG-001")]
    pub sku: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `null` when the product has none.
    #[schema(required = true, max_length = 2000, example = "Holds 350 ml.")]
    pub description: Option<String>,
    pub unit_price: MoneyResponse,
    pub stock: StockResponse,
    pub status: ProductStatusDto,
    /// Increases with every change, stock changes included; the `ETag` is this number quoted.
    #[schema(minimum = 1, example = 3)]
    pub version: i64,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:10:00.000Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Product> for ProductResponse {
    fn from(product: &Product) -> Self {
        Self {
            id: product.id.as_uuid(),
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            description: product.description.as_ref().map(|description| description.as_str().to_owned()),
            unit_price: MoneyResponse::from(&product.unit_price),
            stock: product.stock.into(),
            status: product.status.into(),
            version: product.version,
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

/// One entry of a product's stock audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StockAdjustment, example = json!({
    "id": "0192f5c2-6000-7c3d-8e9f-0a1b2c3d4e61",
    "product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60",
    "delta": -2,
    "reason": "2 broken in the warehouse",
    "on_hand_after": 8,
    "actor_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
    "created_at": "2026-11-23T18:20:00.000Z"
}))]
pub struct StockAdjustmentResponse {
    /// UUIDv7: ids sort by creation time.
    pub id: Uuid,
    pub product_id: Uuid,
    /// Units added to (positive) or removed from (negative) `on_hand`; never 0.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000, example = -2)]
    pub delta: i64,
    /// Why the stock changed.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// `on_hand` right after this change.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub on_hand_after: i64,
    /// The admin who made the change.
    pub actor_id: Uuid,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:20:00.000Z")]
    pub created_at: DateTime<Utc>,
}

impl From<&StockAdjustment> for StockAdjustmentResponse {
    fn from(adjustment: &StockAdjustment) -> Self {
        Self {
            id: adjustment.id,
            product_id: adjustment.product_id.as_uuid(),
            delta: adjustment.delta,
            reason: adjustment.reason.as_str().to_owned(),
            on_hand_after: adjustment.on_hand_after,
            actor_id: adjustment.actor_id.as_uuid(),
            created_at: adjustment.created_at,
        }
    }
}

// --- request bodies --------------------------------------------------------------------------

/// `POST /v1/products`. Stock beyond `initial_stock` is changed through stock adjustments.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "sku": "MUG-001",
    "name": "Enamel mug",
    "description": "Holds 350 ml.",
    "unit_price": {"amount": 1250, "currency": "EUR"},
    "initial_stock": 10
}))]
pub struct CreateProductRequest {
    /// Unique stock-keeping unit, 1–64 letters, digits and `-`; stored upper-cased (`mug-1`
    /// and `MUG-1` are the same SKU).
    #[schema(example = "MUG-001")]
    sku: String,
    /// 1–200 characters after trimming, no control characters.
    #[schema(min_length = 1)]
    name: String,
    /// Up to 2000 characters; line breaks and tabs allowed. Absent or `null`: none.
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// The price of one unit, in the deployment's currency.
    unit_price: MoneyInput,
    /// Units on hand at creation, 0–1,000,000,000 (default 0); recorded as the first entry of
    /// the stock audit trail.
    #[schema(required = false, minimum = 0, maximum = 1_000_000_000, default = 0)]
    #[serde(default)]
    initial_stock: i64,
}

impl RequestBody for CreateProductRequest {
    type Domain = ProductDraft;

    fn try_into_domain(self, context: &BodyContext) -> Result<ProductDraft, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let sku = violations.check(Sku::parse(&self.sku).map_err(|fault| fault.at("sku")));
        let name = violations.check(ProductName::parse(&self.name).map_err(|fault| fault.at("name")));
        let description = self.description.and_then(|description| {
            violations.check(Description::parse(&description).map_err(|fault| fault.at("description")))
        });
        let unit_price = parse_price(self.unit_price, context, &mut violations);
        let initial_stock = self.initial_stock;
        if Stock::new(initial_stock, 0).is_err() {
            violations.push(FieldViolation::new(
                "initial_stock",
                "out_of_range",
                format!("must be between 0 and {}", Stock::MAX_UNITS),
            ));
        }
        match (sku, name, unit_price) {
            (Some(sku), Some(name), Some(unit_price)) if violations.is_empty() => {
                Ok(ProductDraft { sku, name, description, unit_price, initial_stock })
            }
            _ => Err(violations.into_vec()),
        }
    }
}

/// `unit_price`, every fault of it recorded.
fn parse_price(input: MoneyInput, context: &BodyContext, violations: &mut Violations) -> Option<Money> {
    match input.parse("unit_price", &context.currency) {
        Ok(money) => Some(money),
        Err(faults) => {
            faults.into_iter().for_each(|fault| violations.push(fault));
            None
        }
    }
}

/// `PATCH /v1/products/{id}`, a merge patch: fields left out stay as they are. Stock is not
/// here: it changes only through stock adjustments.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Enamel mug, blue", "description": null, "unit_price": {"amount": 1390, "currency": "EUR"}}))]
pub struct UpdateProductRequest {
    /// New name, 1–200 characters; cannot be `null`.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1)]
    name: PatchField<String>,
    /// New description, up to 2000 characters; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2000)]
    description: PatchField<String>,
    /// New price, in the deployment's currency; cannot be `null`.
    #[serde(default)]
    #[schema(value_type = MoneyInput)]
    unit_price: PatchField<MoneyInput>,
    /// `archived` withdraws the product (like `DELETE`), `active` brings it back; cannot be
    /// `null`.
    #[serde(default)]
    #[schema(value_type = ProductStatusDto)]
    status: PatchField<ProductStatusDto>,
}

impl RequestBody for UpdateProductRequest {
    type Domain = ProductUpdate;

    fn try_into_domain(self, context: &BodyContext) -> Result<Self::Domain, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let name = self
            .name
            .into_option()
            .and_then(|name| violations.check(ProductName::parse(&name).map_err(|fault| fault.at("name"))));
        let description = match self.description {
            PatchField::Absent => None,
            PatchField::Null => Some(None),
            PatchField::Set(raw) => {
                violations.check(Description::parse(&raw).map_err(|fault| fault.at("description"))).map(Some)
            }
        };
        let unit_price = self.unit_price.into_option().and_then(|input| parse_price(input, context, &mut violations));
        let status = self.status.into_option().map(ProductStatus::from);
        if violations.is_empty() {
            Ok(ProductUpdate { name, description, unit_price, status })
        } else {
            Err(violations.into_vec())
        }
    }
}

/// `POST /v1/products/{id}/stock-adjustments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"delta": -2, "reason": "2 broken in the warehouse"}))]
pub struct AdjustStockRequest {
    /// Units to add (positive) or remove (negative); not 0, at most ±1,000,000,000. `on_hand`
    /// may never fall below `reserved`.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000, example = -2)]
    delta: i64,
    /// Why, for the audit trail: 1–500 characters after trimming.
    #[schema(min_length = 1)]
    reason: String,
}

/// What an adjustment hands the domain.
#[derive(Debug)]
pub struct Adjustment {
    pub delta: StockDelta,
    pub reason: AdjustmentReason,
}

impl RequestBody for AdjustStockRequest {
    type Domain = Adjustment;

    fn try_into_domain(self, _: &BodyContext) -> Result<Adjustment, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let delta = violations.check(StockDelta::parse(self.delta).map_err(|fault| fault.at("delta")));
        let reason = violations.check(AdjustmentReason::parse(&self.reason).map_err(|fault| fault.at("reason")));
        match (delta, reason) {
            (Some(delta), Some(reason)) if violations.is_empty() => Ok(Adjustment { delta, reason }),
            _ => Err(violations.into_vec()),
        }
    }
}

// --- the catalogue's query string ------------------------------------------------------------

/// A sort of the catalogue: key and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductSort {
    pub key: ProductSortKey,
    pub direction: SortDirection,
}

impl ProductSort {
    const fn by(key: ProductSortKey, direction: SortDirection) -> Self {
        Self { key, direction }
    }
}

impl Default for ProductSort {
    fn default() -> Self {
        Self::by(ProductSortKey::CreatedAt, SortDirection::Ascending)
    }
}

/// The collection in cursors, with its sorts (`ProductSort::default()`: `created_at`).
const PRODUCTS: Collection<ProductSort> = Collection {
    name: "products",
    sorts: &[
        ("created_at", ProductSort::by(ProductSortKey::CreatedAt, SortDirection::Ascending)),
        ("-created_at", ProductSort::by(ProductSortKey::CreatedAt, SortDirection::Descending)),
        ("name", ProductSort::by(ProductSortKey::Name, SortDirection::Ascending)),
        ("-name", ProductSort::by(ProductSortKey::Name, SortDirection::Descending)),
        ("price", ProductSort::by(ProductSortKey::Price, SortDirection::Ascending)),
        ("-price", ProductSort::by(ProductSortKey::Price, SortDirection::Descending)),
    ],
};

sort_parameter!(
    ProductSortParameter as "ProductSort",
    "Sort orders of `GET /v1/products`; `-` means descending. Ties are broken by id.",
    PRODUCTS.names()
);

/// Longest `q`, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// `GET /v1/products` filters and sort (pagination: `crate::pagination::PageParams`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProductsParams {
    /// Only products whose name contains this text, ignoring case; 1–200 characters.
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, example = "mug")]
    q: Option<String>,
    /// `true`: only products with units available (`stock.available > 0`). `false`, like
    /// leaving it out, does not filter.
    #[param(value_type = Option<bool>)]
    in_stock: Option<String>,
    /// Admins: only products with this status (admins see both when it is left out). Everyone
    /// else always gets active products only, so `archived` gives them an empty page.
    #[param(value_type = Option<ProductStatusDto>)]
    status: Option<String>,
    /// Order of the collection; a cursor is only valid with the sort it was issued for.
    #[param(value_type = Option<ProductSortParameter>)]
    sort: Option<String>,
    #[param(ignore)]
    limit: Option<String>,
    #[param(ignore)]
    cursor: Option<String>,
}

impl QueryDto for ListProductsParams {
    type Domain = ProductQuery;

    fn try_into_domain(self, cursors: &CursorCodec) -> Result<ProductQuery, Vec<FieldError>> {
        let mut faults = Faults::default();
        let name_contains = faults.check(self.q.map(search_text).transpose());
        let in_stock = faults.filter("in_stock", self.in_stock.as_deref(), query::boolean);
        let status = faults.filter("status", self.status.as_deref(), ProductStatus::parse);
        let sort = faults.check(PRODUCTS.parse_sort(self.sort.as_deref()));
        let limit = faults.check(pagination::parse_limit(self.limit.as_deref()));
        // A cursor can only be checked against a known sort.
        let after = sort.and_then(|sort| {
            let read = |position| product_cursor(sort, position);
            faults.check(cursors.after(PRODUCTS.scope(sort), self.cursor.as_deref(), read))
        });
        faults.finish(|| {
            let sort = sort?;
            Some(ProductQuery {
                status: status?,
                name_contains: name_contains?,
                // `false`, like leaving it out, does not filter.
                in_stock: in_stock?.unwrap_or(false),
                sort: sort.key,
                direction: Some(sort.direction),
                after: after?,
                limit: limit?,
            })
        })
    }
}

/// `q`: 1–200 characters, no control characters.
fn search_text(q: String) -> Result<String, FieldError> {
    let length = |code| FieldError::parameter("q", code, "must be 1 to 200 characters");
    if q.is_empty() {
        Err(length("too_short"))
    } else if q.chars().count() > MAX_QUERY_CHARS {
        Err(length("too_long"))
    } else if q.chars().any(char::is_control) {
        Err(FieldError::parameter("q", "invalid_characters", "must not contain control characters"))
    } else {
        Ok(q)
    }
}

/// The sort a parsed query asks for.
pub fn sort_of(query: &ProductQuery) -> ProductSort {
    ProductSort { key: query.sort, direction: query.direction.unwrap_or(SortDirection::Ascending) }
}

fn product_cursor(sort: ProductSort, position: CursorPosition) -> Result<ProductCursor, FieldError> {
    let id = ProductId::from_uuid(position.id);
    Ok(match sort.key {
        ProductSortKey::CreatedAt => ProductCursor::CreatedAt(pagination::read_timestamp_key(&position.key)?, id),
        ProductSortKey::Name => ProductCursor::Name(position.key, id),
        ProductSortKey::Price => ProductCursor::Price(pagination::read_integer_key(&position.key)?, id),
    })
}

/// The cursor of the page after `last`, in `sort` order.
pub fn next_cursor(cursors: &CursorCodec, sort: ProductSort, last: ProductCursor) -> String {
    let (key, id) = match last {
        ProductCursor::CreatedAt(created_at, id) => (pagination::timestamp_key(created_at), id),
        ProductCursor::Name(name, id) => (name, id),
        ProductCursor::Price(amount, id) => (amount.to_string(), id),
    };
    cursors.encode(PRODUCTS.scope(sort), &CursorPosition { key, id: id.as_uuid() })
}

// --- a product's audit trail -----------------------------------------------------------------

/// The cursor collection of one product's audit trail, newest first (its query string is
/// `crate::pagination::IdPageParams`): a cursor of another product's trail is refused.
pub fn adjustments_of(product: ProductId) -> String {
    format!("products/{product}/stock-adjustments")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn every_sort_name_round_trips() {
        for &(name, sort) in PRODUCTS.sorts {
            assert_eq!(PRODUCTS.parse_sort(Some(name)), Ok(sort));
            assert_eq!(PRODUCTS.scope(sort).sort, name);
        }
        assert_eq!(PRODUCTS.parse_sort(None), Ok(ProductSort::default()));
        assert_eq!(PRODUCTS.scope(ProductSort::default()).sort, "created_at");
        for bad in ["", "-", "--name", "Name", "price ", "+price", "stock"] {
            let refused = PRODUCTS.parse_sort(Some(bad)).unwrap_err();
            assert_eq!(refused.message, "must be one of: created_at, -created_at, name, -name, price, -price");
        }
        assert_eq!(
            PRODUCTS.parse_sort(Some("-price")),
            Ok(ProductSort { key: ProductSortKey::Price, direction: SortDirection::Descending })
        );
    }

    #[test]
    fn every_cursor_kind_round_trips_through_its_sort() {
        let codec = CursorCodec::new(b"k");
        let id = ProductId::new();
        let created_at = Utc.timestamp_micros(1_795_457_045_123_456).unwrap();
        for (sort, last) in [
            ("-created_at", ProductCursor::CreatedAt(created_at, id)),
            ("name", ProductCursor::Name("Émaille\nmug".to_owned(), id)),
            ("-price", ProductCursor::Price(1250, id)),
        ] {
            let sort = PRODUCTS.parse_sort(Some(sort)).unwrap();
            let cursor = next_cursor(&codec, sort, last.clone());
            let decoded = codec.after(PRODUCTS.scope(sort), Some(&cursor), |position| product_cursor(sort, position));
            assert_eq!(decoded, Ok(Some(last)));
        }
    }
}
