//! Orders on the wire (docs/api.md#orders): the `Order` representation and its lines (shared with invoices),
//! the placement body, the status change body, and the collection's query string with its
//! cursor.
//!
//! The placement body names products and quantities only: prices, totals, the customer and the
//! status are the service's to set, so `unit_price`, `customer_id` or `status` in it are unknown
//! fields (422), and so is anything but `status` in a status change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::order::{
    LineRequest, Order, OrderCursor, OrderId, OrderLine, OrderQuery, OrderRequest, OrderSort, OrderStatus, Quantity,
};
use orderly_domain::pagination::SortDirection;
use orderly_domain::product::ProductId;
use orderly_domain::user::UserId;
use orderly_domain::validation::{FieldViolation, Violations};

use crate::dto::money::MoneyResponse;
use crate::dto::timestamp;
use crate::extract::path::{canonical_uuid, non_canonical_uuid};
use crate::extract::query::Faults;
use crate::extract::{BodyContext, QueryDto, RequestBody};
use crate::pagination::{self, Collection, CursorCodec, CursorPosition};
use crate::problem::FieldError;

// --- representations -------------------------------------------------------------------------

/// Where an order stands. Moves only along the transition table: `pending` → `confirmed`
/// (admin) → `shipped` (admin) → `delivered` (admin), or `pending` → `cancelled` (owner,
/// admin, or the server when the reservation expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderStatus)]
pub enum OrderStatusDto {
    /// Placed; its stock is reserved until `expires_at`.
    Pending,
    /// Paid: the reserved stock is committed and the invoice issued.
    Confirmed,
    /// Cancelled before confirmation; its reservation was released.
    Cancelled,
    /// On its way.
    Shipped,
    /// Arrived.
    Delivered,
}

mirror_enum!(OrderStatusDto <=> OrderStatus { Pending, Confirmed, Cancelled, Shipped, Delivered });

/// One line of an order or invoice, with the product's SKU, name and price as they were when
/// the order was placed (later catalogue changes do not touch it).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OrderLine, example = json!({
    "product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60",
    "sku": "MUG-001",
    "name": "Enamel mug",
    "quantity": 2,
    "unit_price": {"amount": 1250, "currency": "EUR"},
    "line_total": {"amount": 2500, "currency": "EUR"}
}))]
pub struct OrderLineResponse {
    pub product_id: Uuid,
    /// The product's SKU at placement.
    #[schema(pattern = "^[A-Z0-9-]{1,64}$", example = "MUG-001")]
    pub sku: String,
    /// The product's name at placement.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub quantity: i64,
    /// The price of one unit at placement.
    pub unit_price: MoneyResponse,
    /// `unit_price × quantity`.
    pub line_total: MoneyResponse,
}

