//! The event feed through the real application (docs/api.md#events): every change appears once, in commit
//! order, and a consumer polling with its last cursor misses nothing while writers commit.

use std::collections::HashSet;

use awc::http::StatusCode;
use orderly_persistence::testing::Backend;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::TestApp;

/// Polls the feed from `cursor` until a page says there is nothing more; returns the events
/// and the cursor to resume from.
async fn poll(app: &TestApp, token: &str, mut cursor: Option<String>) -> (Vec<Value>, Option<String>) {
    let mut events = Vec::new();
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/events?limit=7&cursor={cursor}"),
            None => "/v1/events?limit=7".to_owned(),
        };
        let reply = app.get(&path, Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
        let page = reply.json();
        events.extend(page["data"].as_array().unwrap().iter().cloned());
        if let Some(next) = page["page"]["next_cursor"].as_str() {
            cursor = Some(next.to_owned());
        }
        if page["page"]["has_more"] != true {
            return (events, cursor);
        }
    }
}

on_both_backends! {
    async fn every_change_is_in_the_feed_once_in_order(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let body = json!({"sku": "MUG", "name": "Mug", "unit_price": {"amount": 100, "currency": "EUR"}, "initial_stock": 5});
        let mug = app.post("/v1/products", Some(&admin.access_token), &body).await.json();
        let placed = app.post("/v1/orders", Some(&ada.access_token), &json!({"items": [{"product_id": mug["id"], "quantity": 2}]})).await.json();
        let path = format!("/v1/orders/{}", placed["id"].as_str().unwrap());
        let etag = app.get(&path, Some(&admin.access_token)).await.header("etag").unwrap();
        let confirmed = app.patch(&path, &admin.access_token, Some(&etag), &json!({"status": "confirmed"})).await;
        assert_eq!(confirmed.status, StatusCode::OK);

        let (events, cursor) = poll(&app, &admin.access_token, None).await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["user.registered", "user.registered", "product.created", "order.placed", "order.confirmed", "invoice.issued"]
        );
        let invoice = events.last().unwrap();
        assert_eq!(invoice["subject"]["type"], "invoice");
        assert_eq!(invoice["subject"]["id"], confirmed.json()["invoice_number"]);
        assert!(invoice["data"].is_object());

        // Polling again from the last cursor yields only what happened since.
        let ship_etag = app.get(&path, Some(&admin.access_token)).await.header("etag").unwrap();
        app.patch(&path, &admin.access_token, Some(&ship_etag), &json!({"status": "shipped"})).await;
        let (since, _) = poll(&app, &admin.access_token, cursor).await;
        let types: Vec<&str> = since.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["order.shipped"]);

        let placed_only = app.get("/v1/events?type=order.placed", Some(&admin.access_token)).await.json();
        assert_eq!(placed_only["data"].as_array().unwrap().len(), 1);
        app.get("/v1/events", Some(&ada.access_token)).await.problem(403, "forbidden");
    }
}

mod a_polling_consumer_misses_nothing_while_writers_commit {
    #[actix_web::test]
    async fn sqlite() {
        super::a_polling_consumer_misses_nothing_while_writers_commit(super::Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        super::a_polling_consumer_misses_nothing_while_writers_commit(super::Backend::Postgres).await;
    }
}

async fn a_polling_consumer_misses_nothing_while_writers_commit(backend: Backend) {
    // 24 registrations at once from the test's one address: more than the default login
    // bucket (which registrations draw from) allows in a minute, so it is raised here.
    let Some(app) = TestApp::spawn_with(backend, &[("ORDERLY_LOGIN_RATE_LIMIT", "1000")]).await else { return };
    let admin = app.admin().await;
    let writers = (0..24).map(|i| {
        let request = app.client.post(app.url("/v1/users"));
        let body = json!({"email": format!("writer{i}@example.com"), "password": "correct horse battery", "name": "W"});
        async move { request.send_json(&body).await.unwrap().status() }
    });
    let consumer = async {
        let mut seen = Vec::new();
        let mut cursor = None;
        for _ in 0..40 {
            let (events, next) = poll(&app, &admin.access_token, cursor.clone()).await;
            seen.extend(events);
            cursor = next;
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (seen, cursor)
    };
    let (statuses, (mut seen, cursor)) =
        futures_util::future::join(futures_util::future::join_all(writers), consumer).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    // Drain what committed after the consumer's last poll.
    let (rest, _) = poll(&app, &admin.access_token, cursor).await;
    seen.extend(rest);
    let ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was delivered twice");
    let (everything, _) = poll(&app, &admin.access_token, None).await;
    assert_eq!(everything.len(), ids.len(), "the polling consumer missed events");
    assert_eq!(everything.len(), 1 + 24, "the admin and the 24 writers registered");
}
