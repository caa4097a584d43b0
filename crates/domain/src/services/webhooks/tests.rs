//! The rules of `WebhookService`, checked through mocked repositories, event feed and sender.
//!
//! The service sees two sets of repositories: the pool's (`Ports::webhooks`) and the ones bound
//! to a unit of work (`Ports::tx_webhooks`, `Ports::tx_jobs`), handed out by
//! [`PassThroughUnitOfWork`]. What must be atomic is expected on the `tx_*` mocks, and the
//! [`Journal`] records the calls and every unit of work's begin / commit / rollback in order, so
//! "in one unit of work" is asserted, not assumed. A mock method without an expectation panics
//! when called, so "not called" holds by omission; where it is the point of a test it is
//! spelled out with `.never()`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use mockall::predicate::eq;
use uuid::Uuid;

use super::*;
use crate::ports::{MockEventFeed, MockJobQueue, MockWebhookRepository, MockWebhookSender, SendReport};
use crate::services::fixtures::{actor, admin, customer, fixed_clock, now};
use crate::webhook::{EndpointUrl, MAX_DESCRIPTION_CHARS, MAX_URL_LENGTH, WebhookSecret};

const URL: &str = "https://hooks.example.com/orderly";

// ---- the test doubles -----------------------------------------------------------------------

/// Every call the mocks saw and every unit of work's boundaries, in order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, entry: &str) {
        self.0.lock().unwrap().push(entry.to_owned());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A unit of work that runs the work against its repositories and counts how it ended.
struct PassThroughUnitOfWork {
    repositories: Repositories,
    commits: AtomicUsize,
    rollbacks: AtomicUsize,
    journal: Journal,
}

impl UnitOfWork for PassThroughUnitOfWork {
    fn run(&self, work: &mut dyn FnMut(&Repositories) -> Result<bool, StoreError>) -> Result<(), StoreError> {
        self.journal.note("begin");
        let outcome = work(&self.repositories);
        if matches!(outcome, Ok(true)) {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.journal.note("commit");
        } else {
            self.rollbacks.fetch_add(1, Ordering::SeqCst);
            self.journal.note("rollback");
        }
        outcome.map(|_| ())
    }
}

fn repositories(webhooks: MockWebhookRepository, jobs: MockJobQueue) -> Repositories {
    Repositories { webhooks: Arc::new(webhooks), jobs: Arc::new(jobs), ..Repositories::mocked() }
}

/// Answers `answers` one after the other, one per call.
fn in_turn<T: Send + 'static>(answers: Vec<T>) -> impl FnMut() -> T + Send + 'static {
    let mut answers = VecDeque::from(answers);
    move || answers.pop_front().expect("called more often than it has answers")
}

fn unavailable() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

/// Which set of repositories an expectation is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Pool,
    Tx,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Pool => "",
            Side::Tx => "tx.",
        }
    }
}

#[derive(Default)]
struct Ports {
    /// The pool's webhook store.
    webhooks: MockWebhookRepository,
    tx_webhooks: MockWebhookRepository,
    tx_jobs: MockJobQueue,
    feed: MockEventFeed,
    sender: MockWebhookSender,
    journal: Journal,
}

struct Harness {
    service: WebhookService,
    unit_of_work: Arc<PassThroughUnitOfWork>,
    journal: Journal,
}

impl Harness {
    fn commits(&self) -> usize {
        self.unit_of_work.commits.load(Ordering::SeqCst)
    }

    fn rollbacks(&self) -> usize {
        self.unit_of_work.rollbacks.load(Ordering::SeqCst)
    }

    fn journal(&self) -> Vec<String> {
        self.journal.entries()
    }
}

impl Ports {
    fn build(self) -> Harness {
        self.build_with(policy())
    }

    fn build_with(self, policy: WebhookPolicy) -> Harness {
        let unit_of_work = Arc::new(PassThroughUnitOfWork {
            repositories: repositories(self.tx_webhooks, self.tx_jobs),
            commits: AtomicUsize::new(0),
            rollbacks: AtomicUsize::new(0),
            journal: self.journal.clone(),
        });
        let service = WebhookService::new(
            repositories(self.webhooks, MockJobQueue::new()),
            unit_of_work.clone(),
            Arc::new(self.feed),
            Arc::new(self.sender),
            fixed_clock(),
            policy,
        );
        Harness { service, unit_of_work, journal: self.journal }
    }

    fn store_on(&mut self, side: Side) -> &mut MockWebhookRepository {
        match side {
            Side::Pool => &mut self.webhooks,
            Side::Tx => &mut self.tx_webhooks,
        }
    }

    /// `side`'s store looks `id` up and finds `found`, once.
    fn expect_endpoint(&mut self, side: Side, id: WebhookEndpointId, found: Option<WebhookEndpoint>) {
        let journal = self.journal.clone();
        let label = format!("{}find_endpoint", side.prefix());
        self.store_on(side).expect_find_endpoint().with(eq(id)).times(1).returning(move |_| {
            journal.note(&label);
            Ok(found.clone())
        });
    }

    /// `side`'s store looks `id` up and finds `found`, once.
    fn expect_delivery(&mut self, side: Side, id: WebhookDeliveryId, found: Option<WebhookDelivery>) {
        let journal = self.journal.clone();
        let label = format!("{}find_delivery", side.prefix());
        self.store_on(side).expect_find_delivery().with(eq(id)).times(1).returning(move |_| {
            journal.note(&label);
            Ok(found.clone())
        });
    }

    /// The feed finds `event` by its id, once.
    fn expect_event_found(&mut self, event: &FeedEvent) {
        let found = event.clone();
        self.feed.expect_find().with(eq(event.id)).times(1).returning(move |_| Ok(Some(found.clone())));
    }

    /// The dispatch position is `position`, once.
    fn expect_position(&mut self, position: Option<i64>) {
        let journal = self.journal.clone();
        self.webhooks.expect_dispatch_position().times(1).returning(move || {
            journal.note("dispatch_position");
            Ok(position)
        });
    }

    /// The feed is asked for the events after `after` (every type, a batch) and answers `events`.
    fn expect_events(&mut self, after: Option<i64>, events: Vec<FeedEvent>) {
        let journal = self.journal.clone();
        let expected = EventQuery { type_name: None, after, limit: policy().dispatch_batch };
        self.feed.expect_list().with(eq(expected)).times(1).returning(move |_| {
            journal.note("feed.list");
            Ok(events.clone())
        });
    }

    fn expect_active_endpoints(&mut self, endpoints: Vec<WebhookEndpoint>) {
        let journal = self.journal.clone();
        self.webhooks.expect_active_endpoints().times(1).returning(move || {
            journal.note("active_endpoints");
            Ok(endpoints.clone())
        });
    }

    /// The position is moved from `from` to `to` in the unit of work, once; `moved: false` means
    /// another instance moved it first.
    fn expect_advance(&mut self, from: Option<i64>, to: i64, moved: bool) {
        let journal = self.journal.clone();
        self.tx_webhooks.expect_advance_dispatch_position().with(eq(from), eq(to)).times(1).returning(move |_, _| {
            journal.note("tx.advance_dispatch_position");
            Ok(moved)
        });
    }