impl From<&OrderLine> for OrderLineResponse {
    fn from(line: &OrderLine) -> Self {
        Self {
            product_id: line.product_id.as_uuid(),
            sku: line.sku.clone(),
            name: line.name.clone(),
            quantity: line.quantity.get(),
            unit_price: MoneyResponse::from(&line.unit_price),
            line_total: MoneyResponse::from(&line.line_total),
        }
    }
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order, example = json!({
    "id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70",
    "customer_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
    "status": "pending",
    "items": [{
        "product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60",
        "sku": "MUG-001",
        "name": "Enamel mug",
        "quantity": 2,
        "unit_price": {"amount": 1250, "currency": "EUR"},
        "line_total": {"amount": 2500, "currency": "EUR"}
    }],
    "subtotal": {"amount": 2500, "currency": "EUR"},
    "tax": {"amount": 500, "currency": "EUR"},
    "total": {"amount": 3000, "currency": "EUR"},
    "invoice_number": null,
    "version": 1,
    "placed_at": "2026-11-23T18:04:05.123Z",
    "updated_at": "2026-11-23T18:04:05.123Z",
    "expires_at": "2026-11-23T18:34:05.123Z"
}))]
pub struct OrderResponse {
    /// UUIDv7: ids sort by placement time.
    pub id: Uuid,
    /// The customer who placed it.
    pub customer_id: Uuid,
    pub status: OrderStatusDto,
    /// 1–50 lines, each for a different product.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderLineResponse>,
    /// Sum of the lines' `line_total`.
    pub subtotal: MoneyResponse,
    /// `subtotal` × the deployment's tax rate, rounded half-to-even to the minor unit.
    pub tax: MoneyResponse,
    /// `subtotal + tax`.
    pub total: MoneyResponse,
    /// The invoice issued on confirmation (`GET /v1/invoices/{number}`); `null` until then.
    #[schema(
        required = true,
        pattern = "^[1-9][0-9]{3}-([1-9][0-9]{5}|0[1-9][0-9]{4}|00[1-9][0-9]{3}|000[1-9][0-9]{2}|0000[1-9][0-9]|00000[1-9])$",
        example = "2026-000042"
    )]
    pub invoice_number: Option<String>,
    /// Increases with every change; the `ETag` is this number quoted.
    #[schema(minimum = 1, example = 1)]
    pub version: i64,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub placed_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub updated_at: DateTime<Utc>,
    /// While `pending`: when the reservation lapses and the server cancels the order.
    /// `null` once the order has left `pending`.
    #[serde(serialize_with = "timestamp::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true, example = "2026-11-23T18:34:05.123Z")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Order> for OrderResponse {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id.as_uuid(),
            customer_id: order.customer_id.as_uuid(),
            status: order.status.into(),
            items: order.items.iter().map(OrderLineResponse::from).collect(),
            subtotal: MoneyResponse::from(&order.subtotal),
            tax: MoneyResponse::from(&order.tax),
            total: MoneyResponse::from(&order.total),
            invoice_number: order.invoice_number.map(|number| number.to_string()),
            version: order.version,
            placed_at: order.placed_at,
            updated_at: order.updated_at,
            expires_at: order.expires_at,
        }
    }
}

// --- request bodies --------------------------------------------------------------------------

/// `POST /v1/orders`: what to order. Prices, totals and the customer are set by the service.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [
    {"product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60", "quantity": 2},
    {"product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e61", "quantity": 1}
]}))]
pub struct PlaceOrderRequest {
    /// 1–50 lines, each for a different product.
    #[schema(value_type = Vec<PlaceOrderLine>, min_items = 1, max_items = 50)]
    items: Vec<LineAsRead>,
}

/// A line as read from the body. The schema has already reported what is wrong with an
/// unreadable one; the others are still checked, against each other too (no product twice).
enum LineAsRead {
    Line(PlaceOrderLine),
    Unreadable,
}

impl<'de> Deserialize<'de> for LineAsRead {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(serde_json::from_value(value).map_or(Self::Unreadable, Self::Line))
    }
}

/// One line of a new order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60", "quantity": 2}))]
pub struct PlaceOrderLine {
    /// An active product of the catalogue; each product at most once per order.
    product_id: Uuid,
    /// Units to order, 1–1000.
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    quantity: i64,
}

const ITEMS: &str = "items";

impl RequestBody for PlaceOrderRequest {
    type Domain = OrderRequest;

    fn try_into_domain(self, _: &BodyContext) -> Result<OrderRequest, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let unreadable = self.items.iter().any(|line| matches!(line, LineAsRead::Unreadable));
        // (index in the request, line) of every line whose quantity the domain takes.
        let parsed: Vec<(usize, LineRequest)> = self
            .items
            .into_iter()
            .enumerate()
            .filter_map(|(index, line)| {
                let LineAsRead::Line(line) = line else { return None };
                let quantity = Quantity::parse(line.quantity)
                    .map_err(|fault| fault.at("quantity").within(&index.to_string()).within(ITEMS));
                let quantity = violations.check(quantity)?;
                Some((index, LineRequest { product_id: ProductId::from_uuid(line.product_id), quantity }))
            })
            .collect();
        // The rules over the lines (no product twice) are the domain's. They run on the lines
        // that parsed, so a duplicate is reported beside another line's quantity; their
        // pointers are mapped back to the lines' indexes in the request.
        match OrderRequest::new(parsed.iter().map(|(_, line)| *line).collect()) {
            Ok(request) if violations.is_empty() => Ok(request),
            Ok(_) => Err(violations.into_vec()),
            Err(domain) => {
                let reported = unreadable || !violations.is_empty();
                for mut violation in domain {
                    let segment = violation.path.get_mut(1);
                    let line = segment.as_deref().and_then(|segment| segment.parse::<usize>().ok());
                    match segment.zip(line.and_then(|line| parsed.get(line))) {
                        Some((segment, (index, _))) => *segment = index.to_string(),
                        // The number of lines, already checked on the request as sent.
                        None if reported => continue,
                        None => {}
                    }
                    violations.push(violation);
                }
                Err(violations.into_vec())
            }
        }
    }
}

