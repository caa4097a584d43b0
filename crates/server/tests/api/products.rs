//! The catalogue through the real application (docs/api.md#products-and-stock,
//! docs/api.md#pagination, docs/api.md#caching): admins create, edit, archive and adjust stock;
//! anonymous clients page, filter, sort and revalidate; concurrent edits and adjustments lose
//! nothing.

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Session, TestApp};

async fn create_product(app: &TestApp, admin: &Session, sku: &str, name: &str, price: i64, stock: i64) -> Value {
    let body =
        json!({"sku": sku, "name": name, "unit_price": {"amount": price, "currency": "EUR"}, "initial_stock": stock});
    let reply = app.post("/v1/products", Some(&admin.access_token), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

/// Walks every page of `path` (which has no cursor yet), returning the items' `field`s in order.
async fn walk(app: &TestApp, path: &str, token: Option<&str>, field: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut next = path.to_owned();
    loop {
        let reply = app.get(&next, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{next}: {}", String::from_utf8_lossy(&reply.body));
        let page = reply.json();
        seen.extend(page["data"].as_array().unwrap().iter().map(|p| p[field].as_str().unwrap().to_owned()));
        match page["page"]["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}{separator}cursor={cursor}"),
            None => return seen,
        }
    }
}

on_both_backends! {
    async fn an_admin_creates_edits_and_adjusts_and_a_stale_etag_is_refused(app) {
        let admin = app.admin().await;
        let product = create_product(&app, &admin, "mug-1", "Blue Mug", 1299, 10).await;
        assert_eq!(product["sku"], "MUG-1");
        assert_eq!(product["stock"], json!({"on_hand": 10, "reserved": 0, "available": 10}));
        assert_eq!(product["unit_price"], json!({"amount": 1299, "currency": "EUR"}));
        assert_eq!(product["status"], "active");
        let path = format!("/v1/products/{}", product["id"].as_str().unwrap());

        // Two admins read the same version.
        let etag = app.get(&path, Some(&admin.access_token)).await.header("etag").unwrap();
        let first = app.patch(&path, &admin.access_token, Some(&etag), &json!({"unit_price": {"amount": 1499, "currency": "EUR"}})).await;
        assert_eq!(first.status, StatusCode::OK, "{}", String::from_utf8_lossy(&first.body));
        assert_eq!(first.json()["unit_price"]["amount"], 1499);
        // The second one still holds the old ETag: their change would overwrite the first.
        app.patch(&path, &admin.access_token, Some(&etag), &json!({"name": "Red Mug"})).await.problem(412, "precondition_failed");
        app.patch(&path, &admin.access_token, None, &json!({"name": "Red Mug"})).await.problem(428, "precondition_required");

        let adjustment = app
            .post(&format!("{path}/stock-adjustments"), Some(&admin.access_token), &json!({"delta": -3, "reason": "breakage"}))
            .await;
        assert_eq!(adjustment.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&adjustment.body));
        assert_eq!(adjustment.json()["delta"], -3);
        let after = app.get(&path, None).await.json();
        assert_eq!(after["stock"], json!({"on_hand": 7, "reserved": 0, "available": 7}));

        let below = app
            .post(&format!("{path}/stock-adjustments"), Some(&admin.access_token), &json!({"delta": -8, "reason": "count"}))
            .await;
        below.problem(409, "stock_below_reserved");

        let trail = app.get(&format!("{path}/stock-adjustments"), Some(&admin.access_token)).await.json();
        let deltas: Vec<i64> = trail["data"].as_array().unwrap().iter().map(|a| a["delta"].as_i64().unwrap()).collect();
        assert_eq!(deltas, vec![-3, 10], "newest first, the initial stock included");
    }

    async fn stock_cannot_be_mass_assigned(app) {
        let admin = app.admin().await;
        let product = create_product(&app, &admin, "CUP", "Cup", 500, 5).await;
        let path = format!("/v1/products/{}", product["id"].as_str().unwrap());
        let etag = app.get(&path, Some(&admin.access_token)).await.header("etag").unwrap();
        let problem = app
            .patch(&path, &admin.access_token, Some(&etag), &json!({"stock": {"on_hand": 1000}}))
            .await
            .problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/stock");
    }

    async fn archiving_hides_a_product_from_everyone_but_admins(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let product = create_product(&app, &admin, "OLD", "Old thing", 100, 0).await;
        let path = format!("/v1/products/{}", product["id"].as_str().unwrap());
        let etag = app.get(&path, None).await.header("etag").unwrap();
        let request = app.client.delete(app.url(&path)).bearer_auth(&admin.access_token).insert_header(("If-Match", etag.as_str()));
        let deleted = app.send(request, None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&deleted.body));
        app.get(&path, None).await.problem(404, "not_found");
        app.get(&path, Some(&ada.access_token)).await.problem(404, "not_found");
        assert_eq!(app.get(&path, Some(&admin.access_token)).await.json()["status"], "archived");
        assert!(walk(&app, "/v1/products", None, "sku").await.is_empty());
        assert_eq!(walk(&app, "/v1/products?status=archived", Some(&admin.access_token), "sku").await, vec!["OLD"]);
    }

    async fn customers_cannot_write_the_catalogue(app) {
        let ada = app.customer("ada@example.com").await;
        let body = json!({"sku": "X", "name": "X", "unit_price": {"amount": 1, "currency": "EUR"}});
        app.post("/v1/products", Some(&ada.access_token), &body).await.problem(403, "forbidden");
        app.post("/v1/products", None, &body).await.problem(401, "unauthenticated");
    }

    async fn anonymous_clients_page_filter_sort_and_revalidate(app) {
        let admin = app.admin().await;
        for (sku, name, price, stock) in [("A1", "alpha mug", 300, 1), ("B2", "Beta Plate", 100, 0), ("C3", "gamma MUG", 200, 5), ("D4", "delta bowl", 200, 2)] {
            create_product(&app, &admin, sku, name, price, stock).await;
        }
        assert_eq!(walk(&app, "/v1/products?limit=1&sort=price", None, "sku").await, vec!["B2", "C3", "D4", "A1"]);
        assert_eq!(walk(&app, "/v1/products?limit=2&sort=-price", None, "sku").await, vec!["A1", "D4", "C3", "B2"]);
        assert_eq!(walk(&app, "/v1/products?limit=3&sort=name", None, "sku").await, vec!["B2", "A1", "D4", "C3"], "byte order: upper case first");
        assert_eq!(walk(&app, "/v1/products?limit=1&q=MuG", None, "sku").await, vec!["A1", "C3"]);
        assert_eq!(walk(&app, "/v1/products?in_stock=true&sort=-created_at", None, "sku").await, vec!["D4", "C3", "A1"]);

        let page = app.get("/v1/products?limit=2", None).await;
        assert_eq!(page.header("cache-control").as_deref(), Some("public, max-age=30"));
        assert!(page.header("vary").unwrap_or_default().to_lowercase().contains("authorization"));
        let link = page.header("link").unwrap();
        assert!(link.contains("rel=\"next\"") && link.contains("limit=2"), "{link}");

        let id = page.json()["data"][0]["id"].as_str().unwrap().to_owned();
        let one = app.get(&format!("/v1/products/{id}"), None).await;
        let etag = one.header("etag").unwrap();
        let request = app.client.get(app.url(&format!("/v1/products/{id}"))).insert_header(("If-None-Match", etag.as_str()));
        let revalidated = app.send(request, None).await;
        assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
        assert!(revalidated.body.is_empty());

        let with_token = app.get("/v1/products", Some(&admin.access_token)).await;
        assert_eq!(with_token.header("cache-control").as_deref(), Some("private, no-cache"));

        app.get("/v1/products?limit=101", None).await.problem(400, "invalid_parameter");
        app.get("/v1/products?sort=stock", None).await.problem(400, "invalid_parameter");
        let name_cursor = app.get("/v1/products?limit=1&sort=name", None).await.json()["page"]["next_cursor"].as_str().unwrap().to_owned();
        app.get(&format!("/v1/products?limit=1&sort=price&cursor={name_cursor}"), None).await.problem(400, "invalid_parameter");
    }

    async fn a_walk_sees_every_product_once_while_new_ones_arrive(app) {
        let admin = app.admin().await;
        for i in 0..6 {
            create_product(&app, &admin, &format!("P{i}"), &format!("Product {i}"), 100, 1).await;
        }
        let mut seen = Vec::new();
        let mut path = "/v1/products?limit=2".to_owned();
        let mut inserted = 0;
        loop {
            let page = app.get(&path, None).await.json();
            seen.extend(page["data"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()));
            // Newer products arrive between page requests; they sort after everything already walked.
            create_product(&app, &admin, &format!("NEW{inserted}"), "Newcomer", 100, 1).await;
            inserted += 1;
            match page["page"]["next_cursor"].as_str() {
                Some(cursor) if inserted < 20 => path = format!("/v1/products?limit=2&cursor={cursor}"),
                _ => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no product twice: {seen:?}");
        for i in 0..6 {
            assert!(seen.contains(&format!("P{i}")), "P{i} missing from {seen:?}");
        }
    }

    async fn concurrent_adjustments_lose_no_update(app) {
        let admin = app.admin().await;
        let product = create_product(&app, &admin, "BOLT", "Bolt", 10, 100).await;
        let path = format!("/v1/products/{}/stock-adjustments", product["id"].as_str().unwrap());
        let requests = (0..20).map(|i| {
            let delta = if i % 2 == 0 { 3 } else { -1 };
            let body = json!({"delta": delta, "reason": format!("race {i}")});
            let request = app.client.post(app.url(&path)).bearer_auth(&admin.access_token);
            async move { (delta, request.send_json(&body).await.unwrap().status()) }
        });
        let outcomes = futures_util::future::join_all(requests).await;
        let applied: i64 = outcomes.iter().filter(|(_, status)| *status == StatusCode::CREATED).map(|(delta, _)| delta).sum();
        assert!(outcomes.iter().all(|(_, status)| *status == StatusCode::CREATED), "{outcomes:?}");
        let after = app.get(&format!("/v1/products/{}", product["id"].as_str().unwrap()), None).await.json();
        assert_eq!(after["stock"]["on_hand"], 100 + applied);
        let trail = app.get(&format!("{path}?limit=100"), Some(&admin.access_token)).await.json();
        assert_eq!(trail["data"].as_array().unwrap().len(), 21, "20 adjustments and the initial stock");
    }
}
