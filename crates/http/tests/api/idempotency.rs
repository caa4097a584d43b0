//! `Idempotency-Key` (docs/api.md#retries-idempotency-key) through an in-memory executor
//! (`support::FakeIdempotency`): replays byte for byte and execute once, stored refusals, unstored
//! server failures, 422 for a reused key, 409 while in progress, per-caller scopes, malformed keys,
//! and the auth `POST`s that validate but never store.
//!
//! The use cases are mocks (`support::UseCases`). A stored `POST` runs its use case on
//! `state.X.within(repositories)` (inside the executor when a key is sent), so a test hands out
//! one rebound mock per run it expects (`orders_within`, `products_within`, `users_within`,
//! [`orders_within_in_turn`]): a run more than expected fails the test, which is how "executed
//! once" is checked. Each rebound mock checks the arguments the adapter passes (the caller, the
//! parsed body) and returns the result whose rendering is stored and replayed.

use std::collections::VecDeque;

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::json;

use orderly_domain::idempotency::IdempotencyScope;
use orderly_domain::order::{LineRequest, OrderStatus, PlaceOrderError, Quantity, Shortfall};
use orderly_domain::product::{AdjustmentReason, Sku, StockAdjustment};
use orderly_domain::services::{CreateProductError, MockOrderUseCases, MockProductUseCases, MockUserUseCases};
use orderly_domain::user::{Email, Role, User};
use orderly_domain::{Actor, StoreError};

use crate::support::*;

const KEY: &str = "retry-0192f5c2";
const REGISTRATION: &str = r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada Lovelace"}"#;
const NEW_PRODUCT: &str = r#"{"sku":"mug-001","name":"Enamel mug","unit_price":{"amount":1250,"currency":"EUR"}}"#;

fn order_body(quantity: i64) -> String {
    json!({"items": [{"product_id": product_id().to_string(), "quantity": quantity}]}).to_string()
}

fn place(token: &str, body: String, key: Option<&str>) -> TestRequest {
    with_key(bearer(json_request(Method::POST, "/v1/orders", body), token), key)
}

fn with_key(request: TestRequest, key: Option<&str>) -> TestRequest {
    match key {
        Some(key) => request.insert_header(("Idempotency-Key", key)),
        None => request,
    }
}

fn customer() -> Actor {
    Actor { user_id: customer_id(), role: Role::Customer }
}

fn admin() -> Actor {
    Actor { user_id: admin_id(), role: Role::Admin }
}

/// `outer.within(..)` hands out `inners`, one per call, in order: as many runs of the use case
/// as there are `inners`, and no more.
fn orders_within_in_turn(outer: &mut MockOrderUseCases, inners: Vec<MockOrderUseCases>) {
    let mut inners = VecDeque::from(inners);
    outer.expect_within().times(inners.len()).returning(move |_| Box::new(inners.pop_front().unwrap()));
}

/// An order use case asked once to place `actor`'s order of `quantity` mugs (as `order_body`
/// sends), answering `result`.
fn placing_once(
    actor: Actor,
    quantity: i64,
    result: impl FnOnce() -> Result<orderly_domain::order::Order, PlaceOrderError> + Send + 'static,
) -> MockOrderUseCases {
    let mut orders = MockOrderUseCases::new();
    orders
        .expect_place()
        .withf(move |given, request| {
            *given == actor
                && request.lines()
                    == [LineRequest { product_id: product_id(), quantity: Quantity::parse(quantity).unwrap() }]
        })
        .times(1)
        .return_once(move |_, _| result());
    orders
}

/// `placing_once` that places the order: pending, version 1.
fn placing(actor: Actor, quantity: i64) -> MockOrderUseCases {
    placing_once(actor, quantity, move || Ok(order(order_id(), actor.user_id, OrderStatus::Pending, 1)))
}

/// A product use case asked once by the admin to create the enamel mug (as `NEW_PRODUCT`
/// sends), answering `result`.
fn creating_once(
    result: impl FnOnce() -> Result<orderly_domain::product::Product, CreateProductError> + Send + 'static,
) -> MockProductUseCases {
    let mut products = MockProductUseCases::new();
    products
        .expect_create()
        .withf(|actor, draft| {
            *actor == admin()
                && draft.sku == Sku::parse("MUG-001").unwrap()
                && draft.name.as_str() == "Enamel mug"
                && draft.unit_price == money(1250)
        })
        .times(1)
        .return_once(move |_, _| result());
    products
}

