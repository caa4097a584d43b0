//! `/v1/users`: registration, the caller, one user (403 vs 404 rules, ETag/304), the admin
//! collection (envelope, Link, cursors) and changes (merge patch, If-Match, field rules).

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use serde_json::json;

use orderly_domain::ports::{InsertUserError, UpdateError};
use orderly_domain::user::{PasswordHash, Role, User, UserCursor, UserId, UserQuery, UserSort};

use crate::support::*;

const REGISTRATION: &str = r#"{"email":"  Ada@Example.COM ","password":"correct horse battery","name":"Ada Lovelace"}"#;

#[actix_web::test]
async fn registering_returns_201_with_location_and_the_user() {
    let mut mocks = Mocks::new();
    mocks.hasher.expect_hash().returning(|_| Ok(PasswordHash::new("phc".into())));
    mocks
        .users
        .expect_insert()
        .withf(|new, _| new.email.as_str() == "ada@example.com" && new.role == Role::Customer)
        .returning(|new, _| Ok(User { email: new.email.clone(), ..user(new.id, Role::Customer, 1) }));
    let reply = send(mocks, json_request(Method::POST, "/v1/users", REGISTRATION)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(reply.header(header::LOCATION), Some(format!("/v1/users/{id}").as_str()));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["active", "created_at", "email", "id", "name", "role", "updated_at"]);
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["role"], "customer");
    assert_eq!(body["created_at"], "2026-11-23T18:04:05.123Z");
    assert_eq!(body["updated_at"], "2026-11-23T18:04:06.000Z");
}

#[actix_web::test]
async fn registering_a_taken_email_is_409() {
    let mut mocks = Mocks::new();
    mocks.hasher.expect_hash().returning(|_| Ok(PasswordHash::new("phc".into())));
    mocks.users.expect_insert().returning(|_, _| Err(InsertUserError::EmailTaken));
    let reply = send(mocks, json_request(Method::POST, "/v1/users", REGISTRATION)).await;
    reply.problem(409, "email_taken");
    assert_eq!(reply.faults(), vec![("/email".to_owned(), "taken".to_owned())]);
}

fn with_user(mut mocks: Mocks, version: i64) -> Mocks {
    mocks.users.expect_find_by_id().returning(move |id| {
        let role = if id == admin_id() { Role::Admin } else { Role::Customer };
        Ok(Some(user(id, role, version)))
    });
    mocks
}

#[actix_web::test]
async fn the_caller_is_returned_with_an_etag_and_private_caching() {
    let reply = send(with_user(Mocks::new(), 3), bearer(get("/v1/users/me"), CUSTOMER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id"], customer_id().to_string());
    assert_eq!(reply.header(header::ETAG), Some("\"3\""));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
    assert_eq!(reply.header(header::VARY), Some("Authorization"));
}

#[actix_web::test]
async fn a_current_if_none_match_is_304_without_a_body() {
    for tag in ["\"3\"", "W/\"3\"", "\"1\", \"3\"", "*"] {
        let request = bearer(get("/v1/users/me"), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, tag));
        let reply = send(with_user(Mocks::new(), 3), request).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"3\""));
    }
    let request = bearer(get(&format!("/v1/users/{}", customer_id())), CUSTOMER_TOKEN)
        .insert_header((header::IF_NONE_MATCH, "\"2\""));
    let reply = send(with_user(Mocks::new(), 3), request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::ETAG), Some("\"3\""));
}

