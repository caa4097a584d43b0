//! `/v1/orders` (docs/api.md#orders) as a consumer sees it, over mocks of `OrderUseCases` (ADR 0019): each
//! test states what the use case returns and checks what the adapter passes it (the caller as
//! actor, the parsed id, lines, filters, cursor and `If-Match` version) and what it renders.
//! Placing an order (201 with Location and ETag, every fault of the body at once with per-line
//! pointers before any use case, 409 `insufficient_stock` per short line and
//! `reservation_limit_exceeded`, 422 for unavailable products), reading orders (not found as
//! 404, ETag/304, private caching, the cursor pages and their parameters), and status changes
//! (forbidden moves 403, invalid transitions 409, If-Match 428 vs 412). Who may see or move
//! which order, and the transition table itself, are the domain's rules, tested in
//! `crates/domain/src/services/orders/tests.rs`.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::order::{
    Order, OrderCursor, OrderId, OrderQuery, OrderRequest, OrderSort, OrderStatus, ReservationLimitExceeded, Shortfall,
};
use orderly_domain::pagination::{Page, SortDirection};
use orderly_domain::product::ProductId;
use orderly_domain::services::{ChangeOrderError, GetOrderError, MockOrderUseCases, PlaceOrderError};
use orderly_domain::user::Role;
use orderly_domain::{Actor, StoreError};
use orderly_http::pagination::{CursorCodec, CursorPosition, CursorScope};

use crate::support::*;

const ORDER_FIELDS: [&str; 12] = [
    "customer_id",
    "expires_at",
    "id",
    "invoice_number",
    "items",
    "placed_at",
    "status",
    "subtotal",
    "tax",
    "total",
    "updated_at",
    "version",
];

fn order_fields() -> Vec<String> {
    ORDER_FIELDS.iter().map(|field| (*field).to_owned()).collect()
}

fn order_uri() -> String {
    format!("/v1/orders/{}", order_id())
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn faults(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> =
        list.iter().map(|(at, code)| ((*at).to_owned(), (*code).to_owned())).collect();
    list.sort();
    list
}

fn product(n: u128) -> ProductId {
    ProductId::from_uuid(Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0f00 + n))
}

/// The actor the adapter makes of [`CUSTOMER_TOKEN`].
fn customer() -> Actor {
    Actor { user_id: customer_id(), role: Role::Customer }
}

/// The actor the adapter makes of [`ADMIN_TOKEN`].
fn admin() -> Actor {
    Actor { user_id: admin_id(), role: Role::Admin }
}

fn actor_of(token: &str) -> Actor {
    match token {
        CUSTOMER_TOKEN => customer(),
        ADMIN_TOKEN => admin(),
        other => panic!("no actor for {other}"),
    }
}

/// `get(actor, id)` is asked once and answers `result`.
fn getting(actor: Actor, id: OrderId, result: Result<Order, GetOrderError>) -> UseCases {
    let mut use_cases = UseCases::new();
    use_cases.orders.expect_get().withf(move |a, i| (*a, *i) == (actor, id)).times(1).return_once(move |_, _| result);
    use_cases
}

/// `get` by `actor` of the order at [`order_uri`] answers `order`.
fn reading(actor: Actor, order: Order) -> UseCases {
    getting(actor, order_id(), Ok(order))
}

// --- placing ---------------------------------------------------------------------------------

fn place(token: &str, body: impl Into<actix_web::web::Bytes>) -> TestRequest {
    bearer(json_request(Method::POST, "/v1/orders", body), token)
}

fn lines_body(lines: &[(ProductId, i64)]) -> String {
    let items: Vec<Value> =
        lines.iter().map(|(id, quantity)| json!({"product_id": id.to_string(), "quantity": quantity})).collect();
    json!({ "items": items }).to_string()
}

/// The lines of `request` as `(product, quantity)`.
fn lines_of(request: &OrderRequest) -> Vec<(ProductId, i64)> {
    request.lines().iter().map(|line| (line.product_id, line.quantity.get())).collect()
}

/// `place` is asked once, on the use cases rebound to the request's repositories (as every
/// placing is run through `Idempotency-Key` handling), by `actor` with exactly `lines`, and
/// answers `result`.
fn placing(actor: Actor, lines: &[(ProductId, i64)], result: Result<Order, PlaceOrderError>) -> UseCases {
    let lines = lines.to_vec();
    let mut inner = MockOrderUseCases::new();
    inner
        .expect_place()
        .withf(move |a, request| *a == actor && lines_of(request) == lines)
        .times(1)
        .return_once(move |_, _| result);
    let mut use_cases = UseCases::new();
    orders_within(&mut use_cases.orders, inner);
    use_cases
}