#[actix_web::test]
async fn a_retried_order_is_replayed_byte_for_byte_and_placed_once() {
    let mut use_cases = UseCases::new();
    orders_within(&mut use_cases.orders, placing(customer(), 2));
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;

    let first = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), Some(KEY)).to_request()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert!(first.header("idempotency-replayed").is_none());
    assert_eq!(first.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(first.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(first.json()["id"], order_id().to_string());
    assert!(matches!(store.record(IdempotencyScope::User(customer_id()), KEY), Some(IdempotencyRecord::Done { .. })));

    let again = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), Some(KEY)).to_request()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the same bytes");
    for name in [header::LOCATION, header::ETAG, header::CONTENT_TYPE, header::CACHE_CONTROL] {
        assert_eq!(again.header(name.clone()), first.header(name.clone()), "{name}");
    }
    assert_eq!(first.header(header::LOCATION), Some(format!("/v1/orders/{}", order_id()).as_str()));
    assert_eq!(first.header(header::ETAG), Some("\"1\""));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_ne!(again.header("x-request-id"), first.header("x-request-id"), "the replay has its own request id");
}

/// With a key the use case is rebound to the executor's unit of work, so that the order and the
/// stored answer commit together; without one, to the pool's repositories.
#[actix_web::test]
async fn a_keyed_write_runs_in_the_executors_unit_of_work_and_a_keyless_one_does_not() {
    for key in [Some(KEY), None] {
        let mut use_cases = UseCases::new();
        let store = use_cases.idempotency.clone();
        let keyed = key.is_some();
        let inner = placing(customer(), 2);
        use_cases
            .orders
            .expect_within()
            .withf(move |repositories| store.is_unit_of_work(repositories) == keyed)
            .times(1)
            .return_once(move |_| Box::new(inner));
        let reply = send_with(use_cases, place(CUSTOMER_TOKEN, order_body(2), key)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{key:?}: {}", reply.text());
    }
}

#[actix_web::test]
async fn without_a_key_nothing_is_stored_and_every_request_runs() {
    let mut use_cases = UseCases::new();
    orders_within_in_turn(&mut use_cases.orders, vec![placing(customer(), 2), placing(customer(), 2)]);
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    for _ in 0..2 {
        let reply = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), None).to_request()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert!(reply.header(header::LOCATION).is_some());
        assert_eq!(reply.header(header::ETAG), Some("\"1\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        assert!(reply.header("idempotency-replayed").is_none());
    }
    assert_eq!(store.len(), 0);
}

#[actix_web::test]
async fn the_same_key_with_another_request_is_422_idempotency_key_reused() {
    let mut use_cases = UseCases::new();
    orders_within(&mut use_cases.orders, placing(customer(), 2));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), Some(KEY)).to_request()).await;
    assert_eq!(first.status, StatusCode::CREATED);

    let other_body = send_to(&app, place(CUSTOMER_TOKEN, order_body(3), Some(KEY)).to_request()).await;
    let problem = other_body.problem(422, "idempotency_key_reused");
    assert_eq!(problem["instance"], "/v1/orders");
    // The path (with its query) is part of the request too.
    let other_path =
        with_key(bearer(json_request(Method::POST, "/v1/orders?x=1", order_body(2)), CUSTOMER_TOKEN), Some(KEY));
    send_to(&app, other_path.to_request()).await.problem(422, "idempotency_key_reused");
}

#[actix_web::test]
async fn a_key_still_in_progress_is_409_with_retry_after() {
    let mut use_cases = UseCases::new();
    use_cases.orders.expect_within().never();
    use_cases.idempotency.seed_in_progress(IdempotencyScope::User(customer_id()), KEY);
    let reply = send_with(use_cases, place(CUSTOMER_TOKEN, order_body(2), Some(KEY))).await;
    reply.problem(409, "idempotency_in_progress");
    assert_eq!(reply.header(header::RETRY_AFTER), Some("1"));
}