#[actix_web::test]
async fn someone_elses_user_is_404_for_a_customer_and_visible_to_an_admin() {
    // No repository expectation for the customer: the domain refuses before looking.
    let reply = send(Mocks::new(), bearer(get(&format!("/v1/users/{}", other_id())), CUSTOMER_TOKEN)).await;
    reply.problem(404, "not_found");

    let reply = send(with_user(Mocks::new(), 1), bearer(get(&format!("/v1/users/{}", other_id())), ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id"], other_id().to_string());
}

#[actix_web::test]
async fn listing_users_is_403_for_a_customer() {
    let reply = send(Mocks::new(), bearer(get("/v1/users"), CUSTOMER_TOKEN)).await;
    reply.problem(403, "forbidden");
}

fn numbered_user(n: u128) -> User {
    let id = UserId::from_uuid(uuid::Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0100 + n));
    User { created_at: at(1_795_457_045_000_000 + n as i64 * 1000), ..user(id, Role::Customer, 1) }
}

#[actix_web::test]
async fn pages_carry_the_envelope_a_link_and_a_cursor_that_continues_after_the_last_item() {
    let seen: Arc<Mutex<Vec<UserQuery>>> = Arc::default();
    let mut mocks = Mocks::new();
    let recorder = seen.clone();
    mocks.users.expect_list().returning(move |query| {
        recorder.lock().unwrap().push(query.clone());
        // One more than the limit: there is another page.
        Ok(if query.after.is_none() { (1..=3).map(numbered_user).collect() } else { vec![numbered_user(4)] })
    });
    let app = test::init_service(orderly_http::app(mocks.into_state())).await;

    let first =
        send_to(&app, bearer(get("/v1/users?role=customer&limit=2&sort=-created_at"), ADMIN_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header(header::CACHE_CONTROL), Some("private, no-cache"));
    let body = first.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["page"]["limit"], 2);
    assert_eq!(body["page"]["has_more"], true);
    let cursor = body["page"]["next_cursor"].as_str().unwrap().to_owned();
    let link = first.header(header::LINK).unwrap();
    assert_eq!(
        link,
        format!(
            "<http://localhost:8080/v1/users?role=customer&limit=2&sort=-created_at&cursor={cursor}>; rel=\"next\""
        )
    );

    let next = format!("/v1/users?role=customer&limit=2&sort=-created_at&cursor={cursor}");
    let second = send_to(&app, bearer(get(&next), ADMIN_TOKEN).to_request()).await;
    let body = second.json();
    assert_eq!(body["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
    assert!(second.header(header::LINK).is_none());

    let queries = seen.lock().unwrap();
    assert_eq!(queries[0].role, Some(Role::Customer));
    assert_eq!(queries[0].sort, UserSort::CreatedAtDescending);
    assert_eq!(queries[0].limit.get(), 2);
    let last = numbered_user(2);
    assert_eq!(queries[1].after, Some(UserCursor { created_at: last.created_at, id: last.id }));
}

#[actix_web::test]
async fn a_cursor_is_refused_with_another_sort_or_when_tampered() {
    let mut mocks = Mocks::new();
    mocks.users.expect_list().returning(|_| Ok((1..=2).map(numbered_user).collect()));
    let app = test::init_service(orderly_http::app(mocks.into_state())).await;
    let first = send_to(&app, bearer(get("/v1/users?limit=1"), ADMIN_TOKEN).to_request()).await;
    let cursor = first.json()["page"]["next_cursor"].as_str().unwrap().to_owned();

    let cross_sort =
        send_to(&app, bearer(get(&format!("/v1/users?sort=-created_at&cursor={cursor}")), ADMIN_TOKEN).to_request())
            .await;
    cross_sort.problem(400, "invalid_parameter");
    assert_eq!(cross_sort.faults(), vec![("cursor".to_owned(), "sort_mismatch".to_owned())]);

    let mut tampered = cursor.into_bytes();
    tampered[5] = if tampered[5] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "eyJpZCI6MX0", "%%%"] {
        let reply = send_to(&app, bearer(get(&format!("/v1/users?cursor={bad}")), ADMIN_TOKEN).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), vec![("cursor".to_owned(), "invalid_cursor".to_owned())], "{bad}");
    }
}

fn patch(id: UserId, token: &str, body: &str) -> actix_web::test::TestRequest {
    bearer(json_request(Method::PATCH, &format!("/v1/users/{id}"), body.to_owned()), token)
}

#[actix_web::test]
async fn a_customer_changing_their_role_is_403() {
    let reply = send(Mocks::new(), patch(customer_id(), CUSTOMER_TOKEN, r#"{"role":"admin","active":true}"#)).await;
    reply.problem(403, "forbidden");
    assert_eq!(
        reply.faults(),
        vec![("/active".to_owned(), "forbidden".to_owned()), ("/role".to_owned(), "forbidden".to_owned())]
    );
}

#[actix_web::test]
async fn a_customer_changing_someone_else_is_404() {
    send(Mocks::new(), patch(other_id(), CUSTOMER_TOKEN, r#"{"name":"Eve"}"#)).await.problem(404, "not_found");
}

#[actix_web::test]
async fn a_stale_if_match_is_412() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_update()
        .withf(|_, _, expected, _| *expected == Some(2))
        .returning(|_, _, _, _| Err(UpdateError::VersionMismatch));
    let request =
        patch(customer_id(), CUSTOMER_TOKEN, r#"{"name":"Ada King"}"#).insert_header((header::IF_MATCH, "\"2\""));
    send(mocks, request).await.problem(412, "precondition_failed");
}

#[actix_web::test]
async fn a_merge_patch_returns_the_user_and_its_new_etag() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_update()
        .withf(|_, update, expected, _| {
            update.name.as_ref().is_some_and(|n| n.as_str() == "Ada King") && expected.is_none()
        })
        .returning(|id, _, _, _| Ok(user(id, Role::Customer, 4)));
    let request = patch(customer_id(), CUSTOMER_TOKEN, r#"{"name":" Ada King "}"#)
        .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"));
    let reply = send(mocks, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::ETAG), Some("\"4\""));
}

#[actix_web::test]
async fn changing_the_password_without_the_current_one_is_422_at_current_password() {
    let reply =
        send(Mocks::new(), patch(customer_id(), CUSTOMER_TOKEN, r#"{"password":"a brand new passphrase"}"#)).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), vec![("/current_password".to_owned(), "required".to_owned())]);
}

#[actix_web::test]
async fn a_patch_with_null_unknown_or_mistyped_fields_is_422_listing_them_all() {
    let body = r#"{"name":null,"active":"yes","email":"x@example.com","password":"short"}"#;
    let reply = send(Mocks::new(), patch(customer_id(), CUSTOMER_TOKEN, body)).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        vec![
            ("/active".to_owned(), "invalid_type".to_owned()),
            ("/email".to_owned(), "unknown_field".to_owned()),
            ("/name".to_owned(), "invalid_type".to_owned()),
            ("/password".to_owned(), "too_short".to_owned()),
        ]
    );
}
