//! Safe retries through the real application and database (docs/api.md#retries-idempotency-key): a
//! retried order is placed once, racing retries of one key reserve stock once, and a key cannot be
//! reused for another request.

use awc::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Session, TestApp};

async fn product(app: &TestApp, admin: &Session, stock: i64) -> String {
    let body =
        json!({"sku": "MUG", "name": "Mug", "unit_price": {"amount": 100, "currency": "EUR"}, "initial_stock": stock});
    app.post("/v1/products", Some(&admin.access_token), &body).await.json()["id"].as_str().unwrap().to_owned()
}

async fn reserved(app: &TestApp, id: &str) -> i64 {
    app.get(&format!("/v1/products/{id}"), None).await.json()["stock"]["reserved"].as_i64().unwrap()
}

async fn order_with_key(
    app: &TestApp,
    session: &Session,
    key: &str,
    body: &serde_json::Value,
) -> crate::support::Reply {
    let request = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&session.access_token)
        .insert_header(("Idempotency-Key", key));
    app.send(request, Some(body)).await
}

on_both_backends! {
    async fn a_retried_order_is_placed_once_and_replayed_byte_for_byte(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, 10).await;
        let body = json!({"items": [{"product_id": mug, "quantity": 2}]});
        let send = || {
            let request = app.client.post(app.url("/v1/orders")).bearer_auth(&ada.access_token).insert_header(("Idempotency-Key", "order-42"));
            app.send(request, Some(&body))
        };
        let first = send().await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.body));
        assert!(first.header("idempotency-replayed").is_none());
        let retry = send().await;
        assert_eq!(retry.status, StatusCode::CREATED);
        assert_eq!(retry.header("idempotency-replayed").as_deref(), Some("true"));
        assert_eq!(retry.body, first.body, "the stored response, byte for byte");
        assert_eq!(retry.header("location"), first.header("location"));
        assert_eq!(reserved(&app, &mug).await, 2, "one reservation");
        let orders = app.get("/v1/orders", Some(&ada.access_token)).await.json();
        assert_eq!(orders["data"].as_array().unwrap().len(), 1);

        // The same key for a different request is refused.
        let other = json!({"items": [{"product_id": mug, "quantity": 3}]});
        let request = app.client.post(app.url("/v1/orders")).bearer_auth(&ada.access_token).insert_header(("Idempotency-Key", "order-42"));
        app.send(request, Some(&other)).await.problem(422, "idempotency_key_reused");
        // Keys belong to their caller: another customer's identical key is a new request.
        let bob = app.customer("bob@example.com").await;
        let request = app.client.post(app.url("/v1/orders")).bearer_auth(&bob.access_token).insert_header(("Idempotency-Key", "order-42"));
        assert_eq!(app.send(request, Some(&body)).await.status, StatusCode::CREATED);
        assert_eq!(reserved(&app, &mug).await, 4);
    }

    async fn racing_retries_of_one_key_reserve_stock_once(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, 50).await;
        let body = json!({"items": [{"product_id": mug, "quantity": 5}]});
        let retries = (0..10).map(|_| {
            let request = app.client.post(app.url("/v1/orders")).bearer_auth(&ada.access_token).insert_header(("Idempotency-Key", "race"));
            let body = body.clone();
            async move { request.send_json(&body).await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(retries).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");
        assert!(statuses.contains(&StatusCode::CREATED));
        assert_eq!(reserved(&app, &mug).await, 5, "exactly one order reserved stock: {statuses:?}");
        let orders = app.get("/v1/orders", Some(&ada.access_token)).await.json();
        assert_eq!(orders["data"].as_array().unwrap().len(), 1);
    }

    async fn refusals_are_stored_and_failures_before_execution_are_not(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, 1).await;
        let body = json!({"items": [{"product_id": mug, "quantity": 2}]});
        let first = order_with_key(&app, &ada, "short", &body).await;
        first.problem(409, "insufficient_stock");
        // Stock arrives, but the key's outcome is final: the retry replays the refusal.
        let adjust = json!({"delta": 5, "reason": "delivery"});
        app.post(&format!("/v1/products/{mug}/stock-adjustments"), Some(&admin.access_token), &adjust).await;
        let retry = order_with_key(&app, &ada, "short", &body).await;
        assert_eq!(retry.status, StatusCode::CONFLICT);
        assert_eq!(retry.header("idempotency-replayed").as_deref(), Some("true"));
        assert_eq!(retry.body, first.body);

        let malformed = app.client.post(app.url("/v1/orders")).bearer_auth(&ada.access_token).insert_header(("Idempotency-Key", ""));
        app.send(malformed, Some(&json!({"items": []}))).await.problem(400, "invalid_parameter");
    }
}