    /// Every job the unit of work's queue is asked to enqueue, noted in the journal too.
    fn record_enqueued(&mut self) -> Arc<Mutex<Vec<NewJob>>> {
        let enqueued = Arc::new(Mutex::new(Vec::new()));
        let seen = enqueued.clone();
        let journal = self.journal.clone();
        self.tx_jobs.expect_enqueue().returning(move |job| {
            journal.note("tx.jobs.enqueue");
            seen.lock().unwrap().push(job.clone());
            Ok(())
        });
        enqueued
    }

    /// The pool's store records `attempt` on `delivery` (from its attempt count), once, and
    /// answers `recorded`.
    fn expect_recorded(&mut self, delivery: &WebhookDelivery, attempt: DeliveryAttempt, recorded: bool) {
        let journal = self.journal.clone();
        self.webhooks
            .expect_record_attempt()
            .with(eq(delivery.id), eq(delivery.attempts), eq(attempt))
            .times(1)
            .returning(move |_, _, _| {
                journal.note("record_attempt");
                Ok(recorded)
            });
    }

    /// The sender is asked to send `event` to `endpoint` (its URL, signed with its secret),
    /// once, and reports `outcome` after `duration`.
    fn expect_sent(&mut self, endpoint: &WebhookEndpoint, event: &FeedEvent, outcome: SendOutcome, duration: u64) {
        let journal = self.journal.clone();
        let (url, secret, event) = (endpoint.url.clone(), endpoint.secret.clone(), event.clone());
        self.sender
            .expect_send()
            .withf(move |message| *message.url == url && *message.secret == secret && *message.event == event)
            .times(1)
            .returning(move |_| {
                journal.note("send");
                SendReport { outcome: outcome.clone(), duration: std::time::Duration::from_millis(duration) }
            });
    }
}

// ---- sample values --------------------------------------------------------------------------

/// Unlike the defaults, so a constant in the service would be caught: two waits (three
/// attempts), batches of three events.
fn policy() -> WebhookPolicy {
    WebhookPolicy {
        destinations: DestinationPolicy::default(),
        retry_schedule: RetrySchedule::new(vec![Duration::seconds(30), Duration::minutes(10)]).unwrap(),
        dispatch_batch: PageLimit::new(3).unwrap(),
    }
}

fn secret() -> WebhookSecret {
    WebhookSecret::from_stored("whsec_c2VjcmV0LWZvci10ZXN0cw==".to_owned())
}

/// An active endpoint for every event type, created a day ago and changed once since (version 2).
fn endpoint() -> WebhookEndpoint {
    let created_at = now() - Duration::days(1);
    WebhookEndpoint {
        id: WebhookEndpointId::new(),
        url: EndpointUrl::from_stored(URL.to_owned()),
        event_types: EventTypeFilter::All,
        description: Some("Fulfilment".to_owned()),
        active: true,
        secret: secret(),
        version: 2,
        created_at,
        updated_at: created_at + Duration::hours(1),
    }
}

fn disabled_endpoint() -> WebhookEndpoint {
    WebhookEndpoint { active: false, version: 3, ..endpoint() }
}

