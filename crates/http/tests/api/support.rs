//! Test wiring: `app(state)` as actix's test service, and helpers to read responses as a
//! consumer would. The state comes in two kinds:
//! - [`UseCases`]: mockall mocks of the domain's use cases (ADR 0019), what a test of a route
//!   sets expectations on — the arguments the adapter passes, the result it renders;
//! - [`UseCases::into_state_over`]: some real services over the real persistence adapter, for
//!   the integration tests of the adapter (webhook endpoints, canonical ids, revocation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use orderly_domain::Actor;
use orderly_domain::auth::AccessClaims;
use orderly_domain::idempotency::{
    Execution, IdempotencyClaim, IdempotencyKey, IdempotencyScope, IdempotentOutcome, StoredResponse,
};
use orderly_domain::invoice::{Invoice, InvoiceNumber};
use orderly_domain::order::{Order, OrderId, OrderLine, OrderStatus, Quantity, TaxRate};
use orderly_domain::ports::{
    IdempotentExecutor, MockReadiness, Repositories, SendReport, SystemClock, TokenRejected, WebhookMessage,
    WebhookSender,
};
use orderly_domain::product::{
    Currency, Description, Money, Product, ProductId, ProductName, ProductStatus, Sku, Stock,
};
use orderly_domain::services::{
    Admission, MockEventUseCases, MockOrderUseCases, MockPaymentUseCases, MockProductUseCases, MockSessionUseCases,
    MockUserUseCases, MockWebhookUseCases, OrderPolicy, WebhookPolicy, WebhookService,
};
use orderly_domain::user::{Email, Role, User, UserId, UserName};
use orderly_domain::webhook::WebhookSecret;
use orderly_http::extract::BodyContext;
use orderly_http::{ApiState, HttpSettings};

pub const CUSTOMER_TOKEN: &str = "customer.token";
pub const ADMIN_TOKEN: &str = "admin.token";
pub const EXPIRED_TOKEN: &str = "expired.token";
pub const PROBLEM_BASE: &str = "https://problems.test/";

pub fn customer_id() -> UserId {
    UserId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-000000000001").unwrap())
}

pub fn admin_id() -> UserId {
    UserId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000ad").unwrap())
}

pub fn other_id() -> UserId {
    UserId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-000000000002").unwrap())
}

pub fn at(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).unwrap()
}

/// A user as the repository would return it.
pub fn user(id: UserId, role: Role, version: i64) -> User {
    User {
        id,
        email: Email::parse(&format!("{}@example.com", &id.to_string()[..8])).unwrap(),
        name: UserName::parse("Ada Lovelace").unwrap(),
        role,
        active: true,
        version,
        created_at: at(1_795_457_045_123_456),
        updated_at: at(1_795_457_046_000_000),
    }
}

/// The deployment's currency in every test.
pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

pub fn product_id() -> ProductId {
    ProductId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000f1").unwrap())
}

/// An active product as the repository would return it: 12.50 EUR, 10 on hand of which 4
/// are reserved.
pub fn product(id: ProductId, version: i64) -> Product {
    Product {
        id,
        sku: Sku::parse("MUG-001").unwrap(),
        name: ProductName::parse("Enamel mug").unwrap(),
        description: Some(Description::parse("Holds 350 ml.").unwrap()),
        unit_price: Money::parse(1250, "EUR", &eur()).unwrap(),
        stock: Stock::new(10, 4).unwrap(),
        status: ProductStatus::Active,
        version,
        created_at: at(1_795_457_045_123_456),
        updated_at: at(1_795_457_046_000_000),
    }
}

pub fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000e1").unwrap())
}

pub fn money(amount: i64) -> Money {
    Money::from_stored(amount, eur())
}

/// A line of `quantity` enamel mugs at 12.50 EUR.
pub fn order_line(product: ProductId, quantity: i64) -> OrderLine {
    OrderLine {
        product_id: product,
        sku: "MUG-001".to_owned(),
        name: "Enamel mug".to_owned(),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price: money(1250),
        line_total: money(1250 * quantity),
    }
}

pub fn invoice_number() -> InvoiceNumber {
    InvoiceNumber::new(2026, 42).unwrap()
}

