//! Revoking access tokens and the refresh reuse leeway
//! (docs/api.md#authentication-and-authorisation, ADR 0015) — which ends once either token of the
//! successor pair was used — end to end over the real user and refresh-token stores on SQLite and
//! PostgreSQL, with real signed access tokens. Only password hashing is faked (argon2 adds nothing
//! here but seconds).
//!
//! The revocation check interval is set per test: zero (every request reads the generation),
//! or a minute — longer than any test — to show that the instance making a revoking change
//! forgets what it remembered at once, and that a token newer than what it remembered is
//! checked at once rather than refused.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, header};
use actix_web::test;
use orderly_auth::{JwtSettings, JwtTokenService};
use orderly_domain::ports::{Clock, MockPasswordHasher, PasswordHasher, SystemClock};
use orderly_domain::services::{GenerationCache, SessionService, UserService};
use orderly_domain::user::{Email, Password, PasswordHash, UserName};
use orderly_http::ApiState;
use orderly_persistence::testing::TestDatabase;
use serde_json::{Value, json};

use crate::support::{Reply, UseCases, bearer, get, json_request, send_to};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "another horse battery";

/// A hasher that "hashes" by prefixing: verifying compares, as argon2 would, in no time.
fn fake_hasher() -> Arc<dyn PasswordHasher> {
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_hash().returning(|password: &Password| Ok(PasswordHash::new(format!("plain:{}", password.expose()))));
    hasher.expect_verify().returning(|candidate, hash| Ok(hash.as_str() == format!("plain:{candidate}")));
    hasher.expect_dummy_hash().returning(|| PasswordHash::new("no one's".into()));
    Arc::new(hasher)
}

/// The app's state with users and sessions over `db`, trusting a read generation for
/// `check_interval`, with the given refresh reuse leeway.
fn state_over(db: &TestDatabase, check_interval: Duration, leeway: chrono::Duration) -> ApiState {
    let mut state = UseCases::new().into_state_over(db.database());
    let repositories = orderly_persistence::repositories(db.database());
    let (hasher, clock): (_, Arc<dyn Clock>) = (fake_hasher(), Arc::new(SystemClock));
    let tokens = JwtTokenService::new(JwtSettings::new(
        b"a test key that is at least thirty-two bytes long".to_vec().into(),
        "orderly",
        "orderly-api",
    ));
    state.users = Arc::new(UserService::new(repositories.users.clone(), hasher.clone(), clock.clone()));
    state.sessions = Arc::new(
        SessionService::new(
            repositories.users.clone(),
            repositories.refresh_tokens.clone(),
            hasher,
            Arc::new(tokens),
            clock,
        )
        .with_refresh_reuse_leeway(leeway),
    );
    state.revocations = GenerationCache::new(check_interval, 1000);
    state
}

fn leeway() -> chrono::Duration {
    chrono::Duration::seconds(30)
}

/// An admin, created as the first one is at start-up (over the store of `state`); returns its id.
fn bootstrap_admin(state: &ApiState, email: &str) -> String {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let created = UserService::new(state.repositories.users.clone(), fake_hasher(), clock)
        .bootstrap_admin(
            Email::parse(email).unwrap(),
            UserName::parse("Root").unwrap(),
            Password::parse(PASSWORD).unwrap(),
        )
        .unwrap();
    match created {
        orderly_domain::services::users::AdminBootstrap::Created(user) => user.id.to_string(),
        other => panic!("{other:?}"),
    }
}

/// Drives one app; every call is a request a client would send.
struct Client<S> {
    app: S,
}

impl<S, B> Client<S>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    async fn register(&self, email: &str) -> String {
        let body = json!({ "email": email, "password": PASSWORD, "name": "Ada" }).to_string();
        let reply = send_to(&self.app, json_request(Method::POST, "/v1/users", body).to_request()).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_owned()
    }

    /// Logs in; returns (access token, refresh token).
    async fn login(&self, email: &str, password: &str) -> (String, String) {
        let body = json!({ "email": email, "password": password }).to_string();
        let reply = send_to(&self.app, json_request(Method::POST, "/v1/auth/tokens", body).to_request()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        pair(&reply.json())
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        let body = json!({ "refresh_token": refresh_token }).to_string();
        send_to(&self.app, json_request(Method::POST, "/v1/auth/refresh", body).to_request()).await
    }

    async fn logout(&self, refresh_token: &str) {
        let body = json!({ "refresh_token": refresh_token }).to_string();
        let reply = send_to(&self.app, json_request(Method::POST, "/v1/auth/logout", body).to_request()).await;
        assert_eq!(reply.status, 204, "{}", reply.text());
    }

    async fn me(&self, access_token: &str) -> Reply {
        send_to(&self.app, bearer(get("/v1/users/me"), access_token).to_request()).await
    }

    async fn patch_user(&self, access_token: &str, id: &str, body: Value) -> Reply {
        let request = json_request(Method::PATCH, &format!("/v1/users/{id}"), body.to_string());
        send_to(&self.app, bearer(request, access_token).to_request()).await
    }
}

