//! `/v1/webhook-endpoints` (docs/api.md#webhooks): the admin's webhook endpoints, each endpoint's delivery log,
//! and retrying a delivery. Who may do what, and what an endpoint may be (an allowed
//! destination, known event types), is `WebhookService`'s call; this module maps its outcomes
//! to statuses.
//!
//! Every operation is for admins only, so every handler takes [`WebhookAdmin`] first: a
//! customer is refused 403 before any parameter or body is looked at
//! (docs/api.md#authentication-and-authorisation: authentication, then authorisation, then
//! validation). `If-Match` is optional on `PATCH` and `DELETE` (the contract requires it for
//! products and orders only) and honoured when sent.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};

use orderly_domain::webhook::{DeliveryQuery, WebhookDeliveryId, WebhookEndpointId, WebhookEndpointQuery};

use crate::ApiState;
use crate::blocking::Needs;
use crate::caching::{self, CachePolicy};
use crate::dto::webhooks::{
    self as dto, CreateWebhookEndpointRequest, CreatedWebhookEndpointResponse, DeliveryResponse,
    UpdateWebhookEndpointRequest, WebhookEndpointResponse,
};
use crate::extract::{
    Authorised, ETag, IdempotencyKeyHeader, IfMatch, IfNoneMatch, PathDeliveryId, PathId, ValidJson, ValidQuery,
    operation,
};
use crate::idempotency::{self, Reply};
use crate::pagination::{self, CursorCodec, CursorScope, IdPageParams};
use crate::problem::{ApiError, ProblemDetails};
use crate::routes::responses::{self, EndpointNotFound, EndpointPreconditionFailed, NotModified, WebhooksForbidden};

/// The caller, once the domain has agreed that they may manage webhooks: 401 without a valid
/// token, then 403 for a customer — before the path, the conditional headers, the query or
/// the body are read, so a caller who may not use these operations learns nothing from their
/// validation.
pub type WebhookAdmin = Authorised<operation::ManageWebhooks>;

/// Register a webhook endpoint
///
/// Admins only. From now on, every event of the feed (`GET /v1/events`) whose type the
/// endpoint asks for (`event_types`; absent or `null`: every type) is `POST`ed to `url`,
/// signed per Standard Webhooks 1.0 with the endpoint's `secret`: headers `webhook-id` (the
/// event's id, the same on every attempt), `webhook-timestamp` and `webhook-signature`
/// (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`). Events that occurred before the endpoint
/// was registered are not sent. Any 2xx within the timeout is a success; anything else
/// (redirects included: they are not followed) is retried with exponential back-off for at
/// least 24 hours, then the delivery is `failed`.
///
/// The URL must be `https` (plain `http` only where the deployment allows it), without
/// credentials or fragment, and must not point at a loopback, private, link-local, multicast,
/// unspecified or reserved address (nor `localhost`) unless the deployment allows that
/// network: 422 at `/url` otherwise. A host name is checked again, address by address, at
/// every delivery.
///
/// The answer is the only one that shows the signing `secret`: keep it. With an
/// `Idempotency-Key`, a replay is the first answer again, secret included. Never cached
/// (`no-store`).
#[utoipa::path(
    operation_id = "createWebhookEndpoint",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    request_body(content = CreateWebhookEndpointRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new endpoint, with its signing secret (shown this once)",
            body = CreatedWebhookEndpointResponse,
            headers(
                ("Location" = String, description = "Path of the new endpoint, `/v1/webhook-endpoints/{id}`"),
                ("ETag" = String, description = "Strong entity tag of the new endpoint, `\"1\"`"),
                ("Cache-Control" = String, description = "`no-store`: the answer carries a secret"),
            )),
        WebhooksForbidden,
        (status = 422, description = "`validation_failed`: the body breaks the schema or a rule; `errors` lists \
            every fault with a JSON Pointer. At `/url`: `invalid_format` (not an absolute URL with a host), \
            `too_long` (over 2048 bytes), `invalid_value` (not `https` where only `https` is allowed, or with a \
            user name, password or fragment), `forbidden_destination` (a loopback, private, link-local, \
            multicast, unspecified or reserved address, or `localhost`); at `/event_types`: `too_short` (empty: \
            leave it out for every type); at `/event_types/{i}`: `invalid_value` (not an event type), \
            `duplicate`; at `/description`: `too_long`, `invalid_format` (control characters)",
            body = ProblemDetails, content_type = "application/problem+json",
            example = json!({
                "type": "https://orderly.example/problems/validation-failed",
                "title": "Validation failed",
                "status": 422,
                "detail": "1 field is invalid",
                "instance": "/v1/webhook-endpoints",
                "code": "validation_failed",
                "request_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
                "errors": [{"pointer": "/url", "code": "forbidden_destination",
                    "message": "169.254.169.254 is a link-local address, which webhooks may not target"}]
            })),
    )
)]
#[post("/webhook-endpoints")]
pub(crate) async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    admin: WebhookAdmin,
    key: IdempotencyKeyHeader,
    body: ValidJson<CreateWebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let webhooks = state.webhooks.clone();
    let actor = admin.actor();
    let draft = body.into_inner();
    idempotency::respond(&req, &state, key, Some(actor), Needs::Database, move |repositories| {
        let endpoint = webhooks.within(repositories).create(actor, draft)?;
        Ok(Reply::created(&CreatedWebhookEndpointResponse::from(&endpoint))?
            .location(format!("/v1/webhook-endpoints/{}", endpoint.id))
            .etag(ETag::for_version(endpoint.version)))
    })
    .await
}

