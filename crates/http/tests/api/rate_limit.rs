//! Rate limiting (docs/api.md#rate-limiting) as a consumer sees it: the RateLimit fields on every response, the 429
//! problem, which bucket a request draws from (user, address, login), forwarding headers, and
//! the Redis store — shared between instances, and failing open when it is unreachable.
//!
//! Time is governor's `FakeRelativeClock`, moved on by the tests; nothing waits. The Redis
//! tests need `ORDERLY_TEST_REDIS_URL` (see [`redis_url`]). The routes answer over mocks of the
//! use cases ([`UseCases`]); most requests here never reach one (a body refused with 422, a
//! health check, a 429), and a mock with no expectation would panic if one did.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use governor::clock::FakeRelativeClock;
use orderly_domain::Actor;
use orderly_domain::pagination::Page;
use orderly_domain::ports::TokenRejected;
use orderly_domain::services::{Admission, MockSessionUseCases};
use orderly_domain::user::Role;
use orderly_http::ApiState;
use orderly_http::rate_limit::{LOGIN_PATH, REFUSED_REQUESTS_METRIC, REGISTRATION_PATH};
use orderly_rate_limit::{BACKEND_ERRORS_METRIC, Quotas, RateLimits};

use crate::support::*;

const CLIENT: &str = "203.0.113.7:50000";
const OTHER_CLIENT: &str = "198.51.100.9:50000";
const THIRD_CLIENT: &str = "192.0.2.33:50000";

fn quotas(requests_per_minute: u32, logins_per_minute: u32) -> Quotas {
    Quotas { requests_per_minute, logins_per_minute }
}

/// The state of `use_cases` with in-process limits on `clock`.
fn limited(use_cases: UseCases, quotas: Quotas, clock: &FakeRelativeClock) -> ApiState {
    let mut state = use_cases.into_state();
    state.rate_limits = Arc::new(RateLimits::in_process_with_clock(quotas, clock.clone()));
    state
}

fn from(request: TestRequest, peer: &str) -> TestRequest {
    request.peer_addr(peer.parse().unwrap())
}

/// A login attempt with an invalid body: answered 422 without reaching a use case, and counted
/// like any other request.
fn login_attempt(peer: &str) -> TestRequest {
    from(json_request(Method::POST, LOGIN_PATH, "{}"), peer)
}

/// A registration with an invalid body: answered 422 without reaching a use case (no hash), and
/// counted like any other request.
fn registration_attempt(peer: &str) -> TestRequest {
    from(json_request(Method::POST, REGISTRATION_PATH, "{}"), peer)
}

fn fields(reply: &Reply) -> (Option<&str>, Option<&str>) {
    (reply.header("ratelimit-policy"), reply.header("ratelimit"))
}

#[actix_web::test]
async fn every_response_carries_the_ratelimit_fields_successes_and_problems_alike() {
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(5, 10), &clock))).await;

    let ok = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(ok.status, StatusCode::OK);
    // One token every 12 s: after one request, 12 s until the bucket is full again.
    assert_eq!(fields(&ok), (Some("\"default\";q=5;w=60"), Some("\"default\";r=4;t=12")));

    let missing = send_to(&app, from(get("/v1/nowhere"), CLIENT).to_request()).await;
    missing.problem(404, "not_found");
    assert_eq!(fields(&missing), (Some("\"default\";q=5;w=60"), Some("\"default\";r=3;t=24")));

    let refused_method = send_to(&app, from(with_method(Method::DELETE, "/v1/users"), CLIENT).to_request()).await;
    refused_method.problem(405, "method_not_allowed");
    assert_eq!(fields(&refused_method).1, Some("\"default\";r=2;t=36"));
}