/// An event of `type_name` at feed position `position`, which occurred at `occurred_at`.
fn feed_event(position: i64, type_name: &str, occurred_at: DateTime<Utc>) -> FeedEvent {
    let subject = Uuid::now_v7();
    FeedEvent {
        id: Uuid::now_v7(),
        position,
        type_name: type_name.to_owned(),
        occurred_at,
        subject_type: "order".to_owned(),
        subject_id: subject.to_string(),
        data_json: format!(r#"{{"order_id":"{subject}"}}"#),
    }
}

/// `order.placed`, a minute ago.
fn event() -> FeedEvent {
    feed_event(41, "order.placed", now() - Duration::minutes(1))
}

/// `event`'s pending delivery to `endpoint`, whose first attempt failed half a minute ago.
fn delivery(endpoint: &WebhookEndpoint, event: &FeedEvent) -> WebhookDelivery {
    WebhookDelivery {
        id: WebhookDeliveryId::new(),
        endpoint_id: endpoint.id,
        event_id: event.id,
        event_type: event.type_name.clone(),
        status: DeliveryStatus::Pending,
        attempts: 1,
        response_status: Some(503),
        duration_ms: Some(120),
        error: Some("the endpoint answered 503".to_owned()),
        next_attempt_at: Some(now()),
        created_at: now() - Duration::minutes(1),
        updated_at: now() - Duration::seconds(30),
    }
}

/// `delivery`'s job, claimed now for the `attempts`-th time.
fn job_for(delivery: &WebhookDelivery, attempts: u32) -> Job {
    Job {
        id: Uuid::now_v7(),
        kind: JobKind::DeliverWebhook,
        subject: delivery.id.as_uuid(),
        attempts,
        created_at: delivery.created_at,
        lease_until: now() + Duration::minutes(5),
    }
}

/// The endpoint the store answers for `new`, as inserted.
fn inserted(new: &NewWebhookEndpoint) -> WebhookEndpoint {
    WebhookEndpoint {
        id: new.id,
        url: new.url.clone(),
        event_types: new.event_types.clone(),
        description: new.description.clone(),
        active: true,
        secret: new.secret.clone(),
        version: 1,
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

fn draft(url: &str) -> EndpointDraft {
    EndpointDraft { url: url.to_owned(), event_types: None, description: None }
}

fn types(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Where each violation is and why, e.g. `("event_types/2", "duplicate")`.
fn faults(error: WebhookError) -> Vec<(String, &'static str)> {
    match error {
        WebhookError::Invalid(violations) => {
            violations.into_iter().map(|fault| (fault.path.join("/"), fault.code)).collect()
        }
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

fn at(path: &str, code: &'static str) -> (String, &'static str) {
    (path.to_owned(), code)
}

fn admin_actor() -> Actor {
    actor(&admin())
}

// ---- authorisation --------------------------------------------------------------------------

#[test]
fn customers_may_do_nothing_with_webhooks_and_no_port_is_touched() {
    // No expectation anywhere: any call to any port would panic.
    let harness = Ports::default().build();
    let service = &harness.service;
    let caller = actor(&customer());
    let (endpoint_id, delivery_id) = (WebhookEndpointId::new(), WebhookDeliveryId::new());
    let deliveries = DeliveryQuery { endpoint_id, after: None, limit: PageLimit::DEFAULT };
    let changes = EndpointChanges { active: Some(false), ..EndpointChanges::default() };

    let results: Vec<(&str, WebhookError)> = vec![
        ("create", service.create(caller, draft(URL)).unwrap_err()),
        ("list", service.list(caller, &WebhookEndpointQuery::default()).unwrap_err()),
        ("get", service.get(caller, endpoint_id).unwrap_err()),
        ("update", service.update(caller, endpoint_id, changes, Some(2)).unwrap_err()),
        ("empty update", service.update(caller, endpoint_id, EndpointChanges::default(), None).unwrap_err()),
        ("delete", service.delete(caller, endpoint_id, None).unwrap_err()),
        ("deliveries", service.deliveries(caller, &deliveries).unwrap_err()),
        ("retry", service.retry(caller, endpoint_id, delivery_id).unwrap_err()),
    ];

    for (operation, error) in results {
        assert!(matches!(error, WebhookError::Forbidden), "{operation}: {error:?}");
    }
    assert_eq!(harness.journal(), Vec::<String>::new());
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn customers_are_refused_before_their_input_is_looked_at() {
    let harness = Ports::default().build();
    let caller = actor(&customer());
    let bad = EndpointDraft {
        url: "https://169.254.169.254/".to_owned(),
        event_types: Some(vec![]),
        description: Some("\u{7}".to_owned()),
    };

    let error = harness.service.create(caller, bad).unwrap_err();

    assert!(matches!(error, WebhookError::Forbidden), "{error:?}");
}

// ---- creating endpoints ---------------------------------------------------------------------

#[test]
fn an_admin_registers_an_endpoint_with_a_fresh_secret() {
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().times(1).returning(|| Ok(secret()));
    ports
        .webhooks
        .expect_insert_endpoint()
        .withf(|new| {
            new.id.as_uuid().get_version_num() == 7
                && new.url.as_str() == URL
                && new.event_types == EventTypeFilter::Only(vec!["order.placed", "payment.refunded"])
                && new.description.as_deref() == Some("Fulfilment team")
                && new.secret == secret()
                && new.created_at == now()
        })
        .times(1)
        .returning(|new| Ok(inserted(new)));
    let harness = ports.build();

    let created = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft {
                url: URL.to_owned(),
                event_types: Some(types(&["order.placed", "payment.refunded"])),
                description: Some("  Fulfilment team \n".to_owned()),
            },
        )
        .unwrap();

    assert_eq!(created.url.as_str(), URL);
    assert_eq!(created.secret, secret());
    assert_eq!(created.event_types, EventTypeFilter::Only(vec!["order.placed", "payment.refunded"]));
    assert_eq!(created.description.as_deref(), Some("Fulfilment team"));
    assert!(created.active);
    assert_eq!(created.created_at, now());
    // Creating an endpoint needs no unit of work: it is one insert.
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn without_event_types_an_endpoint_receives_every_type_and_a_blank_description_is_none() {
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().times(1).returning(|| Ok(secret()));
    ports
        .webhooks
        .expect_insert_endpoint()
        // The URL is stored in its normalised form.
        .withf(|new| {
            new.url.as_str() == "https://hooks.example.com/"
                && new.event_types == EventTypeFilter::All
                && new.description.is_none()
        })
        .times(1)
        .returning(|new| Ok(inserted(new)));
    let harness = ports.build();

    let created = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft {
                url: "HTTPS://Hooks.Example.COM".to_owned(),
                event_types: None,
                description: Some("   ".to_owned()),
            },
        )
        .unwrap();

    assert_eq!(created.event_types, EventTypeFilter::All);
    assert_eq!(created.description, None);
}

#[test]
fn a_url_the_destination_policy_refuses_is_a_violation_at_url_with_its_code() {
    let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
    for (url, code) in [
        // The cloud metadata service: the SSRF the policy is there for.
        ("https://169.254.169.254/latest/meta-data/", "forbidden_destination"),
        ("https://127.0.0.1:8443/hook", "forbidden_destination"),
        ("https://localhost/hook", "forbidden_destination"),
        ("https://10.0.0.7/hook", "forbidden_destination"),
        ("https://[::ffff:127.0.0.1]/hook", "forbidden_destination"),
        ("not a url", "invalid_format"),
        ("http://hooks.example.com/", "invalid_value"),
        ("https://user:pw@hooks.example.com/", "invalid_value"),
        ("https://hooks.example.com/#fragment", "invalid_value"),
        (long.as_str(), "too_long"),
    ] {
        let mut ports = Ports::default();
        ports.sender.expect_new_secret().never();
        ports.webhooks.expect_insert_endpoint().never();
        let harness = ports.build();

        let error = harness.service.create(admin_actor(), draft(url)).unwrap_err();

        assert_eq!(faults(error), [at("url", code)], "{url}");
    }
}

#[test]
fn the_refusal_names_the_address_and_its_kind() {
    let harness = Ports::default().build();

    let error = harness.service.create(admin_actor(), draft("https://169.254.169.254/latest/meta-data/")).unwrap_err();

    let WebhookError::Invalid(violations) = error else { panic!("expected invalid fields") };
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("169.254.169.254"), "{}", violations[0].message);
    assert!(violations[0].message.contains("link-local"), "{}", violations[0].message);
}

#[test]
fn the_configured_destination_policy_is_the_one_applied() {
    // Tests (and deployments with in-network receivers) allow a network and plain http.
    let relaxed = WebhookPolicy {
        destinations: DestinationPolicy { allow_http: true, allowed_networks: vec!["127.0.0.0/8".parse().unwrap()] },
        ..policy()
    };
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().times(1).returning(|| Ok(secret()));
    ports
        .webhooks
        .expect_insert_endpoint()
        .withf(|new| new.url.as_str() == "http://127.0.0.1:9000/hook")
        .times(1)
        .returning(|new| Ok(inserted(new)));
    let harness = ports.build_with(relaxed);

    let created = harness.service.create(admin_actor(), draft("http://127.0.0.1:9000/hook")).unwrap();
    assert_eq!(created.url.as_str(), "http://127.0.0.1:9000/hook");

    // Other private ranges stay refused.
    let error = harness.service.create(admin_actor(), draft("http://10.0.0.1/hook")).unwrap_err();
    assert_eq!(faults(error), [at("url", "forbidden_destination")]);
}

#[test]
fn every_fault_of_a_draft_is_reported_at_once() {
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().never();
    ports.webhooks.expect_insert_endpoint().never();
    let harness = ports.build();

    let error = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft {
                url: "https://169.254.169.254/".to_owned(),
                event_types: Some(types(&["order.placed", "order.exploded", "order.placed"])),
                description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            },
        )
        .unwrap_err();

    assert_eq!(
        faults(error),
        [
            at("url", "forbidden_destination"),
            at("event_types/1", "invalid_value"),
            at("event_types/2", "duplicate"),
            at("description", "too_long"),
        ]
    );
}

#[test]
fn an_empty_event_type_list_is_refused_along_with_the_url() {
    let harness = Ports::default().build();

    let error = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft { url: "ftp://hooks.example.com/".to_owned(), event_types: Some(vec![]), description: None },
        )
        .unwrap_err();

    assert_eq!(faults(error), [at("url", "invalid_value"), at("event_types", "too_short")]);
}

#[test]
fn event_type_faults_alone_are_refused_too() {
    let harness = Ports::default().build();

    let error = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft { url: URL.to_owned(), event_types: Some(types(&["nope"])), description: None },
        )
        .unwrap_err();

    assert_eq!(faults(error), [at("event_types/0", "invalid_value")]);
}

#[test]
fn a_description_with_control_characters_is_refused() {
    let harness = Ports::default().build();

    let error = harness
        .service
        .create(
            admin_actor(),
            EndpointDraft { url: URL.to_owned(), event_types: None, description: Some("bell\u{7}".to_owned()) },
        )
        .unwrap_err();

    assert_eq!(faults(error), [at("description", "invalid_format")]);
}

#[test]
fn no_endpoint_is_inserted_without_a_secret() {
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().times(1).returning(|| Err(anyhow::anyhow!("no entropy")));
    ports.webhooks.expect_insert_endpoint().never();
    let harness = ports.build();

    let error = harness.service.create(admin_actor(), draft(URL)).unwrap_err();

    assert!(matches!(error, WebhookError::Unexpected(_)), "{error:?}");
}

#[test]
fn a_store_failure_on_insert_is_a_store_error() {
    let mut ports = Ports::default();
    ports.sender.expect_new_secret().times(1).returning(|| Ok(secret()));
    ports.webhooks.expect_insert_endpoint().times(1).returning(|_| Err(unavailable()));
    let harness = ports.build();

    let error = harness.service.create(admin_actor(), draft(URL)).unwrap_err();

    assert!(matches!(error, WebhookError::Store(StoreError::Unavailable(_))), "{error:?}");
}

// ---- reading endpoints ----------------------------------------------------------------------

#[test]
fn listing_endpoints_pages_what_the_store_overfetched() {
    let endpoints = vec![endpoint(), endpoint(), endpoint()];
    let query = WebhookEndpointQuery { after: Some(WebhookEndpointId::new()), limit: PageLimit::new(2).unwrap() };
    let mut ports = Ports::default();
    let answer = endpoints.clone();
    ports.webhooks.expect_list_endpoints().with(eq(query.clone())).times(1).returning(move |_| Ok(answer.clone()));
    let harness = ports.build();

    let page = harness.service.list(admin_actor(), &query).unwrap();

    assert_eq!(page.items, endpoints[..2]);
    assert!(page.has_more);
}

#[test]
fn getting_an_endpoint_finds_it_or_not() {
    let found = endpoint();
    let missing = WebhookEndpointId::new();
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Pool, found.id, Some(found.clone()));
    ports.expect_endpoint(Side::Pool, missing, None);
    let harness = ports.build();

    assert_eq!(harness.service.get(admin_actor(), found.id).unwrap(), found);
    let error = harness.service.get(admin_actor(), missing).unwrap_err();
    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
}

// ---- changing endpoints ---------------------------------------------------------------------

#[test]
fn an_update_applies_every_change_at_the_expected_version() {
    let current = endpoint();
    let id = current.id;
    let expected = WebhookEndpointUpdate {
        url: Some(EndpointUrl::from_stored("https://hooks.example.com/v2".to_owned())),
        event_types: Some(EventTypeFilter::Only(vec!["order.shipped"])),
        description: Some(Some("Shipping".to_owned())),
        active: Some(false),
    };
    let updated = WebhookEndpoint {
        url: EndpointUrl::from_stored("https://hooks.example.com/v2".to_owned()),
        event_types: EventTypeFilter::Only(vec!["order.shipped"]),
        description: Some("Shipping".to_owned()),
        active: false,
        version: 3,
        updated_at: now(),
        ..current
    };
    let mut ports = Ports::default();
    let answer = updated.clone();
    ports
        .webhooks
        .expect_update_endpoint()
        .with(eq(id), eq(expected), eq(Some(2)), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(answer.clone()));
    let harness = ports.build();

    let result = harness
        .service
        .update(
            admin_actor(),
            id,
            EndpointChanges {
                url: Some("HTTPS://HOOKS.example.com/v2".to_owned()),
                event_types: Some(Some(types(&["order.shipped"]))),
                description: Some(Some(" Shipping ".to_owned())),
                active: Some(false),
            },
            Some(2),
        )
        .unwrap();

    assert_eq!(result, updated);
}

#[test]
fn an_update_can_reset_the_filter_to_every_type_and_clear_the_description() {
    let current = endpoint();
    let expected = WebhookEndpointUpdate {
        event_types: Some(EventTypeFilter::All),
        description: Some(None),
        ..WebhookEndpointUpdate::default()
    };
    let mut ports = Ports::default();
    let answer = WebhookEndpoint { description: None, version: 3, ..current.clone() };
    ports
        .webhooks
        .expect_update_endpoint()
        .with(eq(current.id), eq(expected), eq(None), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(answer.clone()));
    let harness = ports.build();

    let result = harness
        .service
        .update(
            admin_actor(),
            current.id,
            EndpointChanges { event_types: Some(None), description: Some(None), ..EndpointChanges::default() },
            None,
        )
        .unwrap();

    assert_eq!(result.description, None);
}

#[test]
fn a_blank_description_in_an_update_clears_it() {
    let current = endpoint();
    let expected = WebhookEndpointUpdate { description: Some(None), ..WebhookEndpointUpdate::default() };
    let mut ports = Ports::default();
    let answer = WebhookEndpoint { description: None, version: 3, ..current.clone() };
    ports
        .webhooks
        .expect_update_endpoint()
        .with(eq(current.id), eq(expected), eq(Some(2)), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(answer.clone()));
    let harness = ports.build();

    let result = harness
        .service
        .update(
            admin_actor(),
            current.id,
            EndpointChanges { description: Some(Some("  ".to_owned())), ..EndpointChanges::default() },
            Some(2),
        )
        .unwrap();

    assert_eq!(result.description, None);
}

#[test]
fn an_updated_url_passes_the_same_checks_as_at_creation() {
    let mut ports = Ports::default();
    ports.webhooks.expect_update_endpoint().never();
    let harness = ports.build();
    let id = WebhookEndpointId::new();

    let error = harness
        .service
        .update(
            admin_actor(),
            id,
            EndpointChanges { url: Some("https://169.254.169.254/latest/".to_owned()), ..EndpointChanges::default() },
            Some(2),
        )
        .unwrap_err();
    assert_eq!(faults(error), [at("url", "forbidden_destination")]);

    let error = harness
        .service
        .update(
            admin_actor(),
            id,
            EndpointChanges {
                url: Some("http://hooks.example.com/".to_owned()),
                event_types: Some(Some(vec![])),
                description: Some(Some("\u{1b}[31m".to_owned())),
                active: Some(true),
            },
            None,
        )
        .unwrap_err();
    assert_eq!(
        faults(error),
        [at("url", "invalid_value"), at("event_types", "too_short"), at("description", "invalid_format")]
    );
}

#[test]
fn an_empty_change_returns_the_endpoint_as_it_is() {
    let current = endpoint();
    let mut ports = Ports::default();
    ports.webhooks.expect_update_endpoint().never();
    let found = current.clone();
    ports.webhooks.expect_find_endpoint().with(eq(current.id)).times(3).returning(move |_| Ok(Some(found.clone())));
    let harness = ports.build();
    let service = &harness.service;

    assert_eq!(service.update(admin_actor(), current.id, EndpointChanges::default(), None).unwrap(), current);
    assert_eq!(service.update(admin_actor(), current.id, EndpointChanges::default(), Some(2)).unwrap(), current);
    // Even an empty change is refused at a stale version.
    let error = service.update(admin_actor(), current.id, EndpointChanges::default(), Some(1)).unwrap_err();
    assert!(matches!(error, WebhookError::VersionMismatch), "{error:?}");
}

#[test]
fn an_empty_change_to_an_unknown_endpoint_is_not_found() {
    let id = WebhookEndpointId::new();
    let mut ports = Ports::default();
    ports.webhooks.expect_update_endpoint().never();
    ports.expect_endpoint(Side::Pool, id, None);
    let harness = ports.build();

    let error = harness.service.update(admin_actor(), id, EndpointChanges::default(), Some(2)).unwrap_err();

    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
}

#[test]
fn an_update_of_an_unknown_or_changed_endpoint_is_refused() {
    for expected in ["NotFound", "VersionMismatch"] {
        let mut ports = Ports::default();
        let answer = move || if expected == "NotFound" { UpdateError::NotFound } else { UpdateError::VersionMismatch };
        ports.webhooks.expect_update_endpoint().times(1).returning(move |_, _, _, _| Err(answer()));
        let harness = ports.build();

        let error = harness
            .service
            .update(
                admin_actor(),
                WebhookEndpointId::new(),
                EndpointChanges { active: Some(true), ..EndpointChanges::default() },
                Some(7),
            )
            .unwrap_err();

        let matched = match error {
            WebhookError::NotFound => "NotFound",
            WebhookError::VersionMismatch => "VersionMismatch",
            other => panic!("{other:?}"),
        };
        assert_eq!(matched, expected);
    }
}

// ---- deleting endpoints ---------------------------------------------------------------------

#[test]
fn deleting_an_endpoint_passes_its_expected_version() {
    let id = WebhookEndpointId::new();
    let mut ports = Ports::default();
    ports.webhooks.expect_delete_endpoint().with(eq(id), eq(Some(2))).times(1).returning(|_, _| Ok(()));
    ports.webhooks.expect_delete_endpoint().with(eq(id), eq(None)).times(1).returning(|_, _| Ok(()));
    let harness = ports.build();

    harness.service.delete(admin_actor(), id, Some(2)).unwrap();
    harness.service.delete(admin_actor(), id, None).unwrap();
}

#[test]
fn deleting_an_unknown_or_changed_endpoint_is_refused() {
    let (missing, changed) = (WebhookEndpointId::new(), WebhookEndpointId::new());
    let mut ports = Ports::default();
    ports
        .webhooks
        .expect_delete_endpoint()
        .with(eq(missing), eq(None))
        .times(1)
        .returning(|_, _| Err(UpdateError::NotFound));
    ports
        .webhooks
        .expect_delete_endpoint()
        .with(eq(changed), eq(Some(1)))
        .times(1)
        .returning(|_, _| Err(UpdateError::VersionMismatch));
    let harness = ports.build();

    let error = harness.service.delete(admin_actor(), missing, None).unwrap_err();
    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
    let error = harness.service.delete(admin_actor(), changed, Some(1)).unwrap_err();
    assert!(matches!(error, WebhookError::VersionMismatch), "{error:?}");
}

// ---- the delivery log -----------------------------------------------------------------------

#[test]
fn the_deliveries_of_an_unknown_endpoint_are_not_found() {
    let query = DeliveryQuery { endpoint_id: WebhookEndpointId::new(), after: None, limit: PageLimit::DEFAULT };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Pool, query.endpoint_id, None);
    ports.webhooks.expect_list_deliveries().never();
    let harness = ports.build();

    let error = harness.service.deliveries(admin_actor(), &query).unwrap_err();

    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
}

