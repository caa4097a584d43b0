//! Webhooks on the wire (docs/api.md#webhooks): the `WebhookEndpoint` representation (and, once, with its
//! signing secret), the `WebhookDelivery` representation, the create and merge-patch bodies,
//! and the query strings of the endpoint list and of an endpoint's delivery log, with their
//! cursors.
//!
//! The bodies are shape-checked here only: whether a URL is an allowed destination depends on
//! the deployment's configuration, so every rule of an endpoint (URL, event types,
//! description) is the `WebhookService`'s to apply, and its faults come back as a 422 with
//! pointers like any other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use orderly_domain::services::{EndpointChanges, EndpointDraft};
use orderly_domain::validation::FieldViolation;
use orderly_domain::webhook::{
    DeliveryStatus, EventTypeFilter, WebhookDelivery, WebhookEndpoint, WebhookEndpointId, parse_description,
};

use crate::dto::events::EventTypeDto;
use crate::dto::{PatchField, timestamp};
use crate::extract::{BodyContext, RequestBody};
use crate::pagination::CursorScope;

// --- representations -------------------------------------------------------------------------

/// A registered webhook endpoint. Its signing secret is shown once, in the answer to its
/// creation (`WebhookEndpointWithSecret`), and never again.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEndpoint, example = json!({
    "id": "0192f5c2-a000-7c3d-8e9f-0a1b2c3d4e90",
    "url": "https://hooks.example.com/orderly",
    "event_types": ["order.placed", "order.confirmed"],
    "description": "Fulfilment system",
    "active": true,
    "created_at": "2026-11-23T18:04:05.123Z",
    "updated_at": "2026-11-23T18:10:00.000Z"
}))]
pub struct WebhookEndpointResponse {
    /// UUIDv7: ids sort by creation time.
    pub id: Uuid,
    /// Where deliveries are `POST`ed (normalised: e.g. the host lower-cased).
    #[schema(example = "https://hooks.example.com/orderly")]
    pub url: String,
    /// The event types delivered to it; `null`: every type, including types added later.
    #[schema(value_type = Option<Vec<EventTypeDto>>, required = true)]
    pub event_types: Option<Vec<String>>,
    /// What the endpoint is for; `null` when it has none.
    #[schema(required = true, example = "Fulfilment system")]
    pub description: Option<String>,
    /// `false`: disabled — nothing is sent to it, and its pending deliveries end `failed`.
    pub active: bool,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:10:00.000Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookEndpoint> for WebhookEndpointResponse {
    fn from(endpoint: &WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.as_uuid(),
            url: endpoint.url.as_str().to_owned(),
            event_types: endpoint.event_types.types().map(|types| types.iter().map(|&name| name.to_owned()).collect()),
            description: endpoint.description.clone(),
            active: endpoint.active,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

/// A new webhook endpoint with its signing secret: the only answer that ever shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookEndpointWithSecret, example = json!({
    "id": "0192f5c2-a000-7c3d-8e9f-0a1b2c3d4e90",
    "url": "https://hooks.example.com/orderly",
    "event_types": null,
    "description": null,
    "active": true,
    "created_at": "2026-11-23T18:04:05.123Z",
    "updated_at": "2026-11-23T18:04:05.123Z",
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
}))]
pub struct CreatedWebhookEndpointResponse {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointResponse,
    /// The key deliveries are signed with (Standard Webhooks: `whsec_` and base64). Keep it:
    /// it is shown only in this answer.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$", example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl From<&WebhookEndpoint> for CreatedWebhookEndpointResponse {
    fn from(endpoint: &WebhookEndpoint) -> Self {
        Self { endpoint: endpoint.into(), secret: endpoint.secret.expose().to_owned() }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WebhookDeliveryStatus)]
pub enum DeliveryStatusDto {
    /// Not delivered yet: an attempt is due at `next_attempt_at`.
    Pending,
    /// A 2xx answer arrived within the timeout.
    Succeeded,
    /// Every attempt of the retry schedule failed (or the endpoint was disabled); a retry
    /// makes it `pending` again.
    Failed,
}

mirror_enum!(DeliveryStatus => DeliveryStatusDto { Pending, Succeeded, Failed });

