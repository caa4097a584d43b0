//! Domain events (docs/api.md#events). Each state change records its event in the same transaction as the
//! change (transactional outbox); persistence adapters serialise them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::invoice::InvoiceNumber;
use crate::order::{CancelReason, OrderId, OrderStatus};
use crate::payment::{PaymentId, PaymentStatus};
use crate::product::{ProductId, ProductStatus};
use crate::user::{Role, UserId};

/// Something that happened, with what a feed consumer needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    UserRegistered {
        user_id: UserId,
        email: String,
        role: Role,
        occurred_at: DateTime<Utc>,
    },
    ProductCreated {
        product_id: ProductId,
        sku: String,
        name: String,
        /// Minor units of the deployment's currency.
        unit_price: i64,
        on_hand: i64,
        actor_id: UserId,
        occurred_at: DateTime<Utc>,
    },
    /// Name, description, price or status changed (archiving included).
    ProductUpdated {
        product_id: ProductId,
        /// The fields the change touched, e.g. `["unit_price"]`.
        fields: Vec<&'static str>,
        /// The new status, when the change set one.
        status: Option<ProductStatus>,
        actor_id: UserId,
        occurred_at: DateTime<Utc>,
    },
    StockAdjusted {
        product_id: ProductId,
        adjustment_id: Uuid,
        delta: i64,
        reason: String,
        on_hand: i64,
        reserved: i64,
        actor_id: UserId,
        occurred_at: DateTime<Utc>,
    },
    OrderPlaced {
        order_id: OrderId,
        customer_id: UserId,
        /// `(product, quantity)` per line: what was reserved.
        lines: Vec<(ProductId, i64)>,
        total: i64,
        occurred_at: DateTime<Utc>,
    },
    /// `order.confirmed`, `order.cancelled`, `order.shipped` or `order.delivered`, after `to`.
    OrderStatusChanged {
        order_id: OrderId,
        customer_id: UserId,
        from: OrderStatus,
        to: OrderStatus,
        /// Who moved it; `None` for the server's expiry sweep.
        actor_id: Option<UserId>,
        /// Set for cancellations.
        reason: Option<CancelReason>,
        occurred_at: DateTime<Utc>,
    },
    InvoiceIssued {
        number: InvoiceNumber,
        order_id: OrderId,
        customer_id: UserId,
        total: i64,
        occurred_at: DateTime<Utc>,
    },
    /// `payment.succeeded`, `payment.failed` or `payment.refunded`, after `status`.
    PaymentSettled {
        payment_id: PaymentId,
        order_id: OrderId,
        customer_id: UserId,
        status: PaymentStatus,
        amount: i64,
        /// Set for failures: the failure's code.
        failure_code: Option<String>,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent {
    /// The event's stable `type` in the feed.
    pub fn type_name(&self) -> &'static str {
        match self {
            DomainEvent::UserRegistered { .. } => "user.registered",
            DomainEvent::ProductCreated { .. } => "product.created",
            DomainEvent::ProductUpdated { .. } => "product.updated",
            DomainEvent::StockAdjusted { .. } => "stock.adjusted",
            DomainEvent::OrderPlaced { .. } => "order.placed",
            DomainEvent::OrderStatusChanged { to, .. } => match to {
                OrderStatus::Pending => "order.placed",
                OrderStatus::Confirmed => "order.confirmed",
                OrderStatus::Cancelled => "order.cancelled",
                OrderStatus::Shipped => "order.shipped",
                OrderStatus::Delivered => "order.delivered",
            },
            DomainEvent::InvoiceIssued { .. } => "invoice.issued",
            DomainEvent::PaymentSettled { status, .. } => match status {
                PaymentStatus::Succeeded => "payment.succeeded",
                PaymentStatus::Refunded => "payment.refunded",
                // A payment is never settled to `processing`; if it were, it did not succeed.
                PaymentStatus::Failed | PaymentStatus::Processing => "payment.failed",
            },
        }
    }

    /// The `(subject type, subject id)` the event is about (docs/api.md#events `subject`). Ids are UUIDs
    /// except for invoices, which are addressed by their number.
    pub fn subject(&self) -> (&'static str, String) {
        match self {
            DomainEvent::UserRegistered { user_id, .. } => ("user", user_id.to_string()),
            DomainEvent::ProductCreated { product_id, .. }
            | DomainEvent::ProductUpdated { product_id, .. }
            | DomainEvent::StockAdjusted { product_id, .. } => ("product", product_id.to_string()),
            DomainEvent::OrderPlaced { order_id, .. } | DomainEvent::OrderStatusChanged { order_id, .. } => {
                ("order", order_id.to_string())
            }
            DomainEvent::InvoiceIssued { number, .. } => ("invoice", number.to_string()),
            DomainEvent::PaymentSettled { payment_id, .. } => ("payment", payment_id.to_string()),
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DomainEvent::UserRegistered { occurred_at, .. }
            | DomainEvent::ProductCreated { occurred_at, .. }
            | DomainEvent::ProductUpdated { occurred_at, .. }
            | DomainEvent::StockAdjusted { occurred_at, .. }
            | DomainEvent::OrderPlaced { occurred_at, .. }
            | DomainEvent::OrderStatusChanged { occurred_at, .. }
            | DomainEvent::InvoiceIssued { occurred_at, .. }
            | DomainEvent::PaymentSettled { occurred_at, .. } => *occurred_at,
        }
    }
}

/// Every event type the feed can carry, for the `type` filter.
pub const EVENT_TYPES: [&str; 13] = [
    "user.registered",
    "product.created",
    "product.updated",
    "stock.adjusted",
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "order.shipped",
    "order.delivered",
    "invoice.issued",
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
];

/// An event as the feed serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub id: Uuid,
    /// Position in commit order: a later-committing transaction always gets a higher number,
    /// so a consumer that resumes after the last position it saw misses nothing.
    pub position: i64,
    pub type_name: String,
    pub occurred_at: DateTime<Utc>,
    pub subject_type: String,
    pub subject_id: String,
    /// The event's payload as stored: a JSON object, passed through untouched.
    pub data_json: String,
}

/// `GET /v1/events`: oldest first, after a position, optionally one type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventQuery {
    pub type_name: Option<&'static str>,
    pub after: Option<i64>,
    pub limit: crate::pagination::PageLimit,
}

impl EventQuery {
    /// Where a consumer resumes after `page`, read with this query: after its last event, or
    /// where it already was when the page is empty. Unlike other collections the feed always
    /// returns this position, also on its last page, because a feed consumer keeps polling
    /// from it.
    pub fn resume_position(&self, page: &crate::pagination::Page<FeedEvent>) -> Option<i64> {
        page.items.last().map(|event| event.position).or(self.after)
    }

    /// Validates a `type` filter against the known event types.
    pub fn parse_type(raw: &str) -> Result<&'static str, crate::validation::InvalidValue> {
        EVENT_TYPES.into_iter().find(|known| *known == raw).ok_or_else(|| {
            crate::validation::InvalidValue::new("invalid_value", format!("must be one of: {}", EVENT_TYPES.join(", ")))
        })
    }
}