/// `PATCH /v1/orders/{id}`: the status to move the order to; nothing else of an order can be
/// changed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "cancelled"}))]
pub struct ChangeOrderStatusRequest {
    /// The new status, a move of the transition table: `cancelled` (owner or admin, from
    /// `pending`), `confirmed` (admin, from `pending`), `shipped` (admin, from `confirmed`),
    /// `delivered` (admin, from `shipped`).
    status: OrderStatusDto,
}

impl RequestBody for ChangeOrderStatusRequest {
    type Domain = OrderStatus;

    fn try_into_domain(self, _: &BodyContext) -> Result<OrderStatus, Vec<FieldViolation>> {
        Ok(self.status.into())
    }
}

// --- the collection's query string -----------------------------------------------------------

/// The collection in cursors, with its sorts (`OrderSort::default()`: `-placed_at`).
const ORDERS: Collection<OrderSort> = Collection {
    name: "orders",
    sorts: &[("-placed_at", OrderSort(SortDirection::Descending)), ("placed_at", OrderSort(SortDirection::Ascending))],
};

sort_parameter!(OrderSortParameter as "OrderSort", "Sort orders of `GET /v1/orders`. Ties are broken by id.", ORDERS.names());

/// `GET /v1/orders` filters and sort (pagination: `crate::pagination::PageParams`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersParams {
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatusDto>)]
    status: Option<String>,
    /// Admins: only this customer's orders. Customers always get their own orders only, so
    /// another customer's id gives them an empty page (and their own id changes nothing).
    #[param(value_type = Option<Uuid>)]
    customer_id: Option<String>,
    /// Order of the collection (default `-placed_at`, newest first); a cursor is only valid
    /// with the sort it was issued for.
    #[param(value_type = Option<OrderSortParameter>)]
    sort: Option<String>,
    #[param(ignore)]
    limit: Option<String>,
    #[param(ignore)]
    cursor: Option<String>,
}

impl QueryDto for ListOrdersParams {
    type Domain = OrderQuery;

    fn try_into_domain(self, cursors: &CursorCodec) -> Result<OrderQuery, Vec<FieldError>> {
        let mut faults = Faults::default();
        let status = faults.filter("status", self.status.as_deref(), OrderStatus::parse);
        // Canonical spelling only, as for ids in paths: one filter value, one URL.
        let customer_id = self
            .customer_id
            .as_deref()
            .map(|raw| canonical_uuid(raw).map(UserId::from_uuid).ok_or_else(|| non_canonical_uuid("customer_id")));
        let customer_id = faults.check(customer_id.transpose());
        let sort = faults.check(ORDERS.parse_sort(self.sort.as_deref()));
        let limit = faults.check(pagination::parse_limit(self.limit.as_deref()));
        // A cursor can only be checked against a known sort.
        let after =
            sort.and_then(|sort| faults.check(cursors.after(ORDERS.scope(sort), self.cursor.as_deref(), order_cursor)));
        faults.finish(|| {
            Some(OrderQuery { status: status?, customer_id: customer_id?, sort: sort?, after: after?, limit: limit? })
        })
    }
}

fn order_cursor(position: CursorPosition) -> Result<OrderCursor, FieldError> {
    Ok(OrderCursor { placed_at: pagination::read_timestamp_key(&position.key)?, id: OrderId::from_uuid(position.id) })
}

