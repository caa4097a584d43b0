//! The event feed on the wire (docs/api.md#events): the `Event` representation, whose `data` is the payload
//! exactly as the outbox stored it, the feed's page (which, unlike other collections, always
//! carries a cursor to resume from), and the query string with its cursor.
//!
//! A feed cursor holds a position in commit order and the `type` filter it was issued under
//! (none is written as an empty filter). It is refused with another filter (`filter_mismatch`):
//! a position is meaningful under any filter, but a consumer that switched filters would
//! silently never see the new type's events before that position, which is exactly the gap a
//! feed consumer must never have. Starting a new filter means starting without a cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::event::{EventQuery, FeedEvent};

use crate::dto::timestamp;
use crate::extract::QueryDto;
use crate::extract::query::Faults;
use crate::pagination::{self, CursorCodec, CursorPosition, CursorScope};
use crate::problem::{ApiError, FieldError};

// --- representations -------------------------------------------------------------------------

/// What happened. Every state change records exactly one event, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = EventType)]
pub enum EventTypeDto {
    /// A user registered (`subject.type` `user`).
    #[serde(rename = "user.registered")]
    UserRegistered,
    /// A product was added to the catalogue (`product`).
    #[serde(rename = "product.created")]
    ProductCreated,
    /// A product's name, description, price or status changed, archiving included (`product`).
    #[serde(rename = "product.updated")]
    ProductUpdated,
    /// A product's stock was adjusted (`product`).
    #[serde(rename = "stock.adjusted")]
    StockAdjusted,
    /// An order was placed and its stock reserved (`order`).
    #[serde(rename = "order.placed")]
    OrderPlaced,
    /// An order was confirmed: its stock committed and its invoice issued (`order`).
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    /// An order was cancelled by its owner, an admin, or the server when its reservation
    /// expired (`order`).
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    /// An order was shipped (`order`).
    #[serde(rename = "order.shipped")]
    OrderShipped,
    /// An order was delivered (`order`).
    #[serde(rename = "order.delivered")]
    OrderDelivered,
    /// An invoice was issued (`invoice`; its id is the invoice number).
    #[serde(rename = "invoice.issued")]
    InvoiceIssued,
    /// A payment succeeded and its order was confirmed, or is being refunded (`payment`).
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    /// A payment failed: declined, the provider unreachable, or never completed (`payment`).
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    /// A payment for an order that had left `pending` was refunded (`payment`).
    #[serde(rename = "payment.refunded")]
    PaymentRefunded,
}

/// What an event is about.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventSubject, example = json!({"type": "order", "id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70"}))]
pub struct EventSubjectResponse {
    /// The kind of resource: `user`, `product`, `order`, `invoice` or `payment`.
    #[serde(rename = "type")]
    #[schema(example = "order")]
    pub subject_type: String,
    /// The resource's id: a UUID, except for invoices, which are addressed by their number
    /// (`YYYY-NNNNNN`).
    #[schema(example = "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70")]
    pub id: String,
}

/// A domain event, in commit order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event, example = json!({
    "id": "0192f5c2-7001-7c3d-8e9f-0a1b2c3d4e71",
    "type": "order.placed",
    "occurred_at": "2026-11-23T18:04:05.123Z",
    "subject": {"type": "order", "id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70"},
    "data": {
        "order_id": "0192f5c2-7000-7c3d-8e9f-0a1b2c3d4e70",
        "customer_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
        "lines": [{"product_id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e60", "quantity": 2}],
        "total": 3000
    }
}))]
pub struct EventResponse {
    /// The event's id (UUIDv7); the same event always has the same id.
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = EventTypeDto)]
    pub type_name: String,
    /// When the change happened.
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub occurred_at: DateTime<Utc>,
    pub subject: EventSubjectResponse,
    /// The event's payload as stored (see [`payload_schema`]).
    #[schema(schema_with = payload_schema)]
    pub data: Box<RawValue>,
}

/// `data`: any JSON object, its fields depending on the event's type.
fn payload_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "The event's payload, a JSON object whose fields depend on `type`, passed through as \
             recorded; consumers should ignore fields they do not know, as more may be added.",
        ))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .build()
}

impl TryFrom<&FeedEvent> for EventResponse {
    type Error = ApiError;

    fn try_from(event: &FeedEvent) -> Result<Self, ApiError> {
        let data = RawValue::from_string(event.data_json.clone())
            .ok()
            .filter(|raw| raw.get().trim_start().starts_with('{'))
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("event {} has a payload that is not a JSON object", event.id))
            })?;
        Ok(Self {
            id: event.id,
            type_name: event.type_name.clone(),
            occurred_at: event.occurred_at,
            subject: EventSubjectResponse { subject_type: event.subject_type.clone(), id: event.subject_id.clone() },
            data,
        })
    }
}

/// Where a page of the feed stands. Unlike other collections, `next_cursor` is set on every
/// page that has one to give, also the last: the feed grows, and a consumer polls on from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPageInfo {
    /// The page size used.
    #[schema(minimum = 1, maximum = 100, example = 20)]
    pub limit: u16,
    /// Where to resume: the position after the last event of this page, or the `cursor`
    /// sent when the page is empty. Poll again with it to get the events committed since.
    /// `null` only when no cursor was sent and the feed (under this `type`) is empty.
    #[schema(required = true, example = "eyJ...")]
    pub next_cursor: Option<String>,
    /// Whether more events are available right now (fetch `next_cursor` at once); `false`
    /// means the consumer has caught up and should poll again later.
    pub has_more: bool,
}

