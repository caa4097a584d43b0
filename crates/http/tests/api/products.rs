//! `/v1/products` (docs/api.md#products-and-stock) as a consumer sees it, over mocks of
//! `ProductUseCases` (ADR 0019): each test states what the use case answers and checks what
//! the adapter passes it (the caller as actor, the parsed path id, query, body and `If-Match`
//! version) and what it renders — the catalogue for anonymous callers, customers and admins
//! (caching, ETag/304), the cursor pages and their parameters, the admin's writes (every fault
//! at once, nested pointers, no mass assignment of stock, If-Match 428 vs 412), stock
//! adjustments with their audit trail, and each domain error as its problem. Who may see or
//! change what beyond the role check of the route (archived products, empty pages, stock below
//! reserved) is the domain's rule, tested in `crates/domain/src/services/products/tests.rs`.
//! Faults found before a use case is reached are tested with mocks that expect nothing (a call
//! would panic).

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::Actor;
use orderly_domain::StoreError;
use orderly_domain::pagination::{Page, SortDirection};
use orderly_domain::product::{
    AdjustmentQuery, AdjustmentReason, Description, Money, Product, ProductCursor, ProductId, ProductName,
    ProductQuery, ProductSortKey, ProductStatus, ProductUpdate, Sku, Stock, StockAdjustment,
};
use orderly_domain::services::{
    AdjustStockError, ChangeProductError, CreateProductError, GetProductError, ListAdjustmentsError, ProductDraft,
};
use orderly_domain::user::Role;
use orderly_http::pagination::{CursorCodec, CursorPosition, CursorScope};

use crate::support::*;

const PRODUCT_FIELDS: [&str; 10] =
    ["created_at", "description", "id", "name", "sku", "status", "stock", "unit_price", "updated_at", "version"];

fn product_uri() -> String {
    format!("/v1/products/{}", product_id())
}

fn adjustments_uri() -> String {
    format!("/v1/products/{}/stock-adjustments", product_id())
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

/// The actor the adapter makes of [`ADMIN_TOKEN`].
fn admin() -> Actor {
    Actor { user_id: admin_id(), role: Role::Admin }
}

/// The actor the adapter makes of [`CUSTOMER_TOKEN`].
fn customer() -> Actor {
    Actor { user_id: customer_id(), role: Role::Customer }
}

/// The actor of `token` (`None`: anonymous).
fn actor_of(token: Option<&str>) -> Option<Actor> {
    token.map(|token| match token {
        ADMIN_TOKEN => admin(),
        CUSTOMER_TOKEN => customer(),
        other => panic!("no actor for {other}"),
    })
}

fn page<T>(items: Vec<T>, has_more: bool) -> Page<T> {
    Page { items, has_more }
}

/// The `n`th of a run of products, each created a millisecond after the previous one.
fn numbered(n: u128) -> Product {
    let id = ProductId::from_uuid(Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0f00 + n));
    Product {
        name: ProductName::parse(&format!("Mug {n}")).unwrap(),
        created_at: at(1_795_457_045_000_000 + n as i64 * 1000),
        ..product(id, 1)
    }
}

/// `get` is asked once, by `actor`, for `id`, and answers `answer`.
fn expect_get(use_cases: &mut UseCases, actor: Option<Actor>, id: ProductId, answer: Result<Product, GetProductError>) {
    use_cases
        .products
        .expect_get()
        .withf(move |asked_by, asked_for| *asked_by == actor && *asked_for == id)
        .times(1)
        .return_once(move |_, _| answer);
}

/// Who asked `list` for what.
type Asked = Arc<Mutex<Vec<(Option<Actor>, ProductQuery)>>>;

/// `list` answers `page` for each query, and records who asked what.
fn recording_list(use_cases: &mut UseCases, page: impl Fn(&ProductQuery) -> Page<Product> + Send + 'static) -> Asked {
    let seen: Asked = Arc::default();
    let recorder = seen.clone();
    use_cases.products.expect_list().returning(move |actor, query| {
        let answer = page(&query);
        recorder.lock().unwrap().push((actor, query));
        Ok(answer)
    });
    seen
}

// --- reading the catalogue -------------------------------------------------------------------

#[actix_web::test]
async fn anonymous_pages_are_public_for_30_seconds_and_vary_on_authorization() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| page(vec![numbered(1)], false));
    let reply = send_with(use_cases, get("/v1/products")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("public, max-age=30"));
    assert_eq!(reply.header(header::VARY), Some("Authorization"));
    let body = reply.json();
    assert_eq!(body["page"], json!({"limit": 20, "next_cursor": null, "has_more": false}));
    assert_eq!(keys(&body["data"][0]), PRODUCT_FIELDS);
    // Asked anonymously, with no status (narrowing to active products is the domain's), in the
    // default order.
    let (actor, query) = seen.lock().unwrap()[0].clone();
    assert_eq!(actor, None);
    assert_eq!(query.status, None);
    assert_eq!((query.sort, query.direction), (ProductSortKey::CreatedAt, Some(SortDirection::Ascending)));
    assert_eq!((query.limit.get(), query.after, query.in_stock, query.name_contains), (20, None, false, None));
}