/// One event's delivery to one endpoint, however many attempts it takes, as its latest
/// attempt left it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery, example = json!({
    "id": "0192f5c2-b000-7c3d-8e9f-0a1b2c3d4ea0",
    "endpoint_id": "0192f5c2-a000-7c3d-8e9f-0a1b2c3d4e90",
    "event_id": "0192f5c2-7001-7c3d-8e9f-0a1b2c3d4e71",
    "event_type": "order.placed",
    "status": "pending",
    "attempt": 2,
    "response_status": 503,
    "duration_ms": 184,
    "error": "the endpoint answered 503",
    "next_attempt_at": "2026-11-23T18:09:05.000Z",
    "created_at": "2026-11-23T18:04:05.500Z",
    "updated_at": "2026-11-23T18:04:10.700Z"
}))]
pub struct DeliveryResponse {
    /// UUIDv7; name it to retry the delivery.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event delivered (`GET /v1/events`); also its `webhook-id` header, the same on every
    /// attempt, so receivers can de-duplicate.
    pub event_id: Uuid,
    #[schema(value_type = EventTypeDto)]
    pub event_type: String,
    pub status: DeliveryStatusDto,
    /// Attempts made so far (0 before the first).
    #[schema(minimum = 0, example = 2)]
    pub attempt: u32,
    /// The HTTP status the latest attempt was answered with; `null` when no answer came (or
    /// before the first attempt).
    #[schema(required = true, minimum = 100, maximum = 599, example = 503)]
    pub response_status: Option<u16>,
    /// How long the latest attempt took, in milliseconds; `null` before the first.
    #[schema(required = true, minimum = 0, example = 184)]
    pub duration_ms: Option<u32>,
    /// Why the latest attempt failed (no answer, refused destination, the status it got);
    /// `null` when it did not, or before the first.
    #[schema(required = true, example = "the endpoint answered 503")]
    pub error: Option<String>,
    /// When the next attempt is due; `null` unless `pending`.
    #[serde(serialize_with = "timestamp::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true, example = "2026-11-23T18:09:05.000Z")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.500Z")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:10.700Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookDelivery> for DeliveryResponse {
    fn from(delivery: &WebhookDelivery) -> Self {
        Self {
            id: delivery.id.as_uuid(),
            endpoint_id: delivery.endpoint_id.as_uuid(),
            event_id: delivery.event_id,
            event_type: delivery.event_type.clone(),
            status: delivery.status.into(),
            attempt: delivery.attempts,
            response_status: delivery.response_status,
            duration_ms: delivery.duration_ms,
            error: delivery.error.clone(),
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
            updated_at: delivery.updated_at,
        }
    }
}

// --- request bodies --------------------------------------------------------------------------

/// `POST /v1/webhook-endpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://hooks.example.com/orderly",
    "event_types": ["order.placed", "order.confirmed"],
    "description": "Fulfilment system"
}))]
pub struct CreateWebhookEndpointRequest {
    /// Where to `POST` deliveries: an absolute `https` URL (plain `http` only where the
    /// deployment allows it), at most 2048 bytes, without user name, password or fragment. Its
    /// host must not be a loopback, private, link-local, multicast, unspecified or reserved
    /// address (nor `localhost`), unless the deployment allows that network; a host name is
    /// checked again, address by address, at every delivery.
    #[schema(format = "uri", max_length = 2048, example = "https://hooks.example.com/orderly")]
    url: String,
    /// The event types to deliver: at least one, each once. Absent or `null`: every type,
    /// including types added later.
    #[schema(value_type = Option<Vec<EventTypeDto>>, min_items = 1)]
    event_types: Option<Vec<String>>,
    /// What the endpoint is for: up to 500 characters once trimmed, line breaks and tabs
    /// allowed. Absent, `null` or blank: none.
    #[schema(value_type = Option<String>)]
    description: Option<String>,
}

impl RequestBody for CreateWebhookEndpointRequest {
    type Domain = EndpointDraft;

    fn try_into_domain(self, context: &BodyContext) -> Result<EndpointDraft, Vec<FieldViolation>> {
        let faults = endpoint_faults(
            context,
            Some(&self.url),
            self.event_types.as_deref().map(Some),
            self.description.as_deref().map(Some),
        );
        if !faults.is_empty() {
            return Err(faults);
        }
        Ok(EndpointDraft { url: self.url, event_types: self.event_types, description: self.description })
    }
}

