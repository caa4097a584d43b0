//! Payments (docs/api.md#payments): an attempt to pay an order's total through the payment provider.
//!
//! An attempt is recorded *before* the provider is called (status `processing`), so that a
//! crash, a timeout or an untrustworthy answer always leaves a row that says "money may have
//! moved; find out". It is settled exactly once, from `processing` to `succeeded` or `failed`
//! (and from `succeeded` to `refunded` when the order could no longer be confirmed), by
//! whichever comes first: the provider's answer, its signed event, or the reconciliation job.

use chrono::{DateTime, Utc};

use crate::id::uuid_id;
use crate::order::OrderId;
use crate::product::Currency;
use crate::user::UserId;
use crate::validation::InvalidValue;

uuid_id!(
    /// A payment attempt's id. It is also the idempotency key of every provider call the
    /// attempt makes, so a retry can never create a second charge.
    PaymentId
);

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Sent to the provider (or about to be); the outcome is not known yet.
    Processing,
    Succeeded,
    Failed,
    /// Succeeded, then refunded because the order was no longer payable.
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] =
        [PaymentStatus::Processing, PaymentStatus::Succeeded, PaymentStatus::Failed, PaymentStatus::Refunded];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// The stored spelling back to the status (`None` for anything else).
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed, in the provider-neutral words a client switches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFailure {
    /// e.g. `card_declined`, `authentication_required`, `provider_unavailable`, `not_completed`.
    pub code: String,
    pub message: String,
}

impl PaymentFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// The provider's token for a payment method (e.g. Stripe's `pm_card_visa`): 1–255 ASCII
/// letters, digits and underscores. Orderly never sees card numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethodToken(String);

impl PaymentMethodToken {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty()
            || raw.len() > Self::MAX_CHARS
            || !raw.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            return Err(InvalidValue::new(
                "invalid_format",
                "must be 1 to 255 ASCII letters, digits or underscores (a payment-method token such as pm_card_visa)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    /// The order's customer (who may see the attempt), whoever paid.
    pub customer_id: UserId,
    pub status: PaymentStatus,
    /// The order's total at the time of the attempt, in minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    /// Which provider adapter handled it, e.g. `stripe`.
    pub provider: String,
    /// The provider's id for the charge (Stripe: the PaymentIntent id), once known.
    pub provider_reference: Option<String>,
    pub failure: Option<PaymentFailure>,
    /// The request that created the attempt (`scope:key` of its `Idempotency-Key`), if it had
    /// one: a retry of that request resumes this attempt instead of starting another.
    pub request_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// What the provider must report for this attempt to count: a charge of exactly this
    /// amount, in this currency, for this attempt.
    pub fn expected_charge(&self) -> ExpectedCharge {
        ExpectedCharge { payment_id: self.id, amount: self.amount, currency: self.currency.clone() }
    }
}

/// The facts a provider's answer is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCharge {
    pub payment_id: PaymentId,
    pub amount: i64,
    pub currency: Currency,
}

/// An attempt to insert (always `processing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub customer_id: UserId,
    pub amount: i64,
    pub currency: Currency,
    pub provider: String,
    pub request_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// How a `processing` (or, for a refund, `succeeded`) attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettlement {
    pub payment_id: PaymentId,
    /// Settle only from this status (the conditional update that makes settling happen once).
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub failure: Option<PaymentFailure>,
    /// The provider reference, when the settlement learned it.
    pub provider_reference: Option<String>,
    pub now: DateTime<Utc>,
}

/// `GET /v1/orders/{id}/payments`: newest first, after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentQuery {
    pub order_id: OrderId,
    /// The last attempt of the previous page (attempt ids are UUIDv7: they sort by creation).
    pub after: Option<PaymentId>,
    pub limit: crate::pagination::PageLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_method_tokens_are_provider_ids_only() {
        assert_eq!(PaymentMethodToken::parse("pm_card_visa").unwrap().as_str(), "pm_card_visa");
        assert!(PaymentMethodToken::parse("pm_1AbC23").is_ok());
        for bad in ["", "pm card", "pm-card", "4242424242424242\n", "pm_ü", &"a".repeat(256)] {
            assert!(PaymentMethodToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_round_trip_through_their_stored_spelling() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::from_stored(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::from_stored("pending"), None);
    }
}