#[actix_web::test]
async fn pages_read_with_a_token_are_private() {
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let mut use_cases = UseCases::new();
        let seen = recording_list(&mut use_cases, |_| page(Vec::new(), false));
        let reply = send_with(use_cases, bearer(get("/v1/products"), token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"), "{token}");
        assert_eq!(reply.header(header::VARY), Some("Authorization"));
        assert_eq!(reply.json(), json!({"data": [], "page": {"limit": 20, "next_cursor": null, "has_more": false}}));
        assert_eq!(seen.lock().unwrap()[0].0, actor_of(Some(token)), "{token}");
    }
}

#[actix_web::test]
async fn an_invalid_or_expired_token_on_a_public_read_is_401_not_anonymous() {
    for token in [EXPIRED_TOKEN, "forged.token"] {
        for uri in ["/v1/products".to_owned(), product_uri()] {
            let reply = send_with(UseCases::new(), bearer(get(&uri), token)).await;
            reply.problem(401, "unauthenticated");
            assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
        }
    }
    let malformed = get("/v1/products").insert_header((header::AUTHORIZATION, "Basic dXNlcjpwYXNz"));
    send_with(UseCases::new(), malformed).await.problem(401, "unauthenticated");
}

/// Who sees archived products is the domain's rule (`list` in products/tests.rs); the adapter
/// passes the caller and the status asked for, and renders whatever page comes back.
#[actix_web::test]
async fn the_status_asked_for_reaches_the_use_case_with_the_caller_and_its_page_is_rendered() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| {
        page(vec![Product { status: ProductStatus::Archived, ..numbered(1) }], false)
    });
    let reply = send_with(use_cases, bearer(get("/v1/products?status=archived"), ADMIN_TOKEN)).await;
    assert_eq!(reply.json()["data"][0]["status"], "archived");
    let (actor, query) = seen.lock().unwrap()[0].clone();
    assert_eq!((actor, query.status), (Some(admin()), Some(ProductStatus::Archived)));

    // Admins without a status filter: none is passed.
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |_| page(Vec::new(), false));
    send_with(use_cases, bearer(get("/v1/products"), ADMIN_TOKEN)).await;
    assert_eq!(seen.lock().unwrap()[0].1.status, None);

    // Anyone else asking for archived products: asked as they are, the empty page rendered.
    for token in [None, Some(CUSTOMER_TOKEN)] {
        let mut use_cases = UseCases::new();
        let seen = recording_list(&mut use_cases, |_| page(Vec::new(), false));
        let mut request = get("/v1/products?status=archived");
        if let Some(token) = token {
            request = bearer(request, token);
        }
        let reply = send_with(use_cases, request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["data"], json!([]));
        let (actor, query) = seen.lock().unwrap()[0].clone();
        assert_eq!((actor, query.status), (actor_of(token), Some(ProductStatus::Archived)));
    }
}

#[actix_web::test]
async fn filters_and_sorts_reach_the_query() {
    let cases = [
        ("q=MUG&in_stock=true&sort=-price", Some("MUG"), true, ProductSortKey::Price, SortDirection::Descending),
        ("in_stock=false&sort=price", None, false, ProductSortKey::Price, SortDirection::Ascending),
        ("sort=name", None, false, ProductSortKey::Name, SortDirection::Ascending),
        ("sort=-name&q=%C3%A9mail%20", Some("émail "), false, ProductSortKey::Name, SortDirection::Descending),
        ("sort=created_at", None, false, ProductSortKey::CreatedAt, SortDirection::Ascending),
        ("sort=-created_at&status=active", None, false, ProductSortKey::CreatedAt, SortDirection::Descending),
    ];
    for (query_string, q, in_stock, key, direction) in cases {
        let mut use_cases = UseCases::new();
        let seen = recording_list(&mut use_cases, |_| page(Vec::new(), false));
        let reply = send_with(use_cases, get(&format!("/v1/products?{query_string}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{query_string}: {}", reply.text());
        let query = seen.lock().unwrap()[0].1.clone();
        assert_eq!(query.name_contains.as_deref(), q, "{query_string}");
        assert_eq!(query.in_stock, in_stock, "{query_string}");
        assert_eq!((query.sort, query.direction), (key, Some(direction)), "{query_string}");
    }
}

#[actix_web::test]
async fn pages_carry_a_link_and_a_cursor_holding_the_sort_key_of_the_last_item() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |query| {
        // The first page has more; the one after its cursor is the last.
        if query.after.is_none() { page(vec![numbered(1), numbered(2)], true) } else { page(vec![numbered(3)], false) }
    });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    for (sort, expected_after) in [
        ("-price", ProductCursor::Price(1250, numbered(2).id)),
        ("name", ProductCursor::Name("Mug 2".to_owned(), numbered(2).id)),
        ("-created_at", ProductCursor::CreatedAt(numbered(2).created_at, numbered(2).id)),
    ] {
        let first_uri = format!("/v1/products?q=mug&limit=2&sort={sort}");
        let first = send_to(&app, get(&first_uri).to_request()).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        let body = first.json();
        assert_eq!(body["data"].as_array().unwrap().len(), 2);
        assert_eq!(body["page"]["has_more"], true);
        let cursor = body["page"]["next_cursor"].as_str().unwrap().to_owned();
        assert_eq!(
            first.header(header::LINK).unwrap(),
            format!("<http://localhost:8080{first_uri}&cursor={cursor}>; rel=\"next\"")
        );

        let last = send_to(&app, get(&format!("{first_uri}&cursor={cursor}")).to_request()).await;
        assert_eq!(last.status, StatusCode::OK, "{}", last.text());
        assert_eq!(last.json()["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
        assert!(last.header(header::LINK).is_none());
        let (_, query) = seen.lock().unwrap().last().unwrap().clone();
        assert_eq!(
            (query.after, query.limit.get(), query.name_contains),
            (Some(expected_after), 2, Some("mug".to_owned())),
            "{sort}"
        );
    }
}

#[actix_web::test]
async fn a_cursor_is_bound_to_its_collection_and_sort() {
    let mut use_cases = UseCases::new();
    // Only the first page is asked for: every other request is refused before the use case.
    use_cases.products.expect_list().times(1).returning(|_, _| Ok(page(vec![numbered(1)], true)));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first = send_to(&app, get("/v1/products?sort=name&limit=1").to_request()).await;
    let cursor = first.json()["page"]["next_cursor"].as_str().unwrap().to_owned();

    for other_sort in ["price", "-name", "created_at"] {
        let reply = send_to(&app, get(&format!("/v1/products?sort={other_sort}&cursor={cursor}")).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "sort_mismatch")]), "{other_sort}");
    }
    // Without `sort` the default applies, which is not `name` either.
    let reply = send_to(&app, get(&format!("/v1/products?cursor={cursor}")).to_request()).await;
    assert_eq!(reply.faults(), faults(&[("cursor", "sort_mismatch")]));

    // A cursor of another collection, signed with the same key, is not one of ours.
    let codec = CursorCodec::new(b"test cursor key");
    let users_cursor = codec.encode(
        CursorScope { collection: "users", sort: "created_at" },
        &CursorPosition { key: "1795457045000000".into(), id: Uuid::now_v7() },
    );
    let mut tampered = cursor.clone().into_bytes();
    tampered[4] = if tampered[4] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [users_cursor.as_str(), tampered.as_str(), "bm90IGEgY3Vyc29y", "%%%"] {
        let reply = send_to(&app, get(&format!("/v1/products?sort=name&cursor={bad}")).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]), "{bad}");
    }
}