#[test]
fn the_deliveries_of_an_endpoint_are_paged() {
    let endpoint = endpoint();
    let log: Vec<_> = (0..3).map(|_| delivery(&endpoint, &event())).collect();
    let query = DeliveryQuery {
        endpoint_id: endpoint.id,
        after: Some(WebhookDeliveryId::new()),
        limit: PageLimit::new(2).unwrap(),
    };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Pool, endpoint.id, Some(endpoint.clone()));
    let answer = log.clone();
    ports.webhooks.expect_list_deliveries().with(eq(query.clone())).times(1).returning(move |_| Ok(answer.clone()));
    let harness = ports.build();

    let page = harness.service.deliveries(admin_actor(), &query).unwrap();

    assert_eq!(page.items, log[..2]);
    assert!(page.has_more);
}

// ---- manual retries -------------------------------------------------------------------------

#[test]
fn a_retry_reopens_the_delivery_and_makes_its_job_due_now_in_one_unit_of_work() {
    let endpoint = endpoint();
    let failed = WebhookDelivery {
        status: DeliveryStatus::Failed,
        attempts: 3,
        next_attempt_at: None,
        ..delivery(&endpoint, &event())
    };
    let reopened = WebhookDelivery { status: DeliveryStatus::Pending, next_attempt_at: Some(now()), ..failed.clone() };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, failed.id, Some(failed.clone()));
    let (journal, answer) = (ports.journal.clone(), reopened.clone());
    ports.tx_webhooks.expect_reopen_delivery().with(eq(failed.id), eq(now())).times(1).returning(move |_, _| {
        journal.note("tx.reopen_delivery");
        Ok(Some(answer.clone()))
    });
    let journal = ports.journal.clone();
    let job = NewJob { kind: JobKind::DeliverWebhook, subject: failed.id.as_uuid(), run_at: now(), created_at: now() };
    ports.tx_jobs.expect_enqueue_due_by().with(eq(job)).times(1).returning(move |_| {
        journal.note("tx.jobs.enqueue_due_by");
        Ok(())
    });
    // Not a plain enqueue: a job still waiting for its back-off must be moved forward.
    ports.tx_jobs.expect_enqueue().never();
    let harness = ports.build();

    let result = harness.service.retry(admin_actor(), endpoint.id, failed.id).unwrap();

    assert_eq!(result, reopened);
    assert_eq!(
        harness.journal(),
        ["begin", "tx.find_endpoint", "tx.find_delivery", "tx.reopen_delivery", "tx.jobs.enqueue_due_by", "commit"]
    );
    assert_eq!((harness.commits(), harness.rollbacks()), (1, 0));
}

