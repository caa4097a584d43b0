//! A payment whose process dies at the worst moment (docs/api.md#payments): the real binary is killed with
//! `kill -9` after the provider has taken the money but before Orderly has recorded it. Nothing
//! a request started may be lost: the attempt and its reconciliation job were committed before
//! the provider was called, so the restarted server finds out how the charge ended, confirms
//! the order, and the customer is charged exactly once. See docs/testing.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::time::{Duration, Instant};

use orderly_payments::testing::{LocalStripe, ProxyFault, ProxyFaultKind, StubProvider};
use orderly_persistence::testing::TestDatabase;
use serde_json::{Value, json};
use support::api::{admin_token, answered, create_product, register_customer};
use support::{Server, postgres_server_url, request, with_common_env};

const WEBHOOK_SECRET: &str = "whsec_orderly_kill_test";

#[test]
fn kill_9_between_the_providers_answer_and_the_commit_on_sqlite_is_reconciled_with_one_charge() {
    kill_9_between_answer_and_commit(&TestDatabase::sqlite());
}

#[test]
fn kill_9_between_the_providers_answer_and_the_commit_on_postgresql_is_reconciled_with_one_charge() {
    let test = "payment_faults::kill_9_between_the_providers_answer_and_the_commit_on_postgresql";
    if postgres_server_url(test).is_none() {
        return;
    }
    let Some(db) = TestDatabase::postgres() else { return };
    kill_9_between_answer_and_commit(&db);
}

fn kill_9_between_answer_and_commit(db: &TestDatabase) {
    let Some(stripe) = LocalStripe::start() else { return };
    // The confirm reaches localstripe (the charge happens) and its answer is held: the server
    // is waiting for it, with nothing recorded yet, when it is killed.
    let proxy = StubProvider::proxy(
        &stripe.api_base(),
        vec![ProxyFault { path_suffix: "/confirm", times: 1, kind: ProxyFaultKind::Hold(Duration::from_secs(20)) }],
    );
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let api_base = proxy.api_base();
    let env = with_common_env(&[
        ("ORDERLY_DATABASE_URL", url.as_str()),
        ("ORDERLY_RATE_LIMIT", "0"),
        ("ORDERLY_PAYMENT_PROVIDER", "stripe"),
        ("ORDERLY_STRIPE_API_BASE", api_base.as_str()),
        ("ORDERLY_STRIPE_SECRET_KEY", LocalStripe::SECRET_KEY),
        ("ORDERLY_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        // Reconciliation looks 8 × this after the attempt started: 12 s.
        ("ORDERLY_PAYMENT_TIMEOUT_MS", "1500"),
        ("ORDERLY_JOB_POLL_INTERVAL_MS", "200"),
    ]);
    let mut server = Server::start(dir.path(), &env);
    let base = server.base.clone();
    let admin = admin_token(&base);
    let product = create_product(&base, &admin, "KILL-PAY", 1250, 10);
    let customer = register_customer(&base, "payer@example.com");
    let placed = answered(
        request("POST", &format!("{base}/v1/orders"))
            .bearer(&customer.token)
            .json(&json!({"items": [{"product_id": product, "quantity": 2}]}))
            .send(),
        "an order",
    );
    assert_eq!(placed.status, 201, "{placed}");
    let order_id = placed.json()["id"].as_str().unwrap().to_owned();

    // The payment request runs on its own thread: it never gets an answer.
    let pay = {
        let (base, token, order_id) = (base.clone(), customer.token.clone(), order_id.clone());
        std::thread::spawn(move || {
            request("POST", &format!("{base}/v1/orders/{order_id}/payments"))
                .bearer(&token)
                .json(&json!({"payment_method": "pm_card_visa"}))
                .timeout(Duration::from_secs(30))
                .send()
        })
    };
    // Once the confirm has gone through the proxy, the money has moved at the provider.
    let seen = wait_for(Duration::from_secs(30), || {
        proxy.requests().iter().any(|request| request.path().ends_with("/confirm")).then_some(())
    });
    assert!(seen.is_some(), "the confirm never reached the provider: {:?}", proxy.requests());
    let charged = stripe.get_json("/v1/payment_intents?limit=100");
    assert_eq!(succeeded(&charged), 1, "the charge went through at the provider: {charged}");
    server.kill();
    let cut_off = pay.join().unwrap();
    assert!(cut_off.is_err() || cut_off.as_ref().is_ok_and(|response| response.status >= 500), "{cut_off:?}");

    // Killed before it could record anything: the order is still pending, the attempt
    // processing. A new process on the same database finishes the job by itself.
    let restarted = Server::start(dir.path(), &env);
    let base = restarted.base.clone();
    let status_of_order = || {
        let order = answered(
            request("GET", &format!("{base}/v1/orders/{order_id}")).bearer(&customer.token).send(),
            "the order",
        );
        order.json()["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(status_of_order(), "pending");
    let confirmed = wait_for(Duration::from_secs(60), || (status_of_order() == "confirmed").then_some(()));
    assert!(
        confirmed.is_some(),
        "the restarted server never reconciled the payment; its log:\n{}",
        restarted.log_tail()
    );

    let payments = answered(
        request("GET", &format!("{base}/v1/orders/{order_id}/payments")).bearer(&customer.token).send(),
        "payments",
    );
    let attempts = payments.json()["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 1, "{payments}");
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(succeeded(&stripe.get_json("/v1/payment_intents?limit=100")), 1, "charged exactly once");
    let stock = answered(request("GET", &format!("{base}/v1/products/{product}")).send(), "product");
    assert_eq!(stock.json()["stock"], json!({"on_hand": 8, "reserved": 0, "available": 8}));
}

fn succeeded(intents: &Value) -> usize {
    intents["data"].as_array().map_or(0, |data| data.iter().filter(|intent| intent["status"] == "succeeded").count())
}

/// Polls `check` every 200 ms until it answers or `within` passes.
fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