#[actix_web::test]
async fn limits_are_1_to_100() {
    for (limit, ok) in [("1", true), ("100", true), ("0", false), ("101", false), ("-5", false), ("many", false)] {
        let mut use_cases = UseCases::new();
        if ok {
            let expected = limit.to_owned();
            use_cases
                .products
                .expect_list()
                .withf(move |_, query| query.limit.get().to_string() == expected)
                .times(1)
                .returning(|_, _| Ok(page(Vec::new(), false)));
        }
        let reply = send_with(use_cases, get(&format!("/v1/products?limit={limit}"))).await;
        if ok {
            assert_eq!(reply.status, StatusCode::OK, "{limit}");
            assert_eq!(reply.json()["page"]["limit"].to_string(), limit);
        } else {
            reply.problem(400, "invalid_parameter");
            assert_eq!(reply.faults().len(), 1, "{limit}");
            assert_eq!(reply.faults()[0].0, "limit");
        }
    }
}

#[actix_web::test]
async fn q_is_1_to_200_characters_without_control_characters() {
    let mut use_cases = UseCases::new();
    let longest = "é".repeat(200);
    let expected = longest.clone();
    use_cases
        .products
        .expect_list()
        .withf(move |_, query| query.name_contains.as_deref() == Some(expected.as_str()))
        .times(1)
        .returning(|_, _| Ok(page(Vec::new(), false)));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let reply = send_to(&app, get(&format!("/v1/products?q={}", "%C3%A9".repeat(200))).to_request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{} characters are fine: {}", longest.chars().count(), reply.text());
    for (q, code) in
        [("x".repeat(201), "too_long"), (String::new(), "too_short"), ("a%00b".to_owned(), "invalid_characters")]
    {
        let reply = send_to(&app, get(&format!("/v1/products?q={q}")).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("q", code)]));
    }
}

#[actix_web::test]
async fn unknown_repeated_and_invalid_parameters_are_all_listed() {
    let uri = "/v1/products?sort=stock&status=deleted&in_stock=yes&limit=0&colour=blue&q=a&q=b";
    let reply = send_with(UseCases::new(), get(uri)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("colour", "unknown_parameter"),
            ("in_stock", "invalid_value"),
            ("limit", "out_of_range"),
            ("q", "repeated"),
            ("sort", "invalid_value"),
            ("status", "invalid_value"),
        ])
    );
}

// --- one product -----------------------------------------------------------------------------

#[actix_web::test]
async fn a_product_has_exactly_the_contract_fields_and_a_strong_etag() {
    let mut use_cases = UseCases::new();
    expect_get(&mut use_cases, None, product_id(), Ok(product(product_id(), 2)));
    let reply = send_with(use_cases, get(&product_uri())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::ETAG), Some("\"2\""));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("public, max-age=30"));
    assert_eq!(reply.header(header::VARY), Some("Authorization"));
    assert_eq!(
        reply.json(),
        json!({
            "id": product_id().to_string(),
            "sku": "MUG-001",
            "name": "Enamel mug",
            "description": "Holds 350 ml.",
            "unit_price": {"amount": 1250, "currency": "EUR"},
            "stock": {"on_hand": 10, "reserved": 4, "available": 6},
            "status": "active",
            "version": 2,
            "created_at": "2026-11-23T18:04:05.123Z",
            "updated_at": "2026-11-23T18:04:06.000Z"
        })
    );

    let without_description = Product { description: None, ..product(product_id(), 2) };
    let mut use_cases = UseCases::new();
    expect_get(&mut use_cases, None, product_id(), Ok(without_description));
    let reply = send_with(use_cases, get(&product_uri())).await;
    assert_eq!(reply.json()["description"], Value::Null);
}