#[actix_web::test]
async fn placing_an_order_is_201_pending_with_location_etag_and_no_store() {
    let lines = [(product(1), 2), (product(2), 1)];
    let placed = order(order_id(), customer_id(), OrderStatus::Pending, 1);
    let use_cases = placing(customer(), &lines, Ok(placed));
    let reply = send_with(use_cases, place(CUSTOMER_TOKEN, lines_body(&lines))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["id"], order_id().to_string());
    assert_eq!(reply.header(header::LOCATION), Some(format!("/v1/orders/{}", body["id"].as_str().unwrap()).as_str()));
    assert_eq!(reply.header(header::ETAG), Some("\"1\""));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(keys(&body), order_fields());
    assert_eq!(body["status"], "pending");
    assert_eq!(body["customer_id"], customer_id().to_string());
    assert_eq!(body["expires_at"], "2026-11-23T18:34:05.123Z");
    assert_eq!(body["invoice_number"], Value::Null);

    // An admin places as themselves: the actor is theirs.
    let lines = [(product(1), 1)];
    let placed = order(order_id(), admin_id(), OrderStatus::Pending, 1);
    let reply = send_with(placing(admin(), &lines, Ok(placed)), place(ADMIN_TOKEN, lines_body(&lines))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["customer_id"], admin_id().to_string());
}

#[actix_web::test]
async fn an_order_has_exactly_the_contract_fields() {
    let pending = order(order_id(), customer_id(), OrderStatus::Pending, 1);
    let reply = send_with(reading(customer(), pending), bearer(get(&order_uri()), CUSTOMER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "id": order_id().to_string(),
            "customer_id": customer_id().to_string(),
            "status": "pending",
            "items": [{
                "product_id": product_id().to_string(),
                "sku": "MUG-001",
                "name": "Enamel mug",
                "quantity": 2,
                "unit_price": {"amount": 1250, "currency": "EUR"},
                "line_total": {"amount": 2500, "currency": "EUR"}
            }],
            "subtotal": {"amount": 2500, "currency": "EUR"},
            "tax": {"amount": 500, "currency": "EUR"},
            "total": {"amount": 3000, "currency": "EUR"},
            "invoice_number": null,
            "version": 1,
            "placed_at": "2026-11-23T18:04:05.123Z",
            "updated_at": "2026-11-23T18:04:05.123Z",
            "expires_at": "2026-11-23T18:34:05.123Z"
        })
    );

    // Once it has left `pending`: an invoice number, and no expiry.
    let confirmed = order(order_id(), customer_id(), OrderStatus::Confirmed, 2);
    let reply = send_with(reading(customer(), confirmed), bearer(get(&order_uri()), CUSTOMER_TOKEN)).await;
    let body = reply.json();
    assert_eq!((body["status"].clone(), body["invoice_number"].clone()), (json!("confirmed"), json!("2026-000042")));
    assert_eq!(body["expires_at"], Value::Null);
    assert_eq!(keys(&body), order_fields());
}

#[actix_web::test]
async fn insufficient_stock_is_409_with_one_entry_per_short_line() {
    let lines = [(product(1), 4), (product(2), 1), (product(3), 5)];
    let short = PlaceOrderError::InsufficientStock(vec![
        Shortfall { line: 2, product_id: product(3), requested: 5, available: 0 },
        Shortfall { line: 0, product_id: product(1), requested: 4, available: 3 },
    ]);
    let reply = send_with(placing(customer(), &lines, Err(short)), place(CUSTOMER_TOKEN, lines_body(&lines))).await;
    let problem = reply.problem(409, "insufficient_stock");
    assert_eq!(problem["detail"], "2 items cannot be reserved");
    assert_eq!(problem["instance"], "/v1/orders");
    assert_eq!(
        problem["errors"],
        json!([
            {"pointer": "/items/0/quantity", "code": "insufficient_stock", "message": "only 3 available"},
            {"pointer": "/items/2/quantity", "code": "insufficient_stock", "message": "only 0 available"}
        ])
    );
    assert!(reply.header(header::LOCATION).is_none());

    let lines = [(product(1), 4)];
    let short = PlaceOrderError::InsufficientStock(vec![Shortfall {
        line: 0,
        product_id: product(1),
        requested: 4,
        available: 1,
    }]);
    let problem = send_with(placing(customer(), &lines, Err(short)), place(CUSTOMER_TOKEN, lines_body(&lines)))
        .await
        .problem(409, "insufficient_stock");
    assert_eq!(problem["detail"], "1 item cannot be reserved");
}

