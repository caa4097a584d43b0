//! Orders and invoices through the real application (docs/api.md#orders, docs/api.md#invoices): a
//! customer orders, an admin confirms and the invoice appears with the next number, a cancelled
//! order frees its stock, lapsed reservations are swept, and racing customers never oversell.

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Reply, Session, TestApp};

async fn product(app: &TestApp, admin: &Session, sku: &str, price: i64, stock: i64) -> String {
    let body =
        json!({"sku": sku, "name": sku, "unit_price": {"amount": price, "currency": "EUR"}, "initial_stock": stock});
    let reply = app.post("/v1/products", Some(&admin.access_token), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_str().unwrap().to_owned()
}

async fn stock(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/products/{id}"), None).await.json()["stock"].clone()
}

async fn order(app: &TestApp, session: &Session, items: Value) -> Reply {
    app.post("/v1/orders", Some(&session.access_token), &json!({"items": items})).await
}

async fn move_order(app: &TestApp, session: &Session, order: &Value, status: &str) -> Reply {
    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let etag = app.get(&path, Some(&session.access_token)).await.header("etag").unwrap();
    app.patch(&path, &session.access_token, Some(&etag), &json!({"status": status})).await
}

on_both_backends! {
    async fn a_customer_orders_an_admin_confirms_and_the_invoice_is_numbered(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, "MUG", 1250, 10).await;
        let plate = product(&app, &admin, "PLATE", 999, 5).await;

        let placed = order(&app, &ada, json!([{"product_id": mug, "quantity": 3}, {"product_id": plate, "quantity": 1}])).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&placed.body));
        let placed_order = placed.json();
        assert_eq!(placed.header("location"), Some(format!("/v1/orders/{}", placed_order["id"].as_str().unwrap())));
        assert_eq!(placed_order["status"], "pending");
        // 3 × 12.50 + 9.99 = 47.49; 10 % tax = 4.749 → 4.75; total 52.24.
        assert_eq!(placed_order["subtotal"], json!({"amount": 4749, "currency": "EUR"}));
        assert_eq!(placed_order["tax"]["amount"], 475);
        assert_eq!(placed_order["total"]["amount"], 5224);
        assert_eq!(placed_order["items"][0]["line_total"]["amount"], 3750);
        assert!(placed_order["expires_at"].is_string());
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 10, "reserved": 3, "available": 7}));

        // The customer cannot confirm their own order; the admin can.
        move_order(&app, &ada, &placed_order, "confirmed").await.problem(403, "forbidden");
        let confirmed = move_order(&app, &admin, &placed_order, "confirmed").await;
        assert_eq!(confirmed.status, StatusCode::OK, "{}", String::from_utf8_lossy(&confirmed.body));
        let confirmed = confirmed.json();
        let year = confirmed["updated_at"].as_str().unwrap()[..4].to_owned();
        assert_eq!(confirmed["invoice_number"], format!("{year}-000001"));
        assert!(confirmed["expires_at"].is_null());
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 7, "reserved": 0, "available": 7}));

        let invoice = app.get(&format!("/v1/invoices/{year}-000001"), Some(&ada.access_token)).await;
        assert_eq!(invoice.status, StatusCode::OK);
        assert_eq!(invoice.header("cache-control").as_deref(), Some("private, max-age=31536000, immutable"));
        assert_eq!(invoice.json()["total"]["amount"], 5224);

        // The next confirmation takes the next number.
        let second = order(&app, &ada, json!([{"product_id": plate, "quantity": 2}])).await.json();
        let second = move_order(&app, &admin, &second, "confirmed").await.json();
        assert_eq!(second["invoice_number"], format!("{year}-000002"));
        let invoices = app.get("/v1/invoices", Some(&ada.access_token)).await.json();
        let numbers: Vec<&str> = invoices["data"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap()).collect();
        assert_eq!(numbers, vec![format!("{year}-000002"), format!("{year}-000001")]);

        // Shipping and delivery are the admin's; anything else is an invalid transition.
        move_order(&app, &admin, &confirmed, "pending").await.problem(409, "invalid_transition");
        assert_eq!(move_order(&app, &admin, &confirmed, "shipped").await.status, StatusCode::OK);
        assert_eq!(move_order(&app, &admin, &confirmed, "delivered").await.json()["status"], "delivered");
    }

    async fn a_cancelled_order_frees_its_stock_and_others_orders_are_invisible(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let bob = app.customer("bob@example.com").await;
        let mug = product(&app, &admin, "MUG", 500, 4).await;
        let placed = order(&app, &ada, json!([{"product_id": mug, "quantity": 4}])).await.json();
        assert_eq!(stock(&app, &mug).await["available"], 0);

        let path = format!("/v1/orders/{}", placed["id"].as_str().unwrap());
        app.get(&path, Some(&bob.access_token)).await.problem(404, "not_found");
        assert!(app.get("/v1/orders", Some(&bob.access_token)).await.json()["data"].as_array().unwrap().is_empty());
        move_order(&app, &ada, &placed, "cancelled").await.json();
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 4, "reserved": 0, "available": 4}));
        // Cancelling twice releases nothing twice.
        move_order(&app, &ada, &placed, "cancelled").await.problem(409, "invalid_transition");
        assert_eq!(stock(&app, &mug).await["reserved"], 0);
    }

    async fn short_and_unknown_lines_are_reported_and_nothing_is_reserved(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (a, b, c) = (product(&app, &admin, "A", 100, 5).await, product(&app, &admin, "B", 100, 1).await, product(&app, &admin, "C", 100, 0).await);
        let short = order(&app, &ada, json!([{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 3}, {"product_id": c, "quantity": 1}])).await;
        let problem = short.problem(409, "insufficient_stock");
        let pointers: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/items/1/quantity", "/items/2/quantity"]);
        assert_eq!(stock(&app, &a).await["reserved"], 0, "all or nothing");

        let unknown = order(&app, &ada, json!([{"product_id": a, "quantity": 1}, {"product_id": "0192f5c2-0000-7000-8000-000000000000", "quantity": 1}])).await;
        assert_eq!(unknown.problem(422, "validation_failed")["errors"][0]["pointer"], "/items/1/product_id");
        let invalid = order(&app, &ada, json!([{"product_id": a, "quantity": 0}, {"product_id": b, "quantity": 1}, {"product_id": b, "quantity": 1}])).await;
        let problem = invalid.problem(422, "validation_failed");
        let mut pointers: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/items/0/quantity", "/items/2/product_id"], "{problem}");
        assert_eq!(stock(&app, &a).await["reserved"], 0);
    }

    async fn racing_customers_never_oversell(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, "MUG", 100, 15).await;
        let requests = (0..40).map(|_| {
            let request = app.client.post(app.url("/v1/orders")).bearer_auth(&ada.access_token);
            let body = json!({"items": [{"product_id": mug, "quantity": 1}]});
            async move { request.send_json(&body).await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(requests).await;
        let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((created, conflicts), (15, 25), "{statuses:?}");
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 15, "reserved": 15, "available": 0}));
    }
}

