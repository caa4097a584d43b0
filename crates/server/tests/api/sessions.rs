//! Logging in, refreshing with rotation and reuse detection, logging out
//! (docs/api.md#authentication-and-authorisation, docs/api.md#users-and-tokens).

use awc::http::StatusCode;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::PASSWORD;

/// A problem body without the parts that differ per request.
fn comparable(mut problem: Value) -> Value {
    let object = problem.as_object_mut().unwrap();
    object.remove("request_id");
    problem
}

on_both_backends! {
    async fn login_answers_a_token_pair_that_is_never_cached(app) {
        app.register("ada@example.com", "Ada").await;
        let reply = app.login("ADA@example.com ", PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
        let tokens = reply.json();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        assert_eq!(tokens["refresh_expires_in"], 2_592_000);
        assert_eq!(tokens["access_token"].as_str().unwrap().split('.').count(), 3);
        assert!(tokens["refresh_token"].as_str().unwrap().len() >= 32);
    }

    async fn a_failed_login_does_not_reveal_whether_the_email_exists(app) {
        app.register("ada@example.com", "Ada").await;
        let wrong_password = app.login("ada@example.com", "not the password").await.problem(401, "invalid_credentials");
        let unknown_email = app.login("nobody@example.com", "not the password").await.problem(401, "invalid_credentials");
        let malformed_email = app.login("not-an-email", "not the password").await.problem(401, "invalid_credentials");
        assert_eq!(comparable(wrong_password.clone()), comparable(unknown_email));
        assert_eq!(comparable(wrong_password), comparable(malformed_email));
    }

    async fn refresh_rotates_and_a_replayed_token_revokes_the_family(app) {
        let ada = app.customer("ada@example.com").await;
        let rotated = app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await;
        assert_eq!(rotated.status, StatusCode::OK);
        assert_eq!(rotated.header("cache-control").as_deref(), Some("no-store"));
        let pair = rotated.json();
        let second = pair["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, ada.refresh_token);
        let access = pair["access_token"].as_str().unwrap();
        assert_eq!(app.get("/v1/users/me", Some(access)).await.status, StatusCode::OK);

        // The spent token comes back (stolen, or replayed): the whole family is revoked...
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await.problem(401, "unauthenticated");
        // ...so even the legitimate latest token no longer works.
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": second})).await.problem(401, "unauthenticated");
        // Other sessions (families) of the same user are unaffected.
        let other = app.session("ada@example.com", PASSWORD).await;
        let fresh = app.post("/v1/auth/refresh", None, &json!({"refresh_token": other.refresh_token})).await;
        assert_eq!(fresh.status, StatusCode::OK);
    }

    async fn refresh_rotates_and_a_token_replayed_after_its_successor_was_used_revokes_the_family(app) {
        let ada = app.customer("ada@example.com").await;
        let rotated = app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await;
        assert_eq!(rotated.status, StatusCode::OK);
        assert_eq!(rotated.header("cache-control").as_deref(), Some("no-store"));
        let pair = rotated.json();
        let second = pair["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second, ada.refresh_token);
        let access = pair["access_token"].as_str().unwrap();
        assert_eq!(app.get("/v1/users/me", Some(access)).await.status, StatusCode::OK);

        // The successor is used, which ends the reuse leeway of the token it replaced (ADR 0015).
        let rotated_again = app.post("/v1/auth/refresh", None, &json!({"refresh_token": second})).await;
        assert_eq!(rotated_again.status, StatusCode::OK);
        let third = rotated_again.json()["refresh_token"].as_str().unwrap().to_owned();

        // The first token comes back (stolen, or replayed): the whole family is revoked...
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await.problem(401, "unauthenticated");
        // ...so even the legitimate latest token no longer works.
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": third})).await.problem(401, "unauthenticated");
        // Other sessions (families) of the same user are unaffected.
        let other = app.session("ada@example.com", PASSWORD).await;
        let fresh = app.post("/v1/auth/refresh", None, &json!({"refresh_token": other.refresh_token})).await;
        assert_eq!(fresh.status, StatusCode::OK);
    }

    async fn logout_revokes_the_family_and_is_idempotent(app) {
        let ada = app.customer("ada@example.com").await;
        let reply = app.post("/v1/auth/logout", None, &json!({"refresh_token": ada.refresh_token})).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert!(reply.body.is_empty());
        app.post("/v1/auth/refresh", None, &json!({"refresh_token": ada.refresh_token})).await.problem(401, "unauthenticated");
        let again = app.post("/v1/auth/logout", None, &json!({"refresh_token": ada.refresh_token})).await;
        assert_eq!(again.status, StatusCode::NO_CONTENT);
        let unknown = app.post("/v1/auth/logout", None, &json!({"refresh_token": "never-issued"})).await;
        assert_eq!(unknown.status, StatusCode::NO_CONTENT);
    }

    async fn bad_access_tokens_are_refused_with_a_bearer_challenge(app) {
        let missing = app.get("/v1/users/me", None).await;
        missing.problem(401, "unauthenticated");
        assert_eq!(missing.header("www-authenticate").as_deref(), Some("Bearer"));

        let ada = app.customer("ada@example.com").await;
        let mut tampered = ada.access_token.clone();
        tampered.pop();
        tampered.push(if ada.access_token.ends_with('A') { 'B' } else { 'A' });
        for token in [tampered.as_str(), "not-a-jwt", ada.refresh_token.as_str()] {
            let reply = app.get("/v1/users/me", Some(token)).await;
            reply.problem(401, "unauthenticated");
            assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer error=\"invalid_token\""));
        }
    }

    async fn login_bodies_are_validated_like_any_other(app) {
        let reply = app.post("/v1/auth/tokens", None, &json!({"email": "ada@example.com"})).await;
        let problem = reply.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["pointer"], "/password");
        let extra = app.post("/v1/auth/tokens", None, &json!({"email": "a@example.com", "password": "x", "otp": 1})).await;
        assert_eq!(extra.problem(422, "validation_failed")["errors"][0]["pointer"], "/otp");
    }
}