/// `customer`'s order of two mugs (25.00 + 20 % tax) as the repository would return it:
/// pending orders expire 30 minutes after placement, confirmed and later ones have invoice
/// 2026-000042.
pub fn order(id: OrderId, customer: UserId, status: OrderStatus, version: i64) -> Order {
    let placed_at = at(1_795_457_045_123_456);
    let pending = status == OrderStatus::Pending;
    let invoiced = matches!(status, OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered);
    Order {
        id,
        customer_id: customer,
        status,
        items: vec![order_line(product_id(), 2)],
        subtotal: money(2500),
        tax: money(500),
        total: money(3000),
        invoice_number: invoiced.then(invoice_number),
        version,
        placed_at,
        updated_at: if pending { placed_at } else { at(1_795_457_600_000_000) },
        expires_at: pending.then(|| placed_at + chrono::Duration::minutes(30)),
    }
}

/// The invoice `number` of `customer`'s order.
pub fn invoice(number: InvoiceNumber, customer: UserId) -> Invoice {
    Invoice {
        number,
        order_id: order_id(),
        customer_id: customer,
        issued_at: at(1_795_457_600_000_000),
        lines: vec![order_line(product_id(), 2)],
        subtotal: money(2500),
        tax: money(500),
        total: money(3000),
    }
}

/// The ordering rules of every test: EUR, 20 % tax, 30-minute reservations, at most 1000 units
/// held per customer.
pub fn order_policy() -> OrderPolicy {
    OrderPolicy {
        currency: eur(),
        tax_rate: TaxRate::from_basis_points(2000).unwrap(),
        reservation_ttl: chrono::Duration::minutes(30),
        reservation_cap: orderly_domain::order::ReservationCap::units(1000),
    }
}

/// The webhook sender of the HTTP tests: it makes signing secrets as the real one does
/// (`whsec_` and the base64 of 32 random bytes), and is never asked to send — delivering is the
/// job worker's, which the HTTP adapter does not run.
pub struct SecretsOnlySender;

impl WebhookSender for SecretsOnlySender {
    fn new_secret(&self) -> anyhow::Result<WebhookSecret> {
        use base64::Engine;
        // Two UUIDv7s: 148 random bits, plenty for a test.
        let bytes = [Uuid::now_v7().into_bytes(), Uuid::now_v7().into_bytes()].concat();
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(WebhookSecret::from_stored(format!("whsec_{encoded}")))
    }

    fn send<'a>(&self, message: WebhookMessage<'a>) -> SendReport {
        panic!("the HTTP tests never deliver a webhook (asked to send event {})", message.event.id)
    }
}

/// The use cases a test of a route sets expectations on (ADR 0019). Sessions are wired to
/// admit [`CUSTOMER_TOKEN`] and [`ADMIN_TOKEN`] (generation 0, never revoked) and refuse
/// [`EXPIRED_TOKEN`] as expired and anything else as invalid; every other use case expects
/// nothing until the test says so. The repositories a rebound use case is handed (`within`)
/// are mocks that expect nothing: the adapter never calls a repository itself.
pub struct UseCases {
    pub users: MockUserUseCases,
    pub sessions: MockSessionUseCases,
    pub products: MockProductUseCases,
    pub orders: MockOrderUseCases,
    pub events: MockEventUseCases,
    pub payments: MockPaymentUseCases,
    pub webhooks: MockWebhookUseCases,
    pub readiness: MockReadiness,
    /// An in-memory executor; clone it before `into_state` to inspect or seed it.
    pub idempotency: FakeIdempotency,
}

/// The claims of the test tokens, as `verify_access_token` reads them.
pub fn test_claims(token: &str) -> Result<AccessClaims, TokenRejected> {
    let claims = |user_id, role| AccessClaims { user_id, role, generation: 0, refresh_token_id: None };
    match token {
        CUSTOMER_TOKEN => Ok(claims(customer_id(), Role::Customer)),
        ADMIN_TOKEN => Ok(claims(admin_id(), Role::Admin)),
        EXPIRED_TOKEN => Err(TokenRejected::Expired),
        _ => Err(TokenRejected::Invalid),
    }
}

impl UseCases {
    pub fn new() -> Self {
        let mut sessions = MockSessionUseCases::new();
        sessions.expect_verify_access_token().returning(test_claims);
        sessions
            .expect_admit_access()
            .returning(|claims, _| Admission::Accepted(Actor { user_id: claims.user_id, role: claims.role }));
        Self {
            users: MockUserUseCases::new(),
            sessions,
            products: MockProductUseCases::new(),
            orders: MockOrderUseCases::new(),
            events: MockEventUseCases::new(),
            payments: MockPaymentUseCases::new(),
            webhooks: MockWebhookUseCases::new(),
            readiness: MockReadiness::new(),
            idempotency: FakeIdempotency::default(),
        }
    }