/// The cursor of the page after `last`, in `sort` order.
pub fn next_cursor(cursors: &CursorCodec, sort: OrderSort, last: OrderCursor) -> String {
    let position = CursorPosition { key: pagination::timestamp_key(last.placed_at), id: last.id.as_uuid() };
    cursors.encode(ORDERS.scope(sort), &position)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;
    use crate::extract::body_schema::tests::{pairs, pointers_and_codes};

    fn context() -> BodyContext {
        BodyContext {
            currency: orderly_domain::product::Currency::parse("EUR").unwrap(),
            destinations: orderly_domain::webhook::DestinationPolicy::default(),
        }
    }

    /// Every fault of `body` as the body extractor reports it: the published schema's, then
    /// the domain's.
    fn faults(body: Value) -> Vec<(String, String)> {
        let schemas = crate::extract::body_schema::BodySchemas::for_currency("EUR");
        let bytes = serde_json::to_vec(&body).unwrap();
        let problem = crate::extract::json::parse::<PlaceOrderRequest>(&bytes, &context(), &schemas).unwrap_err();
        pointers_and_codes(problem.errors())
    }

    #[test]
    fn every_fault_of_every_line_is_listed_at_its_index() {
        let id = Uuid::now_v7().to_string();
        let found = faults(json!({"items": [
            {"product_id": "nope", "quantity": 1},
            {"product_id": id, "quantity": 0},
            {"product_id": Uuid::now_v7().to_string(), "quantity": 2},
            {"product_id": id, "quantity": 3, "unit_price": 1},
            {"quantity": "x"},
            7,
        ]}));
        assert_eq!(
            found,
            pairs(&[
                ("/items/0/product_id", "invalid_format"),
                ("/items/1/quantity", "out_of_range"),
                ("/items/3/unit_price", "unknown_field"),
                ("/items/4/product_id", "required"),
                ("/items/4/quantity", "invalid_type"),
                ("/items/5", "invalid_type"),
            ])
        );
    }

    #[test]
    fn duplicates_keep_their_index_beside_other_faults() {
        let id = Uuid::now_v7().to_string();
        let found = faults(json!({"items": [
            {"product_id": id, "quantity": 1},
            {"product_id": Uuid::now_v7().to_string(), "quantity": 0},
            {"product_id": id, "quantity": 3},
        ]}));
        assert_eq!(found, pairs(&[("/items/1/quantity", "out_of_range"), ("/items/2/product_id", "duplicate")]));
    }

    #[test]
    fn a_request_needs_one_to_fifty_lines() {
        assert_eq!(faults(json!({"items": []})), pairs(&[("/items", "invalid_length")]));
        assert_eq!(faults(json!({})), pairs(&[("/items", "required")]));
        let line = || json!({"product_id": Uuid::now_v7().to_string(), "quantity": 1});
        let lines: Vec<Value> = (0..51).map(|_| line()).collect();
        assert_eq!(faults(json!({"items": lines})), pairs(&[("/items", "invalid_length")]));
        let lines: Vec<Value> = (0..50).map(|_| line()).collect();
        let schemas = crate::extract::body_schema::BodySchemas::for_currency("EUR");
        let bytes = serde_json::to_vec(&json!({"items": lines})).unwrap();
        let request = crate::extract::json::parse::<PlaceOrderRequest>(&bytes, &context(), &schemas).unwrap();
        assert_eq!(request.lines().len(), 50);
    }

    #[test]
    fn every_sort_name_round_trips() {
        for &(name, sort) in ORDERS.sorts {
            assert_eq!(ORDERS.parse_sort(Some(name)), Ok(sort));
            assert_eq!(ORDERS.scope(sort).sort, name);
        }
        assert_eq!(ORDERS.parse_sort(None), Ok(OrderSort(SortDirection::Descending)));
        assert_eq!(ORDERS.scope(OrderSort(SortDirection::Descending)).sort, "-placed_at");
        let refused = ORDERS.parse_sort(Some("-created_at")).unwrap_err();
        assert_eq!(refused.message, "must be one of: -placed_at, placed_at");
    }

    #[test]
    fn cursors_round_trip_through_their_sort() {
        let codec = CursorCodec::new(b"k");
        let last = OrderCursor { placed_at: Utc.timestamp_micros(1_795_457_045_123_456).unwrap(), id: OrderId::new() };
        for sort in [OrderSort(SortDirection::Descending), OrderSort(SortDirection::Ascending)] {
            let cursor = next_cursor(&codec, sort, last);
            assert_eq!(codec.after(ORDERS.scope(sort), Some(&cursor), order_cursor), Ok(Some(last)));
        }
    }
}
