//! Webhooks (docs/api.md#webhooks): admins manage endpoints; the dispatcher turns feed events into deliveries;
//! the job worker makes each delivery's attempts.
//!
//! Three steps, none of which holds a transaction across a remote call:
//! 1. **Dispatch** ([`WebhookService::dispatch_once`]): read the next events after the
//!    dispatch position through the [`EventFeed`] port — the same exactly-once, commit-order
//!    reading `GET /v1/events` gives — and, in one unit of work, move the position on (only if
//!    no other instance moved it first), create one delivery per (event, endpoint that wants
//!    it), and queue a `deliver_webhook` job per delivery. A crash before the commit leaves the
//!    position where it was: the events are dispatched again, once.
//! 2. **Attempt** ([`WebhookService::work_job`]): with no transaction open, send the event
//!    through the [`WebhookSender`] port (signed, time-bounded, destination re-checked).
//! 3. **Record** the attempt on its delivery, conditional on the attempt count it started
//!    from, and tell the job worker when the next attempt is due, if any.
//!
//! The job queue gives each job to one worker at a time (any instance), so no attempt is ever
//! made twice at once; jobs are rows, so pending deliveries survive restarts.

use std::sync::Arc;

use chrono::Duration;

use crate::actor::Actor;
use crate::authorisation::Operation;
use crate::error::StoreError;
use crate::event::{EventQuery, FeedEvent};
use crate::pagination::{Page, PageLimit};
use crate::ports::{
    Clock, EventFeed, Job, JobKind, NewJob, Repositories, SendOutcome, UnitOfWork, UpdateError, WebhookMessage,
    WebhookRepository, WebhookSender, in_transaction,
};
use crate::services::WebhookUseCases;
use crate::validation::FieldViolation;
use crate::webhook::{
    DeliveryAttempt, DeliveryBacklog, DeliveryQuery, DeliveryStatus, DestinationPolicy, EventTypeFilter,
    NewWebhookDelivery, NewWebhookEndpoint, RetrySchedule, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint,
    WebhookEndpointId, WebhookEndpointQuery, WebhookEndpointUpdate, parse_description,
};

/// How webhooks behave: configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    pub destinations: DestinationPolicy,
    pub retry_schedule: RetrySchedule,
    /// Events read per dispatch round.
    pub dispatch_batch: PageLimit,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            destinations: DestinationPolicy::default(),
            retry_schedule: RetrySchedule::standard(),
            dispatch_batch: PageLimit::MAX_PAGE,
        }
    }
}

