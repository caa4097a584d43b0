//! Domain events (§2.5). Each state change records its event in the same transaction as the
//! change (transactional outbox); persistence adapters serialise them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

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
}

impl DomainEvent {
    /// The event's stable `type` in the feed.
    pub fn type_name(&self) -> &'static str {
        match self {
            DomainEvent::UserRegistered { .. } => "user.registered",
            DomainEvent::ProductCreated { .. } => "product.created",
            DomainEvent::ProductUpdated { .. } => "product.updated",
            DomainEvent::StockAdjusted { .. } => "stock.adjusted",
        }
    }

    /// The `(subject type, subject id)` the event is about.
    pub fn subject(&self) -> (&'static str, Uuid) {
        match self {
            DomainEvent::UserRegistered { user_id, .. } => ("user", user_id.as_uuid()),
            DomainEvent::ProductCreated { product_id, .. }
            | DomainEvent::ProductUpdated { product_id, .. }
            | DomainEvent::StockAdjusted { product_id, .. } => ("product", product_id.as_uuid()),
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DomainEvent::UserRegistered { occurred_at, .. }
            | DomainEvent::ProductCreated { occurred_at, .. }
            | DomainEvent::ProductUpdated { occurred_at, .. }
            | DomainEvent::StockAdjusted { occurred_at, .. } => *occurred_at,
        }
    }
}