    pub fn into_state(self) -> ApiState {
        // Two sets, so that a test can tell the unit of work's from the pool's.
        let repositories = Repositories::mocked();
        let _ = self.idempotency.repositories.set(Repositories::mocked());
        ApiState {
            users: Arc::new(self.users),
            sessions: Arc::new(self.sessions),
            products: Arc::new(self.products),
            orders: Arc::new(self.orders),
            events: Arc::new(self.events),
            payments: Arc::new(self.payments),
            webhooks: Arc::new(self.webhooks),
            body_context: BodyContext { currency: eur(), destinations: WebhookPolicy::default().destinations },
            repositories,
            readiness: Arc::new(self.readiness),
            idempotency: Arc::new(self.idempotency),
            rate_limits: Arc::new(orderly_domain::rate_limit::NoRateLimits),
            blocking: orderly_http::blocking::BlockingPool::new(8, 2, std::time::Duration::from_secs(5)),
            revocations: orderly_domain::services::GenerationCache::new(std::time::Duration::from_secs(1), 1000),
            metrics: None,
            settings: HttpSettings {
                problem_type_base: PROBLEM_BASE.to_owned(),
                ..HttpSettings::new(b"test cursor key".to_vec())
            },
        }
    }
}

impl UseCases {
    /// The state of an integration test of the adapter: these use cases, but webhooks,
    /// `Idempotency-Key` handling and the repositories a use case runs with over the real
    /// database `db` (its unit of work, its event feed, its idempotency executor). Destinations
    /// are checked with the default policy: `https` only, no refused address allowed. A test
    /// that needs more real services puts them in the state itself (`ids`, `revocation`).
    pub fn into_state_over(self, db: &orderly_persistence::Database) -> ApiState {
        let mut state = self.into_state();
        let repositories = orderly_persistence::repositories(db);
        state.webhooks = Arc::new(WebhookService::new(
            repositories.clone(),
            Arc::new(orderly_persistence::DieselUnitOfWork::new(db.clone())),
            Arc::new(orderly_persistence::DieselEventFeed::new(db.clone())),
            Arc::new(SecretsOnlySender),
            Arc::new(SystemClock),
            WebhookPolicy::default(),
        ));
        state.idempotency =
            Arc::new(orderly_persistence::DieselIdempotentExecutor::new(db.clone(), chrono::Duration::seconds(60)));
        state.repositories = repositories;
        state
    }
}

/// `outer.within(..)` hands out `inner`, once: what a write run through `Idempotency-Key`
/// handling calls its use case on (webhook endpoints are tested over a real store, so they
/// need none).
pub fn users_within(outer: &mut MockUserUseCases, inner: MockUserUseCases) {
    outer.expect_within().return_once(move |_| Box::new(inner));
}
pub fn products_within(outer: &mut MockProductUseCases, inner: MockProductUseCases) {
    outer.expect_within().return_once(move |_| Box::new(inner));
}
pub fn orders_within(outer: &mut MockOrderUseCases, inner: MockOrderUseCases) {
    outer.expect_within().return_once(move |_| Box::new(inner));
}

/// Sends `request` to a fresh `app(state)` built from `use_cases`.
pub async fn send_with(use_cases: UseCases, request: TestRequest) -> Reply {
    let service = test::init_service(orderly_http::app(use_cases.into_state())).await;
    send_to(&service, request.to_request()).await
}

