//! `GET /metrics` through the real wiring: the Prometheus recorder, the request middleware, the
//! pool, the login route and the sweep.
//!
//! The recorder is global to the test process, and tests run concurrently, each with its own
//! application but all recording into it. So these tests assert on increases and on labels
//! their own requests produce, never on absolute totals.

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::TestApp;

/// The metrics page, asserted to be Prometheus text.
async fn scrape(app: &TestApp) -> String {
    let reply = app.get("/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    String::from_utf8(reply.body).unwrap()
}

/// The value of the sample of `name` whose labels include all of `labels`, if there is one
/// (the first, when several match).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let matches = series_name == name
            && labels
                .iter()
                .all(|(key, value)| series_labels.split(',').any(|pair| pair == format!("{key}=\"{value}\"")));
        if matches { value.parse().ok() } else { None }
    })
}

/// Like [`sample`], 0 when the series does not exist yet.
fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

const PRODUCT_ROUTE: [(&str, &str); 3] = [("method", "GET"), ("route", "/v1/products/{id}"), ("status", "404")];

on_both_backends! {
    async fn requests_are_counted_and_timed_by_route_template_and_status(app) {
        let before = scrape(&app).await;
        let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        for id in &ids {
            app.get(&format!("/v1/products/{id}"), None).await.problem(404, "not_found");
        }
        let scanned = uuid::Uuid::now_v7().to_string();
        app.get(&format!("/wp-admin/{scanned}.php"), None).await.problem(404, "not_found");
        let after = scrape(&app).await;

        let requests = |text: &str| counter(text, "http_requests_total", &PRODUCT_ROUTE);
        assert!(requests(&after) - requests(&before) >= 3.0, "{after}");
        let timed = |text: &str| counter(text, "http_request_duration_seconds_count", &PRODUCT_ROUTE);
        assert!(timed(&after) - timed(&before) >= 3.0, "{after}");
        let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
        assert!(counter(&after, "http_requests_total", &unmatched) >= 1.0, "{after}");
        // Raw paths never become labels.
        for id in ids.iter().chain([&scanned]) {
            assert!(!after.contains(id.as_str()), "{id} is in the metrics");
        }

        // A histogram with buckets from 1 ms to 10 s, not a summary.
        for le in ["0.001", "0.01", "0.1", "1", "10", "+Inf"] {
            let bucket = [PRODUCT_ROUTE[0], PRODUCT_ROUTE[1], PRODUCT_ROUTE[2], ("le", le)];
            assert!(sample(&after, "http_request_duration_seconds_bucket", &bucket).is_some(), "le={le}: {after}");
        }
        assert!(sample(&after, "http_request_duration_seconds_sum", &PRODUCT_ROUTE).is_some());
        assert!(after.contains("# TYPE http_request_duration_seconds histogram"), "{after}");
        assert!(after.contains("# HELP http_requests_total "), "{after}");
        // The scrape itself is a request like any other.
        let scraped = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
        assert!(counter(&after, "http_requests_total", &scraped) >= 1.0, "{after}");
    }

    async fn the_pool_is_described_by_gauges_and_check_out_waits(app) {
        app.get("/readyz", None).await;
        let text = scrape(&app).await;
        let max = sample(&text, "db_pool_max_connections", &[]).unwrap_or_else(|| panic!("{text}"));
        let open = sample(&text, "db_pool_connections", &[]).unwrap_or_else(|| panic!("{text}"));
        let idle = sample(&text, "db_pool_idle_connections", &[]).unwrap_or_else(|| panic!("{text}"));
        assert!(max >= 1.0 && open <= max && idle <= open, "max {max}, open {open}, idle {idle}");
        assert!(sample(&text, "db_pool_wait_seconds_count", &[]).is_some_and(|count| count >= 1.0), "{text}");
        assert!(sample(&text, "db_pool_wait_seconds_bucket", &[("le", "0.0001")]).is_some(), "{text}");
        assert!(sample(&text, "db_pool_timeouts_total", &[]).is_some(), "{text}");
        for described in ["db_pool_connections", "db_pool_idle_connections", "db_pool_max_connections",
                          "db_pool_wait_seconds", "db_pool_timeouts_total"] {
            assert!(text.contains(&format!("# HELP {described} ")), "{described}: {text}");
        }
    }

    async fn failed_logins_are_counted(app) {
        let before = counter(&scrape(&app).await, "auth_failed_logins_total", &[]);
        app.register("mallory@example.com", "Mallory").await;
        app.login("mallory@example.com", "not the password at all").await.problem(401, "invalid_credentials");
        app.login("nobody@example.com", "not the password at all").await.problem(401, "invalid_credentials");
        let after = scrape(&app).await;
        assert!(counter(&after, "auth_failed_logins_total", &[]) - before >= 2.0, "{after}");
        assert!(after.contains("# HELP auth_failed_logins_total "), "{after}");
        let login = [("method", "POST"), ("route", "/v1/auth/tokens"), ("status", "401")];
        assert!(counter(&after, "http_requests_total", &login) >= 2.0, "{after}");
    }
}

mod sweep {
    use super::*;

    async fn a_sweep_counts_its_runs_and_the_orders_it_cancelled(backend: orderly_persistence::testing::Backend) {
        let Some(app) =
            TestApp::spawn_with(backend, &[("ORDERLY_RESERVATION_TTL", "1"), ("ORDERLY_SWEEP_INTERVAL", "1")]).await
        else {
            return;
        };
        let before = scrape(&app).await;
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let body =
            json!({"sku": "MUG", "name": "Mug", "unit_price": {"amount": 100, "currency": "EUR"}, "initial_stock": 3});
        let mug = app.post("/v1/products", Some(&admin.access_token), &body).await.json()["id"].clone();
        let items = json!({"items": [{"product_id": mug, "quantity": 2}]});
        let placed = app.post("/v1/orders", Some(&ada.access_token), &items).await.json();
        let path = format!("/v1/orders/{}", placed["id"].as_str().unwrap());

        let deadline = Instant::now() + Duration::from_secs(20);
        while app.get(&path, Some(&ada.access_token)).await.json()["status"] != "cancelled" {
            assert!(Instant::now() < deadline, "the sweep did not cancel the order");
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        }
        // The run that cancelled it is counted once it has purged too.
        let ok_runs = |text: &str| counter(text, "sweep_runs_total", &[("outcome", "ok")]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = loop {
            let after = scrape(&app).await;
            if ok_runs(&after) > ok_runs(&before) || Instant::now() > deadline {
                break after;
            }
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(ok_runs(&after) > ok_runs(&before), "{after}");
        let cancelled = |text: &str| counter(text, "sweep_cancelled_orders_total", &[]);
        assert!(cancelled(&after) - cancelled(&before) >= 1.0, "{after}");
        // Registered at zero, so they scrape before the first failure or purge.
        assert!(sample(&after, "sweep_runs_total", &[("outcome", "failed")]).is_some(), "{after}");
        assert!(sample(&after, "idempotency_records_purged_total", &[]).is_some(), "{after}");
        for described in ["sweep_runs_total", "sweep_cancelled_orders_total", "idempotency_records_purged_total"] {
            assert!(after.contains(&format!("# HELP {described} ")), "{described}: {after}");
        }
    }

    #[actix_web::test]
    async fn sqlite() {
        a_sweep_counts_its_runs_and_the_orders_it_cancelled(orderly_persistence::testing::Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        a_sweep_counts_its_runs_and_the_orders_it_cancelled(orderly_persistence::testing::Backend::Postgres).await;
    }
}