#[actix_web::test]
async fn a_refused_request_is_a_complete_429_problem_and_never_reaches_its_handler() {
    let clock = FakeRelativeClock::default();
    let mut use_cases = UseCases::new();
    // Only the first request may reach the handler.
    use_cases.readiness.expect_check().times(1).returning(|| Ok(()));
    let app = test::init_service(orderly_http::app(limited(use_cases, quotas(1, 10), &clock))).await;

    let ready = send_to(&app, from(get("/readyz"), CLIENT).to_request()).await;
    assert_eq!(ready.status, StatusCode::OK);

    let request = from(get("/readyz"), CLIENT).insert_header(("X-Request-Id", "slow-down.1"));
    let refused = send_to(&app, request.to_request()).await;
    let problem = refused.problem(429, "rate_limited");
    assert_eq!(problem["instance"], "/readyz");
    assert_eq!(problem["request_id"], "slow-down.1");
    assert_eq!(refused.header(header::RETRY_AFTER), Some("60"));
    assert_eq!(fields(&refused), (Some("\"default\";q=1;w=60"), Some("\"default\";r=0;t=60")));
    assert_eq!(refused.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"), "outer middleware still runs");
}

#[actix_web::test]
async fn a_bucket_refills_one_token_per_interval() {
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(2, 10), &clock))).await;
    for _ in 0..2 {
        assert_eq!(send_to(&app, from(get("/healthz"), CLIENT).to_request()).await.status, StatusCode::OK);
    }
    let refused = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header(header::RETRY_AFTER), Some("30"));

    clock.advance(Duration::from_millis(29_500));
    let early = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(early.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(early.header(header::RETRY_AFTER), Some("1"), "half a second, rounded up");
    assert_eq!(fields(&early).1, Some("\"default\";r=0;t=31"));

    clock.advance(Duration::from_millis(500));
    let refilled = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(refilled.status, StatusCode::OK);
    assert_eq!(fields(&refilled).1, Some("\"default\";r=0;t=60"));
}