#[actix_web::test]
async fn a_current_if_none_match_is_304_with_the_same_caching() {
    for (token, cache_control) in [(None, "public, max-age=30"), (Some(CUSTOMER_TOKEN), "private, no-cache")] {
        for tag in ["\"2\"", "W/\"2\"", "\"1\", \"2\"", "*"] {
            let mut request = get(&product_uri()).insert_header((header::IF_NONE_MATCH, tag));
            if let Some(token) = token {
                request = bearer(request, token);
            }
            let mut use_cases = UseCases::new();
            expect_get(&mut use_cases, actor_of(token), product_id(), Ok(product(product_id(), 2)));
            let reply = send_with(use_cases, request).await;
            assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
            assert!(reply.body.is_empty());
            assert_eq!(reply.header(header::ETAG), Some("\"2\""));
            assert_eq!(reply.header(header::CACHE_CONTROL), Some(cache_control));
            assert_eq!(reply.header(header::VARY), Some("Authorization"));
        }
    }
    let stale = get(&product_uri()).insert_header((header::IF_NONE_MATCH, "\"1\""));
    let mut use_cases = UseCases::new();
    expect_get(&mut use_cases, None, product_id(), Ok(product(product_id(), 2)));
    let reply = send_with(use_cases, stale).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// That an archived product exists for admins only is the domain's rule (`get` in
/// products/tests.rs); here: the caller reaches the use case, `NotFound` is 404, and an
/// archived product that comes back is rendered privately.
#[actix_web::test]
async fn a_product_the_use_case_does_not_find_for_the_caller_is_404_and_an_archived_one_is_rendered() {
    for token in [None, Some(CUSTOMER_TOKEN)] {
        let mut use_cases = UseCases::new();
        expect_get(&mut use_cases, actor_of(token), product_id(), Err(GetProductError::NotFound));
        let mut request = get(&product_uri());
        if let Some(token) = token {
            request = bearer(request, token);
        }
        send_with(use_cases, request).await.problem(404, "not_found");
    }
    let archived = Product { status: ProductStatus::Archived, ..product(product_id(), 3) };
    let mut use_cases = UseCases::new();
    expect_get(&mut use_cases, Some(admin()), product_id(), Ok(archived));
    let reply = send_with(use_cases, bearer(get(&product_uri()), ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "archived");
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
}

#[actix_web::test]
async fn an_unknown_or_malformed_id_is_404_or_400() {
    let unknown = ProductId::from_uuid(Uuid::parse_str(&other_id().to_string()).unwrap());
    let mut use_cases = UseCases::new();
    expect_get(&mut use_cases, None, unknown, Err(GetProductError::NotFound));
    let reply = send_with(use_cases, get(&format!("/v1/products/{}", other_id()))).await;
    reply.problem(404, "not_found");
    let reply = send_with(UseCases::new(), get("/v1/products/not-a-uuid")).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("id", "invalid_format")]));
}

#[actix_web::test]
async fn only_the_documented_methods_are_allowed() {
    let reply = send_with(UseCases::new(), with_method(Method::PUT, &product_uri())).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, PATCH, DELETE"));
    let reply = send_with(UseCases::new(), with_method(Method::DELETE, "/v1/products")).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, POST"));
    let reply = send_with(UseCases::new(), with_method(Method::PATCH, &adjustments_uri())).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, POST"));
}

#[actix_web::test]
async fn a_store_outage_is_503_and_never_cached() {
    let mut use_cases = UseCases::new();
    use_cases
        .products
        .expect_list()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("pool timed out"))));
    let reply = send_with(use_cases, get("/v1/products")).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::VARY).is_none());
}

// --- creating --------------------------------------------------------------------------------

const NEW_PRODUCT: &str = r#"{"sku":"mug-001","name":" Enamel mug ","unit_price":{"amount":1250,"currency":"EUR"}}"#;

fn create(token: &str, body: impl Into<actix_web::web::Bytes>) -> TestRequest {
    bearer(json_request(Method::POST, "/v1/products", body), token)
}

/// The id of the product the use case creates.
fn new_product_id() -> ProductId {
    ProductId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000f3").unwrap())
}

/// Use cases whose `create` (on the use case rebound by `within`) is asked once, by the admin,
/// for a draft `accepts`, and answers `answer`.
fn creating(
    accepts: impl Fn(&ProductDraft) -> bool + Send + 'static,
    answer: Result<Product, CreateProductError>,
) -> UseCases {
    let mut use_cases = UseCases::new();
    let mut inner = orderly_domain::services::MockProductUseCases::new();
    inner
        .expect_create()
        .withf(move |actor, draft| *actor == admin() && accepts(draft))
        .times(1)
        .return_once(move |_, _| answer);
    products_within(&mut use_cases.products, inner);
    use_cases
}

