//! The event feed (docs/api.md#events): admins read every change in commit order.

use std::sync::Arc;

use crate::actor::Actor;
use crate::authorisation::Operation;
use crate::error::StoreError;
use crate::event::{EventQuery, FeedEvent};
use crate::pagination::Page;
use crate::ports::EventFeed;
use crate::services::EventUseCases;

#[derive(Debug, thiserror::Error)]
pub enum ReadFeedError {
    #[error("only admins may read the event feed")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct EventService {
    feed: Arc<dyn EventFeed>,
}

impl EventService {
    pub fn new(feed: Arc<dyn EventFeed>) -> Self {
        Self { feed }
    }
}

impl EventUseCases for EventService {
    fn list(&self, actor: Actor, query: &EventQuery) -> Result<Page<FeedEvent>, ReadFeedError> {
        if !actor.may(Operation::ReadEventFeed) {
            return Err(ReadFeedError::Forbidden);
        }
        let rows = self.feed.list(query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockEventFeed;
    use crate::user::{Role, UserId};

    fn event(position: i64) -> FeedEvent {
        FeedEvent {
            id: uuid::Uuid::now_v7(),
            position,
            type_name: "user.registered".into(),
            occurred_at: chrono::Utc::now(),
            subject_type: "user".into(),
            subject_id: UserId::new().to_string(),
            data_json: "{}".into(),
        }
    }

    #[test]
    fn customers_may_not_read_the_feed() {
        let mut feed = MockEventFeed::new();
        feed.expect_list().never();
        let service = EventService::new(Arc::new(feed));
        let customer = Actor { user_id: UserId::new(), role: Role::Customer };
        assert!(matches!(service.list(customer, &EventQuery::default()), Err(ReadFeedError::Forbidden)));
    }

    #[test]
    fn admins_get_a_page_and_a_position_to_resume_from() {
        let mut feed = MockEventFeed::new();
        feed.expect_list()
            .withf(|query| query.after == Some(7) && query.type_name == Some("order.placed"))
            .times(1)
            .returning(|query| Ok((8..8 + i64::from(query.limit.get()) + 1).map(event).collect()));
        let service = EventService::new(Arc::new(feed));
        let admin = Actor { user_id: UserId::new(), role: Role::Admin };
        let query = EventQuery {
            type_name: Some("order.placed"),
            after: Some(7),
            limit: crate::pagination::PageLimit::new(2).unwrap(),
        };
        let page = service.list(admin, &query).unwrap();
        assert_eq!(page.items.iter().map(|e| e.position).collect::<Vec<_>>(), vec![8, 9]);
        assert!(page.has_more);
        assert_eq!(query.resume_position(&page), Some(9));
        let empty = Page { items: Vec::new(), has_more: false };
        assert_eq!(query.resume_position(&empty), Some(7));
    }

    #[test]
    fn type_filters_must_name_a_known_event_type() {
        assert_eq!(EventQuery::parse_type("order.placed").unwrap(), "order.placed");
        assert_eq!(EventQuery::parse_type("order.exploded").unwrap_err().code, "invalid_value");
    }
}