#[actix_web::test]
async fn logins_have_a_stricter_bucket_per_address_on_top_of_the_default_one() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(100, 2), &clock))).await;

    let first = send_to(&app, login_attempt(CLIENT).to_request()).await;
    first.problem(422, "validation_failed");
    assert_eq!(
        fields(&first),
        (Some("\"default\";q=100;w=60, \"login\";q=2;w=60"), Some("\"default\";r=99;t=1, \"login\";r=1;t=30"))
    );
    send_to(&app, login_attempt(CLIENT).to_request()).await.problem(422, "validation_failed");

    let refused = send_to(&app, login_attempt(CLIENT).to_request()).await;
    refused.problem(429, "rate_limited");
    assert_eq!(refused.header(header::RETRY_AFTER), Some("30"));
    assert_eq!(fields(&refused).1, Some("\"default\";r=97;t=2, \"login\";r=0;t=60"));
    assert_eq!(recorder.value(REFUSED_REQUESTS_METRIC, &[("policy", "login")]), 1);
    assert_eq!(recorder.value(REFUSED_REQUESTS_METRIC, &[("policy", "default")]), 0);

    // Neither a token, nor percent-encoding the path, escapes the login bucket...
    let with_token = send_to(&app, bearer(login_attempt(CLIENT), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(with_token.status, StatusCode::TOO_MANY_REQUESTS);
    let encoded = send_to(&app, from(json_request(Method::POST, "/v1/auth/%74okens", "{}"), CLIENT).to_request()).await;
    assert_eq!(encoded.status, StatusCode::TOO_MANY_REQUESTS, "{}", encoded.text());
    assert_eq!(recorder.value(REFUSED_REQUESTS_METRIC, &[("policy", "login")]), 3);

    // ...which applies to logins only, and per address.
    let other_route = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(other_route.status, StatusCode::OK);
    // Five requests from this address so far (the one with a token drew from the user's bucket).
    assert_eq!(fields(&other_route), (Some("\"default\";q=100;w=60"), Some("\"default\";r=95;t=3")));
    let other_address = send_to(&app, login_attempt(OTHER_CLIENT).to_request()).await;
    other_address.problem(422, "validation_failed");
}

#[actix_web::test]
async fn registrations_draw_from_the_login_bucket_of_their_address() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let clock = FakeRelativeClock::default();
    let mut use_cases = UseCases::new();
    // The one request that gets through to a use case: an admin listing users.
    use_cases
        .users
        .expect_list()
        .times(1)
        .withf(|actor, _| actor.user_id == admin_id())
        .returning(|_, _| Ok(Page { items: Vec::new(), has_more: false }));
    let app = test::init_service(orderly_http::app(limited(use_cases, quotas(100, 3), &clock))).await;

    for left in (0..3).rev() {
        let accepted = send_to(&app, registration_attempt(CLIENT).to_request()).await;
        accepted.problem(422, "validation_failed");
        assert_eq!(fields(&accepted).0, Some("\"default\";q=100;w=60, \"login\";q=3;w=60"));
        let state = fields(&accepted).1.unwrap();
        assert!(state.ends_with(&format!("\"login\";r={left};t={}", (3 - left) * 20)), "{state}");
    }

    let refused = send_to(&app, registration_attempt(CLIENT).to_request()).await;
    refused.problem(429, "rate_limited");
    assert_eq!(refused.header(header::RETRY_AFTER), Some("20"));
    assert_eq!(
        fields(&refused),
        (Some("\"default\";q=100;w=60, \"login\";q=3;w=60"), Some("\"default\";r=96;t=3, \"login\";r=0;t=60"))
    );
    assert_eq!(recorder.value(REFUSED_REQUESTS_METRIC, &[("policy", "login")]), 1);

    // Percent-encoding the path is no way around it, nor is a bearer token.
    let encoded = send_to(&app, from(json_request(Method::POST, "/v1/%75sers", "{}"), CLIENT).to_request()).await;
    assert_eq!(encoded.status, StatusCode::TOO_MANY_REQUESTS, "{}", encoded.text());
    let with_token = send_to(&app, bearer(registration_attempt(CLIENT), ADMIN_TOKEN).to_request()).await;
    assert_eq!(with_token.status, StatusCode::TOO_MANY_REQUESTS);

    // Only registering draws from it: listing users, with the same path, does not.
    let listing = send_to(&app, bearer(from(get(REGISTRATION_PATH), CLIENT), ADMIN_TOKEN).to_request()).await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text());
    assert_eq!(fields(&listing).0, Some("\"default\";q=100;w=60"));

    // Another address has a bucket of its own.
    send_to(&app, registration_attempt(OTHER_CLIENT).to_request()).await.problem(422, "validation_failed");
}

#[actix_web::test]
async fn registrations_and_logins_share_one_bucket() {
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(100, 2), &clock))).await;
    for _ in 0..2 {
        send_to(&app, registration_attempt(CLIENT).to_request()).await.problem(422, "validation_failed");
    }
    let login = send_to(&app, login_attempt(CLIENT).to_request()).await;
    login.problem(429, "rate_limited");
    assert_eq!(login.header(header::RETRY_AFTER), Some("30"));
    assert_eq!(fields(&login).1, Some("\"default\";r=97;t=2, \"login\";r=0;t=60"));

    // The other way round, from another address.
    for _ in 0..2 {
        send_to(&app, login_attempt(OTHER_CLIENT).to_request()).await.problem(422, "validation_failed");
    }
    send_to(&app, registration_attempt(OTHER_CLIENT).to_request()).await.problem(429, "rate_limited");

    // A token comes back after 30 s, for either route.
    clock.advance(Duration::from_secs(30));
    send_to(&app, registration_attempt(CLIENT).to_request()).await.problem(422, "validation_failed");
}

