//! Payments through the real application and a real provider (docs/api.md#payments): `localstripe` (a
//! stateful stand-in for Stripe's API, its own process), with a fault-injecting proxy in front
//! of it for what it will not do by itself: answer late, answer garbage, or not at all.
//!
//! localstripe is found as `orderly_payments::testing::LocalStripe` describes (CI installs it
//! with `.ci/localstripe-venv`); without it these tests say so and pass without running,
//! unless `ORDERLY_TEST_REQUIRE_LOCALSTRIPE=1`.

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use orderly_payments::testing::{LocalStripe, ProxyFault, ProxyFaultKind, StubProvider, StubResponse, sign_event};
use orderly_persistence::testing::Backend;
use serde_json::{Value, json};

use crate::support::{Reply, Session, TestApp};

const WEBHOOK_SECRET: &str = "whsec_orderly_tests";

/// Runs `work` against localstripe off the async runtime (its helpers use a blocking client).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(work).await.expect("blocking helper")
}

async fn localstripe() -> Option<Arc<LocalStripe>> {
    blocking(LocalStripe::start).await.map(Arc::new)
}

/// An application whose provider is `api_base` (localstripe or the proxy in front of it),
/// with short time bounds so unknown outcomes are reconciled within a test.
async fn app_paying_through(backend: Backend, api_base: &str, extra: &[(&'static str, &str)]) -> Option<TestApp> {
    let mut settings = vec![
        ("ORDERLY_PAYMENT_PROVIDER", "stripe"),
        ("ORDERLY_STRIPE_API_BASE", api_base),
        ("ORDERLY_STRIPE_SECRET_KEY", LocalStripe::SECRET_KEY),
        ("ORDERLY_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("ORDERLY_PAYMENT_TIMEOUT_MS", "700"),
        ("ORDERLY_JOB_POLL_INTERVAL_MS", "100"),
        ("ORDERLY_RATE_LIMIT", "0"),
    ];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(backend, &settings).await
}

async fn product(app: &TestApp, admin: &Session, sku: &str, price: i64, stock: i64) -> String {
    let body =
        json!({"sku": sku, "name": sku, "unit_price": {"amount": price, "currency": "EUR"}, "initial_stock": stock});
    let reply = app.post("/v1/products", Some(&admin.access_token), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// A pending order of 2 mugs at 12.50 (+10 % tax: 27.50) for `customer`.
async fn pending_order(app: &TestApp, admin: &Session, customer: &Session) -> (Value, String) {
    let mug = product(app, admin, "MUG", 1250, 10).await;
    let placed = app
        .post("/v1/orders", Some(&customer.access_token), &json!({"items": [{"product_id": mug, "quantity": 2}]}))
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&placed.body));
    (placed.json(), mug)
}

async fn pay(app: &TestApp, who: &Session, order: &Value, method: &str, key: Option<&str>) -> Reply {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/orders/{}/payments", order["id"].as_str().unwrap())))
        .bearer_auth(&who.access_token);
    if let Some(key) = key {
        request = request.insert_header(("Idempotency-Key", key));
    }
    app.send(request, Some(&json!({"payment_method": method}))).await
}

async fn order_now(app: &TestApp, who: &Session, order: &Value) -> Value {
    app.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()), Some(&who.access_token)).await.json()
}

async fn payments_of(app: &TestApp, who: &Session, order: &Value) -> Vec<Value> {
    let page =
        app.get(&format!("/v1/orders/{}/payments", order["id"].as_str().unwrap()), Some(&who.access_token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", String::from_utf8_lossy(&page.body));
    page.json()["data"].as_array().unwrap().clone()
}

/// Every PaymentIntent localstripe holds, by status.
async fn intents(stripe: &Arc<LocalStripe>) -> Vec<Value> {
    let stripe = stripe.clone();
    blocking(move || stripe.get_json("/v1/payment_intents?limit=100")["data"].as_array().cloned().unwrap_or_default())
        .await
}

async fn succeeded_charges(stripe: &Arc<LocalStripe>) -> usize {
    intents(stripe).await.iter().filter(|intent| intent["status"] == "succeeded").count()
}

/// Polls `check` every 100 ms for up to 20 s: background work settles on its own schedule.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

async fn post_event(app: &TestApp, body: &[u8], signature: Option<String>) -> Reply {
    let mut request =
        app.client.post(app.url("/v1/payment-events")).insert_header(("Content-Type", "application/json"));
    if let Some(signature) = signature {
        request = request.insert_header(("Stripe-Signature", signature));
    }
    let mut response = request.send_body(body.to_vec()).await.expect("request sent");
    let body = response.body().await.expect("body").to_vec();
    Reply { status: response.status(), headers: response.headers().clone(), body }
}

// --- a fault-injecting proxy in front of localstripe -------------------------------------------

/// The answer to the next confirm is held past Orderly's timeout: the charge happens at the
/// provider, Orderly does not hear of it in time.
fn confirm_answered_late(stripe: &LocalStripe, by: Duration) -> StubProvider {
    StubProvider::proxy(
        &stripe.api_base(),
        vec![ProxyFault { path_suffix: "/confirm", times: 1, kind: ProxyFaultKind::Hold(by) }],
    )
}

// --- the tests --------------------------------------------------------------------------------

/// Runs `test` on SQLite and, when configured, PostgreSQL, each with a localstripe of its own.
macro_rules! with_localstripe {
    ($(async fn $name:ident($backend:ident, $stripe:ident) $body:block)*) => {
        mod sqlite_with_localstripe {
            use super::*;
            $(
                #[actix_web::test]
                async fn $name() {
                    let $backend = Backend::Sqlite;
                    let Some($stripe) = localstripe().await else { return };
                    $body
                }
            )*
        }
        mod postgres_with_localstripe {
            use super::*;
            $(
                #[actix_web::test]
                async fn $name() {
                    let $backend = Backend::Postgres;
                    if orderly_persistence::testing::TestDatabase::for_backend(Backend::Postgres).is_none() {
                        return;
                    }
                    let Some($stripe) = localstripe().await else { return };
                    $body
                }
            )*
        }
    };
}

crate::on_both_backends! {
    async fn without_a_provider_paying_is_refused_and_events_are_not_accepted(app) {
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let bob = app.customer("bob@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        pay(&app, &ada, &order, "pm_card_visa", None).await.problem(409, "payments_disabled");
        // Someone else's order is not found, whatever the deployment's settings.
        pay(&app, &bob, &order, "pm_card_visa", None).await.problem(404, "not_found");
        post_event(&app, b"{}", None).await.problem(400, "invalid_signature");
        post_event(&app, b"{}", Some("t=1,v1=00".to_owned())).await.problem(409, "payments_disabled");
        assert_eq!(order_now(&app, &ada, &order).await["status"], "pending");
        assert!(payments_of(&app, &ada, &order).await.is_empty());
    }
}

with_localstripe! {
    async fn a_successful_payment_confirms_the_order_in_the_same_transaction(backend, stripe) {
        let Some(app) = app_paying_through(backend, &stripe.api_base(), &[]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, mug) = pending_order(&app, &admin, &ada).await;

        let paid = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
        let payment = paid.json();
        assert_eq!(payment["status"], "succeeded");
        assert_eq!(payment["amount"], json!({"amount": 2750, "currency": "EUR"}));
        assert_eq!(payment["provider"], "stripe");
        assert!(payment["provider_reference"].as_str().unwrap().starts_with("pi_"));
        assert_eq!(payment["failure"], Value::Null);
        let location = paid.header("location").unwrap();
        assert_eq!(location, format!("/v1/orders/{}/payments/{}", order["id"].as_str().unwrap(), payment["id"].as_str().unwrap()));
        assert_eq!(app.get(&location, Some(&ada.access_token)).await.json()["status"], "succeeded");

        let confirmed = order_now(&app, &ada, &order).await;
        assert_eq!(confirmed["status"], "confirmed");
        assert!(confirmed["invoice_number"].is_string());
        let stock = app.get(&format!("/v1/products/{mug}"), None).await.json()["stock"].clone();
        assert_eq!(stock, json!({"on_hand": 8, "reserved": 0, "available": 8}));
        let events = app.get("/v1/events?limit=100", Some(&admin.access_token)).await.json();
        let types: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        for expected in ["payment.succeeded", "order.confirmed", "invoice.issued"] {
            assert!(types.contains(&expected), "{types:?}");
        }
        assert_eq!(succeeded_charges(&stripe).await, 1);

        // Paid is paid: another attempt is an invalid transition, and charges nothing.
        pay(&app, &ada, &order, "pm_card_visa", None).await.problem(409, "invalid_transition");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn a_decline_is_recorded_the_order_stays_pending_and_another_method_may_pay(backend, stripe) {
        let Some(app) = app_paying_through(backend, &stripe.api_base(), &[]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let bob = app.customer("bob@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let declining = { let stripe = stripe.clone(); blocking(move || stripe.create_payment_method("4000000000000341")).await };

        pay(&app, &bob, &order, "pm_card_visa", None).await.problem(404, "not_found");
        let declined = pay(&app, &ada, &order, &declining, None).await.problem(402, "payment_declined");
        assert_eq!(declined["errors"][0]["pointer"], "/payment_method");
        assert_eq!(declined["errors"][0]["code"], "card_declined");
        assert_eq!(order_now(&app, &ada, &order).await["status"], "pending");
        let attempts = payments_of(&app, &ada, &order).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["status"], "failed");
        assert_eq!(attempts[0]["failure"]["code"], "card_declined");

        // A token the provider does not know is a decline too, not a provider fault.
        let unknown = pay(&app, &ada, &order, "pm_does_not_exist", None).await.problem(402, "payment_declined");
        assert_eq!(unknown["errors"][0]["code"], "invalid_payment_method");

        let paid = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(paid.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&paid.body));
        let attempts = payments_of(&app, &ada, &order).await;
        let statuses: Vec<&str> = attempts.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["succeeded", "failed", "failed"]);
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn a_retry_with_the_same_key_replays_and_charges_once(backend, stripe) {
        let Some(app) = app_paying_through(backend, &stripe.api_base(), &[]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let first = pay(&app, &ada, &order, "pm_card_visa", Some("pay-1")).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first.body));
        let again = pay(&app, &ada, &order, "pm_card_visa", Some("pay-1")).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.header("idempotency-replayed").as_deref(), Some("true"));
        assert_eq!(again.body, first.body);
        assert_eq!(intents(&stripe).await.len(), 1, "one PaymentIntent, however often the client retries");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn provider_events_are_verified_and_applied_once(backend, stripe) {
        // The provider's answer to the confirm never arrives in time: the attempt stays
        // processing until the provider's signed event says how it ended.
        let proxy = confirm_answered_late(&stripe, Duration::from_secs(2));
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &[("ORDERLY_PAYMENT_TIMEOUT_MS", "500")]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let accepted = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&accepted.body));
        let payment = accepted.json();
        assert_eq!(payment["status"], "processing");
        let reference = payment["provider_reference"].as_str().unwrap().to_owned();
        // Another attempt while this one is processing is refused.
        pay(&app, &ada, &order, "pm_card_visa", None).await.problem(409, "payment_in_progress");

        let event = json!({
            "id": "evt_orderly_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {
                "id": reference, "object": "payment_intent", "status": "succeeded", "amount": 2750, "currency": "eur",
                "metadata": {"orderly_payment_id": payment["id"]}
            }}
        });
        let body = serde_json::to_vec(&event).unwrap();
        let now = chrono::Utc::now().timestamp();
        // Forged, stale and missing signatures: nothing applied.
        post_event(&app, &body, Some(sign_event("whsec_wrong", now, &body))).await.problem(400, "invalid_signature");
        post_event(&app, &body, Some(sign_event(WEBHOOK_SECRET, now - 600, &body))).await.problem(400, "invalid_signature");
        post_event(&app, &body, None).await.problem(400, "invalid_signature");
        let tampered = serde_json::to_vec(&json!({"id": "evt_orderly_1", "type": "payment_intent.succeeded", "data": {"object": {"id": reference, "amount": 1}}})).unwrap();
        post_event(&app, &tampered, Some(sign_event(WEBHOOK_SECRET, now, &body))).await.problem(400, "invalid_signature");
        assert_eq!(order_now(&app, &ada, &order).await["status"], "pending");

        let applied = post_event(&app, &body, Some(sign_event(WEBHOOK_SECRET, now, &body))).await;
        assert_eq!(applied.status, StatusCode::OK, "{}", String::from_utf8_lossy(&applied.body));
        assert_eq!(applied.json()["outcome"], "applied");
        let duplicate = post_event(&app, &body, Some(sign_event(WEBHOOK_SECRET, now + 1, &body))).await;
        assert_eq!(duplicate.json()["outcome"], "duplicate");
        let unknown = serde_json::to_vec(&json!({"id": "evt_orderly_2", "object": "event", "type": "customer.created", "data": {"object": {}}})).unwrap();
        let ignored = post_event(&app, &unknown, Some(sign_event(WEBHOOK_SECRET, now, &unknown))).await;
        assert_eq!(ignored.json()["outcome"], "ignored");

        assert_eq!(order_now(&app, &ada, &order).await["status"], "confirmed");
        let events = app.get("/v1/events?type=payment.succeeded", Some(&admin.access_token)).await.json();
        assert_eq!(events["data"].as_array().unwrap().len(), 1, "applied once: {events}");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn the_providers_own_signed_event_settles_a_payment_whose_answer_was_lost(backend, stripe) {
        // The confirm's answer is lost (held past a 3 s timeout); reconciliation would only
        // look 24 s later (8 × the timeout), after this test's 20 s patience: what settles the
        // payment here is the event localstripe itself signs and delivers.
        let proxy = confirm_answered_late(&stripe, Duration::from_secs(5));
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &[("ORDERLY_PAYMENT_TIMEOUT_MS", "3000")]).await
        else {
            return;
        };
        let receiver = app.url("/v1/payment-events");
        { let stripe = stripe.clone(); blocking(move || stripe.register_webhook(&receiver, WEBHOOK_SECRET)).await };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let accepted = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&accepted.body));
        eventually("localstripe's event confirms the order", || async {
            order_now(&app, &ada, &order).await["status"] == "confirmed"
        })
        .await;
        let events = app.get("/v1/events?type=payment.succeeded", Some(&admin.access_token)).await.json();
        assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn a_provider_that_cannot_be_reached_charges_nothing(backend, stripe) {
        let _ = &stripe;
        let refused = orderly_payments::testing::StubProvider::refused_api_base();
        let Some(app) = app_paying_through(backend, &refused, &[]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let reply = pay(&app, &ada, &order, "pm_card_visa", None).await;
        reply.problem(503, "payment_provider_unavailable");
        assert!(reply.header("retry-after").is_some());
        assert_eq!(order_now(&app, &ada, &order).await["status"], "pending");
        let attempts = payments_of(&app, &ada, &order).await;
        assert_eq!(attempts[0]["status"], "failed");
        assert_eq!(attempts[0]["failure"]["code"], "provider_unavailable");
    }

    async fn a_late_answer_is_202_and_is_settled_without_the_client(backend, stripe) {
        let proxy = confirm_answered_late(&stripe, Duration::from_secs(2));
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &[("ORDERLY_PAYMENT_TIMEOUT_MS", "500")]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let accepted = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&accepted.body));
        let location = accepted.header("location").unwrap();
        eventually("reconciliation settles the payment", || async {
            app.get(&location, Some(&ada.access_token)).await.json()["status"] == "succeeded"
        })
        .await;
        assert_eq!(order_now(&app, &ada, &order).await["status"], "confirmed");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn a_malformed_success_is_502_not_a_success_and_is_reconciled(backend, stripe) {
        let malformed = StubResponse::raw(200, "application/json", "{\"id\": 42, \"status\": \"succeeded\"");
        let proxy = StubProvider::proxy(
            &stripe.api_base(),
            vec![ProxyFault { path_suffix: "/confirm", times: 1, kind: ProxyFaultKind::Replace(malformed) }],
        );
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &[]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let problem = pay(&app, &ada, &order, "pm_card_visa", None).await.problem(502, "payment_provider_error");
        assert!(problem["detail"].as_str().unwrap().contains("processing"), "{problem}");
        assert_eq!(order_now(&app, &ada, &order).await["status"], "pending", "a 200 that fails the checks is no success");
        eventually("reconciliation confirms the order", || async {
            order_now(&app, &ada, &order).await["status"] == "confirmed"
        })
        .await;
        assert_eq!(payments_of(&app, &ada, &order).await[0]["status"], "succeeded");
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }

    async fn a_success_that_lands_on_a_cancelled_order_is_refunded(backend, stripe) {
        let proxy = confirm_answered_late(&stripe, Duration::from_secs(2));
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &[("ORDERLY_PAYMENT_TIMEOUT_MS", "500")]).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, mug) = pending_order(&app, &admin, &ada).await;
        let accepted = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&accepted.body));
        // The customer gives up and cancels while the payment is still processing.
        let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
        let etag = app.get(&path, Some(&ada.access_token)).await.header("etag").unwrap();
        let cancelled = app.patch(&path, &ada.access_token, Some(&etag), &json!({"status": "cancelled"})).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", String::from_utf8_lossy(&cancelled.body));
        eventually("the late success is refunded", || async {
            payments_of(&app, &ada, &order).await[0]["status"] == "refunded"
        })
        .await;
        assert_eq!(order_now(&app, &ada, &order).await["status"], "cancelled");
        let stock = app.get(&format!("/v1/products/{mug}"), None).await.json()["stock"].clone();
        assert_eq!(stock, json!({"on_hand": 10, "reserved": 0, "available": 10}));
        let refunded: Vec<Value> = {
            let stripe = stripe.clone();
            blocking(move || stripe.get_json("/v1/refunds?limit=100")["data"].as_array().cloned().unwrap_or_default()).await
        };
        assert_eq!(refunded.len(), 1, "refunded exactly once: {refunded:?}");
        let events = app.get("/v1/events?type=payment.refunded", Some(&admin.access_token)).await.json();
        assert_eq!(events["data"].as_array().unwrap().len(), 1);
    }

    async fn the_expiry_sweep_leaves_an_order_with_a_processing_payment_alone(backend, stripe) {
        let proxy = confirm_answered_late(&stripe, Duration::from_secs(2));
        let settings = [("ORDERLY_PAYMENT_TIMEOUT_MS", "500"), ("ORDERLY_RESERVATION_TTL", "1"), ("ORDERLY_SWEEP_INTERVAL", "1")];
        let Some(app) = app_paying_through(backend, &proxy.api_base(), &settings).await else { return };
        let admin = app.admin().await;
        let ada = app.customer("ada@example.com").await;
        let (order, _) = pending_order(&app, &admin, &ada).await;
        let accepted = pay(&app, &ada, &order, "pm_card_visa", None).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&accepted.body));
        // Past the reservation's expiry, with sweeps running every second.
        actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
        let now = order_now(&app, &ada, &order).await["status"].as_str().unwrap().to_owned();
        assert_ne!(now, "cancelled", "the sweep expired an order whose payment was processing");
        eventually("the payment confirms the order", || async {
            order_now(&app, &ada, &order).await["status"] == "confirmed"
        })
        .await;
        assert_eq!(succeeded_charges(&stripe).await, 1);
    }
}
