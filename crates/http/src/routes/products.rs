//! `/v1/products` (docs/api.md#products-and-stock): the catalogue, which anyone may read (archived products only
//! admins), the admin's writes, and each product's stock adjustments. Who may do what is
//! decided by `ProductService`; reads are cached as docs/api.md#caching says (`caching`), writes are never
//! cached, and changes require `If-Match` (`RequiredIfMatch`). The admin-only operations take
//! `Authorised<…>` first, so a customer is refused 403 before the path, the query, `If-Match`,
//! `Idempotency-Key` or the body is read (docs/api.md#authentication-and-authorisation:
//! authorisation before validation).

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};

use orderly_domain::product::{AdjustmentQuery, ProductCursor, ProductId};

use crate::ApiState;
use crate::blocking::Needs;
use crate::caching::{self, CachePolicy};
use crate::dto::products::{
    self as dto, AdjustStockRequest, Adjustment, CreateProductRequest, ListProductsParams, ProductResponse,
    StockAdjustmentResponse, UpdateProductRequest,
};
use crate::extract::{
    Authorised, ETag, IdempotencyKeyHeader, IfNoneMatch, OptionalCaller, PathId, RequiredIfMatch, ValidJson,
    ValidQuery, operation,
};
use crate::idempotency::{self, Reply};
use crate::pagination::{self, CursorCodec, CursorScope, IdPageParams};
use crate::problem::ApiError;
use crate::routes::responses::{
    self, CatalogueNotModified, InvalidToken, PreconditionRequired, ProductNotFound, ProductPreconditionFailed,
};

/// List products
///
/// The catalogue, for anyone: no token is needed (but a token that is sent must be valid).
/// Anonymous callers and customers see active products only — `status=archived` gives them an
/// empty page; admins see archived products too and may filter by `status`. Filter by name
/// with `q` (contains, ignoring case) and by availability with `in_stock=true`; order with
/// `sort` (`-` for descending; ties broken by id); page with `limit` and `cursor` (or follow
/// the `Link` header). Walking every page returns every matching product exactly once, also
/// while products are being added.
///
/// Without a token the page may be cached by anyone for 30 seconds
/// (`Cache-Control: public, max-age=30`); with one it is private (`private, no-cache`). Both
/// say `Vary: Authorization`.
#[utoipa::path(
    operation_id = "listProducts",
    tag = "products",
    security((), ("bearer_auth" = [])),
    params(ListProductsParams, pagination::PageParams),
    responses(
        (status = 200, description = "One page of products", body = pagination::PageEnvelope<ProductResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`public, max-age=30` without a token, `private, no-cache` with one"),
                ("Vary" = String, description = "`Authorization`: the answer depends on whether (and which) token is sent"),
            )),
        InvalidToken,
    )
)]
#[get("/products")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: OptionalCaller,
    query: ValidQuery<ListProductsParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (sort, limit, asked) = (dto::sort_of(&query), query.limit, query.clone());
    let actor = caller.actor();
    let page = state.blocking.call(&state.products, move |products| products.list(actor, query)).await?;
    let next_cursor =
        page.next_after(|last| ProductCursor::of(last, asked.sort)).map(|last| dto::next_cursor(&cursors, sort, last));
    let data = page.items.iter().map(ProductResponse::from).collect();
    Ok(responses::page(&req, data, limit, next_cursor, CachePolicy::for_catalogue(caller.is_authenticated())))
}

/// One product
///
/// For anyone (no token needed, but a token that is sent must be valid). An archived product
/// is `not_found` for everyone but admins. Comes with a strong `ETag` (the product's
/// `version`, quoted), which changes with every change of the product, stock included;
/// `If-None-Match` with a current tag is answered 304 without a body.
///
/// Without a token the answer may be cached by anyone for 30 seconds
/// (`Cache-Control: public, max-age=30`); with one it is private (`private, no-cache`). Both
/// say `Vary: Authorization`.
#[utoipa::path(
    operation_id = "getProduct",
    tag = "products",
    security((), ("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The product's id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The product", body = ProductResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of this version of the product, e.g. `\"3\"`"),
                ("Cache-Control" = String, description = "`public, max-age=30` without a token, `private, no-cache` with one"),
                ("Vary" = String, description = "`Authorization`: the answer depends on whether (and which) token is sent"),
            )),
        CatalogueNotModified,
        InvalidToken,
        (status = 404, description = "`not_found`: no such product, or an archived one and the caller is not an admin"),
    )
)]
#[get("/products/{id}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: OptionalCaller,
    id: PathId,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let product =
        state.blocking.call(&state.products, move |products| products.get(actor, ProductId::from_uuid(id.0))).await?;
    let policy = CachePolicy::for_catalogue(caller.is_authenticated());
    Ok(caching::versioned(product.version, &ProductResponse::from(&product), &if_none_match, policy))
}