#[actix_web::test]
async fn an_admin_creates_a_product_with_location_etag_and_no_store() {
    let expected = ProductDraft {
        sku: Sku::parse("MUG-001").unwrap(),
        name: ProductName::parse("Enamel mug").unwrap(),
        description: None,
        unit_price: Money::parse(1250, "EUR", &eur()).unwrap(),
        initial_stock: 0,
    };
    let created = Product { description: None, stock: Stock::new(0, 0).unwrap(), ..product(new_product_id(), 1) };
    let use_cases = creating(move |draft| *draft == expected, Ok(created));
    let reply = send_with(use_cases, create(ADMIN_TOKEN, NEW_PRODUCT)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    assert_eq!(keys(&body), PRODUCT_FIELDS);
    assert_eq!(body["id"], new_product_id().to_string());
    assert_eq!(reply.header(header::LOCATION), Some(format!("/v1/products/{}", new_product_id()).as_str()));
    assert_eq!(reply.header(header::ETAG), Some("\"1\""));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(body["stock"], json!({"on_hand": 0, "reserved": 0, "available": 0}));
    assert_eq!(body["description"], Value::Null);
}

#[actix_web::test]
async fn initial_stock_and_a_description_are_passed_on() {
    let expected = ProductDraft {
        sku: Sku::parse("MUG-2").unwrap(),
        name: ProductName::parse("Mug").unwrap(),
        description: Some(Description::parse("Blue\nenamel").unwrap()),
        unit_price: Money::parse(0, "EUR", &eur()).unwrap(),
        initial_stock: 25,
    };
    let use_cases = creating(move |draft| *draft == expected, Ok(product(new_product_id(), 1)));
    let body = json!({"sku": "MUG-2", "name": "Mug", "description": "Blue\nenamel", "unit_price": {"amount": 0, "currency": "EUR"}, "initial_stock": 25});
    let reply = send_with(use_cases, create(ADMIN_TOKEN, body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[actix_web::test]
async fn integers_written_with_a_zero_fraction_are_integers_as_json_schema_says() {
    let use_cases = creating(
        |draft| draft.unit_price.amount() == 1250 && draft.initial_stock == 1000,
        Ok(product(new_product_id(), 1)),
    );
    let body = r#"{"sku":"MUG-3","name":"Mug","unit_price":{"amount":1250.0,"currency":"EUR"},"initial_stock":1e3}"#;
    let reply = send_with(use_cases, create(ADMIN_TOKEN, body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    let fraction = r#"{"sku":"MUG-3","name":"Mug","unit_price":{"amount":12.5,"currency":"EUR"}}"#;
    let problem = send_with(UseCases::new(), create(ADMIN_TOKEN, fraction)).await.problem(422, "validation_failed");
    assert_eq!(problem["errors"][0]["pointer"], "/unit_price/amount", "{problem}");
}

#[actix_web::test]
async fn creating_is_for_admins_only() {
    send_with(UseCases::new(), create(CUSTOMER_TOKEN, NEW_PRODUCT)).await.problem(403, "forbidden");
    let reply = send_with(UseCases::new(), json_request(Method::POST, "/v1/products", NEW_PRODUCT)).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
}

#[actix_web::test]
async fn a_taken_sku_is_409_pointing_at_sku() {
    let use_cases = creating(|draft| draft.sku.as_str() == "MUG-001", Err(CreateProductError::SkuTaken));
    let reply = send_with(use_cases, create(ADMIN_TOKEN, NEW_PRODUCT)).await;
    reply.problem(409, "sku_taken");
    assert_eq!(reply.faults(), faults(&[("/sku", "taken")]));
}

#[actix_web::test]
async fn every_fault_of_a_new_product_is_listed_including_nested_ones_and_stock_fields() {
    let body = json!({
        "sku": "bad sku!",
        "name": "",
        "unit_price": {"amount": -1, "currency": "USD", "extra": 1},
        "initial_stock": -1,
        "stock": {"on_hand": 5},
        "reserved": 1,
        "version": 7,
        "status": "active"
    });
    let reply = send_with(UseCases::new(), create(ADMIN_TOKEN, body.to_string())).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("/initial_stock", "out_of_range"),
            ("/name", "required"),
            ("/reserved", "unknown_field"),
            ("/sku", "invalid_format"),
            ("/status", "unknown_field"),
            ("/stock", "unknown_field"),
            ("/unit_price/amount", "out_of_range"),
            ("/unit_price/currency", "unsupported_currency"),
            ("/unit_price/extra", "unknown_field"),
            ("/version", "unknown_field"),
        ])
    );
}

#[actix_web::test]
async fn type_errors_inside_the_price_point_into_it() {
    let cases = [
        (
            json!({"amount": "12.50", "currency": 978}),
            vec![("/unit_price/amount", "invalid_type"), ("/unit_price/currency", "invalid_type")],
        ),
        (json!({"amount": 12.5, "currency": "EUR"}), vec![("/unit_price/amount", "invalid_type")]),
        (json!({"currency": "EUR"}), vec![("/unit_price/amount", "required")]),
        (json!({"amount": 100, "currency": "eur"}), vec![("/unit_price/currency", "invalid_format")]),
        (json!([1250, "EUR"]), vec![("/unit_price", "invalid_type")]),
        (json!("12.50 EUR"), vec![("/unit_price", "invalid_type")]),
        (Value::Null, vec![("/unit_price", "required")]),
    ];
    for (price, expected) in cases {
        let body = json!({"sku": "MUG-1", "name": "Mug", "unit_price": price});
        let reply = send_with(UseCases::new(), create(ADMIN_TOKEN, body.to_string())).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&expected), "{price}");
        assert!(!reply.text().contains("MoneyInput") && !reply.text().contains("struct"), "{}", reply.text());
    }
}

// --- changing --------------------------------------------------------------------------------

fn patch(token: &str, body: &str) -> TestRequest {
    bearer(json_request(Method::PATCH, &product_uri(), body.to_owned()), token)
}

/// `update` is asked once, by the admin, for `product_id()` at `version`, with a patch
/// `accepts`, and answers `answer`.
fn expect_update(
    use_cases: &mut UseCases,
    version: i64,
    accepts: impl Fn(&ProductUpdate) -> bool + Send + 'static,
    answer: Result<Product, ChangeProductError>,
) {
    use_cases
        .products
        .expect_update()
        .withf(move |actor, id, update, expected| {
            *actor == admin() && *id == product_id() && *expected == version && accepts(update)
        })
        .times(1)
        .return_once(move |_, _, _, _| answer);
}

/// An update of product version 2 to version 3, expecting exactly the blue-mug patch.
fn expecting_the_blue_mug_patch() -> UseCases {
    let mut use_cases = UseCases::new();
    let expected = ProductUpdate {
        name: Some(ProductName::parse("Blue mug").unwrap()),
        description: Some(None),
        unit_price: Some(Money::parse(1390, "EUR", &eur()).unwrap()),
        status: None,
    };
    expect_update(&mut use_cases, 2, move |update| *update == expected, Ok(product(product_id(), 3)));
    use_cases
}

#[actix_web::test]
async fn a_merge_patch_with_a_current_if_match_returns_the_product_and_its_new_etag() {
    let body = r#"{"name":"Blue mug","description":null,"unit_price":{"amount":1390,"currency":"EUR"}}"#;
    for content_type in ["application/json", "application/merge-patch+json"] {
        let request = patch(ADMIN_TOKEN, body)
            .insert_header((header::IF_MATCH, "\"2\""))
            .insert_header((header::CONTENT_TYPE, content_type));
        let reply = send_with(expecting_the_blue_mug_patch(), request).await;
        assert_eq!(reply.status, StatusCode::OK, "{content_type}: {}", reply.text());
        assert_eq!(reply.header(header::ETAG), Some("\"3\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(keys(&reply.json()), PRODUCT_FIELDS);
        assert_eq!(reply.json()["version"], 3);
    }
    let request = patch(ADMIN_TOKEN, body)
        .insert_header((header::IF_MATCH, "\"2\""))
        .insert_header((header::CONTENT_TYPE, "text/plain"));
    send_with(UseCases::new(), request).await.problem(415, "unsupported_media_type");
}

#[actix_web::test]
async fn a_patch_without_if_match_is_428_and_a_stale_one_412() {
    for missing in [None, Some("*")] {
        let mut request = patch(ADMIN_TOKEN, r#"{"name":"Blue mug"}"#);
        if let Some(value) = missing {
            request = request.insert_header((header::IF_MATCH, value));
        }
        send_with(UseCases::new(), request).await.problem(428, "precondition_required");
    }
    // A weak or foreign tag matches no version: it is passed on as -1.
    for (tag, expected) in [("\"1\"", 1), ("W/\"2\"", -1), ("\"not-ours\"", -1)] {
        let mut use_cases = UseCases::new();
        expect_update(&mut use_cases, expected, |_| true, Err(ChangeProductError::VersionMismatch));
        let request = patch(ADMIN_TOKEN, r#"{"name":"Blue mug"}"#).insert_header((header::IF_MATCH, tag));
        send_with(use_cases, request).await.problem(412, "precondition_failed");
    }
    let malformed = patch(ADMIN_TOKEN, r#"{"name":"Blue mug"}"#).insert_header((header::IF_MATCH, "2"));
    let reply = send_with(UseCases::new(), malformed).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("If-Match", "invalid_format")]));
}

#[actix_web::test]
async fn patching_is_for_admins_and_an_unknown_product_is_404() {
    let request = patch(CUSTOMER_TOKEN, r#"{"name":"Mine"}"#).insert_header((header::IF_MATCH, "\"2\""));
    send_with(UseCases::new(), request).await.problem(403, "forbidden");
    let anonymous =
        json_request(Method::PATCH, &product_uri(), r#"{"name":"Mine"}"#).insert_header((header::IF_MATCH, "\"2\""));
    send_with(UseCases::new(), anonymous).await.problem(401, "unauthenticated");

    let mut use_cases = UseCases::new();
    expect_update(&mut use_cases, 2, |_| true, Err(ChangeProductError::NotFound));
    let request = patch(ADMIN_TOKEN, r#"{"name":"Blue mug"}"#).insert_header((header::IF_MATCH, "\"2\""));
    send_with(use_cases, request).await.problem(404, "not_found");
}

#[actix_web::test]
async fn stock_cannot_be_mass_assigned_and_nulls_only_clear_the_description() {
    let body = json!({
        "stock": {"on_hand": 1000, "reserved": 0},
        "on_hand": 1000,
        "reserved": 0,
        "version": 1,
        "sku": "OTHER",
        "name": null,
        "unit_price": null,
        "status": null
    });
    let request = patch(ADMIN_TOKEN, &body.to_string()).insert_header((header::IF_MATCH, "\"2\""));
    let reply = send_with(UseCases::new(), request).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("/name", "invalid_type"),
            ("/on_hand", "unknown_field"),
            ("/reserved", "unknown_field"),
            ("/sku", "unknown_field"),
            ("/status", "invalid_type"),
            ("/stock", "unknown_field"),
            ("/unit_price", "invalid_type"),
            ("/version", "unknown_field"),
        ])
    );
}

#[actix_web::test]
async fn a_patched_price_and_status_are_checked_field_by_field() {
    let body =
        json!({"unit_price": {"amount": 5, "currency": "GBP", "vat": 1}, "status": "deleted", "name": "x".repeat(201)});
    let request = patch(ADMIN_TOKEN, &body.to_string()).insert_header((header::IF_MATCH, "\"2\""));
    let reply = send_with(UseCases::new(), request).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[
            ("/name", "too_long"),
            ("/status", "invalid_value"),
            ("/unit_price/currency", "unsupported_currency"),
            ("/unit_price/vat", "unknown_field"),
        ])
    );
}

// --- archiving -------------------------------------------------------------------------------

fn delete(token: &str) -> TestRequest {
    bearer(with_method(Method::DELETE, &product_uri()), token)
}

/// `archive` is asked once, by the admin, for `id` at `version`, and answers `answer`.
fn expect_archive(use_cases: &mut UseCases, id: ProductId, version: i64, answer: Result<(), ChangeProductError>) {
    use_cases
        .products
        .expect_archive()
        .withf(move |actor, asked_for, expected| *actor == admin() && *asked_for == id && *expected == version)
        .times(1)
        .return_once(move |_, _, _| answer);
}

#[actix_web::test]
async fn deleting_archives_the_product_at_the_if_match_version_and_answers_204() {
    let mut use_cases = UseCases::new();
    expect_archive(&mut use_cases, product_id(), 2, Ok(()));
    let reply = send_with(use_cases, delete(ADMIN_TOKEN).insert_header((header::IF_MATCH, "\"2\""))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(reply.body.is_empty());
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
}

#[actix_web::test]
async fn deleting_without_if_match_is_428_and_with_a_stale_one_412() {
    send_with(UseCases::new(), delete(ADMIN_TOKEN)).await.problem(428, "precondition_required");
    send_with(UseCases::new(), delete(ADMIN_TOKEN).insert_header((header::IF_MATCH, "*")))
        .await
        .problem(428, "precondition_required");

    // Stale for the use case, whether the product changed or (its rule, in products/tests.rs)
    // was archived at another version.
    for (tag, version) in [("\"2\"", 2), ("\"3\"", 3)] {
        let mut use_cases = UseCases::new();
        expect_archive(&mut use_cases, product_id(), version, Err(ChangeProductError::VersionMismatch));
        send_with(use_cases, delete(ADMIN_TOKEN).insert_header((header::IF_MATCH, tag)))
            .await
            .problem(412, "precondition_failed");
    }
}

#[actix_web::test]
async fn deleting_is_for_admins_and_an_unknown_product_is_404() {
    send_with(UseCases::new(), delete(CUSTOMER_TOKEN).insert_header((header::IF_MATCH, "\"2\"")))
        .await
        .problem(403, "forbidden");
    let anonymous = with_method(Method::DELETE, &product_uri()).insert_header((header::IF_MATCH, "\"2\""));
    send_with(UseCases::new(), anonymous).await.problem(401, "unauthenticated");
    let mut use_cases = UseCases::new();
    expect_archive(&mut use_cases, product_id(), 2, Err(ChangeProductError::NotFound));
    send_with(use_cases, delete(ADMIN_TOKEN).insert_header((header::IF_MATCH, "\"2\"")))
        .await
        .problem(404, "not_found");
}

fn other_product() -> ProductId {
    ProductId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000f2").unwrap())
}

// --- stock adjustments -----------------------------------------------------------------------

fn adjustment(n: u128, delta: i64, on_hand_after: i64) -> StockAdjustment {
    StockAdjustment {
        id: Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0a00 + n),
        product_id: product_id(),
        delta,
        reason: AdjustmentReason::parse("stocktake").unwrap(),
        actor_id: admin_id(),
        on_hand_after,
        created_at: at(1_795_457_100_000_000 + n as i64 * 1000),
    }
}

fn adjust(token: &str, body: &str) -> TestRequest {
    bearer(json_request(Method::POST, &adjustments_uri(), body.to_owned()), token)
}

/// Use cases whose `adjust_stock` (on the use case rebound by `within`) is asked once, by the
/// admin, for `product_id()`, `delta` and `reason`, and answers `answer`.
fn adjusting(
    delta: i64,
    reason: &'static str,
    answer: Result<(StockAdjustment, Product), AdjustStockError>,
) -> UseCases {
    let mut use_cases = UseCases::new();
    let mut inner = orderly_domain::services::MockProductUseCases::new();
    inner
        .expect_adjust_stock()
        .withf(move |actor, id, asked, why| {
            *actor == admin() && *id == product_id() && asked.get() == delta && why.as_str() == reason
        })
        .times(1)
        .return_once(move |_, _, _, _| answer);
    products_within(&mut use_cases.products, inner);
    use_cases
}

#[actix_web::test]
async fn an_admin_adjusts_stock_and_gets_the_adjustment_without_location() {
    let use_cases = adjusting(-6, "2 broken", Ok((adjustment(1, -6, 4), product(product_id(), 3))));
    let reply = send_with(use_cases, adjust(ADMIN_TOKEN, r#"{"delta":-6,"reason":" 2 broken "}"#)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert!(reply.header(header::LOCATION).is_none());
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(
        reply.json(),
        json!({
            "id": adjustment(1, -6, 4).id.to_string(),
            "product_id": product_id().to_string(),
            "delta": -6,
            "reason": "stocktake",
            "on_hand_after": 4,
            "actor_id": admin_id().to_string(),
            "created_at": "2026-11-23T18:05:00.001Z"
        })
    );
}

/// Whether a delta takes on-hand stock below what is reserved is the domain's rule (checked
/// before the store and again by it, `adjust_stock` in products/tests.rs); here: its answer
/// is 409 with the numbers.
#[actix_web::test]
async fn stock_below_reserved_is_409_with_the_numbers() {
    // 10 on hand, 4 reserved: -7 is too much, -6 the most that may go.
    let refused = AdjustStockError::BelowReserved { on_hand: 10, reserved: 4, delta: -7 };
    let reply =
        send_with(adjusting(-7, "loss", Err(refused)), adjust(ADMIN_TOKEN, r#"{"delta":-7,"reason":"loss"}"#)).await;
    let problem = reply.problem(409, "stock_below_reserved");
    assert_eq!(reply.faults(), faults(&[("/delta", "stock_below_reserved")]));
    assert!(problem["detail"].as_str().unwrap().contains("-7"), "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("on_hand is 10") && message.contains("4 are reserved") && message.contains("-6"),
        "{message}"
    );

    // A concurrent reservation made the store refuse what looked fine.
    let raced = AdjustStockError::BelowReserved { on_hand: 10, reserved: 9, delta: -6 };
    let reply =
        send_with(adjusting(-6, "loss", Err(raced)), adjust(ADMIN_TOKEN, r#"{"delta":-6,"reason":"loss"}"#)).await;
    let problem = reply.problem(409, "stock_below_reserved");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("9 are reserved"));
}

#[actix_web::test]
async fn adjusting_is_for_admins_and_an_unknown_product_is_404() {
    send_with(UseCases::new(), adjust(CUSTOMER_TOKEN, r#"{"delta":1,"reason":"found one"}"#))
        .await
        .problem(403, "forbidden");
    let anonymous = json_request(Method::POST, &adjustments_uri(), r#"{"delta":1,"reason":"found one"}"#);
    send_with(UseCases::new(), anonymous).await.problem(401, "unauthenticated");
    let use_cases = adjusting(1, "found one", Err(AdjustStockError::NotFound));
    send_with(use_cases, adjust(ADMIN_TOKEN, r#"{"delta":1,"reason":"found one"}"#)).await.problem(404, "not_found");
}

#[actix_web::test]
async fn every_fault_of_an_adjustment_is_listed() {
    let cases = [
        (r#"{"delta":0,"reason":""}"#, vec![("/delta", "zero"), ("/reason", "required")]),
        (
            r#"{"delta":"5","on_hand":5}"#,
            vec![("/delta", "invalid_type"), ("/on_hand", "unknown_field"), ("/reason", "required")],
        ),
        (r#"{"delta":1.5,"reason":"x"}"#, vec![("/delta", "invalid_type")]),
        (r#"{"delta":1000000001,"reason":"x"}"#, vec![("/delta", "out_of_range")]),
    ];
    for (body, expected) in cases {
        let reply = send_with(UseCases::new(), adjust(ADMIN_TOKEN, body)).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&expected), "{body}");
    }
}

#[actix_web::test]
async fn the_audit_trail_is_paged_newest_first_with_a_cursor_bound_to_the_product() {
    let seen: Arc<Mutex<Vec<AdjustmentQuery>>> = Arc::default();
    let recorder = seen.clone();
    let mut use_cases = UseCases::new();
    // Two pages are asked for; the cursor used elsewhere is refused before the use case.
    use_cases
        .products
        .expect_list_adjustments()
        .withf(|actor, id, _| *actor == admin() && *id == product_id())
        .times(2)
        .returning(move |_, _, query| {
            recorder.lock().unwrap().push(query.clone());
            Ok(if query.after.is_none() {
                page(vec![adjustment(3, 1, 11), adjustment(2, -1, 10)], true)
            } else {
                page(vec![adjustment(1, 1, 11)], false)
            })
        });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;

    let first = send_to(&app, bearer(get(&format!("{}?limit=2", adjustments_uri())), ADMIN_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header(header::CACHE_CONTROL), Some("private, no-cache"));
    let body = first.json();
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [adjustment(3, 1, 11).id.to_string(), adjustment(2, -1, 10).id.to_string()]);
    assert_eq!(body["page"]["has_more"], true);
    let cursor = body["page"]["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header(header::LINK).unwrap(),
        format!("<http://localhost:8080{}?limit=2&cursor={cursor}>; rel=\"next\"", adjustments_uri())
    );

    let next = format!("{}?limit=2&cursor={cursor}", adjustments_uri());
    let second = send_to(&app, bearer(get(&next), ADMIN_TOKEN).to_request()).await;
    assert_eq!(second.json()["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
    {
        let seen = seen.lock().unwrap();
        assert_eq!((seen[0].after, seen[0].limit.get()), (None, 2));
        assert_eq!((seen[1].after, seen[1].limit.get()), (Some(adjustment(2, -1, 10).id), 2));
    }

    // Not valid for another product's trail, nor from the catalogue.
    let elsewhere = format!("/v1/products/{}/stock-adjustments?cursor={cursor}", other_product());
    let reply = send_to(&app, bearer(get(&elsewhere), ADMIN_TOKEN).to_request()).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]));
}

#[actix_web::test]
async fn the_audit_trail_is_for_admins_of_existing_products_with_bounded_pages() {
    send_with(UseCases::new(), bearer(get(&adjustments_uri()), CUSTOMER_TOKEN)).await.problem(403, "forbidden");
    send_with(UseCases::new(), get(&adjustments_uri())).await.problem(401, "unauthenticated");
    let mut use_cases = UseCases::new();
    use_cases
        .products
        .expect_list_adjustments()
        .withf(|actor, id, _| *actor == admin() && *id == product_id())
        .times(1)
        .returning(|_, _, _| Err(ListAdjustmentsError::NotFound));
    send_with(use_cases, bearer(get(&adjustments_uri()), ADMIN_TOKEN)).await.problem(404, "not_found");
    for uri in ["?limit=0", "?limit=101", "?sort=-created_at", "?limit=1&limit=2"] {
        let reply = send_with(UseCases::new(), bearer(get(&format!("{}{uri}", adjustments_uri())), ADMIN_TOKEN)).await;
        reply.problem(400, "invalid_parameter");
    }

    let mut use_cases = UseCases::new();
    use_cases
        .products
        .expect_list_adjustments()
        .withf(|actor, id, query| {
            *actor == admin() && *id == product_id() && query.after.is_none() && query.limit.get() == 20
        })
        .times(1)
        .returning(|_, _, _| Ok(page(Vec::new(), false)));
    let reply = send_with(use_cases, bearer(get(&adjustments_uri()), ADMIN_TOKEN)).await;
    assert_eq!(reply.json(), json!({"data": [], "page": {"limit": 20, "next_cursor": null, "has_more": false}}));
}