/// List webhook endpoints
///
/// Admins only. Every registered endpoint, oldest first, without its secret. Page with
/// `limit` and `cursor` (or follow the `Link` header). Private (`private, no-cache`).
#[utoipa::path(
    operation_id = "listWebhookEndpoints",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(pagination::PageParams),
    responses(
        (status = 200, description = "One page of endpoints, oldest first",
            body = pagination::PageEnvelope<WebhookEndpointResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`"),
            )),
        WebhooksForbidden,
    )
)]
#[get("/webhook-endpoints")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    admin: WebhookAdmin,
    page: ValidQuery<IdPageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner();
    let after = page.after(&cursors, dto::ENDPOINT_LIST)?.map(WebhookEndpointId::from_uuid);
    let query = WebhookEndpointQuery { after, limit: page.limit };
    let actor = admin.actor();
    let found = state.blocking.call(&state.webhooks, move |webhooks| webhooks.list(actor, &query)).await?;
    let next_cursor = found.next_after(|last| last.id).map(|id| cursors.after_id(dto::ENDPOINT_LIST, id.as_uuid()));
    let data = found.items.iter().map(WebhookEndpointResponse::from).collect();
    Ok(responses::page(&req, data, page.limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// One webhook endpoint
///
/// Admins only; without its secret. Comes with a strong `ETag` that changes with every change
/// of the endpoint; `If-None-Match` with a current tag is answered 304 without a body.
/// Private (`private, no-cache`).
#[utoipa::path(
    operation_id = "getWebhookEndpoint",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of this version of the endpoint, e.g. `\"3\"`"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`"),
            )),
        NotModified,
        WebhooksForbidden,
        EndpointNotFound,
    )
)]
#[get("/webhook-endpoints/{id}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    admin: WebhookAdmin,
    id: PathId,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let endpoint = state
        .blocking
        .call(&state.webhooks, move |webhooks| webhooks.get(actor, WebhookEndpointId::from_uuid(id.0)))
        .await?;
    let body = WebhookEndpointResponse::from(&endpoint);
    Ok(caching::versioned(endpoint.version, &body, &if_none_match, CachePolicy::PrivateRevalidate))
}

/// Change a webhook endpoint
///
/// Admins only. A merge patch (`application/json` or `application/merge-patch+json`) of `url`
/// (checked like at creation), `event_types` (`null`: every type again), `description`
/// (`null` removes it) and `active` (`false` disables the endpoint: nothing more is sent to
/// it, and its pending deliveries end `failed`; `true` enables it again). Fields left out stay
/// as they are; an empty patch changes nothing. The secret cannot be changed.
///
/// `If-Match` is optional: send the `ETag` you read to change the endpoint only if nobody
/// changed it since (412 otherwise). The answer carries the new `ETag` and is never cached
/// (`no-store`).
#[utoipa::path(
    operation_id = "updateWebhookEndpoint",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("If-Match" = Option<String>, Header, description = "Apply the change only if the endpoint's ETag is still this one"),
    ),
    request_body(content(
        (UpdateWebhookEndpointRequest = "application/json"),
        (UpdateWebhookEndpointRequest = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The changed endpoint", body = WebhookEndpointResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of the new version"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        WebhooksForbidden,
        EndpointNotFound,
        EndpointPreconditionFailed,
        (status = 422, description = "`validation_failed`: the body breaks the schema or a rule; `errors` lists \
            every fault with a JSON Pointer: `url` and `active` cannot be `null`; the URL's faults are those of \
            creation (`invalid_format`, `too_long`, `invalid_value`, `forbidden_destination` at `/url`), and so \
            are those of `event_types` and `description`"),
    )
)]
#[patch("/webhook-endpoints/{id}")]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    admin: WebhookAdmin,
    id: PathId,
    if_match: IfMatch,
    body: ValidJson<UpdateWebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let changes = body.into_inner();
    let expected_version = if_match.expected_version();
    let endpoint = state
        .blocking
        .call(&state.webhooks, move |webhooks| {
            webhooks.update(actor, WebhookEndpointId::from_uuid(id.0), changes, expected_version)
        })
        .await?;
    Ok(responses::changed(endpoint.version, &WebhookEndpointResponse::from(&endpoint)))
}

/// Remove a webhook endpoint
///
/// Admins only. Removes the endpoint and its delivery log; its pending deliveries are not
/// sent. `If-Match` is optional: send the `ETag` you read to remove it only if nobody changed
/// it since (412 otherwise).
#[utoipa::path(
    operation_id = "deleteWebhookEndpoint",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("If-Match" = Option<String>, Header, description = "Remove the endpoint only if its ETag is still this one"),
    ),
    responses(
        (status = 204, description = "The endpoint and its delivery log are removed",
            headers(("Cache-Control" = String, description = "`no-store`"))),
        WebhooksForbidden,
        EndpointNotFound,
        EndpointPreconditionFailed,
    )
)]
#[delete("/webhook-endpoints/{id}")]
pub(crate) async fn remove(
    state: web::Data<ApiState>,
    admin: WebhookAdmin,
    id: PathId,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let expected_version = if_match.expected_version();
    state
        .blocking
        .call(&state.webhooks, move |webhooks| {
            webhooks.delete(actor, WebhookEndpointId::from_uuid(id.0), expected_version)
        })
        .await?;
    Ok(responses::no_content())
}

/// An endpoint's deliveries
///
/// Admins only. The endpoint's delivery log, newest first: one entry per event sent to it,
/// with its status, the number of attempts made, the latest attempt's response status,
/// duration and error, and when the next attempt is due. Page with `limit` and `cursor` (or
/// follow the `Link` header); a cursor is valid only for the endpoint it came from. Private
/// (`private, no-cache`).
#[utoipa::path(
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id"), pagination::PageParams),
    responses(
        (status = 200, description = "One page of the endpoint's deliveries, newest first",
            body = pagination::PageEnvelope<DeliveryResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`"),
            )),
        WebhooksForbidden,
        EndpointNotFound,
    )
)]
#[get("/webhook-endpoints/{id}/deliveries")]
pub(crate) async fn list_deliveries(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    admin: WebhookAdmin,
    id: PathId,
    page: ValidQuery<IdPageParams>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = WebhookEndpointId::from_uuid(id.0);
    let log = dto::deliveries_of(endpoint);
    let scope = CursorScope::newest_first(&log);
    let page = page.into_inner();
    let after = page.after(&cursors, scope)?.map(WebhookDeliveryId::from_uuid);
    let query = DeliveryQuery { endpoint_id: endpoint, after, limit: page.limit };
    let actor = admin.actor();
    let found = state.blocking.call(&state.webhooks, move |webhooks| webhooks.deliveries(actor, &query)).await?;
    let next_cursor = found.next_after(|last| last.id).map(|id| cursors.after_id(scope, id.as_uuid()));
    let data = found.items.iter().map(DeliveryResponse::from).collect();
    Ok(responses::page(&req, data, page.limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// Retry a delivery
///
/// Admins only. Delivers the event to the endpoint again now: the delivery becomes `pending`
/// and its next attempt is due at once (a delivery still being retried has its next attempt
/// moved to now). The receiver gets the same `webhook-id` as before, so it can tell a repeat.
/// The endpoint must be active: a disabled one is 409 `invalid_transition` (enable it first).
/// Repeating the request is harmless, so an `Idempotency-Key` is checked but not stored.
/// Never cached (`no-store`).
#[utoipa::path(
    operation_id = "retryWebhookDelivery",
    tag = "webhooks",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = uuid::Uuid, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 202, description = "Accepted: the delivery is `pending` again, its next attempt due now",
            body = DeliveryResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        WebhooksForbidden,
        (status = 404, description = "`not_found`: no such endpoint, or no such delivery of it"),
        (status = 409, description = "`invalid_transition`: the endpoint is disabled, so the delivery would not be \
            sent; enable it first (`PATCH` with `\"active\": true`)",
            body = ProblemDetails, content_type = "application/problem+json",
            example = json!({
                "type": "https://orderly.example/problems/invalid-transition",
                "title": "Invalid transition",
                "status": 409,
                "detail": "the webhook endpoint is disabled, so the delivery would not be sent; enable it first \
                    (PATCH it with \"active\": true)",
                "instance": "/v1/webhook-endpoints/0192f5c2-a000-7c3d-8e9f-0a1b2c3d4e90/deliveries/0192f5c2-b000-7c3d-8e9f-0a1b2c3d4ea0/retries",
                "code": "invalid_transition",
                "request_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f"
            })),
    )
)]
#[post("/webhook-endpoints/{id}/deliveries/{delivery_id}/retries")]
pub(crate) async fn retry(
    state: web::Data<ApiState>,
    admin: WebhookAdmin,
    id: PathId,
    delivery_id: PathDeliveryId,
    // Checked like on every POST, not stored: a retry is safe to repeat by itself.
    _key: IdempotencyKeyHeader,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let (endpoint, delivery) = (WebhookEndpointId::from_uuid(id.0), WebhookDeliveryId::from_uuid(delivery_id.0));
    let delivery =
        state.blocking.call(&state.webhooks, move |webhooks| webhooks.retry(actor, endpoint, delivery)).await?;
    let mut response = HttpResponse::Accepted();
    CachePolicy::NoStore.apply(&mut response);
    Ok(response.json(DeliveryResponse::from(&delivery)))
}