#[test]
fn a_retry_of_another_endpoints_delivery_is_not_found() {
    let elsewhere = delivery(&endpoint(), &event());
    let endpoint = endpoint();
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, elsewhere.id, Some(elsewhere.clone()));
    ports.tx_webhooks.expect_reopen_delivery().never();
    ports.tx_jobs.expect_enqueue_due_by().never();
    let harness = ports.build();

    let error = harness.service.retry(admin_actor(), endpoint.id, elsewhere.id).unwrap_err();

    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn a_retry_of_an_unknown_delivery_or_endpoint_is_not_found() {
    let endpoint = endpoint();
    let unknown = WebhookDeliveryId::new();
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, unknown, None);
    let gone = WebhookEndpointId::new();
    ports.expect_endpoint(Side::Tx, gone, None);
    ports.tx_webhooks.expect_reopen_delivery().never();
    ports.tx_jobs.expect_enqueue_due_by().never();
    let harness = ports.build();

    let error = harness.service.retry(admin_actor(), endpoint.id, unknown).unwrap_err();
    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
    let error = harness.service.retry(admin_actor(), gone, WebhookDeliveryId::new()).unwrap_err();
    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 2));
}

#[test]
fn a_retry_to_a_disabled_endpoint_is_refused_and_changes_nothing() {
    let endpoint = disabled_endpoint();
    let failed = WebhookDelivery { status: DeliveryStatus::Failed, ..delivery(&endpoint, &event()) };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, failed.id, Some(failed.clone()));
    ports.tx_webhooks.expect_reopen_delivery().never();
    ports.tx_jobs.expect_enqueue_due_by().never();
    let harness = ports.build();

    let error = harness.service.retry(admin_actor(), endpoint.id, failed.id).unwrap_err();

    assert!(matches!(error, WebhookError::EndpointDisabled), "{error:?}");
    assert_eq!(harness.journal(), ["begin", "tx.find_endpoint", "tx.find_delivery", "rollback"]);
}