#[actix_web::test]
async fn an_order_past_the_reservation_cap_is_409_saying_how_many_units_are_left() {
    let lines = [(product(1), 2), (product(2), 3)];
    let refused =
        PlaceOrderError::ReservationLimitExceeded(ReservationLimitExceeded { cap: 1000, held: 999, requested: 5 });
    let reply = send_with(placing(customer(), &lines, Err(refused)), place(CUSTOMER_TOKEN, lines_body(&lines))).await;
    let problem = reply.problem(409, "reservation_limit_exceeded");
    assert_eq!(problem["type"], format!("{PROBLEM_BASE}reservation-limit-exceeded"));
    assert_eq!(problem["title"], "Reservation limit exceeded");
    assert_eq!(
        problem["detail"],
        "this order asks for 5 units, and your pending orders hold 999 of the 1000 units one customer may reserve \
         at once; cancel a pending order or order fewer units"
    );
    assert_eq!(
        problem["errors"],
        json!([{"pointer": "/items", "code": "reservation_limit_exceeded", "message": "at most 1 more unit can be reserved"}])
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert!(reply.header(header::LOCATION).is_none());

    // A cap lowered below what is held: nothing is left, and the answer says so.
    let lines = [(product(1), 1)];
    let refused =
        PlaceOrderError::ReservationLimitExceeded(ReservationLimitExceeded { cap: 10, held: 12, requested: 1 });
    let problem = send_with(placing(customer(), &lines, Err(refused)), place(CUSTOMER_TOKEN, lines_body(&lines)))
        .await
        .problem(409, "reservation_limit_exceeded");
    assert_eq!(problem["errors"][0]["message"], "at most 0 more units can be reserved");
    assert_eq!(
        problem["detail"],
        "this order asks for 1 unit, and your pending orders hold 12 of the 10 units one customer may reserve at \
         once; cancel a pending order or order fewer units"
    );
}

#[actix_web::test]
async fn unknown_or_archived_products_are_422_pointing_at_their_lines() {
    let lines = [(product(1), 1), (product(2), 1), (product(3), 1)];
    let unavailable = PlaceOrderError::UnavailableProducts(vec![2, 0]);
    let use_cases = placing(customer(), &lines, Err(unavailable));
    let reply = send_with(use_cases, place(CUSTOMER_TOKEN, lines_body(&lines))).await;
    let problem = reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[("/items/0/product_id", "unavailable_product"), ("/items/2/product_id", "unavailable_product")])
    );
    assert_eq!(problem["detail"], "2 items name products that cannot be ordered");
}

#[actix_web::test]
async fn a_store_outage_while_placing_is_503() {
    let lines = [(product(1), 1)];
    let down = PlaceOrderError::Store(StoreError::Unavailable(anyhow::anyhow!("pool timed out")));
    let reply = send_with(placing(customer(), &lines, Err(down)), place(CUSTOMER_TOKEN, lines_body(&lines))).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());
}

#[actix_web::test]
async fn every_fault_of_a_new_order_is_listed_with_its_line() {
    // No use case expects a call: the body is refused before any is asked.
    let id = product(1).to_string();
    let body = json!({
        "customer_id": customer_id().to_string(),
        "items": [
            {"product_id": id, "quantity": 2},
            {"product_id": product(2).to_string(), "quantity": 0},
            {"product_id": id, "quantity": 1},
            {"product_id": "not-a-uuid", "quantity": 1001},
            {"product_id": product(5).to_string(), "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}},
            {"product_id": product(6).to_string(), "quantity": 1.5},
            {"quantity": 1},
            [product(8).to_string(), 1]
        ]
    });
    let reply = send_with(UseCases::new(), place(CUSTOMER_TOKEN, body.to_string())).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("/customer_id", "unknown_field"),
            ("/items/1/quantity", "out_of_range"),
            ("/items/2/product_id", "duplicate"),
            ("/items/3/product_id", "invalid_format"),
            ("/items/3/quantity", "out_of_range"),
            ("/items/4/unit_price", "unknown_field"),
            ("/items/5/quantity", "invalid_type"),
            ("/items/6/product_id", "required"),
            ("/items/7", "invalid_type"),
        ])
    );
}