/// An endpoint to register, as the inbound adapter received it (shape-checked only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointDraft {
    pub url: String,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A change to an endpoint, as received; `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    /// `Some(None)`: every type again.
    pub event_types: Option<Option<Vec<String>>>,
    /// `Some(None)`: no description.
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("only admins may manage webhooks")]
    Forbidden,
    #[error("no such webhook endpoint or delivery")]
    NotFound,
    #[error("the endpoint has changed since it was read")]
    VersionMismatch,
    /// A manual retry of a delivery whose endpoint is disabled: it would not be sent.
    #[error("the endpoint is disabled")]
    EndpointDisabled,
    #[error("invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<UpdateError> for WebhookError {
    fn from(error: UpdateError) -> Self {
        match error {
            UpdateError::NotFound => Self::NotFound,
            UpdateError::VersionMismatch => Self::VersionMismatch,
            UpdateError::Store(error) => Self::Store(error),
        }
    }
}

/// What the job worker does with a delivery job after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// Nothing more to do (delivered, failed for good, or nothing to deliver).
    Done,
    /// The next attempt is due then.
    RetryAt(chrono::DateTime<chrono::Utc>),
}

#[derive(Clone)]
pub struct WebhookService {
    repositories: Repositories,
    unit_of_work: Arc<dyn UnitOfWork>,
    feed: Arc<dyn EventFeed>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    policy: Arc<WebhookPolicy>,
}

impl WebhookService {
    pub fn new(
        repositories: Repositories,
        unit_of_work: Arc<dyn UnitOfWork>,
        feed: Arc<dyn EventFeed>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        policy: WebhookPolicy,
    ) -> Self {
        Self { repositories, unit_of_work, feed, sender, clock, policy: Arc::new(policy) }
    }

    /// The same service over the repositories of a unit of work (an `Idempotency-Key` request
    /// runs its use case inside the executor's transaction, so the change and its stored
    /// answer commit together).
    pub fn within(&self, repositories: &Repositories) -> Self {
        Self { repositories: repositories.clone(), ..self.clone() }
    }

    fn store(&self) -> &dyn WebhookRepository {
        self.repositories.webhooks.as_ref()
    }

    /// Whether `actor` may manage webhooks ([`Operation::ManageWebhooks`]: admins only). Every
    /// operation checks it first; an inbound adapter asks the same rule before it looks at a
    /// request's parameters and body, so that a caller who may not use an operation learns
    /// nothing from its validation (docs/api.md#authentication-and-authorisation).
    pub fn admin_only(actor: Actor) -> Result<(), WebhookError> {
        if actor.may(Operation::ManageWebhooks) { Ok(()) } else { Err(WebhookError::Forbidden) }
    }

    fn check_url(&self, raw: &str) -> Result<crate::webhook::EndpointUrl, FieldViolation> {
        self.policy.destinations.check_url_field(raw)
    }

    /// Where this deployment lets endpoints point: what a request's `url` is checked against.
    pub fn destinations(&self) -> &DestinationPolicy {
        &self.policy.destinations
    }

    // ---- The dispatcher ----

    /// Dispatches the events after the dispatch position, one batch at a time, until the feed
    /// has no more (or another instance took over). Returns how many deliveries it created.
    pub fn dispatch(&self) -> Result<usize, StoreError> {
        let mut created = 0;
        loop {
            let round = self.dispatch_once()?;
            created += round.deliveries;
            if !round.more {
                return Ok(created);
            }
        }
    }

    /// One batch: see the module docs.
    pub fn dispatch_once(&self) -> Result<DispatchRound, StoreError> {
        let from = self.store().dispatch_position()?;
        let query = EventQuery { type_name: None, after: from, limit: self.policy.dispatch_batch };
        let page = Page::from_overfetched(self.feed.list(&query)?, query.limit);
        let Some(last) = page.items.last().map(|event| event.position) else {
            return Ok(DispatchRound { deliveries: 0, more: false });
        };
        let endpoints = self.store().active_endpoints()?;
        let now = self.clock.now();
        let deliveries: Vec<NewWebhookDelivery> = page
            .items
            .iter()
            .flat_map(|event| {
                endpoints.iter().filter(|endpoint| endpoint.wants(&event.type_name, event.occurred_at)).map(
                    |endpoint| NewWebhookDelivery {
                        id: WebhookDeliveryId::new(),
                        endpoint_id: endpoint.id,
                        event_id: event.id,
                        event_type: event.type_name.clone(),
                        created_at: now,
                    },
                )
            })
            .collect();
        let created =
            in_transaction(self.unit_of_work.as_ref(), |repositories| -> Result<Option<usize>, StoreError> {
                if !repositories.webhooks.advance_dispatch_position(from, last)? {
                    // Another instance dispatched this stretch first.
                    return Ok(None);
                }
                let inserted = repositories.webhooks.insert_deliveries(&deliveries)?;
                for id in &inserted {
                    repositories.jobs.enqueue(&NewJob {
                        kind: JobKind::DeliverWebhook,
                        subject: id.as_uuid(),
                        run_at: now,
                        created_at: now,
                    })?;
                }
                Ok(Some(inserted.len()))
            })?;
        Ok(match created {
            Some(deliveries) => DispatchRound { deliveries, more: page.has_more },
            // Someone else moved on; look again from where they left it.
            None => DispatchRound { deliveries: 0, more: true },
        })
    }

    // ---- Attempts (the job worker) ----

    /// Makes the next attempt of the delivery `job` is about, and records it. `job.attempts`
    /// (this job's claims, the current one included) picks the wait before the next attempt.
    pub fn work_job(&self, job: &Job) -> Result<DeliveryVerdict, StoreError> {
        let id = WebhookDeliveryId::from_uuid(job.subject);
        let Some(delivery) = self.store().find_delivery(id)? else {
            // Its endpoint was deleted (and the log with it).
            return Ok(DeliveryVerdict::Done);
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(DeliveryVerdict::Done);
        }
        let endpoint = self.store().find_endpoint(delivery.endpoint_id)?;
        let event = self.feed.find(delivery.event_id)?;
        let (endpoint, event) = match (endpoint, event) {
            (None, _) => return Ok(DeliveryVerdict::Done),
            (Some(endpoint), _) if !endpoint.active => {
                self.give_up(&delivery, "the endpoint is disabled")?;
                return Ok(DeliveryVerdict::Done);
            }
            (Some(_), None) => {
                self.give_up(&delivery, "the event no longer exists")?;
                return Ok(DeliveryVerdict::Done);
            }
            (Some(endpoint), Some(event)) => (endpoint, event),
        };
        self.attempt(job, &delivery, &endpoint, &event)
    }

    fn attempt(
        &self,
        job: &Job,
        delivery: &WebhookDelivery,
        endpoint: &WebhookEndpoint,
        event: &FeedEvent,
    ) -> Result<DeliveryVerdict, StoreError> {
        let report = self.sender.send(WebhookMessage { url: &endpoint.url, secret: &endpoint.secret, event });
        let now = self.clock.now();
        let duration_ms = u32::try_from(report.duration.as_millis()).unwrap_or(u32::MAX);
        let (response_status, error) = match &report.outcome {
            SendOutcome::Delivered { status } => (Some(*status), None),
            SendOutcome::Rejected { status } => (Some(*status), Some(format!("the endpoint answered {status}"))),
            SendOutcome::NoAnswer { reason } => (None, Some(reason.clone())),
        };
        let next_attempt_at = match report.outcome {
            SendOutcome::Delivered { .. } => None,
            _ => self
                .policy
                .retry_schedule
                .wait_after(job.attempts.max(1), delivery.id.as_uuid().as_u128())
                .map(|wait| now + wait),
        };
        let status = match (&report.outcome, next_attempt_at) {
            (SendOutcome::Delivered { .. }, _) => DeliveryStatus::Succeeded,
            (_, Some(_)) => DeliveryStatus::Pending,
            (_, None) => DeliveryStatus::Failed,
        };
        let attempt =
            DeliveryAttempt { sent: true, status, response_status, duration_ms, error, next_attempt_at, at: now };
        if !self.store().record_attempt(delivery.id, delivery.attempts, &attempt)? {
            tracing::warn!(delivery_id = %delivery.id, "a webhook attempt was recorded by someone else first");
            return Ok(DeliveryVerdict::Done);
        }
        Ok(next_attempt_at.map_or(DeliveryVerdict::Done, DeliveryVerdict::RetryAt))
    }

    /// Ends a delivery `failed` without an attempt.
    fn give_up(&self, delivery: &WebhookDelivery, reason: &str) -> Result<(), StoreError> {
        let attempt = DeliveryAttempt {
            sent: false,
            status: DeliveryStatus::Failed,
            response_status: None,
            duration_ms: 0,
            error: Some(reason.to_owned()),
            next_attempt_at: None,
            at: self.clock.now(),
        };
        self.store().record_attempt(delivery.id, delivery.attempts, &attempt).map(|_| ())
    }

    /// The deliveries still to make, for metrics.
    pub fn backlog(&self) -> Result<DeliveryBacklog, StoreError> {
        self.store().backlog(self.clock.now())
    }

    /// The longest a whole schedule can take, for documentation and checks.
    pub fn retry_span(&self) -> Duration {
        self.policy.retry_schedule.span()
    }
}

impl WebhookUseCases for WebhookService {
    fn within(&self, repositories: &Repositories) -> Box<dyn WebhookUseCases> {
        Box::new(Self::within(self, repositories))
    }

    // ---- Endpoints (admin) ----

    /// Registers an endpoint with a fresh signing secret (the caller shows it this once).
    fn create(&self, actor: Actor, draft: EndpointDraft) -> Result<WebhookEndpoint, WebhookError> {
        Self::admin_only(actor)?;
        let mut violations = Vec::new();
        let url = self.check_url(&draft.url).map_err(|fault| violations.push(fault)).ok();
        let event_types =
            EventTypeFilter::parse(draft.event_types.as_deref()).map_err(|faults| violations.extend(faults)).ok();
        let description = match draft.description.as_deref().map(parse_description).transpose() {
            Ok(description) => description.filter(|text| !text.is_empty()),
            Err(fault) => {
                violations.push(fault.at("description"));
                None
            }
        };
        let (Some(url), Some(event_types), true) = (url, event_types, violations.is_empty()) else {
            return Err(WebhookError::Invalid(violations));
        };
        let endpoint = NewWebhookEndpoint {
            id: WebhookEndpointId::new(),
            url,
            event_types,
            description,
            secret: self.sender.new_secret()?,
            created_at: self.clock.now(),
        };
        Ok(self.store().insert_endpoint(&endpoint)?)
    }

    fn list(&self, actor: Actor, query: &WebhookEndpointQuery) -> Result<Page<WebhookEndpoint>, WebhookError> {
        Self::admin_only(actor)?;
        Ok(Page::from_overfetched(self.store().list_endpoints(query)?, query.limit))
    }

    fn get(&self, actor: Actor, id: WebhookEndpointId) -> Result<WebhookEndpoint, WebhookError> {
        Self::admin_only(actor)?;
        self.store().find_endpoint(id)?.ok_or(WebhookError::NotFound)
    }

    /// Changes an endpoint. The URL passes the same checks as at creation. An empty change
    /// returns the endpoint as it is.
    fn update(
        &self,
        actor: Actor,
        id: WebhookEndpointId,
        changes: EndpointChanges,
        expected_version: Option<i64>,
    ) -> Result<WebhookEndpoint, WebhookError> {
        Self::admin_only(actor)?;
        let mut violations = Vec::new();
        let mut update = WebhookEndpointUpdate { active: changes.active, ..WebhookEndpointUpdate::default() };
        if let Some(raw) = &changes.url {
            update.url = self.check_url(raw).map_err(|fault| violations.push(fault)).ok();
        }
        if let Some(types) = &changes.event_types {
            update.event_types =
                EventTypeFilter::parse(types.as_deref()).map_err(|faults| violations.extend(faults)).ok();
        }
        if let Some(description) = &changes.description {
            match description.as_deref().map(parse_description).transpose() {
                Ok(text) => update.description = Some(text.filter(|text| !text.is_empty())),
                Err(fault) => violations.push(fault.at("description")),
            }
        }
        if !violations.is_empty() {
            return Err(WebhookError::Invalid(violations));
        }
        if update.is_empty() {
            let endpoint = self.get(actor, id)?;
            return match expected_version {
                Some(version) if version != endpoint.version => Err(WebhookError::VersionMismatch),
                _ => Ok(endpoint),
            };
        }
        Ok(self.store().update_endpoint(id, &update, expected_version, self.clock.now())?)
    }

    /// Removes an endpoint and its delivery log; its pending deliveries are not sent.
    fn delete(&self, actor: Actor, id: WebhookEndpointId, expected_version: Option<i64>) -> Result<(), WebhookError> {
        Self::admin_only(actor)?;
        Ok(self.store().delete_endpoint(id, expected_version)?)
    }

    // ---- Deliveries (admin) ----

    /// The endpoint's delivery log, newest first.
    fn deliveries(&self, actor: Actor, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>, WebhookError> {
        Self::admin_only(actor)?;
        if self.store().find_endpoint(query.endpoint_id)?.is_none() {
            return Err(WebhookError::NotFound);
        }
        Ok(Page::from_overfetched(self.store().list_deliveries(query)?, query.limit))
    }

    /// Delivers the event again now: the delivery becomes `pending`, and its job is due at
    /// once (a new one when the delivery had ended; the waiting one moved forward when it was
    /// still being retried). The same `webhook-id` is sent, so the receiver can tell.
    fn retry(
        &self,
        actor: Actor,
        endpoint_id: WebhookEndpointId,
        delivery_id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, WebhookError> {
        Self::admin_only(actor)?;
        let now = self.clock.now();
        in_transaction(self.unit_of_work.as_ref(), |repositories| {
            let endpoint = repositories.webhooks.find_endpoint(endpoint_id)?.ok_or(WebhookError::NotFound)?;
            match repositories.webhooks.find_delivery(delivery_id)? {
                Some(delivery) if delivery.endpoint_id == endpoint_id => {}
                _ => return Err(WebhookError::NotFound),
            }
            if !endpoint.active {
                return Err(WebhookError::EndpointDisabled);
            }
            let delivery = repositories.webhooks.reopen_delivery(delivery_id, now)?.ok_or(WebhookError::NotFound)?;
            repositories.jobs.enqueue_due_by(&NewJob {
                kind: JobKind::DeliverWebhook,
                subject: delivery_id.as_uuid(),
                run_at: now,
                created_at: now,
            })?;
            Ok(delivery)
        })
    }
}

/// What one dispatch round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchRound {
    pub deliveries: usize,
    /// More events may follow at once.
    pub more: bool,
}

#[cfg(test)]
mod tests;
