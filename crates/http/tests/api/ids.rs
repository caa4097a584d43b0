//! One resource, one URL (docs/api.md#resource-ids): a resource id is accepted only in its canonical spelling,
//! lower-case and hyphenated. Braces, `urn:uuid:`, the 32 digits without hyphens and upper-case
//! hex are 400 `invalid_parameter` naming the parameter, in every path and in the `customer_id`
//! filter — never a second (publicly cacheable) URL for the same resource. Over the real stores
//! on SQLite and, when `ORDERLY_TEST_POSTGRES_URL` is set, PostgreSQL.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::test;
use serde_json::json;
use uuid::Uuid;

use orderly_domain::event::DomainEvent;
use orderly_domain::ports::{Clock, SystemClock};
use orderly_domain::services::{OrderService, ProductService, UserService};
use orderly_domain::user::{Email, NewUser, PasswordHash, Role};
use orderly_http::ApiState;
use orderly_persistence::testing::TestDatabase;

use crate::support::*;

/// The spellings `Uuid::parse_str` accepts besides the canonical one, as they appear in a URL.
fn other_spellings(id: Uuid) -> Vec<String> {
    let canonical = id.hyphenated().to_string();
    let mut one_upper_case_digit = canonical.clone();
    let last =
        one_upper_case_digit.pop().map(|digit| if digit.is_ascii_digit() { 'A' } else { digit.to_ascii_uppercase() });
    one_upper_case_digit.extend(last);
    vec![
        format!("%7B{canonical}%7D"),
        format!("urn:uuid:{canonical}"),
        id.simple().to_string(),
        canonical.to_uppercase(),
        one_upper_case_digit,
    ]
}

/// The state of these tests: users, products and orders over the real stores of `db` (and
/// webhooks, as [`UseCases::into_state_over`] wires them); tokens are the mocks'.
fn state_over(db: &TestDatabase) -> ApiState {
    let mut state = UseCases::new().into_state_over(db.database());
    let repositories = state.repositories.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut hasher = orderly_domain::ports::MockPasswordHasher::new();
    hasher.expect_hash().returning(|_| Ok(PasswordHash::new("phc".into())));
    state.users = Arc::new(UserService::new(repositories.users.clone(), Arc::new(hasher), clock.clone()));
    state.products = Arc::new(ProductService::new(repositories.products.clone(), clock.clone(), eur()));
    state.orders =
        Arc::new(OrderService::new(repositories.orders.clone(), repositories.invoices.clone(), clock, order_policy()));
    state
}

/// Stores the users of [`CUSTOMER_TOKEN`] and [`ADMIN_TOKEN`], so that orders have an owner
/// and stock adjustments an author.
fn seed_users(state: &ApiState) {
    let now = chrono::Utc::now();
    for (id, role) in [(customer_id(), Role::Customer), (admin_id(), Role::Admin)] {
        let email = Email::parse(&format!("{}@example.com", role.as_str())).unwrap();
        let new_user = NewUser {
            id,
            email: email.clone(),
            name: user(id, role, 1).name,
            role,
            password_hash: PasswordHash::new("phc".into()),
            created_at: now,
        };
        let event =
            DomainEvent::UserRegistered { user_id: id, email: email.as_str().to_owned(), role, occurred_at: now };
        state.repositories.users.insert(&new_user, &event).expect("the user is stored");
    }
}

#[track_caller]
fn assert_invalid_id(reply: &Reply, parameter: &str, spelling: &str) {
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        vec![(parameter.to_owned(), "invalid_format".to_owned())],
        "{spelling}: {}",
        reply.text()
    );
}