/// Create a product
///
/// Admins only. The SKU is upper-cased and must be unique (`sku_taken` otherwise); the price
/// must be in the deployment's currency. `initial_stock` (default 0) is recorded as the first
/// entry of the product's stock audit trail; after that, stock changes only through stock
/// adjustments — `stock`, `on_hand`, `reserved` or `version` in the body are unknown fields.
/// Every fault of the body is reported at once. The answer is never cached (`no-store`).
#[utoipa::path(
    operation_id = "createProduct",
    tag = "products",
    security(("bearer_auth" = [])),
    request_body(content = CreateProductRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new product", body = ProductResponse,
            headers(
                ("Location" = String, description = "Path of the new product, `/v1/products/{id}`"),
                ("ETag" = String, description = "Strong entity tag of the new product, `\"1\"`"),
            )),
        (status = 403, description = "`forbidden`: only admins may create products"),
        (status = 409, description = "`sku_taken`: another product has this SKU (`errors[0].pointer` is `/sku`)"),
    )
)]
#[post("/products")]
pub(crate) async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: Authorised<operation::CreateProduct>,
    key: IdempotencyKeyHeader,
    body: ValidJson<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let products = state.products.clone();
    let actor = caller.actor();
    let draft = body.into_inner();
    idempotency::respond(&req, &state, key, Some(actor), Needs::Database, move |repositories| {
        let product = products.within(repositories).create(actor, draft)?;
        Ok(Reply::created(&ProductResponse::from(&product))?
            .location(format!("/v1/products/{}", product.id))
            .etag(ETag::for_version(product.version)))
    })
    .await
}

/// Change a product
///
/// Admins only. A merge patch (`application/json` or `application/merge-patch+json`) of
/// `name`, `description` (`null` removes it), `unit_price` and `status`; fields left out stay
/// as they are, `null` for any other field is a validation fault. Stock cannot be changed here
/// (use stock adjustments): `stock` and its parts are unknown fields.
///
/// `If-Match` is required: send the `ETag` you read. Without it (or with `*`) the answer is
/// 428; if the product has changed since, 412 and nothing is changed — read it again and
/// reapply your change. The comparison is part of the update itself, so of two concurrent
/// changes from the same version exactly one succeeds. The answer carries the new `ETag` and
/// is never cached (`no-store`).
#[utoipa::path(
    operation_id = "updateProduct",
    tag = "products",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The product's id"),
        ("If-Match" = String, Header, description = "The product's ETag as you read it, e.g. `\"3\"`; required"),
    ),
    request_body(content(
        (UpdateProductRequest = "application/json"),
        (UpdateProductRequest = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The updated product", body = ProductResponse,
            headers(("ETag" = String, description = "Strong entity tag of the new version"))),
        (status = 403, description = "`forbidden`: only admins may change products"),
        ProductNotFound,
        ProductPreconditionFailed,
        PreconditionRequired,
    )
)]
#[patch("/products/{id}")]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    caller: Authorised<operation::ChangeProduct>,
    id: PathId,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let changes = body.into_inner();
    let expected_version = if_match.expected_version();
    let product = state
        .blocking
        .call(&state.products, move |products| {
            products.update(actor, ProductId::from_uuid(id.0), changes, expected_version)
        })
        .await?;
    Ok(responses::changed(product.version, &ProductResponse::from(&product)))
}

/// Archive a product
///
/// Admins only. Withdraws the product from the catalogue (it stays readable by admins, and
/// orders keep their snapshot of it); `PATCH` with `"status": "active"` brings it back.
/// Archiving an archived product at its current ETag changes nothing and is 204 again.
/// `If-Match` is required, as for `PATCH`: 428 without it (or with `*`), 412 when stale.
#[utoipa::path(
    operation_id = "archiveProduct",
    tag = "products",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The product's id"),
        ("If-Match" = String, Header, description = "The product's ETag as you read it, e.g. `\"3\"`; required"),
    ),
    responses(
        (status = 204, description = "The product is archived"),
        (status = 403, description = "`forbidden`: only admins may archive products"),
        ProductNotFound,
        ProductPreconditionFailed,
        PreconditionRequired,
    )
)]
#[delete("/products/{id}")]
pub(crate) async fn archive(
    state: web::Data<ApiState>,
    caller: Authorised<operation::ArchiveProduct>,
    id: PathId,
    if_match: RequiredIfMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let expected_version = if_match.expected_version();
    state
        .blocking
        .call(&state.products, move |products| products.archive(actor, ProductId::from_uuid(id.0), expected_version))
        .await?;
    Ok(responses::no_content())
}

