//! Rate limiting and client addresses through the real wiring (docs/api.md#rate-limiting,
//! docs/api.md#pagination): the limits from configuration, `X-Forwarded-For` and `X-Forwarded-Host`
//! believed only from `ORDERLY_TRUSTED_PROXIES`, and start-up with a Redis that is not there.
//!
//! The test client connects from 127.0.0.1, so without trusted proxies every request of a test
//! comes from one address.

use awc::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Reply, TestApp};

/// A login attempt with a body the schema refuses: 422 at once (no password hashing), and
/// counted against the login bucket like any other.
async fn login_attempt(app: &TestApp, forwarded_for: Option<&str>) -> Reply {
    let mut request = app.client.post(app.url("/v1/auth/tokens"));
    if let Some(forwarded_for) = forwarded_for {
        request = request.insert_header(("X-Forwarded-For", forwarded_for));
    }
    app.send(request, Some(&json!({}))).await
}

/// `GET /v1/users?limit=1` as `token`, with `headers`; there must be a second page.
async fn first_user_page(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.client.get(app.url("/v1/users?limit=1")).bearer_auth(token);
    for header in headers {
        request = request.insert_header(*header);
    }
    let reply = app.send(request, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    reply
}

const FORWARDING_HEADERS: [(&str, &str); 2] = [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https")];

on_both_backends! {
    async fn logins_beyond_the_limit_are_429_with_the_ratelimit_fields(app) {
        // The default configuration: 600 requests and 10 logins per minute.
        for attempt in 1..=10 {
            let reply = login_attempt(&app, None).await;
            reply.problem(422, "validation_failed");
            assert_eq!(
                reply.header("ratelimit-policy").as_deref(),
                Some("\"default\";q=600;w=60, \"login\";q=10;w=60"),
            );
            let state = reply.header("ratelimit").unwrap();
            assert!(state.contains(&format!("\"login\";r={};t=", 10 - attempt)), "{state}");
        }
        let refused = login_attempt(&app, None).await;
        refused.problem(429, "rate_limited");
        let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry_after), "one login every 6 s: {retry_after}");
        assert!(refused.header("ratelimit").unwrap().ends_with("\"login\";r=0;t=60"));

        // Other routes draw from the default bucket only.
        let health = app.get("/healthz", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.header("ratelimit-policy").as_deref(), Some("\"default\";q=600;w=60"));
        assert!(health.header("ratelimit").unwrap().starts_with("\"default\";r=588;t="));
    }

    async fn x_forwarded_for_from_an_untrusted_peer_buys_no_fresh_bucket(app) {
        for attempt in 0..10 {
            let forged = format!("198.51.100.{attempt}");
            login_attempt(&app, Some(&forged)).await.problem(422, "validation_failed");
        }
        login_attempt(&app, Some("198.51.100.200")).await.problem(429, "rate_limited");
    }

    async fn the_link_host_is_not_taken_from_an_untrusted_x_forwarded_host(app) {
        let admin = app.admin().await;
        app.register("ada@example.com", "Ada").await;
        let page = first_user_page(&app, &admin.access_token, &FORWARDING_HEADERS).await;
        let link = page.header("link").expect("a second page");
        assert!(link.starts_with(&format!("<{}/v1/users?limit=1&cursor=", app.address)), "{link}");
        assert!(!link.contains("evil.example"), "{link}");
    }
}

/// Runs `$test(backend)` on SQLite and, when configured, PostgreSQL: for tests that need their
/// own settings (`on_both_backends!` spawns the default configuration).
macro_rules! on_both_backends_with_settings {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[actix_web::test]
                async fn sqlite() {
                    super::$test(orderly_persistence::testing::Backend::Sqlite).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    super::$test(orderly_persistence::testing::Backend::Postgres).await;
                }
            }
        )*
    };
}

on_both_backends_with_settings!(
    behind_a_trusted_proxy_x_forwarded_for_is_read_from_the_right,
    a_limit_of_zero_turns_rate_limiting_off,
    an_unreachable_redis_neither_stops_start_up_nor_fails_requests,
);

async fn behind_a_trusted_proxy_x_forwarded_for_is_read_from_the_right(backend: orderly_persistence::testing::Backend) {
    // Three: the proxy's own address logs in once, then logs the admin in and registers Ada
    // below (registering draws from the login bucket too).
    let settings = [("ORDERLY_TRUSTED_PROXIES", "127.0.0.1"), ("ORDERLY_LOGIN_RATE_LIMIT", "3")];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else { return };
    let client = "203.0.113.7";
    for _ in 0..3 {
        login_attempt(&app, Some(client)).await.problem(422, "validation_failed");
    }
    // Entries left of the client's were written by the client: they change nothing. Trusted
    // hops right of it are skipped.
    for chain in [client, "192.0.2.99, 203.0.113.7", "203.0.113.7, 127.0.0.1", "192.0.2.1, 203.0.113.7, 127.0.0.1"] {
        login_attempt(&app, Some(chain)).await.problem(429, "rate_limited");
    }
    // Another client behind the same proxy has its own bucket, and so has the proxy itself.
    login_attempt(&app, Some("203.0.113.8")).await.problem(422, "validation_failed");
    login_attempt(&app, None).await.problem(422, "validation_failed");

    // From the trusted proxy, the forwarded scheme and host make the Link.
    let admin = app.admin().await;
    app.register("ada@example.com", "Ada").await;
    let page = first_user_page(&app, &admin.access_token, &FORWARDING_HEADERS).await;
    let link = page.header("link").expect("a second page");
    assert!(link.starts_with("<https://evil.example/v1/users?limit=1&cursor="), "{link}");
}

async fn a_limit_of_zero_turns_rate_limiting_off(backend: orderly_persistence::testing::Backend) {
    let settings = [("ORDERLY_RATE_LIMIT", "0"), ("ORDERLY_LOGIN_RATE_LIMIT", "0")];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else { return };
    for _ in 0..12 {
        let reply = login_attempt(&app, None).await;
        reply.problem(422, "validation_failed");
        assert_eq!((reply.header("ratelimit-policy"), reply.header("ratelimit")), (None, None));
    }
}

async fn an_unreachable_redis_neither_stops_start_up_nor_fails_requests(
    backend: orderly_persistence::testing::Backend,
) {
    // Nothing listens on port 1. With the buckets in Redis, nothing can be checked: every
    // request goes through, without RateLimit fields (in process there would be fields).
    let settings = [("ORDERLY_REDIS_URL", "redis://127.0.0.1:1"), ("ORDERLY_LOGIN_RATE_LIMIT", "1")];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else { return };
    for _ in 0..3 {
        let reply = login_attempt(&app, None).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.header("ratelimit"), None);
    }
    let health = app.get("/healthz", None).await;
    assert_eq!((health.status, health.json()), (StatusCode::OK, json!({"status": "ok"})));
}