#[test]
fn a_retry_whose_delivery_vanished_meanwhile_queues_nothing() {
    let endpoint = endpoint();
    let failed = WebhookDelivery { status: DeliveryStatus::Failed, ..delivery(&endpoint, &event()) };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, failed.id, Some(failed.clone()));
    ports.tx_webhooks.expect_reopen_delivery().times(1).returning(|_, _| Ok(None));
    ports.tx_jobs.expect_enqueue_due_by().never();
    let harness = ports.build();

    let error = harness.service.retry(admin_actor(), endpoint.id, failed.id).unwrap_err();

    assert!(matches!(error, WebhookError::NotFound), "{error:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn a_retry_whose_job_cannot_be_queued_is_rolled_back() {
    let endpoint = endpoint();
    let failed = WebhookDelivery { status: DeliveryStatus::Failed, ..delivery(&endpoint, &event()) };
    let mut ports = Ports::default();
    ports.expect_endpoint(Side::Tx, endpoint.id, Some(endpoint.clone()));
    ports.expect_delivery(Side::Tx, failed.id, Some(failed.clone()));
    let reopened = failed.clone();
    ports.tx_webhooks.expect_reopen_delivery().times(1).returning(move |_, _| Ok(Some(reopened.clone())));
    ports.tx_jobs.expect_enqueue_due_by().times(1).returning(|_| Err(unavailable()));
    let harness = ports.build();

    let error = harness.service.retry(admin_actor(), endpoint.id, failed.id).unwrap_err();

    assert!(matches!(error, WebhookError::Store(StoreError::Unavailable(_))), "{error:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

// ---- the dispatcher -------------------------------------------------------------------------

#[test]
fn with_no_new_events_a_dispatch_round_writes_nothing() {
    let mut ports = Ports::default();
    ports.expect_position(Some(41));
    ports.expect_events(Some(41), vec![]);
    ports.webhooks.expect_active_endpoints().never();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 0, more: false });
    assert_eq!(harness.journal(), ["dispatch_position", "feed.list"]);
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn events_become_one_delivery_and_one_job_per_endpoint_that_wants_them() {
    let placed_only = WebhookEndpoint {
        event_types: EventTypeFilter::Only(vec!["order.placed"]),
        created_at: now() - Duration::hours(1),
        ..endpoint()
    };
    // Registered ten minutes ago: it is sent nothing older.
    let everything = WebhookEndpoint { created_at: now() - Duration::minutes(10), ..endpoint() };
    let old_placed = feed_event(11, "order.placed", now() - Duration::minutes(30));
    // Occurred the very moment `everything` was registered: it is sent.
    let confirmed = feed_event(12, "order.confirmed", everything.created_at);
    let new_placed = feed_event(14, "order.placed", now() - Duration::minutes(1));
    let expected: Vec<(WebhookEndpointId, Uuid, String)> = vec![
        (placed_only.id, old_placed.id, "order.placed".to_owned()),
        (everything.id, confirmed.id, "order.confirmed".to_owned()),
        (placed_only.id, new_placed.id, "order.placed".to_owned()),
        (everything.id, new_placed.id, "order.placed".to_owned()),
    ];

    let mut ports = Ports::default();
    ports.expect_position(Some(10));
    ports.expect_events(Some(10), vec![old_placed, confirmed, new_placed]);
    ports.expect_active_endpoints(vec![placed_only, everything]);
    ports.expect_advance(Some(10), 14, true);
    let inserted_ids = Arc::new(Mutex::new(Vec::new()));
    let (journal, seen) = (ports.journal.clone(), inserted_ids.clone());
    ports
        .tx_webhooks
        .expect_insert_deliveries()
        .withf(move |deliveries| {
            let asked: Vec<_> = deliveries
                .iter()
                .map(|delivery| (delivery.endpoint_id, delivery.event_id, delivery.event_type.clone()))
                .collect();
            asked == expected && deliveries.iter().all(|delivery| delivery.created_at == now())
        })
        .times(1)
        .returning(move |deliveries| {
            journal.note("tx.insert_deliveries");
            // The first existed already (skipped by its endpoint and event); three are new.
            let ids: Vec<_> = deliveries[1..].iter().map(|delivery| delivery.id).collect();
            seen.lock().unwrap().clone_from(&ids);
            Ok(ids)
        });
    let enqueued = ports.record_enqueued();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 3, more: false });
    let jobs: Vec<NewJob> = inserted_ids
        .lock()
        .unwrap()
        .iter()
        .map(|id| NewJob { kind: JobKind::DeliverWebhook, subject: id.as_uuid(), run_at: now(), created_at: now() })
        .collect();
    assert_eq!(*enqueued.lock().unwrap(), jobs);
    assert_eq!(
        harness.journal(),
        [
            "dispatch_position",
            "feed.list",
            "active_endpoints",
            "begin",
            "tx.advance_dispatch_position",
            "tx.insert_deliveries",
            "tx.jobs.enqueue",
            "tx.jobs.enqueue",
            "tx.jobs.enqueue",
            "commit"
        ]
    );
    assert_eq!((harness.commits(), harness.rollbacks()), (1, 0));
}

#[test]
fn each_delivery_gets_an_id_of_its_own() {
    let first = endpoint();
    let second = endpoint();
    let mut ports = Ports::default();
    ports.expect_position(None);
    ports.expect_events(None, vec![feed_event(1, "user.registered", now()), feed_event(2, "order.placed", now())]);
    ports.expect_active_endpoints(vec![first, second]);
    // The very first round moves the position from nowhere.
    ports.expect_advance(None, 2, true);
    ports
        .tx_webhooks
        .expect_insert_deliveries()
        .withf(|deliveries| {
            let mut ids: Vec<_> = deliveries.iter().map(|delivery| delivery.id).collect();
            ids.sort();
            ids.dedup();
            deliveries.len() == 4 && ids.len() == 4 && ids.iter().all(|id| id.as_uuid().get_version_num() == 7)
        })
        .times(1)
        .returning(|deliveries| Ok(deliveries.iter().map(|delivery| delivery.id).collect()));
    let enqueued = ports.record_enqueued();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 4, more: false });
    assert_eq!(enqueued.lock().unwrap().len(), 4);
}

#[test]
fn a_round_dispatches_one_batch_and_says_more_may_follow() {
    // The feed overfetches one beyond the batch of three.
    let events: Vec<_> = (1..=4).map(|position| feed_event(position * 10, "order.placed", now())).collect();
    let dispatched: Vec<Uuid> = events[..3].iter().map(|event| event.id).collect();
    let mut ports = Ports::default();
    ports.expect_position(Some(5));
    ports.expect_events(Some(5), events);
    ports.expect_active_endpoints(vec![endpoint()]);
    // Only as far as the batch's last event, not the overfetched one.
    ports.expect_advance(Some(5), 30, true);
    ports
        .tx_webhooks
        .expect_insert_deliveries()
        .withf(move |deliveries| deliveries.iter().map(|delivery| delivery.event_id).collect::<Vec<_>>() == dispatched)
        .times(1)
        .returning(|deliveries| Ok(deliveries.iter().map(|delivery| delivery.id).collect()));
    let enqueued = ports.record_enqueued();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 3, more: true });
    assert_eq!(enqueued.lock().unwrap().len(), 3);
}