/// Adjust stock
///
/// Admins only. Adds `delta` units to the product's `on_hand` (negative to remove), with a
/// reason, and records who did it in the product's audit trail. Adjustments are atomic with
/// the product: concurrent adjustments never lose an update. `on_hand` may never fall below
/// the units `reserved` for pending orders: such a delta is refused with
/// `stock_below_reserved`, whose `errors` entry (pointer `/delta`) says how far it may go.
/// The product's `version` (and so its `ETag`) changes.
///
/// The answer is the adjustment; it has no URL of its own (read it in the product's audit
/// trail), so there is no `Location`. Never cached (`no-store`).
#[utoipa::path(
    operation_id = "createStockAdjustment",
    tag = "products",
    security(("bearer_auth" = [])),
    params(("id" = uuid::Uuid, Path, description = "The product's id")),
    request_body(content = AdjustStockRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The recorded adjustment", body = StockAdjustmentResponse),
        (status = 403, description = "`forbidden`: only admins may adjust stock"),
        ProductNotFound,
        (status = 409, description = "`stock_below_reserved`: `on_hand` would fall below `reserved`; the `errors` entry \
            at `/delta` gives `on_hand` and `reserved`"),
    )
)]
#[post("/products/{id}/stock-adjustments")]
pub(crate) async fn adjust_stock(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: Authorised<operation::AdjustStock>,
    id: PathId,
    key: IdempotencyKeyHeader,
    body: ValidJson<AdjustStockRequest>,
) -> Result<HttpResponse, ApiError> {
    let products = state.products.clone();
    let actor = caller.actor();
    let Adjustment { delta, reason } = body.into_inner();
    idempotency::respond(&req, &state, key, Some(actor), Needs::Database, move |repositories| {
        let (adjustment, _) =
            products.within(repositories).adjust_stock(actor, ProductId::from_uuid(id.0), delta, reason)?;
        Reply::created(&StockAdjustmentResponse::from(&adjustment))
    })
    .await
}

/// List stock adjustments
///
/// Admins only. The product's stock audit trail, newest first: every adjustment with its
/// delta, reason, the resulting `on_hand`, who made it and when (the first entry, reason
/// `initial stock`, records the stock the product was created with). Page with `limit` and
/// `cursor` (or follow the `Link` header); a cursor is valid only for the product it came from.
#[utoipa::path(
    operation_id = "listStockAdjustments",
    tag = "products",
    security(("bearer_auth" = [])),
    params(("id" = uuid::Uuid, Path, description = "The product's id"), pagination::PageParams),
    responses(
        (status = 200, description = "One page of the audit trail, newest first",
            body = pagination::PageEnvelope<StockAdjustmentResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`"),
            )),
        (status = 403, description = "`forbidden`: only admins may read the stock audit trail"),
        ProductNotFound,
    )
)]
#[get("/products/{id}/stock-adjustments")]
pub(crate) async fn list_adjustments(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Authorised<operation::ReadStockAdjustments>,
    id: PathId,
    page: ValidQuery<IdPageParams>,
) -> Result<HttpResponse, ApiError> {
    let product = ProductId::from_uuid(id.0);
    let trail = dto::adjustments_of(product);
    let scope = CursorScope::newest_first(&trail);
    let page = page.into_inner();
    let query = AdjustmentQuery { after: page.after(&cursors, scope)?, limit: page.limit };
    let actor = caller.actor();
    let found =
        state.blocking.call(&state.products, move |products| products.list_adjustments(actor, product, &query)).await?;
    let next_cursor = found.next_after(|last| last.id).map(|id| cursors.after_id(scope, id));
    let data = found.items.iter().map(StockAdjustmentResponse::from).collect();
    Ok(responses::page(&req, data, page.limit, next_cursor, CachePolicy::PrivateRevalidate))
}
