//! `/v1/orders` (docs/api.md#orders): placing an order (which reserves its stock), reading orders, and moving
//! them along the transition table. Who may see or move which order is decided by
//! `OrderService`: someone else's order is `not_found`, never `forbidden`. Reads are private
//! (`private, no-cache`), writes never cached, and a status change requires `If-Match`.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};

use orderly_domain::order::{OrderCursor, OrderId};

use crate::ApiState;
use crate::blocking::Needs;
use crate::caching::{self, CachePolicy};
use crate::dto::orders::{self as dto, ChangeOrderStatusRequest, ListOrdersParams, OrderResponse, PlaceOrderRequest};
use crate::extract::{Caller, ETag, IdempotencyKeyHeader, IfNoneMatch, PathId, RequiredIfMatch, ValidJson, ValidQuery};
use crate::idempotency::{self, Reply};
use crate::pagination::{self, CursorCodec};
use crate::problem::ApiError;
use crate::routes::responses::{self, NotModified, OrderNotFound, OrderPreconditionFailed, PreconditionRequired};

/// Place an order
///
/// Any signed-in user orders for themselves: 1–50 lines, each a product of the catalogue and
/// a quantity of 1–1000, no product twice. Every fault of the body is reported at once, each at
/// its line (`/items/2/quantity`); prices, totals, the customer and the status are set by the
/// service, so naming them is an unknown field.
///
/// Stock is reserved for every line at once, all or nothing: if any line cannot be reserved,
/// nothing is, and the answer is `insufficient_stock` with one `errors` entry per short line
/// (`/items/N/quantity`, "only K available"). A line naming a product that does not exist or
/// is archived is `validation_failed` at `/items/N/product_id` (code `unavailable_product`).
///
/// One customer cannot corner the stock: the units held by the caller's pending orders, this
/// one included, may not exceed a configured cap (admins ordering for themselves included).
/// An order past it is `reservation_limit_exceeded`, with one `errors` entry at `/items` saying
/// how many more units may be reserved; nothing is reserved. Cancelled, expired and confirmed
/// orders hold nothing. The cap is checked after the body's schema and before the stock: an
/// order past the cap gets that answer whatever the stock or the products it names.
///
/// The new order is `pending`, with prices snapshotted and totals computed; its reservation
/// lapses at `expires_at`, when the server cancels it unless it has been confirmed. The answer
/// is never cached (`no-store`).
#[utoipa::path(
    operation_id = "placeOrder",
    tag = "orders",
    security(("bearer_auth" = [])),
    request_body(content = PlaceOrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new, pending order", body = OrderResponse,
            headers(
                ("Location" = String, description = "Path of the new order, `/v1/orders/{id}`"),
                ("ETag" = String, description = "Strong entity tag of the new order, `\"1\"`"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 409, description = "`reservation_limit_exceeded`: the caller's pending orders and this one would \
            hold more units than one customer may reserve at once; nothing is reserved; `errors` has one entry, \
            pointer `/items`, saying how many more units may be reserved. Or `insufficient_stock`: some lines cannot \
            be reserved, so none is; `errors` has one entry per short line, pointer `/items/N/quantity`, saying how \
            many units are available"),
        (status = 422, description = "`validation_failed`: the body breaks the schema or a field rule (`errors` lists \
            every fault with a JSON Pointer, e.g. `/items/2/quantity`), or a line names a product that does not \
            exist or is archived (code `unavailable_product` at `/items/N/product_id`)"),
    )
)]
#[post("/orders")]
pub(crate) async fn place(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    body: ValidJson<PlaceOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let orders = state.orders.clone();
    let actor = caller.actor();
    let request = body.into_inner();
    idempotency::respond(&req, &state, key, Some(actor), Needs::Database, move |repositories| {
        let order = orders.within(repositories).place(actor, request)?;
        Ok(Reply::created(&OrderResponse::from(&order))?
            .location(format!("/v1/orders/{}", order.id))
            .etag(ETag::for_version(order.version)))
    })
    .await
}

