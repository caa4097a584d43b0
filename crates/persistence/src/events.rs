//! The transactional outbox: domain events become rows of `events` inside the transaction of
//! the change that caused them, so the feed never shows a change that was rolled back, nor
//! misses one that was committed.

use diesel::prelude::*;
use orderly_domain::event::DomainEvent;
use serde_json::json;
use uuid::Uuid;

use crate::connection::AnyConnection;
use crate::schema::events;
use crate::timestamps;

/// A domain event in its stored form. `data` is a JSON object, the `data` of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedEvent {
    pub event_type: &'static str,
    pub subject_type: &'static str,
    pub subject_id: Uuid,
    pub data: String,
}

/// The one place that decides how each event is stored. The match is exhaustive on purpose:
/// a new event variant does not compile until it has a stored form.
pub fn serialize_event(event: &DomainEvent) -> SerializedEvent {
    let (subject_type, subject_id) = event.subject();
    let data = match event {
        DomainEvent::UserRegistered { user_id, email, role, occurred_at: _ } => {
            json!({ "user_id": user_id.to_string(), "email": email, "role": role.as_str() })
        }
    };
    SerializedEvent { event_type: event.type_name(), subject_type, subject_id, data: data.to_string() }
}

#[derive(Insertable)]
#[diesel(table_name = events)]
struct NewEventRow<'a> {
    id: String,
    event_type: &'a str,
    subject_type: &'a str,
    subject_id: String,
    data: &'a str,
    occurred_at: chrono::NaiveDateTime,
}

/// Writes `event` with a fresh UUIDv7 id. Call it inside the transaction of the change.
pub(crate) fn record(conn: &mut AnyConnection, event: &DomainEvent) -> QueryResult<()> {
    let serialized = serialize_event(event);
    let row = NewEventRow {
        id: Uuid::now_v7().to_string(),
        event_type: serialized.event_type,
        subject_type: serialized.subject_type,
        subject_id: serialized.subject_id.to_string(),
        data: &serialized.data,
        occurred_at: timestamps::to_db(event.occurred_at()),
    };
    diesel::insert_into(events::table).values(&row).execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use orderly_domain::user::{Role, UserId};

    use super::*;

    #[test]
    fn user_registered_is_stored_with_its_subject_and_payload() {
        let user_id = UserId::new();
        let event = DomainEvent::UserRegistered {
            user_id,
            email: "ada@example.com".to_owned(),
            role: Role::Customer,
            occurred_at: Utc::now(),
        };
        let stored = serialize_event(&event);
        assert_eq!(stored.event_type, "user.registered");
        assert_eq!(stored.subject_type, "user");
        assert_eq!(stored.subject_id, user_id.as_uuid());
        let data: serde_json::Value = serde_json::from_str(&stored.data).unwrap();
        assert_eq!(data, json!({"user_id": user_id.to_string(), "email": "ada@example.com", "role": "customer"}));
    }
}