#[actix_web::test]
async fn a_refusal_is_stored_and_replayed_with_the_first_request_id() {
    let mut use_cases = UseCases::new();
    let refusing = placing_once(customer(), 20, || {
        Err(PlaceOrderError::InsufficientStock(vec![Shortfall {
            line: 0,
            product_id: product_id(),
            requested: 20,
            available: 6,
        }]))
    });
    orders_within(&mut use_cases.orders, refusing);
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first = send_to(&app, place(CUSTOMER_TOKEN, order_body(20), Some(KEY)).to_request()).await;
    let problem = first.problem(409, "insufficient_stock");
    assert_eq!(problem["instance"], "/v1/orders");
    assert_eq!(first.faults(), vec![("/items/0/quantity".to_owned(), "insufficient_stock".to_owned())]);

    let again = send_to(&app, place(CUSTOMER_TOKEN, order_body(20), Some(KEY)).to_request()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body, first.body, "byte for byte, the first request's request_id included");
    assert_eq!(again.json()["request_id"], first.header("x-request-id").unwrap());
    assert_eq!(again.header(header::CONTENT_TYPE), Some("application/problem+json"));
    assert_eq!(again.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
}

#[actix_web::test]
async fn a_taken_sku_is_stored_and_replayed() {
    let mut use_cases = UseCases::new();
    products_within(&mut use_cases.products, creating_once(|| Err(CreateProductError::SkuTaken)));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let create = || with_key(bearer(json_request(Method::POST, "/v1/products", NEW_PRODUCT), ADMIN_TOKEN), Some(KEY));
    let first = send_to(&app, create().to_request()).await;
    first.problem(409, "sku_taken");
    let again = send_to(&app, create().to_request()).await;
    assert_eq!((again.status, &again.body), (StatusCode::CONFLICT, &first.body));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
}

#[actix_web::test]
async fn a_created_product_is_replayed_with_its_location_and_etag() {
    let mut use_cases = UseCases::new();
    products_within(&mut use_cases.products, creating_once(|| Ok(product(product_id(), 1))));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let create = || with_key(bearer(json_request(Method::POST, "/v1/products", NEW_PRODUCT), ADMIN_TOKEN), Some(KEY));
    let first = send_to(&app, create().to_request()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.header(header::LOCATION), Some(format!("/v1/products/{}", product_id()).as_str()));
    let again = send_to(&app, create().to_request()).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &first.body));
    assert_eq!(again.header(header::LOCATION), first.header(header::LOCATION));
    assert_eq!(again.header(header::ETAG), Some("\"1\""));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
}

#[actix_web::test]
async fn a_stock_adjustment_is_made_once() {
    let adjustment_id = uuid::Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0a01);
    let mut adjusting = MockProductUseCases::new();
    adjusting
        .expect_adjust_stock()
        .withf(|actor, id, delta, reason| {
            *actor == admin()
                && *id == product_id()
                && delta.get() == 5
                && *reason == AdjustmentReason::parse("delivery").unwrap()
        })
        .times(1)
        .returning(move |actor, id, delta, reason| {
            let adjustment = StockAdjustment {
                id: adjustment_id,
                product_id: id,
                delta: delta.get(),
                reason,
                actor_id: actor.user_id,
                on_hand_after: 15,
                created_at: at(1_795_457_100_000_000),
            };
            Ok((adjustment, product(id, 3)))
        });
    let mut use_cases = UseCases::new();
    products_within(&mut use_cases.products, adjusting);
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let uri = format!("/v1/products/{}/stock-adjustments", product_id());
    let adjust = || {
        with_key(bearer(json_request(Method::POST, &uri, r#"{"delta":5,"reason":"delivery"}"#), ADMIN_TOKEN), Some(KEY))
    };
    let first = send_to(&app, adjust().to_request()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.json()["id"], adjustment_id.to_string());
    let again = send_to(&app, adjust().to_request()).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &first.body));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
}

#[actix_web::test]
async fn a_registration_is_replayed_under_the_anonymous_scope() {
    let mut registering = MockUserUseCases::new();
    registering
        .expect_register()
        .withf(|email, name, password| {
            *email == Email::parse("ada@example.com").unwrap()
                && name.as_str() == "Ada Lovelace"
                && password.expose() == "correct horse battery"
        })
        .times(1)
        .returning(|email, _, _| Ok(User { email, ..user(customer_id(), Role::Customer, 1) }));
    let mut use_cases = UseCases::new();
    users_within(&mut use_cases.users, registering);
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let register = || with_key(json_request(Method::POST, "/v1/users", REGISTRATION), Some(KEY));
    let first = send_to(&app, register().to_request()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.header(header::LOCATION), Some(format!("/v1/users/{}", customer_id()).as_str()));
    assert!(store.record(IdempotencyScope::Anonymous, KEY).is_some());
    let again = send_to(&app, register().to_request()).await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &first.body));
    assert_eq!(again.header(header::LOCATION), first.header(header::LOCATION));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
}

