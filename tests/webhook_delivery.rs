//! Webhooks (docs/api.md#webhooks) delivered by the real binary to real HTTP receivers on loopback, on SQLite
//! and PostgreSQL: what a subscriber receives (signed per Standard Webhooks, the feed's own
//! representation, the same `webhook-id` on every attempt), how failures are retried, what is
//! never sent (redirect targets, refused destinations, disabled and deleted endpoints), and
//! what survives a `kill -9` and two instances sharing the work. See docs/testing.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use orderly_persistence::testing::{Backend, TestDatabase};
use orderly_webhooks::testing::{Receiver, Reply, verify};
use serde_json::{Value, json};
use support::api::{admin_token, answered, collect, create_product, text};
use support::{Server, announce, postgres_server_url, request, with_common_env};

/// Long enough for a loaded 2-core machine and a killed worker's lease (14 s here); a delivery
/// that takes longer is a failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// What every instance here gets on top of the common environment: http and loopback allowed
/// (the receivers are on 127.0.0.1), quick polling, and a short attempt timeout.
const WEBHOOK_ENV: &[(&str, &str)] = &[
    ("ORDERLY_WEBHOOK_ALLOW_HTTP", "true"),
    ("ORDERLY_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1"),
    ("ORDERLY_JOB_POLL_INTERVAL_MS", "100"),
    ("ORDERLY_WEBHOOK_TIMEOUT_MS", "2000"),
    ("ORDERLY_RATE_LIMIT", "0"),
];

/// The databases a test runs on: SQLite always, PostgreSQL when configured.
fn databases(test: &str) -> Vec<(Backend, TestDatabase)> {
    let mut databases = vec![(Backend::Sqlite, TestDatabase::sqlite())];
    if postgres_server_url(test).is_some() {
        databases.extend(TestDatabase::postgres().map(|db| (Backend::Postgres, db)));
    }
    databases
}

/// One instance over `db` with [`WEBHOOK_ENV`] and `extra` (later entries win).
fn start(dir: &std::path::Path, db: &TestDatabase, extra: &[(&str, &str)]) -> Server {
    let url = db.url();
    let mut env = with_common_env(&[("ORDERLY_DATABASE_URL", url.as_str())]);
    env.extend_from_slice(WEBHOOK_ENV);
    env.extend_from_slice(extra);
    Server::start(dir, &env)
}

/// Registers an endpoint; returns its id and secret.
fn create_endpoint(base: &str, admin: &str, url: &str, event_types: Option<&[&str]>) -> (String, String) {
    let mut body = json!({ "url": url });
    if let Some(types) = event_types {
        body["event_types"] = json!(types);
    }
    let response =
        answered(request("POST", &format!("{base}/v1/webhook-endpoints")).bearer(admin).json(&body).send(), url);
    assert_eq!(response.status, 201, "registering {url}: {response}");
    let endpoint = response.json();
    (text(&endpoint["id"]).to_owned(), text(&endpoint["secret"]).to_owned())
}

fn deliveries(base: &str, admin: &str, endpoint: &str) -> Vec<Value> {
    collect(base, admin, &format!("/v1/webhook-endpoints/{endpoint}/deliveries"))
}

/// Polls `check` until it answers `Some`, or panics saying `what` after [`PATIENCE`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The feed's events of `event_type`, as `GET /v1/events` serves them, by id.
fn feed_events(base: &str, admin: &str, event_type: &str) -> HashMap<String, Value> {
    collect(base, admin, &format!("/v1/events?type={event_type}"))
        .into_iter()
        .map(|event| (text(&event["id"]).to_owned(), event))
        .collect()
}

