//! Who is calling: bearer tokens (401 variants), logging in, refreshing, logging out, and
//! what the request log says (and does not say) about it. Over mocks of the use cases: what a
//! login or refresh decides is the domain's (`services::sessions` tests); here, what the adapter
//! passes it and renders from each answer.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use orderly_domain::auth::{AccessToken, RefreshTokenSecret, TokenPair};
use orderly_domain::services::{LoginError, RefreshError};
use orderly_domain::user::Role;

use crate::support::*;

#[actix_web::test]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let reply = send_with(UseCases::new(), get("/v1/users/me")).await;
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
        let reply = send_with(UseCases::new(), request).await;
        reply.problem(401, "unauthenticated");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
    }
}

#[actix_web::test]
async fn authentication_comes_before_the_body_is_read() {
    let request = json_request(Method::PATCH, &format!("/v1/users/{}", customer_id()), "not json");
    send_with(UseCases::new(), request).await.problem(401, "unauthenticated");
}

fn token_pair() -> TokenPair {
    TokenPair {
        access: AccessToken { token: "access.jwt".into(), expires_in_seconds: 900 },
        refresh: RefreshTokenSecret::new("refresh-secret".into()),
        refresh_expires_in_seconds: 2_592_000,
    }
}

const CREDENTIALS: &str = r#"{"email":"ada@example.com","password":"correct horse battery"}"#;

#[actix_web::test]
async fn logging_in_returns_a_token_pair_that_is_never_cached() {
    let mut use_cases = UseCases::new();
    use_cases
        .sessions
        .expect_login()
        .withf(|email, password| email == "ada@example.com" && password == "correct horse battery")
        .times(1)
        .returning(|_, _| Ok(token_pair()));
    let reply = send_with(use_cases, json_request(Method::POST, "/v1/auth/tokens", CREDENTIALS)).await;
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

/// Unknown email, wrong password and deactivated account are one refusal in the domain
/// (`sessions` tests); here: it is one 401, and a malformed address is not told apart either.
#[actix_web::test]
async fn a_refused_login_is_401_invalid_credentials_whatever_the_email_looks_like() {
    for email in ["ada@example.com", "not an address"] {
        let mut use_cases = UseCases::new();
        use_cases
            .sessions
            .expect_login()
            .withf(move |given, _| given == email)
            .times(1)
            .returning(|_, _| Err(LoginError::InvalidCredentials));
        let body = json!({"email": email, "password": "correct horse battery"}).to_string();
        let reply = send_with(use_cases, json_request(Method::POST, "/v1/auth/tokens", body)).await;
        let problem = reply.problem(401, "invalid_credentials");
        assert_eq!(problem["detail"], "invalid email or password");
        assert!(reply.header(header::WWW_AUTHENTICATE).is_none(), "a failed login is not a bearer challenge");
    }
}

#[actix_web::test]
async fn a_login_without_fields_is_422_listing_both() {
    let reply = send_with(UseCases::new(), json_request(Method::POST, "/v1/auth/tokens", "{}")).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        vec![("/email".to_owned(), "required".to_owned()), ("/password".to_owned(), "required".to_owned())]
    );
}

#[actix_web::test]
async fn refreshing_returns_the_new_pair() {
    let mut use_cases = UseCases::new();
    use_cases
        .sessions
        .expect_refresh()
        .withf(|presented| presented == "current")
        .times(1)
        .returning(|_| Ok(token_pair()));
    let reply =
        send_with(use_cases, json_request(Method::POST, "/v1/auth/refresh", r#"{"refresh_token":"current"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["refresh_token"], "refresh-secret");
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
}

/// A spent token (its family revoked by the domain) and an unknown one answer alike.
#[actix_web::test]
async fn refreshing_with_a_spent_or_unknown_token_is_401_invalid_token() {
    let refusals = [RefreshError::ReuseDetected { family_id: Uuid::now_v7() }, RefreshError::InvalidToken];
    for refusal in refusals {
        let mut use_cases = UseCases::new();
        use_cases.sessions.expect_refresh().withf(|presented| presented == "old").return_once(move |_| Err(refusal));
        let request = json_request(Method::POST, "/v1/auth/refresh", r#"{"refresh_token":"old"}"#);
        let reply = send_with(use_cases, request).await;
        let problem = reply.problem(401, "unauthenticated");
        assert_eq!(problem["detail"], "the refresh token is not valid; log in again");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer error=\"invalid_token\""));
    }
}

#[actix_web::test]
async fn logging_out_is_204_whether_or_not_the_token_named_a_session() {
    for ended in [Some(customer_id()), None] {
        let mut use_cases = UseCases::new();
        use_cases
            .sessions
            .expect_logout()
            .withf(|presented| presented == "current")
            .times(1)
            .returning(move |_| Ok(ended));
        let request = json_request(Method::POST, "/v1/auth/logout", r#"{"refresh_token":"current"}"#);
        let reply = send_with(use_cases, request).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert!(reply.body.is_empty());
    }
}

#[actix_web::test]
async fn the_request_log_has_the_route_template_and_user_but_never_the_token() {
    let capture = LogCapture::start();
    let mut use_cases = UseCases::new();
    use_cases.users.expect_get().returning(|_, id| Ok(user(id, Role::Customer, 1)));
    let request = bearer(get(&format!("/v1/users/{}", customer_id())), CUSTOMER_TOKEN)
        .insert_header(("X-Request-Id", "log-test-1"));
    let reply = send_with(use_cases, request).await;
    assert_eq!(reply.status, StatusCode::OK);

    let log = capture.finish();
    assert!(log.contains("/v1/users/{id}"), "route template: {log}");
    assert!(log.contains("log-test-1"), "request id: {log}");
    assert!(log.contains(&customer_id().to_string()), "user id: {log}");
    assert!(log.contains("\"http.status_code\":200") || log.contains("\"status\":200"), "status: {log}");
    assert!(!log.contains(CUSTOMER_TOKEN), "the token leaked: {log}");
}
