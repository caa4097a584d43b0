//! Domain events (§2.5). Each state change records its event in the same transaction as the
//! change (transactional outbox); persistence adapters serialise them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::user::{Role, UserId};

/// Something that happened, with what a feed consumer needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    UserRegistered { user_id: UserId, email: String, role: Role, occurred_at: DateTime<Utc> },
}

impl DomainEvent {
    /// The event's stable `type` in the feed.
    pub fn type_name(&self) -> &'static str {
        match self {
            DomainEvent::UserRegistered { .. } => "user.registered",
        }
    }

    /// The `(subject type, subject id)` the event is about.
    pub fn subject(&self) -> (&'static str, Uuid) {
        match self {
            DomainEvent::UserRegistered { user_id, .. } => ("user", user_id.as_uuid()),
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DomainEvent::UserRegistered { occurred_at, .. } => *occurred_at,
        }
    }
}