#[actix_web::test]
async fn a_server_failure_is_not_stored_so_a_retry_runs_again() {
    let mut use_cases = UseCases::new();
    let failing =
        placing_once(customer(), 2, || Err(StoreError::Unavailable(anyhow::anyhow!("pool timed out")).into()));
    orders_within_in_turn(&mut use_cases.orders, vec![failing, placing(customer(), 2)]);
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), Some(KEY)).to_request()).await;
    first.problem(503, "service_unavailable");
    assert_eq!(first.header(header::RETRY_AFTER), Some("5"));
    assert_eq!(store.record(IdempotencyScope::User(customer_id()), KEY), None, "the claim is released");

    let retry = send_to(&app, place(CUSTOMER_TOKEN, order_body(2), Some(KEY)).to_request()).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
    assert!(retry.header("idempotency-replayed").is_none());
}

#[actix_web::test]
async fn keys_are_scoped_per_caller() {
    let mut use_cases = UseCases::new();
    // Each caller's request runs, as that caller.
    orders_within_in_turn(&mut use_cases.orders, vec![placing(customer(), 2), placing(admin(), 2)]);
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let reply = send_to(&app, place(token, order_body(2), Some(KEY)).to_request()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{token}: {}", reply.text());
        assert!(reply.header("idempotency-replayed").is_none(), "{token}");
    }
}

#[actix_web::test]
async fn a_malformed_key_is_400_naming_the_header() {
    let too_long = "k".repeat(256);
    let longest = "k".repeat(255);
    for (key, ok) in [
        ("", false),
        (too_long.as_str(), false),
        ("tab\there", false),
        ("caf\u{e9}", false),
        (longest.as_str(), true),
        ("a b ~!", true),
    ] {
        // A malformed key never reaches the use case: no expectation is set then.
        let mut use_cases = UseCases::new();
        if ok {
            orders_within(&mut use_cases.orders, placing(customer(), 2));
        }
        let request = bearer(json_request(Method::POST, "/v1/orders", order_body(2)), CUSTOMER_TOKEN).insert_header((
            "Idempotency-Key",
            actix_web::http::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
        ));
        let reply = send_with(use_cases, request).await;
        if ok {
            assert_eq!(reply.status, StatusCode::CREATED, "{key:?}: {}", reply.text());
        } else {
            reply.problem(400, "invalid_parameter");
            assert_eq!(reply.json()["errors"][0]["parameter"], "Idempotency-Key", "{key:?}");
        }
    }
    // Sent twice.
    let request = place(CUSTOMER_TOKEN, order_body(2), Some("a")).append_header(("Idempotency-Key", "b"));
    send_with(UseCases::new(), request).await.problem(400, "invalid_parameter");
}

#[actix_web::test]
async fn failures_before_the_use_case_are_not_stored() {
    // No use case expects a call: none of these requests reaches one.
    let use_cases = UseCases::new();
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    // 401, 400 malformed JSON, 422 validation: answered before any claim.
    let unauthenticated = with_key(json_request(Method::POST, "/v1/orders", order_body(2)), Some(KEY));
    send_to(&app, unauthenticated.to_request()).await.problem(401, "unauthenticated");
    send_to(&app, place(CUSTOMER_TOKEN, "{".to_owned(), Some(KEY)).to_request()).await.problem(400, "malformed_json");
    send_to(&app, place(CUSTOMER_TOKEN, order_body(0), Some(KEY)).to_request()).await.problem(422, "validation_failed");
    assert_eq!(store.len(), 0);
}

#[actix_web::test]
async fn the_auth_posts_check_the_key_but_never_store() {
    let mut use_cases = UseCases::new();
    use_cases.sessions.expect_logout().withf(|presented| presented == "current").times(2).returning(|_| Ok(None));
    let store = use_cases.idempotency.clone();
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let logout = |key: &str| {
        with_key(json_request(Method::POST, "/v1/auth/logout", r#"{"refresh_token":"current"}"#), Some(key))
    };
    for _ in 0..2 {
        let reply = send_to(&app, logout(KEY).to_request()).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert!(reply.header("idempotency-replayed").is_none());
    }
    assert_eq!(store.len(), 0);
    for uri in ["/v1/auth/tokens", "/v1/auth/refresh", "/v1/auth/logout"] {
        let request = json_request(Method::POST, uri, "{}").insert_header(("Idempotency-Key", ""));
        let reply = send_to(&app, request.to_request()).await;
        reply.problem(400, "invalid_parameter");
    }
}
