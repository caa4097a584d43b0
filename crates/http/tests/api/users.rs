//! `/v1/users`: registration, the caller, one user (404 and 403 rendered, ETag/304), the admin
//! collection (envelope, Link, cursors) and changes (merge patch, If-Match, field rules). Over
//! mocks of the use cases: who may see or change what is the domain's (`services::users` tests);
//! here, what the adapter passes the use case and renders from its answer.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use serde_json::json;

use orderly_domain::pagination::Page;
use orderly_domain::services::{GetUserError, MockUserUseCases, RegisterError, UpdateUserError, UserChanges};
use orderly_domain::user::{Email, Role, User, UserCursor, UserId, UserQuery, UserSort};
use orderly_domain::validation::FieldViolation;

use crate::support::*;

const REGISTRATION: &str = r#"{"email":"  Ada@Example.COM ","password":"correct horse battery","name":"Ada Lovelace"}"#;

/// Registration runs through `Idempotency-Key` handling, so on the use cases rebound to the unit
/// of work (`within`).
fn registering(result: Result<User, RegisterError>) -> UseCases {
    let mut rebound = MockUserUseCases::new();
    rebound
        .expect_register()
        .withf(|email, name, password| {
            email.as_str() == "ada@example.com"
                && name.as_str() == "Ada Lovelace"
                && password.expose() == "correct horse battery"
        })
        .times(1)
        .return_once(move |_, _, _| result);
    let mut use_cases = UseCases::new();
    users_within(&mut use_cases.users, rebound);
    use_cases
}

#[actix_web::test]
async fn registering_returns_201_with_location_and_the_user() {
    let registered = User { email: Email::parse("ada@example.com").unwrap(), ..user(other_id(), Role::Customer, 1) };
    let reply = send_with(registering(Ok(registered)), json_request(Method::POST, "/v1/users", REGISTRATION)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(id, other_id().to_string());
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
    let reply =
        send_with(registering(Err(RegisterError::EmailTaken)), json_request(Method::POST, "/v1/users", REGISTRATION))
            .await;
    reply.problem(409, "email_taken");
    assert_eq!(reply.faults(), vec![("/email".to_owned(), "taken".to_owned())]);
}

/// `me` and `get` find the user at `version`, whoever asks.
fn with_user(version: i64) -> UseCases {
    let mut use_cases = UseCases::new();
    use_cases.users.expect_me().returning(move |actor| Ok(user(actor.user_id, actor.role, version)));
    use_cases.users.expect_get().returning(move |_, id| Ok(user(id, Role::Customer, version)));
    use_cases
}

#[actix_web::test]
async fn the_caller_is_returned_with_an_etag_and_private_caching() {
    let reply = send_with(with_user(3), bearer(get("/v1/users/me"), CUSTOMER_TOKEN)).await;
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
        let reply = send_with(with_user(3), request).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"3\""));
    }
    let request = bearer(get(&format!("/v1/users/{}", customer_id())), CUSTOMER_TOKEN)
        .insert_header((header::IF_NONE_MATCH, "\"2\""));
    let reply = send_with(with_user(3), request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::ETAG), Some("\"3\""));
}

