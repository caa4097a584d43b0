//! Payments (docs/api.md#payments): paying an order through the payment provider, reading its attempts, and
//! the provider's signed event notifications. Whose order may be paid, and what each
//! provider answer means, is `PaymentService`'s call; this module only maps its outcomes to
//! statuses (201 paid, 202 still processing, 402 declined, 502 untrustworthy answer, 503
//! provider unreachable).

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};

use orderly_domain::order::OrderId;
use orderly_domain::payment::PaymentId;
use orderly_domain::payment::PaymentQuery;
use orderly_domain::ports::EventRejected;
use orderly_domain::services::{ApplyEventError, EventApplication, PaymentOutcome, PaymentRequestContext};

use crate::ApiState;
use crate::caching::{self, CachePolicy};
use crate::dto::payments::{self as dto, PayOrderRequest, PaymentResponse};
use crate::extract::json::MAX_BODY_BYTES;
use crate::extract::{Caller, IdempotencyKeyHeader, IfNoneMatch, PathId, PathPaymentId, ValidJson, ValidQuery};
use crate::idempotency::{self, Reply};
use crate::middleware::request_id::RequestId;
use crate::pagination::{self, CursorCodec, CursorScope, IdPageParams};
use crate::problem::{ApiError, ProblemCode};
use crate::routes::responses::{self, NotModified, OrderNotFound};

