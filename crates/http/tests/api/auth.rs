//! Who is calling: bearer tokens (401 variants), logging in, refreshing, logging out, and
//! what the request log says (and does not say) about it.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::auth::{AccessToken, RefreshTokenHash, RefreshTokenSecret, StoredRefreshToken};
use orderly_domain::user::{PasswordHash, Role, UserCredentials};

use crate::support::*;

#[actix_web::test]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let reply = send(Mocks::new(), get("/v1/users/me")).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
}

#[actix_web::test]
async fn a_bad_token_is_401_invalid_token() {
    let requests = [
        get("/v1/users/me").insert_header((header::AUTHORIZATION, "Basic dXNlcjpwYXNzd29yZA==")),
        get("/v1/users/me").insert_header((header::AUTHORIZATION, "Bearer")),
        get("/v1/users/me").insert_header((header::AUTHORIZATION, "Bearer two words")),
        bearer(get("/v1/users/me"), "forged.or.alg-none"),
        bearer(get("/v1/users/me"), EXPIRED_TOKEN),
        bearer(get("/v1/users/me"), CUSTOMER_TOKEN).append_header((header::AUTHORIZATION, "Bearer admin.token")),
    ];
    for request in requests {
        let reply = send(Mocks::new(), request).await;
        reply.problem(401, "unauthenticated");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
    }
}

#[actix_web::test]
async fn authentication_comes_before_the_body_is_read() {
    let request = json_request(Method::PATCH, &format!("/v1/users/{}", customer_id()), "not json");
    send(Mocks::new(), request).await.problem(401, "unauthenticated");
}

fn login_mocks(known: bool, password_ok: bool) -> Mocks {
    let mut mocks = Mocks::new();
    mocks.users.expect_find_credentials_by_email().returning(move |_| {
        Ok(known.then(|| UserCredentials {
            user: user(customer_id(), Role::Customer, 1),
            password_hash: PasswordHash::new("real".into()),
            token_generation: 0,
        }))
    });
    mocks.hasher.expect_dummy_hash().returning(|| PasswordHash::new("dummy".into()));
    mocks.hasher.expect_verify().returning(move |_, _| Ok(password_ok));
    mocks
        .tokens
        .expect_issue_access_token()
        .returning(|_, _| Ok(AccessToken { token: "access.jwt".into(), expires_in_seconds: 900 }));
    mocks
        .tokens
        .expect_mint_refresh_token()
        .returning(|| Ok((RefreshTokenSecret::new("refresh-secret".into()), RefreshTokenHash::new("digest".into()))));
    mocks.tokens.expect_refresh_token_lifetime().returning(|| chrono::Duration::days(30));
    mocks.refresh_tokens.expect_start_family().returning(|_| Ok(()));
    mocks
}

const CREDENTIALS: &str = r#"{"email":"ada@example.com","password":"correct horse battery"}"#;

#[actix_web::test]
async fn logging_in_returns_a_token_pair_that_is_never_cached() {
    let reply = send(login_mocks(true, true), json_request(Method::POST, "/v1/auth/tokens", CREDENTIALS)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "access_token": "access.jwt",
            "token_type": "Bearer",
            "expires_in": 900,
            "refresh_token": "refresh-secret",
            "refresh_expires_in": 2_592_000
        })
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
}

#[actix_web::test]
async fn a_failed_login_looks_the_same_whatever_the_reason() {
    let without_id = |mut problem: Value| {
        problem.as_object_mut().unwrap().remove("request_id");
        problem
    };
    let unknown = send(login_mocks(false, false), json_request(Method::POST, "/v1/auth/tokens", CREDENTIALS)).await;
    let wrong = send(login_mocks(true, false), json_request(Method::POST, "/v1/auth/tokens", CREDENTIALS)).await;
    let unknown = without_id(unknown.problem(401, "invalid_credentials"));
    let wrong = without_id(wrong.problem(401, "invalid_credentials"));
    assert_eq!(unknown, wrong);
}

#[actix_web::test]
async fn a_login_without_fields_is_422_listing_both() {
    let reply = send(Mocks::new(), json_request(Method::POST, "/v1/auth/tokens", "{}")).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        vec![("/email".to_owned(), "required".to_owned()), ("/password".to_owned(), "required".to_owned())]
    );
}

fn stored_token(spent: bool) -> StoredRefreshToken {
    StoredRefreshToken {
        id: Uuid::now_v7(),
        family_id: Uuid::now_v7(),
        user_id: customer_id(),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        spent,
        replaced: None,
        family_revoked: false,
    }
}

#[actix_web::test]
async fn refreshing_with_a_spent_token_is_401_and_revokes_the_family() {
    let mut mocks = Mocks::new();
    mocks.tokens.expect_hash_refresh_token().returning(|_| RefreshTokenHash::new("digest".into()));
    mocks.refresh_tokens.expect_find_by_hash().returning(|_| Ok(Some(stored_token(true))));
    mocks.refresh_tokens.expect_revoke_family().times(1).returning(|_, _| Ok(()));
    let request = json_request(Method::POST, "/v1/auth/refresh", r#"{"refresh_token":"old"}"#);
    let reply = send(mocks, request).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
}

#[actix_web::test]
async fn logging_out_is_204() {
    let mut mocks = Mocks::new();
    mocks.tokens.expect_hash_refresh_token().returning(|_| RefreshTokenHash::new("digest".into()));
    mocks.refresh_tokens.expect_find_by_hash().returning(|_| Ok(Some(stored_token(false))));
    mocks.refresh_tokens.expect_revoke_family().times(1).returning(|_, _| Ok(()));
    let reply = send(mocks, json_request(Method::POST, "/v1/auth/logout", r#"{"refresh_token":"current"}"#)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
}

#[actix_web::test]
async fn the_request_log_has_the_route_template_and_user_but_never_the_token() {
    let capture = LogCapture::start();
    let mut mocks = Mocks::new();
    mocks.users.expect_find_by_id().returning(|id| Ok(Some(user(id, Role::Customer, 1))));
    let request = bearer(get(&format!("/v1/users/{}", customer_id())), CUSTOMER_TOKEN)
        .insert_header(("X-Request-Id", "log-test-1"));
    let reply = send(mocks, request).await;
    assert_eq!(reply.status, StatusCode::OK);

    let log = capture.finish();
    assert!(log.contains("/v1/users/{id}"), "route template: {log}");
    assert!(log.contains("log-test-1"), "request id: {log}");
    assert!(log.contains(&customer_id().to_string()), "user id: {log}");
    assert!(log.contains("\"http.status_code\":200") || log.contains("\"status\":200"), "status: {log}");
    assert!(!log.contains(CUSTOMER_TOKEN), "the token leaked: {log}");
}