#[actix_web::test]
async fn an_order_has_one_to_fifty_lines() {
    let fifty_one: Vec<(ProductId, i64)> = (1..=51).map(|n| (product(n), 1)).collect();
    for body in [lines_body(&fifty_one), r#"{"items":[]}"#.to_owned()] {
        let reply = send_with(UseCases::new(), place(CUSTOMER_TOKEN, body)).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&[("/items", "invalid_length")]));
    }
    for (body, expected) in [
        ("{}", faults(&[("/items", "required")])),
        (r#"{"items":null}"#, faults(&[("/items", "required")])),
        (r#"{"items":{"product_id":"x"}}"#, faults(&[("/items", "invalid_type")])),
        (
            r#"{"items":[{"product_id":null,"quantity":null}]}"#,
            faults(&[("/items/0/product_id", "required"), ("/items/0/quantity", "required")]),
        ),
    ] {
        let reply = send_with(UseCases::new(), place(CUSTOMER_TOKEN, body)).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), expected, "{body}");
    }

    // Fifty distinct lines are fine, and reach the use case as sent.
    let fifty: Vec<(ProductId, i64)> = (1..=50).map(|n| (product(n), 1000)).collect();
    let use_cases = placing(customer(), &fifty, Ok(order(order_id(), customer_id(), OrderStatus::Pending, 1)));
    assert_eq!(send_with(use_cases, place(CUSTOMER_TOKEN, lines_body(&fifty))).await.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn placing_needs_a_token_and_a_json_body() {
    let anonymous = json_request(Method::POST, "/v1/orders", lines_body(&[(product(1), 1)]));
    let reply = send_with(UseCases::new(), anonymous).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
    let text =
        place(CUSTOMER_TOKEN, lines_body(&[(product(1), 1)])).insert_header((header::CONTENT_TYPE, "text/plain"));
    send_with(UseCases::new(), text).await.problem(415, "unsupported_media_type");
    send_with(UseCases::new(), place(CUSTOMER_TOKEN, "{\"items\": [")).await.problem(400, "malformed_json");
}

// --- reading ---------------------------------------------------------------------------------

#[actix_web::test]
async fn the_owner_and_admins_read_an_order_with_its_etag_and_private_caching() {
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let use_cases = reading(actor_of(token), order(order_id(), customer_id(), OrderStatus::Pending, 3));
        let reply = send_with(use_cases, bearer(get(&order_uri()), token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{token}: {}", reply.text());
        assert_eq!(reply.header(header::ETAG), Some("\"3\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
        assert_eq!(reply.header(header::VARY), Some("Authorization"));
    }
}

#[actix_web::test]
async fn an_order_the_use_case_does_not_find_for_the_caller_is_404() {
    // Someone else's order (the service answers `NotFound`, never `Forbidden`) and a missing
    // one read alike.
    let use_cases = getting(customer(), order_id(), Err(GetOrderError::NotFound));
    let hidden = send_with(use_cases, bearer(get(&order_uri()), CUSTOMER_TOKEN)).await.problem(404, "not_found");
    let missing_id = OrderId::from_uuid(Uuid::now_v7());
    let use_cases = getting(customer(), missing_id, Err(GetOrderError::NotFound));
    let missing_uri = format!("/v1/orders/{missing_id}");
    let missing = send_with(use_cases, bearer(get(&missing_uri), CUSTOMER_TOKEN)).await.problem(404, "not_found");
    assert_eq!(hidden["detail"], missing["detail"]);
    assert_eq!(hidden["instance"], order_uri());

    let reply = send_with(UseCases::new(), bearer(get("/v1/orders/42"), CUSTOMER_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("id", "invalid_format")]));
    send_with(UseCases::new(), get(&order_uri())).await.problem(401, "unauthenticated");

    let down = GetOrderError::Store(StoreError::Unavailable(anyhow::anyhow!("pool timed out")));
    let reply = send_with(getting(customer(), order_id(), Err(down)), bearer(get(&order_uri()), CUSTOMER_TOKEN)).await;
    reply.problem(503, "service_unavailable");
}

#[actix_web::test]
async fn a_current_if_none_match_is_304_without_a_body() {
    for tag in ["\"3\"", "W/\"3\"", "\"1\", \"3\"", "*"] {
        let use_cases = reading(customer(), order(order_id(), customer_id(), OrderStatus::Pending, 3));
        let request = bearer(get(&order_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, tag));
        let reply = send_with(use_cases, request).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"3\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
    }
    let use_cases = reading(customer(), order(order_id(), customer_id(), OrderStatus::Pending, 3));
    let stale = bearer(get(&order_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "\"2\""));
    assert_eq!(send_with(use_cases, stale).await.status, StatusCode::OK);
    // An order the caller may not see is 404 whatever tag is sent.
    let use_cases = getting(customer(), order_id(), Err(GetOrderError::NotFound));
    let guess = bearer(get(&order_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "*"));
    send_with(use_cases, guess).await.problem(404, "not_found");
}

/// The `n`th of a run of orders, each placed a millisecond after the previous one.
fn numbered(n: u128) -> Order {
    let id = OrderId::from_uuid(Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0e00 + n));
    Order {
        placed_at: at(1_795_457_045_000_000 + n as i64 * 1000),
        ..order(id, customer_id(), OrderStatus::Pending, 1)
    }
}

/// `list` answers `page(query)` and records every `(actor, query)` it is asked with.
fn recording_list(
    use_cases: &mut UseCases,
    page: impl Fn(&OrderQuery) -> Page<Order> + Send + 'static,
) -> Arc<Mutex<Vec<(Actor, OrderQuery)>>> {
    let seen: Arc<Mutex<Vec<(Actor, OrderQuery)>>> = Arc::default();
    let recorder = seen.clone();
    use_cases.orders.expect_list().returning(move |actor, query| {
        let answer = page(&query);
        recorder.lock().unwrap().push((actor, query));
        Ok(answer)
    });
    seen
}

fn last_page(items: Vec<Order>) -> Page<Order> {
    Page { items, has_more: false }
}

#[actix_web::test]
async fn a_customers_listing_passes_their_filters_as_given_and_is_private() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| last_page(vec![numbered(2), numbered(1)]));
    let reply = send_with(use_cases, bearer(get("/v1/orders?status=pending"), CUSTOMER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
    assert_eq!(reply.header(header::VARY), Some("Authorization"));
    let body = reply.json();
    assert_eq!(body["page"], json!({"limit": 20, "next_cursor": null, "has_more": false}));
    assert_eq!(keys(&body["data"][0]), order_fields());
    let ids: Vec<Value> = body["data"].as_array().unwrap().iter().map(|o| o["id"].clone()).collect();
    assert_eq!(ids, vec![json!(numbered(2).id.to_string()), json!(numbered(1).id.to_string())]);
    // Narrowing a customer to their own orders is the service's: the adapter passes the caller
    // and what was asked for.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (actor, query) = seen[0].clone();
    assert_eq!(actor, customer());
    assert_eq!(query.customer_id, None);
    assert_eq!(query.status, Some(OrderStatus::Pending));
    assert_eq!((query.sort, query.after, query.limit.get()), (OrderSort(SortDirection::Descending), None, 20));

    // Their own id as a filter is passed on as such.
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| last_page(Vec::new()));
    let uri = format!("/v1/orders?customer_id={}", customer_id());
    assert_eq!(send_with(use_cases, bearer(get(&uri), CUSTOMER_TOKEN)).await.status, StatusCode::OK);
    assert_eq!(
        seen.lock().unwrap()[0],
        (customer(), OrderQuery { customer_id: Some(customer_id()), status: None, ..query })
    );
}

#[actix_web::test]
async fn a_customer_naming_another_customer_passes_the_filter_on_and_gets_the_empty_page() {
    // The service answers the empty page without asking the store.
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| last_page(Vec::new()));
    let uri = format!("/v1/orders?customer_id={}", other_id());
    let reply = send_with(use_cases, bearer(get(&uri), CUSTOMER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({"data": [], "page": {"limit": 20, "next_cursor": null, "has_more": false}}));
    let (actor, query) = seen.lock().unwrap()[0].clone();
    assert_eq!((actor, query.customer_id), (customer(), Some(other_id())));
}

#[actix_web::test]
async fn admins_list_everyones_orders_and_may_filter_by_customer() {
    for (query_string, customer, status, direction) in [
        ("", None, None, SortDirection::Descending),
        ("sort=placed_at&status=confirmed", None, Some(OrderStatus::Confirmed), SortDirection::Ascending),
        (
            "sort=-placed_at&customer_id=0192f5c2-0000-7000-8000-000000000002",
            Some(other_id()),
            None,
            SortDirection::Descending,
        ),
    ] {
        let mut use_cases = UseCases::new();
        let seen = recording_list(&mut use_cases, |_| last_page(Vec::new()));
        let reply = send_with(use_cases, bearer(get(&format!("/v1/orders?{query_string}")), ADMIN_TOKEN)).await;
        assert_eq!(reply.status, StatusCode::OK, "{query_string}: {}", reply.text());
        let (actor, query) = seen.lock().unwrap()[0].clone();
        assert_eq!(actor, admin(), "{query_string}");
        assert_eq!(
            (query.customer_id, query.status, query.sort),
            (customer, status, OrderSort(direction)),
            "{query_string}"
        );
    }
}

#[actix_web::test]
async fn pages_carry_a_link_and_a_cursor_bound_to_the_sort() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |query| {
        if query.after.is_none() {
            Page { items: vec![numbered(3), numbered(2)], has_more: true }
        } else {
            last_page(vec![numbered(1)])
        }
    });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first_uri = "/v1/orders?status=pending&limit=2";
    let first = send_to(&app, bearer(get(first_uri), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let body = first.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["page"]["has_more"], true);
    let cursor = body["page"]["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header(header::LINK).unwrap(),
        format!("<http://localhost:8080{first_uri}&cursor={cursor}>; rel=\"next\"")
    );
    assert_eq!(seen.lock().unwrap()[0].1.limit.get(), 2);

    let last = send_to(&app, bearer(get(&format!("{first_uri}&cursor={cursor}")), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    assert_eq!(last.json()["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
    assert!(last.header(header::LINK).is_none());
    let expected = OrderCursor { placed_at: numbered(2).placed_at, id: numbered(2).id };
    assert_eq!(seen.lock().unwrap().last().unwrap().1.after, Some(expected));

    // The cursor was issued for `-placed_at` (the default): not valid with the other sort.
    let reply =
        send_to(&app, bearer(get(&format!("/v1/orders?sort=placed_at&cursor={cursor}")), CUSTOMER_TOKEN).to_request())
            .await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("cursor", "sort_mismatch")]));

    // Another collection's cursor, or a tampered one, is not one of ours.
    let codec = CursorCodec::new(b"test cursor key");
    let products_cursor = codec.encode(
        CursorScope { collection: "products", sort: "-placed_at" },
        &CursorPosition { key: "1795457045000000".into(), id: Uuid::now_v7() },
    );
    let mut tampered = cursor.clone().into_bytes();
    tampered[4] = if tampered[4] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [products_cursor.as_str(), tampered.as_str(), "bm90IGEgY3Vyc29y"] {
        let reply = send_to(&app, bearer(get(&format!("/v1/orders?cursor={bad}")), CUSTOMER_TOKEN).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]), "{bad}");
    }
    // The refused cursors never reached the use case.
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[actix_web::test]
async fn every_invalid_list_parameter_is_listed() {
    let uri = "/v1/orders?status=lost&customer_id=me&sort=total&limit=101&colour=blue";
    let reply = send_with(UseCases::new(), bearer(get(uri), ADMIN_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("colour", "unknown_parameter"),
            ("customer_id", "invalid_format"),
            ("limit", "out_of_range"),
            ("sort", "invalid_value"),
            ("status", "invalid_value"),
        ])
    );
    send_with(UseCases::new(), get("/v1/orders")).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn a_store_outage_is_503() {
    let mut use_cases = UseCases::new();
    use_cases
        .orders
        .expect_list()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("pool timed out"))));
    let reply = send_with(use_cases, bearer(get("/v1/orders"), ADMIN_TOKEN)).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());
}