/// List orders
///
/// Customers see their own orders, admins everyone's. Filter by `status`; admins may also
/// filter by `customer_id` — a customer who names another customer gets an empty page (never
/// an error, which would reveal that the customer exists). Newest first unless
/// `sort=placed_at`; page with `limit` and `cursor` (or follow the `Link` header). A cursor is
/// only valid with the sort it was issued for. Private (`private, no-cache`).
#[utoipa::path(
    operation_id = "listOrders",
    tag = "orders",
    security(("bearer_auth" = [])),
    params(ListOrdersParams, pagination::PageParams),
    responses(
        (status = 200, description = "One page of orders", body = pagination::PageEnvelope<OrderResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
    )
)]
#[get("/orders")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Caller,
    query: ValidQuery<ListOrdersParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (sort, limit) = (query.sort, query.limit);
    let actor = caller.actor();
    let page = state.blocking.call(&state.orders, move |orders| orders.list(actor, query)).await?;
    let next_cursor = page.next_after(OrderCursor::of).map(|last| dto::next_cursor(&cursors, sort, last));
    let data = page.items.iter().map(OrderResponse::from).collect();
    Ok(responses::page(&req, data, limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// One order
///
/// The owner's or any order for an admin; someone else's order is `not_found`. Comes with a
/// strong `ETag` (the order's `version`, quoted), which changes with every change of the
/// order; `If-None-Match` with a current tag is answered 304 without a body. Private
/// (`private, no-cache`).
#[utoipa::path(
    operation_id = "getOrder",
    tag = "orders",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The order's id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The order", body = OrderResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of this version of the order, e.g. `\"2\"`"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
        NotModified,
        OrderNotFound,
    )
)]
#[get("/orders/{id}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let order = state.blocking.call(&state.orders, move |orders| orders.get(actor, OrderId::from_uuid(id.0))).await?;
    Ok(caching::versioned(order.version, &OrderResponse::from(&order), &if_none_match, CachePolicy::PrivateRevalidate))
}

/// Change an order's status
///
/// Moves the order along the transition table; `status` is the only field. `pending` →
/// `cancelled`: the owner or an admin (the reservation is released). `pending` → `confirmed`:
/// admins (the reserved stock is committed and the invoice issued; `invoice_number` is set).
/// `confirmed` → `shipped` → `delivered`: admins. Any other move is `invalid_transition`; a
/// move of the table that the caller's role may not make is `forbidden`; someone else's order
/// is `not_found`. Accepts `application/json` and `application/merge-patch+json`.
///
/// `If-Match` is required: send the `ETag` you read. Without it (or with `*`) the answer is
/// 428; if the order has changed since, 412 and nothing is changed. The answer carries the new
/// `ETag` and is never cached (`no-store`).
#[utoipa::path(
    operation_id = "changeOrderStatus",
    tag = "orders",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The order's id"),
        ("If-Match" = String, Header, description = "The order's ETag as you read it, e.g. `\"1\"`; required"),
    ),
    request_body(content(
        (ChangeOrderStatusRequest = "application/json"),
        (ChangeOrderStatusRequest = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The order in its new status", body = OrderResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of the new version"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 403, description = "`forbidden`: the move is in the table but not for this role (only admins \
            confirm, ship and deliver)"),
        OrderNotFound,
        (status = 409, description = "`invalid_transition`: the transition table has no move from the order's \
            status to the requested one (`errors[0].pointer` is `/status`)"),
        OrderPreconditionFailed,
        (status = 422, description = "`validation_failed`: `status` is missing or not a status, or another field \
            is sent (only `status` can be changed)"),
        PreconditionRequired,
    )
)]
#[patch("/orders/{id}")]
pub(crate) async fn change_status(
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    if_match: RequiredIfMatch,
    body: ValidJson<ChangeOrderStatusRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let to = body.into_inner();
    let expected_version = if_match.expected_version();
    let order = state
        .blocking
        .call(&state.orders, move |orders| orders.change_status(actor, OrderId::from_uuid(id.0), to, expected_version))
        .await?;
    Ok(responses::changed(order.version, &OrderResponse::from(&order)))
}