#[test]
fn deliveries_are_signed_equal_the_feed_and_are_retried_with_the_same_id_until_a_2xx() {
    let test = "webhook_delivery::deliveries_are_signed_equal_the_feed_and_are_retried_with_the_same_id_until_a_2xx";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        // Over a second between attempts, so the retry is signed at a later timestamp.
        let server = start(dir.path(), &db, &[("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "1500ms,1500ms")]);
        let base = server.base.as_str();
        let admin = admin_token(base);
        let receiver = Receiver::start();
        receiver.script(vec![Reply::status(500)]);
        let (endpoint, secret) = create_endpoint(base, &admin, &receiver.url("/orderly"), Some(&["product.created"]));
        assert!(secret.starts_with("whsec_"), "{backend:?}: {secret}");

        let product = create_product(base, &admin, "HOOK-1", 990, 5);

        let received = receiver.wait_for(2, PATIENCE);
        assert_eq!(received.len(), 2, "{backend:?}: one failed attempt, then the retry: {received:?}");
        let events = feed_events(base, &admin, "product.created");
        let (failed, retried) = (verify(&secret, &received[0]).unwrap(), verify(&secret, &received[1]).unwrap());
        assert_eq!(failed.id, retried.id, "{backend:?}: the same webhook-id on every attempt");
        assert!(retried.timestamp > failed.timestamp, "{backend:?}: the retry is signed anew");
        assert_ne!(failed.signature, retried.signature, "{backend:?}: a fresh signature");
        let event = events.get(&retried.id).unwrap_or_else(|| panic!("{backend:?}: webhook-id is an event id"));
        assert_eq!(retried.body, *event, "{backend:?}: the body is the event as GET /v1/events serves it");
        assert_eq!(event["subject"]["id"], product.as_str());
        assert_eq!(received[1].path(), "/orderly");
        // Only the type the endpoint asked for: the admin's own registration was not sent.
        assert!(received.iter().all(|request| request.json()["type"] == "product.created"), "{backend:?}");

        let log = eventually("the delivery is recorded as succeeded", || {
            let log = deliveries(base, &admin, &endpoint);
            (log.len() == 1 && log[0]["status"] == "succeeded").then_some(log)
        });
        assert_eq!(log[0]["event_id"], retried.id.as_str(), "{backend:?}");
        assert_eq!(log[0]["event_type"], "product.created");
        assert_eq!(log[0]["attempt"], 2, "{backend:?}: {log:?}");
        assert_eq!(log[0]["response_status"], 200, "{backend:?}: {log:?}");
        assert_eq!(log[0]["next_attempt_at"], Value::Null, "{backend:?}: {log:?}");
        assert!(log[0]["duration_ms"].as_u64().is_some(), "{backend:?}: {log:?}");

        // A manual retry sends the same event again, with the same id.
        let delivery = text(&log[0]["id"]).to_owned();
        let retry = answered(
            request("POST", &format!("{base}/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/retries"))
                .bearer(&admin)
                .send(),
            "a manual retry",
        );
        assert_eq!(retry.status, 202, "{backend:?}: {retry}");
        let again = receiver.wait_for(3, PATIENCE);
        assert_eq!(verify(&secret, &again[2]).unwrap().id, retried.id, "{backend:?}");
        eventually("the manual retry is recorded", || {
            let log = deliveries(base, &admin, &endpoint);
            (log[0]["status"] == "succeeded" && log[0]["attempt"] == 3).then_some(())
        });
    }
}

#[test]
fn a_failing_receiver_is_retried_on_the_schedule_then_the_delivery_fails() {
    let test = "webhook_delivery::a_failing_receiver_is_retried_on_the_schedule_then_the_delivery_fails";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), &db, &[("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "200ms,200ms")]);
        let base = server.base.as_str();
        let admin = admin_token(base);
        let receiver = Receiver::start();
        receiver.set_default(Reply::status(503));
        let (endpoint, secret) = create_endpoint(base, &admin, &receiver.url("/down"), Some(&["product.created"]));

        create_product(base, &admin, "HOOK-FAIL", 100, 1);

        let log = eventually("the delivery fails after the schedule", || {
            let log = deliveries(base, &admin, &endpoint);
            (log.len() == 1 && log[0]["status"] == "failed").then_some(log)
        });
        assert_eq!(log[0]["attempt"], 3, "{backend:?}: the first attempt and two retries: {log:?}");
        assert_eq!(log[0]["response_status"], 503, "{backend:?}: {log:?}");
        assert_eq!(log[0]["next_attempt_at"], Value::Null, "{backend:?}: {log:?}");
        let received = receiver.requests();
        assert_eq!(received.len(), 3, "{backend:?}: nothing after the last attempt");
        let ids: BTreeSet<String> = received.iter().map(|request| verify(&secret, request).unwrap().id).collect();
        assert_eq!(ids.len(), 1, "{backend:?}: one event, one webhook-id: {ids:?}");
    }
}

#[test]
fn a_redirect_is_not_followed() {
    let test = "webhook_delivery::a_redirect_is_not_followed";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), &db, &[("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "1h")]);
        let base = server.base.as_str();
        let admin = admin_token(base);
        let target = Receiver::start();
        let redirecting = Receiver::start();
        redirecting.set_default(Reply::redirect(307, &target.url("/elsewhere")));
        let (endpoint, _) = create_endpoint(base, &admin, &redirecting.url("/moved"), Some(&["product.created"]));

        create_product(base, &admin, "HOOK-REDIRECT", 100, 1);

        let log = eventually("the redirect is recorded as a failed attempt", || {
            let log = deliveries(base, &admin, &endpoint);
            (log.len() == 1 && log[0]["attempt"] == 1).then_some(log)
        });
        assert_eq!(log[0]["status"], "pending", "{backend:?}: retried later, on the schedule: {log:?}");
        assert_eq!(log[0]["response_status"], 307, "{backend:?}: {log:?}");
        assert!(log[0]["next_attempt_at"].is_string(), "{backend:?}: {log:?}");
        assert_eq!(redirecting.requests().len(), 1, "{backend:?}");
        assert!(target.requests().is_empty(), "{backend:?}: the redirect's target was never called");
    }
}

#[test]
fn a_destination_allowed_when_saved_is_refused_at_delivery_once_the_policy_refuses_it() {
    let test = "webhook_delivery::a_destination_allowed_when_saved_is_refused_at_delivery_once_the_policy_refuses_it";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start();
        // Saved while loopback is allowed, under a host *name* that resolves to loopback.
        let endpoint = {
            let server = start(dir.path(), &db, &[("ORDERLY_WEBHOOK_WORKERS", "0")]);
            let admin = admin_token(&server.base);
            let url = format!("http://localhost:{}/hook", receiver.port());
            create_endpoint(&server.base, &admin, &url, Some(&["product.created"])).0
        };
        // The same database, served by an instance whose policy refuses loopback: every
        // delivery re-checks the address the name resolves to, so this one is never sent.
        let server = start(
            dir.path(),
            &db,
            &[("ORDERLY_WEBHOOK_ALLOWED_NETWORKS", "192.0.2.0/24"), ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "1h")],
        );
        let base = server.base.as_str();
        let admin = admin_token(base);
        // Saving it now is refused, by the same rule.
        let refused = answered(
            request("POST", &format!("{base}/v1/webhook-endpoints"))
                .bearer(&admin)
                .json(&json!({"url": format!("http://127.0.0.1:{}/hook", receiver.port())}))
                .send(),
            "a loopback endpoint",
        );
        assert_eq!(refused.status, 422, "{backend:?}: {refused}");
        assert_eq!(refused.json()["errors"][0]["pointer"], "/url", "{backend:?}: {refused}");

        create_product(base, &admin, "HOOK-SSRF", 100, 1);

        let log = eventually("the refused attempt is recorded", || {
            let log = deliveries(base, &admin, &endpoint);
            (log.len() == 1 && log[0]["attempt"] == 1).then_some(log)
        });
        assert_eq!(log[0]["response_status"], Value::Null, "{backend:?}: {log:?}");
        let error = log[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains("loopback"), "{backend:?}: the log says why: {log:?}");
        assert!(receiver.requests().is_empty(), "{backend:?}: nothing reached the refused address");
    }
}