/// A response as a consumer sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts this is a problem with `status` and `code`, in the contract's shape, and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text());
        assert_eq!(self.header(header::CONTENT_TYPE), Some("application/problem+json"));
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"), "errors are never cached");
        let problem = self.json();
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["status"], status);
        assert_eq!(problem["type"], format!("{PROBLEM_BASE}{}", code.replace('_', "-")));
        assert!(problem["title"].as_str().is_some_and(|title| !title.is_empty()));
        assert!(problem["detail"].as_str().is_some_and(|detail| !detail.is_empty()));
        let request_id = self.header("x-request-id").expect("every response carries X-Request-Id");
        assert_eq!(problem["request_id"], request_id);
        problem
    }

    /// `(pointer or parameter, code)` of every entry of a problem's `errors`, sorted.
    pub fn faults(&self) -> Vec<(String, String)> {
        let problem = self.json();
        let mut faults: Vec<(String, String)> = problem["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        let at = error.get("pointer").or_else(|| error.get("parameter")).and_then(Value::as_str);
                        (at.unwrap_or("?").to_owned(), error["code"].as_str().unwrap_or("?").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        faults.sort();
        faults
    }
}

/// Sends `request` (from `TestRequest::to_request`) to an app already initialised.
pub async fn send_to<S, R, B>(service: &S, request: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(service, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await.to_vec();
    Reply { status, headers, body }
}

pub fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

pub fn with_method(method: Method, uri: &str) -> TestRequest {
    TestRequest::default().method(method).uri(uri)
}

/// A request with a JSON body of `text` (sent verbatim).
pub fn json_request(method: Method, uri: &str, text: impl Into<actix_web::web::Bytes>) -> TestRequest {
    TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(text)
}

pub fn bearer(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Captures what this test's thread logs (JSON lines, with the current span's fields).
/// A process-wide subscriber writes into the capture of the thread that logs, if it has one:
/// a per-thread subscriber would miss events whose interest other tests' threads cached.
pub struct LogCapture;

impl LogCapture {
    pub fn start() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(|| ThreadCapture)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
        Self
    }

    pub fn finish(self) -> String {
        let bytes = CAPTURED.with(|captured| captured.borrow_mut().take()).unwrap_or_default();
        String::from_utf8(bytes).unwrap()
    }
}

struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(buffer) = captured.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The idempotency protocol in memory (`orderly_domain::idempotency`): claim, run the closure
/// for a new key, store 2xx and 4xx outcomes, release the claim on 5xx.
#[derive(Clone, Default)]
pub struct FakeIdempotency {
    records: Arc<Mutex<HashMap<(IdempotencyScope, String), IdempotencyRecord>>>,
    /// What the use case is handed as its unit of work's repositories: mocks, not the state's.
    repositories: Arc<std::sync::OnceLock<Repositories>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyRecord {
    InProgress { fingerprint: String },
    Done { fingerprint: String, response: StoredResponse },
}

impl FakeIdempotency {
    /// Marks `key` of `scope` as claimed by a request that is still running.
    pub fn seed_in_progress(&self, scope: IdempotencyScope, key: &str) {
        self.records
            .lock()
            .unwrap()
            .insert((scope, key.to_owned()), IdempotencyRecord::InProgress { fingerprint: String::new() });
    }

    pub fn record(&self, scope: IdempotencyScope, key: &str) -> Option<IdempotencyRecord> {
        self.records.lock().unwrap().get(&(scope, key.to_owned())).cloned()
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Whether `repositories` are the ones this executor hands a use case in its unit of work.
    pub fn is_unit_of_work(&self, repositories: &Repositories) -> bool {
        self.repositories.get().is_some_and(|ours| Arc::ptr_eq(&ours.orders, &repositories.orders))
    }
}

impl IdempotentExecutor for FakeIdempotency {
    fn run(
        &self,
        claim: &IdempotencyClaim,
        execute: &mut dyn FnMut(&Repositories) -> Execution,
    ) -> Result<IdempotentOutcome, orderly_domain::StoreError> {
        let repositories = self.repositories.get().cloned().expect("the mocks' repositories are bound in into_state");
        self.run_in_phases(claim, &mut || execute(&repositories))
    }

    fn run_in_phases(
        &self,
        claim: &IdempotencyClaim,
        execute: &mut dyn FnMut() -> Execution,
    ) -> Result<IdempotentOutcome, orderly_domain::StoreError> {
        let id = (claim.scope.clone(), IdempotencyKey::as_str(&claim.key).to_owned());
        {
            let mut records = self.records.lock().unwrap();
            match records.get(&id) {
                Some(IdempotencyRecord::InProgress { .. }) => return Ok(IdempotentOutcome::InProgress),
                Some(IdempotencyRecord::Done { fingerprint, .. }) if *fingerprint != claim.fingerprint => {
                    return Ok(IdempotentOutcome::KeyReused);
                }
                Some(IdempotencyRecord::Done { response, .. }) => {
                    return Ok(IdempotentOutcome::Replayed(response.clone()));
                }
                None => {
                    records
                        .insert(id.clone(), IdempotencyRecord::InProgress { fingerprint: claim.fingerprint.clone() });
                }
            }
        }
        let execution = execute();
        let mut records = self.records.lock().unwrap();
        match execution {
            Execution::Committed(response) | Execution::Refused(response) => {
                let done =
                    IdempotencyRecord::Done { fingerprint: claim.fingerprint.clone(), response: response.clone() };
                records.insert(id, done);
                Ok(IdempotentOutcome::Executed(response))
            }
            Execution::Failed(response) => {
                records.remove(&id);
                Ok(IdempotentOutcome::Executed(response))
            }
        }
    }

    fn purge(&self, _older_than: DateTime<Utc>) -> Result<usize, orderly_domain::StoreError> {
        Ok(0)
    }
}