#[test]
fn events_no_endpoint_wants_still_move_the_position_on() {
    let placed_only = WebhookEndpoint { event_types: EventTypeFilter::Only(vec!["order.placed"]), ..endpoint() };
    let mut ports = Ports::default();
    ports.expect_position(Some(3));
    ports.expect_events(Some(3), vec![feed_event(4, "stock.adjusted", now()), feed_event(5, "user.registered", now())]);
    ports.expect_active_endpoints(vec![placed_only]);
    ports.expect_advance(Some(3), 5, true);
    // Nothing to insert (whether the empty list is handed to the store is the service's choice).
    ports.tx_webhooks.expect_insert_deliveries().withf(|deliveries| deliveries.is_empty()).returning(|_| Ok(vec![]));
    ports.tx_jobs.expect_enqueue().never();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 0, more: false });
    assert_eq!(harness.commits(), 1);
}

#[test]
fn with_no_active_endpoint_events_are_passed_over() {
    let mut ports = Ports::default();
    ports.expect_position(None);
    ports.expect_events(None, vec![feed_event(1, "order.placed", now())]);
    ports.expect_active_endpoints(vec![]);
    ports.expect_advance(None, 1, true);
    ports.tx_webhooks.expect_insert_deliveries().withf(|deliveries| deliveries.is_empty()).returning(|_| Ok(vec![]));
    ports.tx_jobs.expect_enqueue().never();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 0, more: false });
}

#[test]
fn when_another_instance_moved_the_position_first_nothing_is_inserted_and_more_is_said() {
    let mut ports = Ports::default();
    ports.expect_position(Some(10));
    ports.expect_events(Some(10), vec![feed_event(11, "order.placed", now())]);
    ports.expect_active_endpoints(vec![endpoint()]);
    ports.expect_advance(Some(10), 11, false);
    ports.tx_webhooks.expect_insert_deliveries().never();
    ports.tx_jobs.expect_enqueue().never();
    let harness = ports.build();

    let round = harness.service.dispatch_once().unwrap();

    assert_eq!(round, DispatchRound { deliveries: 0, more: true });
    assert_eq!(
        harness.journal(),
        ["dispatch_position", "feed.list", "active_endpoints", "begin", "tx.advance_dispatch_position", "commit"]
    );
}

#[test]
fn a_round_whose_jobs_cannot_be_queued_is_rolled_back_whole() {
    let mut ports = Ports::default();
    ports.expect_position(Some(10));
    ports.expect_events(Some(10), vec![feed_event(11, "order.placed", now())]);
    ports.expect_active_endpoints(vec![endpoint()]);
    ports.expect_advance(Some(10), 11, true);
    ports
        .tx_webhooks
        .expect_insert_deliveries()
        .times(1)
        .returning(|deliveries| Ok(deliveries.iter().map(|delivery| delivery.id).collect()));
    ports.tx_jobs.expect_enqueue().times(1).returning(|_| Err(unavailable()));
    let harness = ports.build();

    let error = harness.service.dispatch_once().unwrap_err();

    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn dispatch_goes_on_while_the_feed_has_more() {
    let first: Vec<_> = (1..=4).map(|position| feed_event(position, "order.placed", now())).collect();
    let rest = first[3..].to_vec();
    let mut ports = Ports::default();
    ports.webhooks.expect_dispatch_position().times(2).returning(in_turn(vec![Ok(None), Ok(Some(3))]));
    ports.expect_events(None, first);
    ports.expect_events(Some(3), rest);
    ports.webhooks.expect_active_endpoints().times(2).returning(|| Ok(vec![endpoint()]));
    ports.expect_advance(None, 3, true);
    ports.expect_advance(Some(3), 4, true);
    ports
        .tx_webhooks
        .expect_insert_deliveries()
        .times(2)
        .returning(|deliveries| Ok(deliveries.iter().map(|delivery| delivery.id).collect()));
    let enqueued = ports.record_enqueued();
    let harness = ports.build();

    let created = harness.service.dispatch().unwrap();

    assert_eq!(created, 4);
    assert_eq!(enqueued.lock().unwrap().len(), 4);
    assert_eq!(harness.commits(), 2);
}

#[test]
fn dispatch_looks_again_after_losing_a_round_and_stops_when_the_feed_is_read() {
    let mut ports = Ports::default();
    ports.webhooks.expect_dispatch_position().times(2).returning(in_turn(vec![Ok(Some(10)), Ok(Some(11))]));
    ports.expect_events(Some(10), vec![feed_event(11, "order.placed", now())]);
    // The other instance got there: nothing after its position.
    ports.expect_events(Some(11), vec![]);
    ports.expect_active_endpoints(vec![endpoint()]);
    ports.expect_advance(Some(10), 11, false);
    ports.tx_webhooks.expect_insert_deliveries().never();
    let harness = ports.build();

    assert_eq!(harness.service.dispatch().unwrap(), 0);
}

#[test]
fn dispatch_stops_at_a_store_error() {
    let mut ports = Ports::default();
    ports.webhooks.expect_dispatch_position().times(1).returning(|| Err(unavailable()));
    let harness = ports.build();

    let error = harness.service.dispatch().unwrap_err();

    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

// ---- attempts -------------------------------------------------------------------------------

/// What a failed attempt records: `Pending` and due then, or `Failed` when `next` is `None`.
fn failed_attempt(
    response_status: Option<u16>,
    error: &str,
    duration_ms: u32,
    next: Option<DateTime<Utc>>,
) -> DeliveryAttempt {
    DeliveryAttempt {
        sent: true,
        status: if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
        response_status,
        duration_ms,
        error: Some(error.to_owned()),
        next_attempt_at: next,
        at: now(),
    }
}

/// When the attempt after a failed `attempt` of `delivery` is due under the test policy.
fn next_attempt(delivery: &WebhookDelivery, attempt: u32) -> DateTime<Utc> {
    now() + policy().retry_schedule.wait_after(attempt, delivery.id.as_uuid().as_u128()).unwrap()
}

/// Ports where `delivery` of `event` to `endpoint` is found, pending, by the pool's store.
fn ports_finding(endpoint: &WebhookEndpoint, event: &FeedEvent, delivery: &WebhookDelivery) -> Ports {
    let mut ports = Ports::default();
    ports.expect_delivery(Side::Pool, delivery.id, Some(delivery.clone()));
    ports.expect_endpoint(Side::Pool, endpoint.id, Some(endpoint.clone()));
    ports.expect_event_found(event);
    ports
}

#[test]
fn a_job_whose_delivery_is_gone_is_done_without_sending() {
    let job = job_for(&delivery(&endpoint(), &event()), 1);
    let mut ports = Ports::default();
    ports.expect_delivery(Side::Pool, WebhookDeliveryId::from_uuid(job.subject), None);
    ports.sender.expect_send().never();
    ports.webhooks.expect_record_attempt().never();
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn a_job_whose_delivery_has_ended_is_done_without_sending() {
    for status in [DeliveryStatus::Succeeded, DeliveryStatus::Failed] {
        let ended = WebhookDelivery { status, next_attempt_at: None, ..delivery(&endpoint(), &event()) };
        let mut ports = Ports::default();
        ports.expect_delivery(Side::Pool, ended.id, Some(ended.clone()));
        ports.webhooks.expect_find_endpoint().never();
        ports.sender.expect_send().never();
        ports.webhooks.expect_record_attempt().never();
        let harness = ports.build();

        assert_eq!(harness.service.work_job(&job_for(&ended, 2)).unwrap(), DeliveryVerdict::Done, "{status:?}");
    }
}

#[test]
fn a_job_whose_endpoint_was_deleted_is_done_without_sending_or_recording() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = Ports::default();
    ports.expect_delivery(Side::Pool, pending.id, Some(pending.clone()));
    ports.expect_endpoint(Side::Pool, endpoint.id, None);
    // Whether the event is read first does not matter; it is not sent.
    let found = event.clone();
    ports.feed.expect_find().times(0..=1).returning(move |_| Ok(Some(found.clone())));
    ports.sender.expect_send().never();
    ports.webhooks.expect_record_attempt().never();
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 2)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn a_delivery_to_a_disabled_endpoint_ends_failed_without_an_attempt() {
    let (endpoint, event) = (disabled_endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = Ports::default();
    ports.expect_delivery(Side::Pool, pending.id, Some(pending.clone()));
    ports.expect_endpoint(Side::Pool, endpoint.id, Some(endpoint.clone()));
    let found = event.clone();
    ports.feed.expect_find().times(0..=1).returning(move |_| Ok(Some(found.clone())));
    ports.sender.expect_send().never();
    ports.expect_recorded(
        &pending,
        DeliveryAttempt {
            sent: false,
            status: DeliveryStatus::Failed,
            response_status: None,
            duration_ms: 0,
            error: Some("the endpoint is disabled".to_owned()),
            next_attempt_at: None,
            at: now(),
        },
        true,
    );
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 2)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn a_delivery_whose_event_is_gone_ends_failed_without_an_attempt() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = Ports::default();
    ports.expect_delivery(Side::Pool, pending.id, Some(pending.clone()));
    ports.expect_endpoint(Side::Pool, endpoint.id, Some(endpoint.clone()));
    ports.feed.expect_find().with(eq(event.id)).times(1).returning(|_| Ok(None));
    ports.sender.expect_send().never();
    ports.expect_recorded(
        &pending,
        DeliveryAttempt {
            sent: false,
            status: DeliveryStatus::Failed,
            response_status: None,
            duration_ms: 0,
            error: Some("the event no longer exists".to_owned()),
            next_attempt_at: None,
            at: now(),
        },
        true,
    );
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 1)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn a_delivered_attempt_is_recorded_succeeded_with_its_status_and_duration() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Delivered { status: 204 }, 250);
    ports.expect_recorded(
        &pending,
        DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Succeeded,
            response_status: Some(204),
            duration_ms: 250,
            error: None,
            next_attempt_at: None,
            at: now(),
        },
        true,
    );
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 2)).unwrap(), DeliveryVerdict::Done);
    // The attempt is sent with no transaction open, and recorded after it.
    assert_eq!(harness.journal(), ["find_delivery", "find_endpoint", "send", "record_attempt"]);
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn a_rejected_attempt_with_the_schedule_left_is_retried_after_its_wait() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let next = next_attempt(&pending, 1);
    // The first wait (30 s), shortened by at most a fifth.
    assert!(next > now() + Duration::seconds(23) && next <= now() + Duration::seconds(30), "{next}");
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Rejected { status: 500 }, 80);
    ports.expect_recorded(&pending, failed_attempt(Some(500), "the endpoint answered 500", 80, Some(next)), true);
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 1)).unwrap(), DeliveryVerdict::RetryAt(next));
}