/// Who may see whom is the domain's (`users` tests: someone else is not found, never
/// forbidden); the adapter passes the caller and the path's id, and renders the verdict.
#[actix_web::test]
async fn a_user_the_caller_may_not_see_is_404_and_one_it_may_is_200() {
    let mut use_cases = UseCases::new();
    use_cases
        .users
        .expect_get()
        .withf(|actor, id| actor.user_id == customer_id() && actor.role == Role::Customer && *id == other_id())
        .times(1)
        .returning(|_, _| Err(GetUserError::NotFound));
    let reply = send_with(use_cases, bearer(get(&format!("/v1/users/{}", other_id())), CUSTOMER_TOKEN)).await;
    assert_eq!(reply.problem(404, "not_found")["detail"], "no such user");

    let mut use_cases = UseCases::new();
    use_cases
        .users
        .expect_get()
        .withf(|actor, id| actor.user_id == admin_id() && actor.role == Role::Admin && *id == other_id())
        .times(1)
        .returning(|_, id| Ok(user(id, Role::Customer, 1)));
    let reply = send_with(use_cases, bearer(get(&format!("/v1/users/{}", other_id())), ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id"], other_id().to_string());
}

/// Listing users is an admin-only operation: refused before the query is read, and before the
/// use case is asked (the mock expects no call).
#[actix_web::test]
async fn listing_users_is_403_for_a_customer_before_the_use_case() {
    let reply = send_with(UseCases::new(), bearer(get("/v1/users?limit=0"), CUSTOMER_TOKEN)).await;
    reply.problem(403, "forbidden");
    assert!(reply.faults().is_empty(), "a caller who may not list learns nothing from the validation");
}

fn numbered_user(n: u128) -> User {
    let id = UserId::from_uuid(uuid::Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0100 + n));
    User { created_at: at(1_795_457_045_000_000 + n as i64 * 1000), ..user(id, Role::Customer, 1) }
}

#[actix_web::test]
async fn pages_carry_the_envelope_a_link_and_a_cursor_that_continues_after_the_last_item() {
    let seen: Arc<Mutex<Vec<UserQuery>>> = Arc::default();
    let mut use_cases = UseCases::new();
    let recorder = seen.clone();
    use_cases.users.expect_list().returning(move |_, query| {
        recorder.lock().unwrap().push(query.clone());
        Ok(if query.after.is_none() {
            Page { items: (1..=2).map(numbered_user).collect(), has_more: true }
        } else {
            Page { items: vec![numbered_user(4)], has_more: false }
        })
    });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;

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
    let mut use_cases = UseCases::new();
    use_cases.users.expect_list().returning(|_, _| Ok(Page { items: vec![numbered_user(1)], has_more: true }));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
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

/// An update answering `result`, expecting the caller, the path's id and the `If-Match` version
/// `expected` (`None`: no `If-Match`), and changes that pass `changes_are`.
fn updating(
    actor_id: UserId,
    id: UserId,
    expected: Option<i64>,
    changes_are: impl Fn(&UserChanges) -> bool + Send + 'static,
    result: Result<User, UpdateUserError>,
) -> UseCases {
    let mut use_cases = UseCases::new();
    use_cases
        .users
        .expect_update()
        .withf(move |actor, given_id, changes, version| {
            actor.user_id == actor_id && *given_id == id && changes_are(changes) && *version == expected
        })
        .times(1)
        .return_once(move |_, _, _, _| result);
    use_cases
}

/// Which fields a role may change is the domain's (`users` tests); the adapter passes what the
/// body asked for and renders the refusal with one entry per field.
#[actix_web::test]
async fn a_refused_field_change_is_403_naming_each_field() {
    let asked_role_and_active =
        |changes: &UserChanges| changes.role == Some(Role::Admin) && changes.active == Some(true);
    let refusal = UpdateUserError::Forbidden(vec!["active", "role"]);
    let use_cases = updating(customer_id(), customer_id(), None, asked_role_and_active, Err(refusal));
    let reply = send_with(use_cases, patch(customer_id(), CUSTOMER_TOKEN, r#"{"role":"admin","active":true}"#)).await;
    reply.problem(403, "forbidden");
    assert_eq!(
        reply.faults(),
        vec![("/active".to_owned(), "forbidden".to_owned()), ("/role".to_owned(), "forbidden".to_owned())]
    );
}

#[actix_web::test]
async fn a_user_the_caller_may_not_change_is_404() {
    let named_eve = |changes: &UserChanges| changes.name.as_ref().is_some_and(|name| name.as_str() == "Eve");
    let use_cases = updating(customer_id(), other_id(), None, named_eve, Err(UpdateUserError::NotFound));
    send_with(use_cases, patch(other_id(), CUSTOMER_TOKEN, r#"{"name":"Eve"}"#)).await.problem(404, "not_found");
}

#[actix_web::test]
async fn a_stale_if_match_is_412() {
    let use_cases = updating(customer_id(), customer_id(), Some(2), |_| true, Err(UpdateUserError::VersionMismatch));
    let request =
        patch(customer_id(), CUSTOMER_TOKEN, r#"{"name":"Ada King"}"#).insert_header((header::IF_MATCH, "\"2\""));
    send_with(use_cases, request).await.problem(412, "precondition_failed");
}

#[actix_web::test]
async fn a_merge_patch_returns_the_user_and_its_new_etag() {
    let renamed = |changes: &UserChanges| {
        changes.name.as_ref().is_some_and(|name| name.as_str() == "Ada King")
            && changes.password.is_none()
            && changes.role.is_none()
            && changes.active.is_none()
    };
    let use_cases = updating(customer_id(), customer_id(), None, renamed, Ok(user(customer_id(), Role::Customer, 4)));
    let request = patch(customer_id(), CUSTOMER_TOKEN, r#"{"name":" Ada King "}"#)
        .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"));
    let reply = send_with(use_cases, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::ETAG), Some("\"4\""));
}

/// Whether a new password needs the current one depends on who changes whose (the domain's
/// rule); its verdict joins the 422 at the member's pointer.
#[actix_web::test]
async fn the_domains_field_verdicts_are_422_at_their_pointers() {
    let new_password = |changes: &UserChanges| {
        changes.password.as_ref().is_some_and(|password| password.expose() == "a brand new passphrase")
            && changes.current_password.is_none()
    };
    let violation = FieldViolation::new("current_password", "required", "is needed to change the password");
    let use_cases =
        updating(customer_id(), customer_id(), None, new_password, Err(UpdateUserError::Invalid(vec![violation])));
    let reply =
        send_with(use_cases, patch(customer_id(), CUSTOMER_TOKEN, r#"{"password":"a brand new passphrase"}"#)).await;
    let problem = reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), vec![("/current_password".to_owned(), "required".to_owned())]);
    assert_eq!(problem["errors"][0]["message"], "is needed to change the password");
}

#[actix_web::test]
async fn a_patch_with_null_unknown_or_mistyped_fields_is_422_listing_them_all() {
    let body = r#"{"name":null,"active":"yes","email":"x@example.com","password":"short"}"#;
    let reply = send_with(UseCases::new(), patch(customer_id(), CUSTOMER_TOKEN, body)).await;
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