/// The provider's signature header (Stripe's scheme).
const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Pay an order
///
/// The order's owner (or an admin) pays its `total` with a payment method of the provider
/// (`pm_card_visa` and the like: the provider's token, never card numbers). Only a `pending`
/// order can be paid, one attempt at a time.
///
/// - **201** the payment `succeeded`: in the same transaction the order became `confirmed`
///   (its reserved stock committed, its invoice issued).
/// - **202** the payment is `processing`: the provider's answer did not come in time. Orderly
///   finds out by itself (the provider's event, or reconciliation); read the payment to see.
/// - **402** `payment_declined`: the attempt is recorded as `failed` (`errors[0].code` says
///   why, e.g. `card_declined`); the order stays `pending`, and another method may be tried.
/// - **502** `payment_provider_error`: the provider answered something Orderly cannot trust;
///   the attempt stays `processing` and is settled by Orderly.
/// - **503** `payment_provider_unavailable`: the provider could not be reached and nothing
///   was charged; retry later.
///
/// Retries are safe: with the same `Idempotency-Key` the first outcome is replayed (a retry
/// after a crash resumes the same attempt), and every call Orderly makes to the provider
/// carries a key derived from the attempt, so the order is never charged twice.
#[utoipa::path(
    operation_id = "payOrder",
    tag = "payments",
    security(("bearer_auth" = [])),
    params(("id" = uuid::Uuid, Path, description = "The order's id")),
    request_body(content = PayOrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Paid: the payment succeeded and the order is confirmed", body = PaymentResponse,
            headers(
                ("Location" = String, description = "Path of the payment, `/v1/orders/{id}/payments/{payment_id}`"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 202, description = "The outcome is not known yet (`processing`); Orderly settles it by itself",
            body = PaymentResponse,
            headers(
                ("Location" = String, description = "Path of the payment, to read its outcome"),
                ("Cache-Control" = String, description = "`no-store`"),
            )),
        (status = 402, description = "`payment_declined`: the provider declined; the failed attempt is recorded \
            and the order stays pending (`errors[0]` at `/payment_method` says why)"),
        OrderNotFound,
        (status = 409, description = "`invalid_transition`: the order is not `pending`; `payment_in_progress`: \
            another attempt of this order is processing (with `Retry-After`); `payments_disabled`: this deployment \
            has no payment provider (an admin confirms orders instead)"),
        (status = 422, description = "`validation_failed`: `payment_method` is missing or not a token, or another \
            field is sent"),
        (status = 502, description = "`payment_provider_error`: the provider's answer could not be trusted; the \
            attempt stays `processing` and is settled by Orderly"),
        (status = 503, description = "`payment_provider_unavailable`: the provider could not be reached; nothing \
            was charged (with `Retry-After`)",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
#[post("/orders/{id}/payments")]
pub(crate) async fn pay(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    key: IdempotencyKeyHeader,
    body: ValidJson<PayOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let payments = state.payments.clone();
    let actor = caller.actor();
    let method = body.into_inner();
    let order_id = OrderId::from_uuid(id.0);
    let request_id = Some(RequestId::of(&req)).filter(|id| !id.is_empty());
    idempotency::respond_in_phases(&req, &state, key, Some(actor), move |request_key| {
        let context = PaymentRequestContext { request_key, request_id };
        let (reply, payment) = match payments.pay(actor, order_id, method, &context)? {
            PaymentOutcome::Succeeded(payment) => (Reply::created(&PaymentResponse::from(&payment))?, payment),
            PaymentOutcome::Processing(payment) => (Reply::accepted(&PaymentResponse::from(&payment))?, payment),
        };
        Ok(reply.location(format!("/v1/orders/{}/payments/{}", payment.order_id, payment.id)))
    })
    .await
}

/// An order's payments
///
/// Every attempt to pay the order, newest first, for its owner or an admin; someone else's
/// order is `not_found`. Page with `limit` and `cursor` (or follow the `Link` header); a cursor
/// is valid only for the order it came from. Private (`private, no-cache`).
#[utoipa::path(
    operation_id = "listPayments",
    tag = "payments",
    security(("bearer_auth" = [])),
    params(("id" = uuid::Uuid, Path, description = "The order's id"), pagination::PageParams),
    responses(
        (status = 200, description = "One page of the order's payment attempts, newest first",
            body = pagination::PageEnvelope<PaymentResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
        OrderNotFound,
    )
)]
#[get("/orders/{id}/payments")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Caller,
    id: PathId,
    page: ValidQuery<IdPageParams>,
) -> Result<HttpResponse, ApiError> {
    let order = OrderId::from_uuid(id.0);
    let attempts = dto::payments_of(order);
    let scope = CursorScope::newest_first(&attempts);
    let page = page.into_inner();
    let after = page.after(&cursors, scope)?.map(PaymentId::from_uuid);
    let query = PaymentQuery { order_id: order, after, limit: page.limit };
    let actor = caller.actor();
    let found = state.blocking.call(&state.payments, move |payments| payments.list(actor, query)).await?;
    let next_cursor = found.next_after(|last| last.id).map(|id| cursors.after_id(scope, id.as_uuid()));
    let data = found.items.iter().map(PaymentResponse::from).collect();
    Ok(responses::page(&req, data, page.limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// One payment
///
/// One attempt to pay the order, for its owner or an admin. Comes with a strong `ETag` that
/// changes when the attempt is settled; `If-None-Match` with a current tag is answered 304.
/// Private (`private, no-cache`): poll it after a 202 to learn the outcome.
#[utoipa::path(
    operation_id = "getPayment",
    tag = "payments",
    security(("bearer_auth" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The order's id"),
        ("payment_id" = uuid::Uuid, Path, description = "The payment's id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The payment", body = PaymentResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of this state of the payment"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
        NotModified,
        (status = 404, description = "`not_found`: no such payment of this order, or another customer's"),
    )
)]
#[get("/orders/{id}/payments/{payment_id}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: PathId,
    payment_id: PathPaymentId,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let payment = state
        .blocking
        .call(&state.payments, move |payments| {
            payments.get(actor, OrderId::from_uuid(id.0), PaymentId::from_uuid(payment_id.0))
        })
        .await?;
    // Settling changes `updated_at` (and nothing changes twice at one microsecond).
    let version = payment.updated_at.timestamp_micros();
    Ok(caching::versioned(version, &PaymentResponse::from(&payment), &if_none_match, CachePolicy::PrivateRevalidate))
}

/// Provider events
///
/// For the payment provider only: its signed event notifications (Stripe's webhooks, signed
/// with `Stripe-Signature`: HMAC-SHA256 over `timestamp.body` with the endpoint's secret; at
/// most 5 minutes old). A missing, wrong or stale signature is `invalid_signature` and nothing
/// is applied. Each event is applied at most once, whatever the order and number of its
/// deliveries; event types Orderly does not act on are acknowledged and ignored.
#[utoipa::path(
    operation_id = "receivePaymentEvent",
    tag = "payments",
    params(
        ("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256>`"),
    ),
    request_body(content = dto::ProviderEventBody, content_type = "application/json",
        description = "The provider's event, exactly as it sent it (the signature covers these bytes)"),
    responses(
        (status = 200, description = "Received: applied, or a duplicate or an event type Orderly does not act on",
            body = dto::EventReceipt),
        (status = 400, description = "`invalid_signature`: the signature is missing, wrong or too old; \
            `malformed_json`: a correctly signed body that is not a provider event; `invalid_parameter`: a \
            malformed `Idempotency-Key`. Nothing was applied"),
        (status = 409, description = "`payments_disabled`: this deployment has no payment provider"),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB"),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`"),
    )
)]
#[post("/payment-events")]
pub(crate) async fn receive_event(
    req: HttpRequest,
    state: web::Data<ApiState>,
    // Checked like on every POST, never stored: applying an event is idempotent by itself.
    _key: IdempotencyKeyHeader,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if req.content_type() != "application/json" {
        return Err(ApiError::new(ProblemCode::UnsupportedMediaType, "the event must be sent as application/json"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(ProblemCode::PayloadTooLarge, "the event is larger than 64 KiB"));
    }
    // A request without a signature is refused for what it is, whatever the deployment.
    let Some(signature) = req.headers().get(SIGNATURE_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned)
    else {
        return Err(ApiError::from(ApplyEventError::Rejected(EventRejected::InvalidSignature)));
    };
    let applied =
        state.blocking.call(&state.payments, move |payments| payments.apply_event(Some(&signature), &body)).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(response.json(dto::EventReceipt::from(applied)))
}

impl From<EventApplication> for dto::EventReceipt {
    fn from(application: EventApplication) -> Self {
        let outcome = match application {
            EventApplication::Applied => dto::EventOutcome::Applied,
            EventApplication::Duplicate => dto::EventOutcome::Duplicate,
            EventApplication::Ignored => dto::EventOutcome::Ignored,
        };
        Self { received: true, outcome }
    }
}