/// `PATCH /v1/webhook-endpoints/{id}`, a merge patch: fields left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_types": null, "description": null, "active": false}))]
pub struct UpdateWebhookEndpointRequest {
    /// A new URL, checked like at creation; cannot be `null`.
    #[serde(default)]
    #[schema(value_type = String, format = "uri", max_length = 2048, example = "https://hooks.example.com/orderly/v2")]
    url: PatchField<String>,
    /// The event types to deliver, at least one, each once; `null`: every type again.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeDto>>, min_items = 1)]
    event_types: PatchField<Vec<String>>,
    /// Up to 500 characters once trimmed; `null` (or blank) removes it.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    description: PatchField<String>,
    /// `false` disables the endpoint (nothing is sent to it), `true` enables it again; cannot
    /// be `null`.
    #[serde(default)]
    #[schema(value_type = bool)]
    active: PatchField<bool>,
}

impl RequestBody for UpdateWebhookEndpointRequest {
    type Domain = EndpointChanges;

    fn try_into_domain(self, context: &BodyContext) -> Result<EndpointChanges, Vec<FieldViolation>> {
        let url = match &self.url {
            PatchField::Set(url) => Some(url.as_str()),
            _ => None,
        };
        let event_types = match &self.event_types {
            PatchField::Set(types) => Some(Some(types.as_slice())),
            _ => None,
        };
        let description = match &self.description {
            PatchField::Set(description) => Some(Some(description.as_str())),
            _ => None,
        };
        let faults = endpoint_faults(context, url, event_types, description);
        if !faults.is_empty() {
            return Err(faults);
        }
        Ok(EndpointChanges {
            url: self.url.into_option(),
            event_types: self.event_types.into_removable(),
            description: self.description.into_removable(),
            active: self.active.into_option(),
        })
    }
}

/// The domain's rules for the fields of an endpoint body that were sent, so that they are
/// reported with every other fault of the body (the service applies them again when it saves).
fn endpoint_faults(
    context: &BodyContext,
    url: Option<&str>,
    event_types: Option<Option<&[String]>>,
    description: Option<Option<&str>>,
) -> Vec<FieldViolation> {
    let mut faults = Vec::new();
    if let Some(Err(fault)) = url.map(|url| context.destinations.check_url_field(url)) {
        faults.push(fault);
    }
    if let Some(Err(types)) = event_types.map(EventTypeFilter::parse) {
        faults.extend(types);
    }
    if let Some(Err(fault)) = description.flatten().map(parse_description) {
        faults.push(fault.at("description"));
    }
    faults
}

// --- the endpoint list and the delivery log ---------------------------------------------------
// Their query strings are `crate::pagination::IdPageParams`.

/// The endpoint list and its one order (oldest first), in cursors.
pub const ENDPOINT_LIST: CursorScope<'static> = CursorScope { collection: "webhook-endpoints", sort: "created_at" };

/// The cursor collection of one endpoint's delivery log, newest first: a cursor of another
/// endpoint's log is refused.
pub fn deliveries_of(endpoint: WebhookEndpointId) -> String {
    format!("webhook-endpoints/{endpoint}/deliveries")
}

#[cfg(test)]
mod tests {
    use orderly_domain::webhook::WebhookDeliveryId;

    use crate::extract::QueryDto;
    use crate::pagination::{CursorCodec, IdPageParams};

    use super::*;

    fn after(cursor: String, scope: CursorScope<'_>) -> Result<Option<uuid::Uuid>, crate::problem::ApiError> {
        let params: IdPageParams = serde_json::from_value(serde_json::json!({"cursor": cursor})).unwrap();
        params.try_into_domain(&CursorCodec::new(b"k")).unwrap().after(&CursorCodec::new(b"k"), scope)
    }

    #[test]
    fn cursors_hold_the_last_item_and_stay_in_their_collection() {
        let codec = CursorCodec::new(b"k");
        let (endpoint, other) = (WebhookEndpointId::new(), WebhookEndpointId::new());
        let last = WebhookEndpointId::new().as_uuid();
        assert_eq!(after(codec.after_id(ENDPOINT_LIST, last), ENDPOINT_LIST).unwrap(), Some(last));

        let (log, other_log) = (deliveries_of(endpoint), deliveries_of(other));
        let delivery = WebhookDeliveryId::new().as_uuid();
        let cursor = codec.after_id(CursorScope::newest_first(&log), delivery);
        assert_eq!(after(cursor.clone(), CursorScope::newest_first(&log)).unwrap(), Some(delivery));
        assert!(after(cursor.clone(), CursorScope::newest_first(&other_log)).is_err(), "another endpoint's log");
        assert!(after(cursor, ENDPOINT_LIST).is_err(), "the endpoint list");
    }
}