mod expiry {
    use super::*;

    async fn lapsed_reservations_are_released_by_the_sweep(backend: orderly_persistence::testing::Backend) {
        let Some(app) =
            TestApp::spawn_with(backend, &[("ORDERLY_RESERVATION_TTL", "1"), ("ORDERLY_SWEEP_INTERVAL", "1")]).await
        else {
            return;
        };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let mug = product(&app, &admin, "MUG", 100, 3).await;
        let placed = order(&app, &ada, json!([{"product_id": mug, "quantity": 2}])).await.json();
        let path = format!("/v1/orders/{}", placed["id"].as_str().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let current = app.get(&path, Some(&ada.access_token)).await.json();
            if current["status"] == "cancelled" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the sweep did not cancel the order: {current}");
            actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 3, "reserved": 0, "available": 3}));
    }

    #[actix_web::test]
    async fn sqlite() {
        lapsed_reservations_are_released_by_the_sweep(orderly_persistence::testing::Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        lapsed_reservations_are_released_by_the_sweep(orderly_persistence::testing::Backend::Postgres).await;
    }
}

/// docs/api.md#orders: one customer cannot corner the stock. A cap of 10 units, so the numbers stay small.
mod reservation_cap {
    use super::*;

    async fn pending_orders_hold_at_most_the_cap(backend: orderly_persistence::testing::Backend) {
        let Some(app) = TestApp::spawn_with(backend, &[("ORDERLY_MAX_RESERVED_UNITS_PER_CUSTOMER", "10")]).await else {
            return;
        };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let bob = app.customer("bob@example.com").await;
        let mug = product(&app, &admin, "MUG", 100, 100).await;
        let plate = product(&app, &admin, "PLATE", 100, 100).await;

        let first = order(&app, &ada, json!([{"product_id": mug, "quantity": 6}])).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.body));
        let first = first.json();
        let over =
            order(&app, &ada, json!([{"product_id": mug, "quantity": 2}, {"product_id": plate, "quantity": 3}])).await;
        let problem = over.problem(409, "reservation_limit_exceeded");
        assert_eq!(
            problem["errors"],
            json!([{"pointer": "/items", "code": "reservation_limit_exceeded", "message": "at most 4 more units can be reserved"}])
        );
        assert_eq!(
            problem["detail"],
            "this order asks for 5 units, and your pending orders hold 6 of the 10 units one customer may reserve at once; \
             cancel a pending order or order fewer units"
        );
        assert!(over.header("location").is_none());
        assert_eq!(
            stock(&app, &mug).await,
            json!({"on_hand": 100, "reserved": 6, "available": 94}),
            "nothing reserved"
        );
        assert_eq!(stock(&app, &plate).await["reserved"], 0);
        // Checked before the products: an unknown one does not change the answer.
        let unknown = json!([{"product_id": "0192f5c2-0000-7000-8000-000000000000", "quantity": 5}]);
        order(&app, &ada, unknown).await.problem(409, "reservation_limit_exceeded");

        // Up to the cap succeeds; other customers have caps of their own; admins are capped too.
        let rest = order(&app, &ada, json!([{"product_id": plate, "quantity": 4}])).await;
        assert_eq!(rest.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&rest.body));
        let full = order(&app, &ada, json!([{"product_id": plate, "quantity": 1}]))
            .await
            .problem(409, "reservation_limit_exceeded");
        assert_eq!(full["errors"][0]["message"], "at most 0 more units can be reserved");
        assert_eq!(order(&app, &bob, json!([{"product_id": mug, "quantity": 10}])).await.status, StatusCode::CREATED);
        order(&app, &admin, json!([{"product_id": mug, "quantity": 11}]))
            .await
            .problem(409, "reservation_limit_exceeded");

        // Cancelling a pending order frees its units.
        assert_eq!(move_order(&app, &ada, &first, "cancelled").await.status, StatusCode::OK);
        let again = order(&app, &ada, json!([{"product_id": mug, "quantity": 6}])).await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&again.body));
        // A confirmed order holds no reservation, so it does not count either.
        assert_eq!(move_order(&app, &admin, &again.json(), "confirmed").await.status, StatusCode::OK);
        let after = order(&app, &ada, json!([{"product_id": mug, "quantity": 6}])).await;
        assert_eq!(after.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&after.body));
        order(&app, &ada, json!([{"product_id": mug, "quantity": 1}])).await.problem(409, "reservation_limit_exceeded");
        // ada: 4 plates + 6 mugs pending; bob: 10 mugs; the confirmed 6 mugs left the stock.
        assert_eq!(stock(&app, &mug).await, json!({"on_hand": 94, "reserved": 16, "available": 78}));
        assert_eq!(stock(&app, &plate).await["reserved"], 4);

        // Racing orders of one customer: exactly the cap's worth is placed.
        let cyd = app.customer("cyd@example.com").await;
        let requests = (0..20).map(|_| {
            let request = app.client.post(app.url("/v1/orders")).bearer_auth(&cyd.access_token);
            let body = json!({"items": [{"product_id": plate, "quantity": 1}]});
            async move { request.send_json(&body).await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(requests).await;
        let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((created, conflicts), (10, 10), "{statuses:?}");
        assert_eq!(stock(&app, &plate).await["reserved"], 14);
    }

    #[actix_web::test]
    async fn sqlite() {
        pending_orders_hold_at_most_the_cap(orderly_persistence::testing::Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        pending_orders_hold_at_most_the_cap(orderly_persistence::testing::Backend::Postgres).await;
    }
}