// --- changing the status ---------------------------------------------------------------------

fn patch(token: &str, body: &str) -> TestRequest {
    bearer(json_request(Method::PATCH, &order_uri(), body.to_owned()), token)
}

/// `change_status` is asked once, by `actor` for the order at [`order_uri`], to move it `to`
/// from `version`, and answers `result`.
fn changing(actor: Actor, to: OrderStatus, version: i64, result: Result<Order, ChangeOrderError>) -> UseCases {
    changing_order(actor, order_id(), to, version, result)
}

fn changing_order(
    actor: Actor,
    id: OrderId,
    to: OrderStatus,
    version: i64,
    result: Result<Order, ChangeOrderError>,
) -> UseCases {
    let mut use_cases = UseCases::new();
    use_cases
        .orders
        .expect_change_status()
        .withf(move |a, i, t, v| (*a, *i, *t, *v) == (actor, id, to, version))
        .times(1)
        .return_once(move |_, _, _, _| result);
    use_cases
}

/// The customer's order as the use case returns it once moved `to`, at `version`.
fn moved(to: OrderStatus, version: i64) -> Result<Order, ChangeOrderError> {
    Ok(order(order_id(), customer_id(), to, version))
}

#[actix_web::test]
async fn the_owner_cancels_a_pending_order_with_either_media_type() {
    for content_type in ["application/json", "application/merge-patch+json", "application/json; charset=utf-8"] {
        let use_cases = changing(customer(), OrderStatus::Cancelled, 1, moved(OrderStatus::Cancelled, 2));
        let request = patch(CUSTOMER_TOKEN, r#"{"status":"cancelled"}"#)
            .insert_header((header::IF_MATCH, "\"1\""))
            .insert_header((header::CONTENT_TYPE, content_type));
        let reply = send_with(use_cases, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{content_type}: {}", reply.text());
        assert_eq!(reply.header(header::ETAG), Some("\"2\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        let body = reply.json();
        assert_eq!(keys(&body), order_fields());
        assert_eq!((body["status"].clone(), body["version"].clone()), (json!("cancelled"), json!(2)));
        assert_eq!(body["expires_at"], Value::Null);
    }
    let request = patch(CUSTOMER_TOKEN, r#"{"status":"cancelled"}"#)
        .insert_header((header::IF_MATCH, "\"1\""))
        .insert_header((header::CONTENT_TYPE, "text/plain"));
    send_with(UseCases::new(), request).await.problem(415, "unsupported_media_type");
}

#[actix_web::test]
async fn admins_confirm_ship_and_deliver() {
    for to in [OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Delivered, OrderStatus::Cancelled] {
        let use_cases = changing(admin(), to, 4, moved(to, 5));
        let request = patch(ADMIN_TOKEN, &format!(r#"{{"status":"{to}"}}"#)).insert_header((header::IF_MATCH, "\"4\""));
        let reply = send_with(use_cases, request).await;
        assert_eq!(reply.status, StatusCode::OK, "→ {to}: {}", reply.text());
        assert_eq!(reply.json()["status"], to.as_str());
        assert_eq!(reply.header(header::ETAG), Some("\"5\""));
    }
    // Confirmation issues the invoice: its number is on the order.
    let use_cases = changing(admin(), OrderStatus::Confirmed, 1, moved(OrderStatus::Confirmed, 2));
    let request = patch(ADMIN_TOKEN, r#"{"status":"confirmed"}"#).insert_header((header::IF_MATCH, "\"1\""));
    assert_eq!(send_with(use_cases, request).await.json()["invoice_number"], "2026-000042");
}

#[actix_web::test]
async fn a_move_the_callers_role_may_not_make_is_403_naming_it() {
    // Which moves are admins' only is the transition table's (the domain's tests).
    for (from, to) in [(OrderStatus::Pending, OrderStatus::Confirmed), (OrderStatus::Confirmed, OrderStatus::Shipped)] {
        let use_cases = changing(customer(), to, 1, Err(ChangeOrderError::Forbidden { from, to }));
        let request =
            patch(CUSTOMER_TOKEN, &format!(r#"{{"status":"{to}"}}"#)).insert_header((header::IF_MATCH, "\"1\""));
        let problem = send_with(use_cases, request).await.problem(403, "forbidden");
        assert_eq!(problem["detail"], format!("only admins may move an order from {from} to {to}"));
    }
}

#[actix_web::test]
async fn a_move_outside_the_table_is_409_invalid_transition() {
    for (from, to) in [
        (OrderStatus::Confirmed, OrderStatus::Cancelled),
        (OrderStatus::Cancelled, OrderStatus::Pending),
        (OrderStatus::Pending, OrderStatus::Shipped),
        (OrderStatus::Delivered, OrderStatus::Delivered),
    ] {
        let use_cases = changing(admin(), to, 2, Err(ChangeOrderError::InvalidTransition { from, to }));
        let request = patch(ADMIN_TOKEN, &format!(r#"{{"status":"{to}"}}"#)).insert_header((header::IF_MATCH, "\"2\""));
        let reply = send_with(use_cases, request).await;
        let problem = reply.problem(409, "invalid_transition");
        assert_eq!(problem["detail"], format!("an order cannot go from {from} to {to}"));
        assert_eq!(problem["instance"], order_uri());
        assert_eq!(reply.faults(), faults(&[("/status", "invalid_transition")]));
        assert_eq!(problem["errors"][0]["message"], format!("cannot follow {from}"));
    }
}

#[actix_web::test]
async fn a_status_change_without_if_match_is_428_and_with_a_stale_one_412() {
    for missing in [None, Some("*")] {
        let mut request = patch(ADMIN_TOKEN, r#"{"status":"confirmed"}"#);
        if let Some(value) = missing {
            request = request.insert_header((header::IF_MATCH, value));
        }
        send_with(UseCases::new(), request).await.problem(428, "precondition_required");
    }
    // The version is passed as read; a weak tag or one that is not a version of ours as one no
    // order has (-1). The service answers a mismatch, whether it saw it on reading the order
    // or lost the race to the conditional update.
    for (tag, version) in [("\"1\"", 1), ("W/\"2\"", -1), ("\"not-ours\"", -1), ("\"2\"", 2)] {
        let use_cases = changing(admin(), OrderStatus::Confirmed, version, Err(ChangeOrderError::VersionMismatch));
        let request = patch(ADMIN_TOKEN, r#"{"status":"confirmed"}"#).insert_header((header::IF_MATCH, tag));
        let problem = send_with(use_cases, request).await.problem(412, "precondition_failed");
        assert_eq!(
            problem["detail"], "the order has changed since the ETag in If-Match was read; fetch it again",
            "{tag}"
        );
    }

    let malformed = patch(ADMIN_TOKEN, r#"{"status":"confirmed"}"#).insert_header((header::IF_MATCH, "2"));
    let reply = send_with(UseCases::new(), malformed).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("If-Match", "invalid_format")]));
}

#[actix_web::test]
async fn an_order_the_use_case_does_not_find_to_change_is_404() {
    // Someone else's order: the service answers `NotFound`, never `Forbidden`.
    let use_cases = changing(customer(), OrderStatus::Cancelled, 1, Err(ChangeOrderError::NotFound));
    let request = patch(CUSTOMER_TOKEN, r#"{"status":"cancelled"}"#).insert_header((header::IF_MATCH, "\"1\""));
    send_with(use_cases, request).await.problem(404, "not_found");
    // A missing one.
    let missing_id = OrderId::from_uuid(Uuid::now_v7());
    let use_cases = changing_order(admin(), missing_id, OrderStatus::Cancelled, 1, Err(ChangeOrderError::NotFound));
    let missing = bearer(
        json_request(Method::PATCH, &format!("/v1/orders/{missing_id}"), r#"{"status":"cancelled"}"#),
        ADMIN_TOKEN,
    )
    .insert_header((header::IF_MATCH, "\"1\""));
    send_with(use_cases, missing).await.problem(404, "not_found");
    let anonymous = json_request(Method::PATCH, &order_uri(), r#"{"status":"cancelled"}"#)
        .insert_header((header::IF_MATCH, "\"1\""));
    send_with(UseCases::new(), anonymous).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn only_status_can_be_changed() {
    for (body, expected) in [
        (r#"{"status":"cancelled","total":{"amount":1,"currency":"EUR"}}"#, faults(&[("/total", "unknown_field")])),
        (
            r#"{"status":"cancelled","items":[],"customer_id":"x"}"#,
            faults(&[("/customer_id", "unknown_field"), ("/items", "unknown_field")]),
        ),
        (r#"{}"#, faults(&[("/status", "required")])),
        (r#"{"status":null}"#, faults(&[("/status", "required")])),
        (r#"{"status":"lost"}"#, faults(&[("/status", "invalid_value")])),
        (r#"{"status":3}"#, faults(&[("/status", "invalid_type")])),
    ] {
        let request = patch(ADMIN_TOKEN, body).insert_header((header::IF_MATCH, "\"1\""));
        let reply = send_with(UseCases::new(), request).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), expected, "{body}");
    }
}

#[actix_web::test]
async fn only_the_documented_methods_are_allowed() {
    let reply = send_with(UseCases::new(), with_method(Method::PUT, &order_uri())).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, PATCH"));
    let reply = send_with(UseCases::new(), with_method(Method::DELETE, "/v1/orders")).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, POST"));
}