#[actix_web::test]
async fn a_users_bucket_follows_the_user_across_addresses() {
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(2, 10), &clock))).await;
    for _ in 0..2 {
        let reply = send_to(&app, bearer(from(get("/healthz"), CLIENT), CUSTOMER_TOKEN).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let elsewhere = send_to(&app, bearer(from(get("/healthz"), OTHER_CLIENT), CUSTOMER_TOKEN).to_request()).await;
    elsewhere.problem(429, "rate_limited");

    // The address the user called from still has its own bucket, and so has another user.
    let anonymous = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!((anonymous.status, fields(&anonymous).1), (StatusCode::OK, Some("\"default\";r=1;t=30")));
    let admin = send_to(&app, bearer(from(get("/healthz"), CLIENT), ADMIN_TOKEN).to_request()).await;
    assert_eq!(admin.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_valid_token_gets_its_own_bucket_and_an_invalid_one_does_not() {
    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(1, 10), &clock))).await;
    assert_eq!(send_to(&app, from(get("/healthz"), CLIENT).to_request()).await.status, StatusCode::OK);
    let exhausted = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(exhausted.status, StatusCode::TOO_MANY_REQUESTS);

    let valid = send_to(&app, bearer(from(get("/healthz"), CLIENT), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(valid.status, StatusCode::OK);
    for token in ["made.up", EXPIRED_TOKEN] {
        let invalid = send_to(&app, bearer(from(get("/healthz"), CLIENT), token).to_request()).await;
        assert_eq!(invalid.status, StatusCode::TOO_MANY_REQUESTS, "{token} is keyed by the address");
    }
}

/// The middleware verifies a bearer token to pick the bucket; the `Caller` extractor reuses
/// that outcome instead of verifying again, and answers exactly as it would have.
#[actix_web::test]
async fn a_bearer_token_is_verified_once_per_request() {
    let clock = FakeRelativeClock::default();
    for limits_on in [true, false] {
        let verified = Arc::new(AtomicU64::new(0));
        let mut use_cases = UseCases::new();
        use_cases.sessions = MockSessionUseCases::new();
        let counter = verified.clone();
        use_cases.sessions.expect_verify_access_token().returning(move |token| {
            counter.fetch_add(1, Ordering::SeqCst);
            match token {
                CUSTOMER_TOKEN => test_claims(token),
                _ => Err(TokenRejected::Expired),
            }
        });
        use_cases
            .sessions
            .expect_admit_access()
            .returning(|claims, _| Admission::Accepted(Actor { user_id: claims.user_id, role: claims.role }));
        use_cases
            .users
            .expect_me()
            .times(1)
            .withf(|actor| actor.user_id == customer_id())
            .returning(|actor| Ok(user(actor.user_id, Role::Customer, 1)));
        let state = if limits_on { limited(use_cases, quotas(100, 10), &clock) } else { use_cases.into_state() };
        let app = test::init_service(orderly_http::app(state)).await;

        let me = send_to(&app, bearer(from(get("/v1/users/me"), CLIENT), CUSTOMER_TOKEN).to_request()).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text());
        assert_eq!(verified.load(Ordering::SeqCst), 1, "limits on: {limits_on}");

        // A refused token: the same 401 and challenge as always, from the one verification.
        for uri in ["/v1/users/me", "/v1/products/0192f5c2-0000-7000-8000-0000000000f1"] {
            let before = verified.load(Ordering::SeqCst);
            let refused = send_to(&app, bearer(from(get(uri), CLIENT), EXPIRED_TOKEN).to_request()).await;
            refused.problem(401, "unauthenticated");
            assert_eq!(refused.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
            assert_eq!(verified.load(Ordering::SeqCst), before + 1, "{uri}, limits on: {limits_on}");
        }
    }
}

#[actix_web::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let clock = FakeRelativeClock::default();
    let mut state = limited(UseCases::new(), quotas(1, 10), &clock);
    state.settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = test::init_service(orderly_http::app(state)).await;
    let via = |peer: &str, forwarded_for: &str| {
        from(get("/healthz"), peer).insert_header(("X-Forwarded-For", forwarded_for.to_owned())).to_request()
    };

    // Behind the proxy, each client has its own bucket; a forged entry on the left is ignored.
    assert_eq!(send_to(&app, via("10.0.0.2:4000", "203.0.113.7")).await.status, StatusCode::OK);
    let forged = send_to(&app, via("10.0.0.2:4000", "192.0.2.55, 203.0.113.7")).await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send_to(&app, via("10.0.0.2:4000", "203.0.113.8")).await.status, StatusCode::OK);

    // A client talking directly cannot pretend to be someone else.
    assert_eq!(send_to(&app, via(OTHER_CLIENT, "192.0.2.1")).await.status, StatusCode::OK);
    assert_eq!(send_to(&app, via(OTHER_CLIENT, "192.0.2.2")).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[actix_web::test]
async fn without_an_active_policy_there_are_no_fields() {
    let reply = send_with(UseCases::new(), from(get("/healthz"), CLIENT)).await;
    assert_eq!(fields(&reply), (None, None), "NoRateLimits");

    let clock = FakeRelativeClock::default();
    let app = test::init_service(orderly_http::app(limited(UseCases::new(), quotas(0, 0), &clock))).await;
    for _ in 0..3 {
        let reply = send_to(&app, login_attempt(CLIENT).to_request()).await;
        assert_eq!((reply.status, fields(&reply)), (StatusCode::UNPROCESSABLE_ENTITY, (None, None)));
    }
}

// --- Redis ------------------------------------------------------------------------------------

/// Redis for these tests: `ORDERLY_TEST_REDIS_URL`. Without it the tests pass vacuously and say
/// so, unless `ORDERLY_TEST_REQUIRE_REDIS=1`, which makes a missing Redis a failure (CI).
fn redis_url() -> Option<String> {
    match std::env::var("ORDERLY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("ORDERLY_TEST_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("ORDERLY_TEST_REQUIRE_REDIS=1 but ORDERLY_TEST_REDIS_URL is not set")
        }
        _ => {
            eprintln!("Redis tests NOT run: set ORDERLY_TEST_REDIS_URL");
            None
        }
    }
}

/// A key prefix no other test run uses.
fn unique_prefix() -> String {
    format!("orderly-test:{}:", uuid::Uuid::now_v7())
}

/// The state of an instance whose buckets are in the Redis at `url`.
fn on_redis(url: &str, quotas: Quotas, key_prefix: &str) -> ApiState {
    let mut state = UseCases::new().into_state();
    state.rate_limits = Arc::new(RateLimits::redis(quotas, url, key_prefix).unwrap());
    state
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Every key under `prefix`, sorted.
async fn keys_under(connection: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(connection).await.unwrap();
    keys.sort();
    keys
}

async fn delete_keys(url: &str, prefix: &str) {
    let mut connection = redis_connection(url).await;
    let keys = keys_under(&mut connection, prefix).await;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await.unwrap();
    }
}

#[actix_web::test]
async fn two_instances_on_one_redis_share_one_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let first = test::init_service(orderly_http::app(on_redis(&url, quotas(3, 1), &prefix))).await;
    let second = test::init_service(orderly_http::app(on_redis(&url, quotas(3, 1), &prefix))).await;

    let one = send_to(&first, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!(fields(&one), (Some("\"default\";q=3;w=60"), Some("\"default\";r=2;t=20")));
    let two = send_to(&second, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!((two.status, fields(&two).1), (StatusCode::OK, Some("\"default\";r=1;t=40")));
    let three = send_to(&first, from(get("/healthz"), CLIENT).to_request()).await;
    assert_eq!((three.status, fields(&three).1), (StatusCode::OK, Some("\"default\";r=0;t=60")));

    for instance in [&first, &second] {
        let refused = send_to(instance, from(get("/healthz"), CLIENT).to_request()).await;
        refused.problem(429, "rate_limited");
        let retry_after: u64 = refused.header(header::RETRY_AFTER).unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry_after), "{retry_after}");
    }
    // Another address has its own bucket; the login bucket is shared as well.
    let other = send_to(&second, from(get("/healthz"), OTHER_CLIENT).to_request()).await;
    assert_eq!(other.status, StatusCode::OK);
    send_to(&first, login_attempt(OTHER_CLIENT).to_request()).await.problem(422, "validation_failed");
    send_to(&second, login_attempt(OTHER_CLIENT).to_request()).await.problem(429, "rate_limited");
    // Registering draws from that same shared login bucket: a registration on one instance
    // leaves no login on the other, and the other way round.
    send_to(&second, registration_attempt(THIRD_CLIENT).to_request()).await.problem(422, "validation_failed");
    let login = send_to(&first, login_attempt(THIRD_CLIENT).to_request()).await;
    login.problem(429, "rate_limited");
    assert_eq!(
        fields(&login),
        (Some("\"default\";q=3;w=60, \"login\";q=1;w=60"), Some("\"default\";r=1;t=40, \"login\";r=0;t=60"))
    );
    let registration = send_to(&second, registration_attempt(OTHER_CLIENT).to_request()).await;
    registration.problem(429, "rate_limited");
    assert!(registration.header(header::RETRY_AFTER).is_some());

    let mut connection = redis_connection(&url).await;
    let keys = keys_under(&mut connection, &prefix).await;
    let expected = [
        format!("{prefix}ratelimit:default:ip:192.0.2.33"),
        format!("{prefix}ratelimit:default:ip:198.51.100.9"),
        format!("{prefix}ratelimit:default:ip:203.0.113.7"),
        format!("{prefix}ratelimit:login:ip:192.0.2.33"),
        format!("{prefix}ratelimit:login:ip:198.51.100.9"),
    ];
    assert_eq!(keys, expected);
    for key in &keys {
        // Each key expires once its bucket is full again (plus a second of slack).
        let ttl_ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut connection).await.unwrap();
        assert!((1..=61_000).contains(&ttl_ms), "{key}: {ttl_ms}");
    }
    delete_keys(&url, &prefix).await;
    assert!(keys_under(&mut connection, &prefix).await.is_empty());
}