orderly_persistence::backend_tests! {
    /// `GET /v1/products/{id}` (public, cacheable for 30 s) has exactly one URL per product.
    #[actix_web::test]
    async fn a_product_is_read_at_its_canonical_url_only(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(state_over(db))).await;
        let body = json!({"sku": "MUG-ID", "name": "Mug", "unit_price": {"amount": 1250, "currency": "EUR"}});
        let created = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/products", body.to_string()), ADMIN_TOKEN).to_request(),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let id: Uuid = created.json()["id"].as_str().unwrap().parse().unwrap();

        let canonical = send_to(&app, get(&format!("/v1/products/{id}")).to_request()).await;
        assert_eq!(canonical.status, StatusCode::OK, "{}", canonical.text());
        assert_eq!(canonical.json()["id"], id.to_string());

        for spelling in other_spellings(id) {
            for token in [None, Some(ADMIN_TOKEN)] {
                let request = get(&format!("/v1/products/{spelling}"));
                let request = match token {
                    Some(token) => bearer(request, token),
                    None => request,
                };
                let reply = send_to(&app, request.to_request()).await;
                assert_invalid_id(&reply, "id", &spelling);
            }
            // The product's other paths too: the audit trail and the writes.
            let trail = send_to(
                &app,
                bearer(get(&format!("/v1/products/{spelling}/stock-adjustments")), ADMIN_TOKEN).to_request(),
            )
            .await;
            assert_invalid_id(&trail, "id", &spelling);
            let archive = send_to(
                &app,
                bearer(with_method(Method::DELETE, &format!("/v1/products/{spelling}")), ADMIN_TOKEN)
                    .insert_header(("If-Match", "\"1\""))
                    .to_request(),
            )
            .await;
            assert_invalid_id(&archive, "id", &spelling);
        }
        let still = send_to(&app, bearer(get(&format!("/v1/products/{id}")), ADMIN_TOKEN).to_request()).await;
        assert_eq!(still.json()["status"], "active", "no other spelling archived it");
    }

    /// Orders (and their payments) and users: the canonical id is 200, any other spelling 400.
    #[actix_web::test]
    async fn orders_and_users_are_read_at_their_canonical_urls_only(db: &TestDatabase) {
        let state = state_over(db);
        seed_users(&state);
        let app = test::init_service(orderly_http::app(state)).await;
        let body = json!({"sku": "MUG-ORD", "name": "Mug", "unit_price": {"amount": 1250, "currency": "EUR"},
            "initial_stock": 5});
        let product = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/products", body.to_string()), ADMIN_TOKEN).to_request(),
        )
        .await;
        assert_eq!(product.status, StatusCode::CREATED, "{}", product.text());
        let order_body = json!({"items": [{"product_id": product.json()["id"], "quantity": 1}]});
        let placed = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/orders", order_body.to_string()), CUSTOMER_TOKEN).to_request(),
        )
        .await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
        let order: Uuid = placed.json()["id"].as_str().unwrap().parse().unwrap();

        let reply = send_to(&app, bearer(get(&format!("/v1/orders/{order}")), CUSTOMER_TOKEN).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let user = customer_id().as_uuid();
        let reply = send_to(&app, bearer(get(&format!("/v1/users/{user}")), ADMIN_TOKEN).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["id"], user.to_string());

        for spelling in other_spellings(order) {
            for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
                let reply = send_to(&app, bearer(get(&format!("/v1/orders/{spelling}")), token).to_request()).await;
                assert_invalid_id(&reply, "id", &spelling);
            }
            let payments =
                send_to(&app, bearer(get(&format!("/v1/orders/{spelling}/payments")), CUSTOMER_TOKEN).to_request())
                    .await;
            assert_invalid_id(&payments, "id", &spelling);
            let payment = send_to(
                &app,
                bearer(get(&format!("/v1/orders/{order}/payments/{spelling}")), CUSTOMER_TOKEN).to_request(),
            )
            .await;
            assert_invalid_id(&payment, "payment_id", &spelling);
        }
        for spelling in other_spellings(user) {
            for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
                let reply = send_to(&app, bearer(get(&format!("/v1/users/{spelling}")), token).to_request()).await;
                assert_invalid_id(&reply, "id", &spelling);
            }
        }
    }

    /// The orders collection's `customer_id` filter takes the canonical spelling only, too.
    #[actix_web::test]
    async fn the_customer_id_filter_takes_the_canonical_spelling_only(db: &TestDatabase) {
        let state = state_over(db);
        seed_users(&state);
        let app = test::init_service(orderly_http::app(state)).await;
        let body = json!({"sku": "MUG-FLT", "name": "Mug", "unit_price": {"amount": 1250, "currency": "EUR"},
            "initial_stock": 5});
        let product = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/products", body.to_string()), ADMIN_TOKEN).to_request(),
        )
        .await;
        let order_body = json!({"items": [{"product_id": product.json()["id"], "quantity": 1}]});
        let placed = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/orders", order_body.to_string()), CUSTOMER_TOKEN).to_request(),
        )
        .await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());

        let customer = customer_id().as_uuid();
        let reply =
            send_to(&app, bearer(get(&format!("/v1/orders?customer_id={customer}")), ADMIN_TOKEN).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["data"][0]["id"], placed.json()["id"]);

        for spelling in other_spellings(customer) {
            for token in [ADMIN_TOKEN, CUSTOMER_TOKEN] {
                let reply =
                    send_to(&app, bearer(get(&format!("/v1/orders?customer_id={spelling}")), token).to_request())
                        .await;
                assert_invalid_id(&reply, "customer_id", &spelling);
            }
        }
    }

    /// Webhook endpoints and their deliveries, the admin's resources, have one URL each too.
    #[actix_web::test]
    async fn webhook_endpoints_and_deliveries_are_addressed_canonically_only(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(state_over(db))).await;
        let body = json!({"url": "https://hooks.example.com/orderly"});
        let created = send_to(
            &app,
            bearer(json_request(Method::POST, "/v1/webhook-endpoints", body.to_string()), ADMIN_TOKEN).to_request(),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let endpoint: Uuid = created.json()["id"].as_str().unwrap().parse().unwrap();
        let reply =
            send_to(&app, bearer(get(&format!("/v1/webhook-endpoints/{endpoint}")), ADMIN_TOKEN).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

        for spelling in other_spellings(endpoint) {
            let reply =
                send_to(&app, bearer(get(&format!("/v1/webhook-endpoints/{spelling}")), ADMIN_TOKEN).to_request())
                    .await;
            assert_invalid_id(&reply, "id", &spelling);
            let retry = send_to(
                &app,
                bearer(
                    with_method(
                        Method::POST,
                        &format!("/v1/webhook-endpoints/{endpoint}/deliveries/{spelling}/retries"),
                    ),
                    ADMIN_TOKEN,
                )
                .to_request(),
            )
            .await;
            assert_invalid_id(&retry, "delivery_id", &spelling);
        }
    }
}