#[test]
fn a_disabled_or_deleted_endpoint_gets_nothing_more() {
    let test = "webhook_delivery::a_disabled_or_deleted_endpoint_gets_nothing_more";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), &db, &[]);
        let base = server.base.as_str();
        let admin = admin_token(base);
        let (control, disabled, deleted) = (Receiver::start(), Receiver::start(), Receiver::start());
        let types = Some(&["product.created"][..]);
        create_endpoint(base, &admin, &control.url("/control"), types);
        let (disabled_id, _) = create_endpoint(base, &admin, &disabled.url("/disabled"), types);
        let (deleted_id, _) = create_endpoint(base, &admin, &deleted.url("/deleted"), types);

        // Each gets the first event.
        create_product(base, &admin, "HOOK-BEFORE", 100, 1);
        for receiver in [&control, &disabled, &deleted] {
            assert_eq!(receiver.wait_for(1, PATIENCE).len(), 1, "{backend:?}");
        }

        let patch = answered(
            request("PATCH", &format!("{base}/v1/webhook-endpoints/{disabled_id}"))
                .bearer(&admin)
                .json(&json!({"active": false}))
                .send(),
            "disabling",
        );
        assert_eq!(patch.status, 200, "{backend:?}: {patch}");
        assert_eq!(patch.json()["active"], false);
        let delete = answered(
            request("DELETE", &format!("{base}/v1/webhook-endpoints/{deleted_id}")).bearer(&admin).send(),
            "deleting",
        );
        assert_eq!(delete.status, 204, "{backend:?}: {delete}");

        create_product(base, &admin, "HOOK-AFTER-1", 100, 1);
        create_product(base, &admin, "HOOK-AFTER-2", 100, 1);
        // Once the control endpoint has both, the dispatcher has passed them.
        assert_eq!(control.wait_for(3, PATIENCE).len(), 3, "{backend:?}");
        // A few more polling rounds for anything that would still go out.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(disabled.requests().len(), 1, "{backend:?}: nothing after it was disabled");
        assert_eq!(deleted.requests().len(), 1, "{backend:?}: nothing after it was deleted");
        let log = deliveries(base, &admin, &disabled_id);
        assert_eq!(log.len(), 1, "{backend:?}: no delivery was even created for it: {log:?}");
    }
}