fn pair(body: &Value) -> (String, String) {
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

/// The token is refused as a client sees it: 401 `unauthenticated`, `invalid_token`.
fn assert_revoked(reply: &Reply) {
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
}

fn assert_works(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Both check intervals: none at all, and one far longer than the test.
const INTERVALS: [Duration; 2] = [Duration::ZERO, Duration::from_secs(60)];

orderly_persistence::backend_tests! {
    #[actix_web::test]
    async fn after_a_logout_the_old_access_token_is_refused_and_a_new_one_works_at_once(db: &TestDatabase) {
        for interval in INTERVALS {
            let state = state_over(db, interval, leeway());
            let client = Client { app: test::init_service(orderly_http::app(state)).await };
            let email = format!("ada-{}@example.com", interval.as_secs());
            client.register(&email).await;
            let (access, refresh) = client.login(&email, PASSWORD).await;
            assert_works(&client.me(&access).await);

            client.logout(&refresh).await;

            assert_revoked(&client.me(&access).await);
            // Within the same second: the new token carries the new generation.
            let (access, _) = client.login(&email, PASSWORD).await;
            assert_works(&client.me(&access).await);
        }
    }

    #[actix_web::test]
    async fn after_a_password_change_the_old_access_token_is_refused(db: &TestDatabase) {
        for interval in INTERVALS {
            let state = state_over(db, interval, leeway());
            let client = Client { app: test::init_service(orderly_http::app(state)).await };
            let email = format!("ada-{}@example.com", interval.as_secs());
            let id = client.register(&email).await;
            let (access, _) = client.login(&email, PASSWORD).await;
            assert_works(&client.me(&access).await);

            let change = json!({ "password": NEW_PASSWORD, "current_password": PASSWORD });
            assert_works(&client.patch_user(&access, &id, change).await);

            assert_revoked(&client.me(&access).await);
            let (access, _) = client.login(&email, NEW_PASSWORD).await;
            assert_works(&client.me(&access).await);
        }
    }

    #[actix_web::test]
    async fn after_a_deactivation_the_old_access_token_is_refused(db: &TestDatabase) {
        for interval in INTERVALS {
            let state = state_over(db, interval, leeway());
            let root = format!("root-{}@example.com", interval.as_secs());
            bootstrap_admin(&state, &root);
            let client = Client { app: test::init_service(orderly_http::app(state)).await };
            let email = format!("ada-{}@example.com", interval.as_secs());
            let id = client.register(&email).await;
            let (access, _) = client.login(&email, PASSWORD).await;
            let (admin, _) = client.login(&root, PASSWORD).await;
            assert_works(&client.me(&access).await);

            assert_works(&client.patch_user(&admin, &id, json!({ "active": false })).await);

            assert_revoked(&client.me(&access).await);
            // The admin's own token is untouched; reactivated, the user logs in again at once.
            assert_works(&client.patch_user(&admin, &id, json!({ "active": true })).await);
            let (access, _) = client.login(&email, PASSWORD).await;
            assert_works(&client.me(&access).await);
        }
    }

    #[actix_web::test]
    async fn a_demoted_admins_old_access_token_is_refused_and_a_refresh_carries_the_new_role(db: &TestDatabase) {
        for interval in INTERVALS {
            let state = state_over(db, interval, leeway());
            let root_email = format!("root-{}@example.com", interval.as_secs());
            bootstrap_admin(&state, &root_email);
            let client = Client { app: test::init_service(orderly_http::app(state)).await };
            let email = format!("grace-{}@example.com", interval.as_secs());
            let id = client.register(&email).await;
            let (root, _) = client.login(&root_email, PASSWORD).await;
            assert_works(&client.patch_user(&root, &id, json!({ "role": "admin" })).await);
            let (grace, grace_refresh) = client.login(&email, PASSWORD).await;
            let listing = send_to(&client.app, bearer(get("/v1/users"), &grace).to_request()).await;
            assert_works(&listing);

            assert_works(&client.patch_user(&root, &id, json!({ "role": "customer" })).await);

            assert_revoked(&client.me(&grace).await);
            let listing = send_to(&client.app, bearer(get("/v1/users"), &grace).to_request()).await;
            assert_revoked(&listing);
            // The session goes on: a refresh issues a token with the new role, working at once.
            let refreshed = client.refresh(&grace_refresh).await;
            assert_works(&refreshed);
            let (grace, _) = pair(&refreshed.json());
            let me = client.me(&grace).await;
            assert_works(&me);
            assert_eq!(me.json()["role"], "customer");
            let listing = send_to(&client.app, bearer(get("/v1/users"), &grace).to_request()).await;
            listing.problem(403, "forbidden");
        }
    }

    #[actix_web::test]
    async fn within_the_leeway_a_retried_refresh_gets_a_new_pair_and_voids_the_lost_one(db: &TestDatabase) {
        let client = Client { app: test::init_service(orderly_http::app(state_over(db, Duration::ZERO, leeway()))).await };
        client.register("ada@example.com").await;
        let (_, first) = client.login("ada@example.com", PASSWORD).await;
        let lost = client.refresh(&first).await;
        assert_works(&lost);
        let (_, lost) = pair(&lost.json());

        // The answer was lost; the client retries with the token it still has.
        let retried = client.refresh(&first).await;
        assert_works(&retried);
        assert_eq!(retried.header(header::CACHE_CONTROL), Some("no-store"));
        let (access, newest) = pair(&retried.json());
        assert_works(&client.me(&access).await);

        // The lost answer's refresh token no longer works; presenting it is reuse, and ends the
        // session, so it is tried last.
        let newer = client.refresh(&newest).await;
        assert_works(&newer);
        let (_, newest) = pair(&newer.json());
        assert_revoked(&client.refresh(&lost).await);
        assert_revoked(&client.refresh(&newest).await);
    }

    #[actix_web::test]
    async fn a_lost_answers_token_is_dead_and_the_retried_one_alive(db: &TestDatabase) {
        let client = Client { app: test::init_service(orderly_http::app(state_over(db, Duration::ZERO, leeway()))).await };
        client.register("ada@example.com").await;
        let (_, first) = client.login("ada@example.com", PASSWORD).await;
        let (_, lost) = pair(&client.refresh(&first).await.json());
        let (_, newest) = pair(&client.refresh(&first).await.json());

        // Presenting the voided token revokes the family: the newest dies with it.
        assert_revoked(&client.refresh(&lost).await);
        assert_revoked(&client.refresh(&newest).await);
    }

    #[actix_web::test]
    async fn once_the_successor_was_used_the_spent_token_revokes_the_family(db: &TestDatabase) {
        let client = Client { app: test::init_service(orderly_http::app(state_over(db, Duration::ZERO, leeway()))).await };
        client.register("ada@example.com").await;
        let (_, first) = client.login("ada@example.com", PASSWORD).await;
        let (_, second) = pair(&client.refresh(&first).await.json());
        let used = client.refresh(&second).await;
        assert_works(&used);
        let (access, newest) = pair(&used.json());

        assert_revoked(&client.refresh(&first).await);

        assert_revoked(&client.refresh(&newest).await);
        // A family revoked for reuse takes the user's access tokens with it.
        assert_revoked(&client.me(&access).await);
    }

    #[actix_web::test]
    async fn once_the_successors_access_token_was_used_the_spent_token_revokes_the_family(db: &TestDatabase) {
        // Using either token of the new pair shows its answer arrived: a replay of the spent
        // token after that is theft, not a retry — on every check interval.
        for interval in INTERVALS {
            let state = state_over(db, interval, leeway());
            let client = Client { app: test::init_service(orderly_http::app(state)).await };
            let email = format!("ada-{}@example.com", interval.as_secs());
            client.register(&email).await;
            let (_, first) = client.login(&email, PASSWORD).await;
            let (access, second) = pair(&client.refresh(&first).await.json());
            assert_works(&client.me(&access).await);
            // Used again: recorded once, still accepted.
            assert_works(&client.me(&access).await);

            assert_revoked(&client.refresh(&first).await);

            assert_revoked(&client.refresh(&second).await);
            // A family revoked for reuse during a refresh takes the access tokens with it
            // within the check interval (it is not forgotten early, ADR 0015).
            if interval.is_zero() {
                assert_revoked(&client.me(&access).await);
            }
        }
    }

    #[actix_web::test]
    async fn using_the_spent_tokens_own_access_token_does_not_end_the_leeway(db: &TestDatabase) {
        // The access token issued with the spent refresh token says nothing about whether the
        // refresh's answer arrived: the retry is still a retry.
        let client = Client { app: test::init_service(orderly_http::app(state_over(db, Duration::ZERO, leeway()))).await };
        client.register("ada@example.com").await;
        let (old_access, first) = client.login("ada@example.com", PASSWORD).await;
        assert_works(&client.me(&old_access).await);
        assert_works(&client.refresh(&first).await);
        assert_works(&client.me(&old_access).await);

        let retried = client.refresh(&first).await;
        assert_works(&retried);
        let (access, newest) = pair(&retried.json());
        assert_works(&client.me(&access).await);
        assert_works(&client.refresh(&newest).await);
    }

    #[actix_web::test]
    async fn without_a_leeway_any_reuse_revokes_the_family(db: &TestDatabase) {
        let state = state_over(db, Duration::ZERO, chrono::Duration::zero());
        let client = Client { app: test::init_service(orderly_http::app(state)).await };
        client.register("ada@example.com").await;
        let (_, first) = client.login("ada@example.com", PASSWORD).await;
        let (_, second) = pair(&client.refresh(&first).await.json());

        assert_revoked(&client.refresh(&first).await);

        assert_revoked(&client.refresh(&second).await);
    }
}

#[cfg(test)]
mod unavailable {
    use super::*;

    /// PostgreSQL only (an outage cannot be staged on SQLite): a token whose generation cannot
    /// be read is not accepted anyway; the client is told to retry.
    #[actix_web::test]
    async fn when_the_generation_cannot_be_read_the_answer_is_503_with_retry_after() {
        let Some(db) = TestDatabase::postgres() else { return };
        let client =
            Client { app: test::init_service(orderly_http::app(state_over(&db, Duration::ZERO, leeway()))).await };
        client.register("ada@example.com").await;
        let (access, _) = client.login("ada@example.com", PASSWORD).await;

        db.begin_outage();
        let reply = client.me(&access).await;
        db.end_outage();

        reply.problem(503, "service_unavailable");
        assert!(reply.header(header::RETRY_AFTER).is_some());
        assert_works(&client.me(&access).await);
    }

    /// PostgreSQL only: a new access token whose first use cannot be recorded is not accepted
    /// unrecorded (which would keep the reuse leeway open); the client is told to retry. The
    /// generation itself is answered from the cache, so only the write fails.
    #[actix_web::test]
    async fn when_an_access_tokens_use_cannot_be_recorded_the_answer_is_503_with_retry_after() {
        let Some(db) = TestDatabase::postgres() else { return };
        let state = state_over(&db, Duration::from_secs(60), leeway());
        let client = Client { app: test::init_service(orderly_http::app(state)).await };
        client.register("ada@example.com").await;
        let (old_access, first) = client.login("ada@example.com", PASSWORD).await;
        assert_works(&client.me(&old_access).await);
        let (access, second) = pair(&client.refresh(&first).await.json());

        // An order with no lines: refused by validation, after authentication and before any
        // database work, so it shows whether the caller was authenticated during the outage.
        let place_nothing = async |access: &str| {
            let request = json_request(Method::POST, "/v1/orders", "{}");
            send_to(&client.app, bearer(request, access).to_request()).await
        };
        db.begin_outage();
        let reply = place_nothing(&access).await;
        // Already recorded: no write, so the cached generation is enough to authenticate.
        let recorded = place_nothing(&old_access).await;
        db.end_outage();

        reply.problem(503, "service_unavailable");
        assert!(reply.header(header::RETRY_AFTER).is_some());
        assert!(matches!(recorded.status.as_u16(), 400 | 422), "authenticated: {}", recorded.text());
        // Once the database is back the use is recorded, and a replay is reuse.
        assert_works(&client.me(&access).await);
        assert_revoked(&client.refresh(&first).await);
        assert_revoked(&client.refresh(&second).await);
    }
}