#[test]
fn an_unanswered_attempt_with_the_schedule_left_is_retried_after_its_wait() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    // The job's second claim picks the second wait (10 min), whatever the delivery counted.
    let next = next_attempt(&pending, 2);
    assert!(next > now() + Duration::minutes(7) && next <= now() + Duration::minutes(10), "{next}");
    let reason = "the connection timed out after 10 s";
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::NoAnswer { reason: reason.to_owned() }, 10_000);
    ports.expect_recorded(&pending, failed_attempt(None, reason, 10_000, Some(next)), true);
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 2)).unwrap(), DeliveryVerdict::RetryAt(next));
}

#[test]
fn a_failed_last_attempt_ends_the_delivery_failed() {
    let (endpoint, event) = (endpoint(), event());
    let pending = WebhookDelivery { attempts: 2, ..delivery(&endpoint, &event) };
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Rejected { status: 410 }, 30);
    ports.expect_recorded(&pending, failed_attempt(Some(410), "the endpoint answered 410", 30, None), true);
    let harness = ports.build();

    // Two waits: the third attempt is the last.
    assert_eq!(harness.service.work_job(&job_for(&pending, 3)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn an_attempt_recorded_by_someone_else_first_is_done() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let next = next_attempt(&pending, 1);
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Rejected { status: 503 }, 40);
    ports.expect_recorded(&pending, failed_attempt(Some(503), "the endpoint answered 503", 40, Some(next)), false);
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 1)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn an_attempt_that_took_too_long_to_count_records_the_longest_duration() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Delivered { status: 200 }, u64::from(u32::MAX) + 1);
    ports
        .webhooks
        .expect_record_attempt()
        .withf(|_, _, attempt| attempt.duration_ms == u32::MAX && attempt.status == DeliveryStatus::Succeeded)
        .times(1)
        .returning(|_, _, _| Ok(true));
    let harness = ports.build();

    assert_eq!(harness.service.work_job(&job_for(&pending, 1)).unwrap(), DeliveryVerdict::Done);
}

#[test]
fn a_store_failure_while_working_a_job_is_an_error_and_nothing_is_sent() {
    let pending = delivery(&endpoint(), &event());
    let mut ports = Ports::default();
    ports.webhooks.expect_find_delivery().times(1).returning(|_| Err(unavailable()));
    ports.sender.expect_send().never();
    let harness = ports.build();

    let error = harness.service.work_job(&job_for(&pending, 1)).unwrap_err();

    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[test]
fn an_attempt_that_cannot_be_recorded_is_an_error() {
    let (endpoint, event) = (endpoint(), event());
    let pending = delivery(&endpoint, &event);
    let mut ports = ports_finding(&endpoint, &event, &pending);
    ports.expect_sent(&endpoint, &event, SendOutcome::Delivered { status: 200 }, 10);
    ports.webhooks.expect_record_attempt().times(1).returning(|_, _, _| Err(unavailable()));
    let harness = ports.build();

    let error = harness.service.work_job(&job_for(&pending, 1)).unwrap_err();

    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

// ---- metrics --------------------------------------------------------------------------------

#[test]
fn the_backlog_is_measured_at_the_clocks_time() {
    let backlog = DeliveryBacklog { pending: 7, oldest_pending_age: Some(Duration::minutes(3)) };
    let mut ports = Ports::default();
    ports.webhooks.expect_backlog().with(eq(now())).times(1).returning(move |_| Ok(backlog));
    let harness = ports.build();

    assert_eq!(harness.service.backlog().unwrap(), backlog);
}

#[test]
fn the_retry_span_is_the_configured_schedules() {
    let harness = Ports::default().build();

    assert_eq!(harness.service.retry_span(), Duration::seconds(30) + Duration::minutes(10));
}