#[test]
fn deliveries_pending_when_the_process_is_killed_are_delivered_after_the_restart() {
    let test = "webhook_delivery::deliveries_pending_when_the_process_is_killed_are_delivered_after_the_restart";
    for (backend, db) in databases(test) {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start();
        // Down at first: every attempt before the kill fails.
        receiver.set_default(Reply::status(503));
        let schedule = ("ORDERLY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s");
        let mut server = start(dir.path(), &db, &[schedule]);
        let admin = admin_token(&server.base);
        let (endpoint, secret) =
            create_endpoint(&server.base, &admin, &receiver.url("/hook"), Some(&["product.created"]));
        let products: Vec<String> =
            (0..5).map(|n| create_product(&server.base, &admin, &format!("HOOK-KILL-{n}"), 100, 1)).collect();
        // At least one attempt failed (so deliveries exist and are pending), then the process dies.
        receiver.wait_for(1, PATIENCE);
        server.kill();
        let sent_before = receiver.requests().len();

        // The receiver recovers; a new process over the same database finishes the work.
        receiver.set_default(Reply::ok());
        let server = start(dir.path(), &db, &[schedule]);
        let base = server.base.as_str();
        let delivered = eventually("every delivery succeeds after the restart", || {
            let log = deliveries(base, &admin, &endpoint);
            (log.len() == products.len() && log.iter().all(|delivery| delivery["status"] == "succeeded")).then_some(log)
        });
        let events = feed_events(base, &admin, "product.created");
        let ok: BTreeSet<String> =
            receiver.requests()[sent_before..].iter().map(|request| verify(&secret, request).unwrap().id).collect();
        let expected: BTreeSet<String> =
            delivered.iter().map(|delivery| text(&delivery["event_id"]).to_owned()).collect();
        assert_eq!(ok, expected, "{backend:?}: each pending delivery went out after the restart");
        assert_eq!(expected.len(), products.len(), "{backend:?}");
        assert!(expected.iter().all(|id| events.contains_key(id)), "{backend:?}");
    }
}

#[test]
fn two_instances_share_the_deliveries_and_never_send_one_twice() {
    let test = "webhook_delivery::two_instances_share_the_deliveries_and_never_send_one_twice";
    if postgres_server_url(test).is_none() {
        return;
    }
    let Some(db) = TestDatabase::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    // Slow answers, so that attempts overlap across instances and workers.
    receiver.set_default(Reply::ok().delayed(Duration::from_millis(200)));
    let extra = [("ORDERLY_DATABASE_POOL_SIZE", "4"), ("ORDERLY_WEBHOOK_WORKERS", "3")];
    let instances = [start(dir.path(), &db, &extra), start(dir.path(), &db, &extra)];
    let admin = admin_token(&instances[0].base);
    let (endpoint, secret) =
        create_endpoint(&instances[0].base, &admin, &receiver.url("/hook"), Some(&["product.created"]));

    const PRODUCTS: usize = 24;
    for n in 0..PRODUCTS {
        create_product(&instances[n % 2].base, &admin, &format!("HOOK-TWO-{n}"), 100, 1);
    }

    let received = receiver.wait_for(PRODUCTS, PATIENCE);
    eventually("every delivery is recorded as succeeded", || {
        let log = deliveries(&instances[1].base, &admin, &endpoint);
        (log.len() == PRODUCTS && log.iter().all(|delivery| delivery["status"] == "succeeded")).then_some(())
    });
    // A few more rounds for a duplicate that would still go out.
    std::thread::sleep(Duration::from_millis(500));
    let received = if receiver.requests().len() > received.len() { receiver.requests() } else { received };
    let mut sent: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *sent.entry(verify(&secret, request).unwrap().id).or_default() += 1;
    }
    let twice: Vec<_> = sent.iter().filter(|(_, times)| **times > 1).collect();
    assert!(twice.is_empty(), "no delivery was sent twice: {twice:?}");
    assert_eq!(sent.len(), PRODUCTS, "every event was delivered once");
    let events = feed_events(&instances[0].base, &admin, "product.created");
    assert!(sent.keys().all(|id| events.contains_key(id)));
    announce(&format!("{test}: {PRODUCTS} deliveries by two instances, none twice"));
}