#[actix_web::test]
async fn an_unreachable_redis_fails_open_and_counts_backend_errors() {
    let recorder = TestRecorder::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    // Nothing listens on port 1: every connection attempt is refused.
    let state = on_redis("redis://127.0.0.1:1", quotas(1, 1), &unique_prefix());
    let app = test::init_service(orderly_http::app(state)).await;
    for _ in 0..3 {
        let reply = send_to(&app, from(get("/healthz"), CLIENT).to_request()).await;
        assert_eq!((reply.status, fields(&reply)), (StatusCode::OK, (None, None)));
    }
    let login = send_to(&app, login_attempt(CLIENT).to_request()).await;
    login.problem(422, "validation_failed");
    assert_eq!(fields(&login), (None, None));
    // Three requests with one policy, and a login with two.
    assert_eq!(recorder.value(BACKEND_ERRORS_METRIC, &[]), 5);
    assert_eq!(recorder.value(REFUSED_REQUESTS_METRIC, &[("policy", "default")]), 0);
}

// --- Metrics ----------------------------------------------------------------------------------

/// Counters recorded on this test's thread (`metrics::set_default_local_recorder`), by name
/// and labels.
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn id(name: &str, labels: &[(&str, &str)]) -> String {
        let labels: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        format!("{name}{{{}}}", labels.join(","))
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters.lock().unwrap().get(&Self::id(name, labels)).map_or(0, |counter| counter.load(Ordering::Relaxed))
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<(&str, &str)> = key.labels().map(|label| (label.key(), label.value())).collect();
        let id = Self::id(key.name(), &labels);
        let counter = self.counters.lock().unwrap().entry(id).or_default().clone();
        metrics::Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
