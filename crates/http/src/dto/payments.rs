//! Payments on the wire (docs/api.md#payments): the `Payment` representation, the body that pays an order,
//! and the query string of an order's payment attempts.
//!
//! The body names the payment method only: the amount is the order's total and the currency
//! the deployment's, both the service's to set, so naming them is an unknown field (422).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use orderly_domain::order::OrderId;
use orderly_domain::payment::{Payment, PaymentFailure, PaymentMethodToken, PaymentStatus};
use orderly_domain::validation::FieldViolation;

use crate::dto::money::MoneyResponse;
use crate::dto::timestamp;
use crate::extract::{BodyContext, RequestBody};

/// Where a payment attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PaymentStatus)]
pub enum PaymentStatusDto {
    /// Sent to the provider; the outcome is not known yet. Orderly settles it by itself.
    Processing,
    /// Paid: the order is confirmed.
    Succeeded,
    /// Declined, or never completed; nothing was charged. `failure` says why.
    Failed,
    /// Paid for an order that had left `pending` meanwhile, and refunded.
    Refunded,
}

mirror_enum!(PaymentStatus => PaymentStatusDto { Processing, Succeeded, Failed, Refunded });

/// Why an attempt failed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PaymentFailure, example = json!({"code": "card_declined", "message": "Your card was declined."}))]
pub struct PaymentFailureResponse {
    /// Stable key: `card_declined`, `expired_card`, `incorrect_cvc`, `insufficient_funds`,
    /// `authentication_required`, `payment_canceled`, `provider_unavailable` (nothing was
    /// sent), `not_completed` (the attempt was abandoned before it was confirmed).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl From<&PaymentFailure> for PaymentFailureResponse {
    fn from(failure: &PaymentFailure) -> Self {
        Self { code: failure.code.clone(), message: failure.message.clone() }
    }
}

/// One attempt to pay an order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Payment, example = json!({
    "id": "0192f5c2-9000-7c3d-8e9f-0a1b2c3d4e80",
    "order_id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70",
    "status": "succeeded",
    "amount": {"amount": 3000, "currency": "EUR"},
    "provider": "stripe",
    "provider_reference": "pi_1N2b3C4d5E6f7G8h",
    "failure": null,
    "created_at": "2026-11-23T18:05:00.000Z",
    "updated_at": "2026-11-23T18:05:01.250Z"
}))]
pub struct PaymentResponse {
    /// UUIDv7; also the idempotency key of every call Orderly makes to the provider for it.
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatusDto,
    /// The order's total when the attempt was made.
    pub amount: MoneyResponse,
    /// The payment provider that handled it, e.g. `stripe`.
    #[schema(example = "stripe")]
    pub provider: String,
    /// The provider's id for the charge (Stripe: the PaymentIntent id); `null` until known.
    #[schema(required = true)]
    pub provider_reference: Option<String>,
    /// Why it failed; `null` unless `status` is `failed`.
    #[schema(required = true)]
    pub failure: Option<PaymentFailureResponse>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:05:00.000Z")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:05:01.250Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentResponse {
    fn from(payment: &Payment) -> Self {
        Self {
            id: payment.id.as_uuid(),
            order_id: payment.order_id.as_uuid(),
            status: payment.status.into(),
            amount: MoneyResponse::from(&orderly_domain::product::Money::from_stored(
                payment.amount,
                payment.currency.clone(),
            )),
            provider: payment.provider.clone(),
            provider_reference: payment.provider_reference.clone(),
            failure: payment.failure.as_ref().map(PaymentFailureResponse::from),
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }
    }
}

/// `POST /v1/orders/{id}/payments`: how to pay. The amount is the order's total.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_method": "pm_card_visa"}))]
pub struct PayOrderRequest {
    /// The payment provider's token for the payment method (e.g. Stripe's `pm_card_visa`, or
    /// a `pm_…` id made by the provider's client-side library). Orderly never sees card
    /// numbers.
    #[schema(pattern = "^[A-Za-z0-9_]{1,255}$", example = "pm_card_visa")]
    payment_method: String,
}

impl RequestBody for PayOrderRequest {
    type Domain = PaymentMethodToken;

    fn try_into_domain(self, _: &BodyContext) -> Result<PaymentMethodToken, Vec<FieldViolation>> {
        PaymentMethodToken::parse(&self.payment_method).map_err(|fault| vec![fault.at("payment_method")])
    }
}

/// The cursor collection of one order's payment attempts, newest first (its query string is
/// `crate::pagination::IdPageParams`): a cursor of another order's attempts is refused.
pub fn payments_of(order: OrderId) -> String {
    format!("orders/{order}/payments")
}

/// A provider event as Stripe sends it (`POST /v1/payment-events`). The provider owns this
/// format: other members are allowed, and the signature covers the exact bytes sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ProviderEvent, example = json!({
    "id": "evt_1N2b3C4d5E6f7G8h",
    "object": "event",
    "type": "payment_intent.succeeded",
    "data": {"object": {
        "id": "pi_1N2b3C4d5E6f7G8h", "object": "payment_intent", "status": "succeeded",
        "amount": 3000, "currency": "eur",
        "metadata": {"orderly_payment_id": "0192f5c2-9000-7c3d-8e9f-0a1b2c3d4e80"}
    }}
}))]
pub struct ProviderEventBody {
    /// The provider's event id: each is applied at most once.
    pub id: String,
    /// Always `event`.
    #[schema(example = "event")]
    pub object: String,
    /// e.g. `payment_intent.succeeded`, `payment_intent.payment_failed`; others are ignored.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `{"object": {...}}`: the PaymentIntent the event is about.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// What Orderly did with a provider event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// It settled a payment (or confirmed what was already recorded).
    Applied,
    /// Delivered before; nothing was done again.
    Duplicate,
    /// Not about a payment of Orderly's, or of a type Orderly does not act on.
    Ignored,
}

/// The acknowledgement of a provider event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"received": true, "outcome": "applied"}))]
pub struct EventReceipt {
    /// Always `true`: the event was received and need not be sent again.
    pub received: bool,
    pub outcome: EventOutcome,
}

#[cfg(test)]
mod tests {
    use orderly_domain::payment::PaymentId;

    use super::*;
    use crate::pagination::{CursorCodec, CursorScope};

    #[test]
    fn a_cursor_holds_the_attempt_and_belongs_to_its_order() {
        let codec = CursorCodec::new(b"k");
        let (attempts, others) = (payments_of(OrderId::new()), payments_of(OrderId::new()));
        let last = PaymentId::new().as_uuid();
        let cursor = codec.after_id(CursorScope::newest_first(&attempts), last);
        let read =
            |collection| codec.decode(CursorScope::newest_first(collection), &cursor).map(|position| position.id);
        assert_eq!(read(&attempts), Ok(last));
        assert!(read(&others).is_err(), "another order's attempts");
    }
}