/// A page of the event feed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventPage)]
pub struct EventPage {
    /// The events of this page, oldest first (commit order).
    pub data: Vec<EventResponse>,
    pub page: FeedPageInfo,
}

// --- the query string ------------------------------------------------------------------------

/// The collection and its one order (commit order, what a cursor's sort says), in cursors.
const EVENTS: CursorScope<'static> = CursorScope { collection: "events", sort: "position" };

/// `GET /v1/events`: the type filter and pagination.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEventsParams {
    /// Only events of this type. A cursor is only valid with the `type` (or absence of one)
    /// of the page it came from.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventTypeDto>)]
    type_name: Option<String>,
    /// Page size.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// Opaque cursor: `page.next_cursor` of the previous page, to resume after it. Only valid
    /// with the same `type` filter.
    cursor: Option<String>,
}

impl QueryDto for ListEventsParams {
    type Domain = EventQuery;

    fn try_into_domain(self, cursors: &CursorCodec) -> Result<EventQuery, Vec<FieldError>> {
        let mut faults = Faults::default();
        let type_name = faults.filter("type", self.type_name.as_deref(), EventQuery::parse_type);
        let limit = faults.check(pagination::parse_limit(self.limit.as_deref()));
        // A cursor can only be checked against a known filter.
        let after = type_name.and_then(|type_name| {
            let read = |position| event_cursor(position, type_name);
            faults.check(cursors.after(EVENTS, self.cursor.as_deref(), read))
        });
        faults.finish(|| Some(EventQuery { type_name: type_name?, after: after?, limit: limit? }))
    }
}

/// The cursor's key: `filter \n position`, the filter empty when there is none.
fn key(type_name: Option<&str>, position: i64) -> String {
    format!("{}\n{position}", type_name.unwrap_or(""))
}

fn event_cursor(position: CursorPosition, type_name: Option<&str>) -> Result<i64, FieldError> {
    let (filter, position) = position.key.rsplit_once('\n').ok_or_else(pagination::unreadable_cursor)?;
    let position = pagination::read_integer_key(position)?;
    if filter != type_name.unwrap_or("") {
        let issued = if filter.is_empty() { "no type filter".to_owned() } else { format!("type={filter}") };
        return Err(FieldError::parameter(
            pagination::CURSOR,
            "filter_mismatch",
            format!("was issued for {issued}; send the same type as the page it came from, or start without a cursor"),
        ));
    }
    Ok(position)
}

/// The cursor to resume the feed from `position` under the filter `type_name`.
pub fn next_cursor(cursors: &CursorCodec, type_name: Option<&str>, position: i64) -> String {
    // The position alone fixes the place in the feed.
    cursors.encode(EVENTS, &CursorPosition::of_key(key(type_name, position)))
}

#[cfg(test)]
mod tests {
    use orderly_domain::event::EVENT_TYPES;

    use super::*;

    #[test]
    fn the_wire_enum_is_the_domains_list() {
        let all = [
            EventTypeDto::UserRegistered,
            EventTypeDto::ProductCreated,
            EventTypeDto::ProductUpdated,
            EventTypeDto::StockAdjusted,
            EventTypeDto::OrderPlaced,
            EventTypeDto::OrderConfirmed,
            EventTypeDto::OrderCancelled,
            EventTypeDto::OrderShipped,
            EventTypeDto::OrderDelivered,
            EventTypeDto::InvoiceIssued,
            EventTypeDto::PaymentSucceeded,
            EventTypeDto::PaymentFailed,
            EventTypeDto::PaymentRefunded,
        ];
        let names: Vec<String> =
            all.iter().map(|dto| serde_json::to_value(dto).unwrap().as_str().unwrap().to_owned()).collect();
        assert_eq!(names, EVENT_TYPES);
    }

    #[test]
    fn cursors_hold_the_position_and_the_filter() {
        let codec = CursorCodec::new(b"k");
        for filter in [None, Some("order.placed")] {
            let cursor = next_cursor(&codec, filter, 42);
            assert_eq!(codec.decode(EVENTS, &cursor).and_then(|p| event_cursor(p, filter)), Ok(42));
        }
        let unfiltered = next_cursor(&codec, None, 42);
        let error = codec.decode(EVENTS, &unfiltered).and_then(|p| event_cursor(p, Some("order.placed")));
        assert_eq!(error.unwrap_err().code, "filter_mismatch");
        let filtered = next_cursor(&codec, Some("order.placed"), 42);
        let error = codec.decode(EVENTS, &filtered).and_then(|p| event_cursor(p, Some("order.shipped")));
        assert_eq!(error.unwrap_err().code, "filter_mismatch");
        let error = codec.decode(EVENTS, &filtered).and_then(|p| event_cursor(p, None));
        assert_eq!(error.unwrap_err().code, "filter_mismatch");
    }
}
