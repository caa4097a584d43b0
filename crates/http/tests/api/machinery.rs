//! The machinery every endpoint shares: unknown routes and methods, request ids, security
//! headers, body checks (415, 413, 400, 422), parameter checks, and store failures.
//!
//! Over mocks of the use cases ([`UseCases`]): a request refused before its handler reaches no
//! use case (a mock with no expectation would panic), and a use case's failure is rendered as
//! the contract says (503 for an unreachable store, a bare 500 for anything unexpected).

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::json;

use orderly_domain::ports::NotReady;
use orderly_domain::services::{GetUserError, MockUserUseCases, RegisterError};
use orderly_domain::user::Role;
use orderly_domain::{Actor, StoreError};

use crate::support::*;

#[actix_web::test]
async fn an_unknown_route_is_a_404_problem_with_the_request_id() {
    let reply = send_with(UseCases::new(), get("/v1/nothing-here")).await;
    let problem = reply.problem(404, "not_found");
    assert_eq!(problem["instance"], "/v1/nothing-here");
    assert!(problem.get("errors").is_none());
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_a_405_listing_the_allowed_ones() {
    let reply = send_with(UseCases::new(), with_method(Method::DELETE, "/v1/users")).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, POST"));

    let reply = send_with(UseCases::new(), with_method(Method::PUT, &format!("/v1/users/{}", other_id()))).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD, PATCH"));

    let reply = send_with(UseCases::new(), get("/v1/auth/tokens")).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("POST"));
}

#[actix_web::test]
async fn trace_connect_options_and_made_up_methods_are_405_too() {
    for method in [Method::TRACE, Method::CONNECT, Method::OPTIONS, Method::from_bytes(b"BREW").unwrap()] {
        let reply = send_with(UseCases::new(), with_method(method.clone(), "/v1/users/me")).await;
        reply.problem(405, "method_not_allowed");
        // `/v1/users/me` is its own resource: the methods of `/v1/users/{id}` are not its.
        assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"), "{method}");
    }
    let reply = send_with(UseCases::new(), with_method(Method::TRACE, "/healthz")).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
}

#[actix_web::test]
async fn patch_of_users_me_is_a_405_not_a_bad_user_id() {
    let reply = send_with(UseCases::new(), with_method(Method::PATCH, "/v1/users/me")).await;
    let problem = reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
    assert!(problem["detail"].as_str().unwrap().starts_with("PATCH"), "{problem}");
}

#[actix_web::test]
async fn head_is_answered_like_get() {
    let reply = send_with(UseCases::new(), with_method(Method::HEAD, "/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    // HEAD on a path with no GET is a 405 naming HEAD.
    let reply = send_with(UseCases::new(), with_method(Method::HEAD, "/v1/auth/logout")).await;
    let problem = reply.problem(405, "method_not_allowed");
    assert!(problem["detail"].as_str().unwrap().starts_with("HEAD"), "{problem}");
}

#[actix_web::test]
async fn a_valid_request_id_is_kept_and_an_invalid_one_replaced() {
    let reply = send_with(UseCases::new(), get("/healthz").insert_header(("X-Request-Id", "client-id_1.2"))).await;
    assert_eq!(reply.header("x-request-id"), Some("client-id_1.2"));

    for bad in ["has space", &"x".repeat(129), "semi;colon"] {
        let reply = send_with(UseCases::new(), get("/nowhere").insert_header(("X-Request-Id", bad))).await;
        let generated = reply.header("x-request-id").unwrap();
        assert_ne!(generated, bad);
        let uuid = uuid::Uuid::parse_str(generated).expect("a generated id is a UUID");
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(reply.problem(404, "not_found")["request_id"], generated);
    }
}

#[actix_web::test]
async fn every_response_carries_the_security_headers() {
    let app = test::init_service(orderly_http::app(UseCases::new().into_state())).await;
    for request in [get("/healthz"), get("/nowhere"), with_method(Method::TRACE, "/healthz"), get("/docs/")] {
        let reply = send_to(&app, request.to_request()).await;
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        let csp = reply.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(reply.header("x-request-id").is_some());
    }
    let api = send_to(&app, get("/healthz").to_request()).await;
    assert!(api.header("content-security-policy").unwrap().starts_with("default-src 'none'"));
    let docs = send_to(&app, get("/docs/").to_request()).await;
    assert!(docs.header("content-security-policy").unwrap().contains("script-src 'self'"));
}

#[actix_web::test]
async fn docs_and_the_document_are_served() {
    let app = test::init_service(orderly_http::app(UseCases::new().into_state())).await;
    let redirect = send_to(&app, get("/docs").to_request()).await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.header(header::LOCATION), Some("/docs/"));

    let page = send_to(&app, get("/docs/").to_request()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("swagger-ui"));
    assert!(!page.text().contains("://"), "no asset is loaded from another origin");

    let document = send_to(&app, get("/openapi.json").to_request()).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.json(), serde_json::to_value(orderly_http::openapi()).unwrap());

    let missing = send_to(&app, get("/docs/no-such-file.js").to_request()).await;
    missing.problem(404, "not_found");
}

// --- bodies -----------------------------------------------------------------------------------

const REGISTRATION: &str = r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}"#;

#[actix_web::test]
async fn a_body_with_the_wrong_or_no_content_type_is_415() {
    for content_type in
        [Some("text/plain"), Some("application/json; charset=latin1"), None, Some("application/merge-patch+json")]
    {
        let mut request = TestRequest::post().uri("/v1/users").set_payload(REGISTRATION);
        if let Some(content_type) = content_type {
            request = request.insert_header((header::CONTENT_TYPE, content_type));
        }
        send_with(UseCases::new(), request).await.problem(415, "unsupported_media_type");
    }
}

#[actix_web::test]
async fn json_with_a_utf8_charset_is_accepted() {
    let mut use_cases = UseCases::new();
    let mut registering = MockUserUseCases::new();
    registering
        .expect_register()
        .times(1)
        .withf(|email, name, password| {
            (email.as_str(), name.as_str(), password.expose()) == ("ada@example.com", "Ada", "correct horse battery")
        })
        .returning(|_, _, _| Ok(user(customer_id(), Role::Customer, 1)));
    users_within(&mut use_cases.users, registering);
    let request = TestRequest::post()
        .uri("/v1/users")
        .insert_header((header::CONTENT_TYPE, "application/json; charset=UTF-8"))
        .set_payload(REGISTRATION);
    assert_eq!(send_with(use_cases, request).await.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn a_body_over_64_kib_is_413_before_parsing() {
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(64 * 1024));
    send_with(UseCases::new(), json_request(Method::POST, "/v1/users", big.clone()))
        .await
        .problem(413, "payload_too_large");

    // The declared length lies (or the body is chunked): what arrives is counted.
    let lying = json_request(Method::POST, "/v1/users", big).insert_header((header::CONTENT_LENGTH, "10"));
    send_with(UseCases::new(), lying).await.problem(413, "payload_too_large");

    // Exactly 64 KiB is still read (and then judged on its content).
    let padding = 64 * 1024 - r#"{"name":""}"#.len();
    let at_limit = format!(r#"{{"name":"{}"}}"#, "x".repeat(padding));
    assert_eq!(at_limit.len(), 64 * 1024);
    send_with(UseCases::new(), json_request(Method::POST, "/v1/users", at_limit))
        .await
        .problem(422, "validation_failed");
}

#[actix_web::test]
async fn malformed_json_non_utf8_and_deep_nesting_are_400() {
    for body in [&b"{\"email\": "[..], b"not json", b"", b"{\"name\": \"\xff\xfe\"}", b"{\"a\":1}{\"b\":2}"] {
        send_with(UseCases::new(), json_request(Method::POST, "/v1/users", body.to_vec()))
            .await
            .problem(400, "malformed_json");
    }
    let deep = |levels: usize| format!(r#"{{"name":{}1{}}}"#, "[".repeat(levels - 1), "]".repeat(levels - 1));
    let too_deep = send_with(UseCases::new(), json_request(Method::POST, "/v1/users", deep(33))).await;
    assert!(too_deep.problem(400, "malformed_json")["detail"].as_str().unwrap().contains("32"));
    // 32 levels parse; the body is then judged on its shape.
    send_with(UseCases::new(), json_request(Method::POST, "/v1/users", deep(32)))
        .await
        .problem(422, "validation_failed");
}

#[actix_web::test]
async fn a_422_lists_every_fault_with_a_pointer() {
    let body = json!({"email": 5, "password": "pw-xyz", "role": "admin", "a/b~c": true, "is_admin": true});
    let reply = send_with(UseCases::new(), json_request(Method::POST, "/v1/users", body.to_string())).await;
    let problem = reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        vec![
            ("/a~1b~0c".to_owned(), "unknown_field".to_owned()),
            ("/email".to_owned(), "invalid_type".to_owned()),
            ("/is_admin".to_owned(), "unknown_field".to_owned()),
            ("/name".to_owned(), "required".to_owned()),
            ("/password".to_owned(), "too_short".to_owned()),
            ("/role".to_owned(), "unknown_field".to_owned()),
        ]
    );
    assert_eq!(problem["instance"], "/v1/users");
    assert!(!reply.text().contains("pw-xyz"), "messages never echo values: {}", reply.text());
}

#[actix_web::test]
async fn a_body_that_is_not_an_object_is_422_at_the_root() {
    let reply = send_with(UseCases::new(), json_request(Method::POST, "/v1/users", "[1,2]")).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), vec![(String::new(), "invalid_type".to_owned())]);
}

#[actix_web::test]
async fn nul_characters_are_a_validation_error_not_a_500() {
    let body = json!({"email": "ada\u{0}@example.com", "password": "correct horse\u{0}battery", "name": "A\u{0}da"});
    let reply = send_with(UseCases::new(), json_request(Method::POST, "/v1/users", body.to_string())).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        vec![
            ("/email".to_owned(), "invalid_format".to_owned()),
            ("/name".to_owned(), "invalid_characters".to_owned()),
            ("/password".to_owned(), "invalid_characters".to_owned()),
        ]
    );
}

// --- parameters -------------------------------------------------------------------------------

#[actix_web::test]
async fn a_path_id_that_is_not_a_uuid_is_400_naming_the_parameter() {
    let reply = send_with(UseCases::new(), bearer(get("/v1/users/not-a-uuid"), ADMIN_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), vec![("id".to_owned(), "invalid_format".to_owned())]);
}

#[actix_web::test]
async fn every_bad_query_parameter_is_listed() {
    let uri = "/v1/users?limit=0&sort=name&role=root&active=maybe&foo=1&cursor=AAAA";
    let reply = send_with(UseCases::new(), bearer(get(uri), ADMIN_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        vec![
            ("active".to_owned(), "invalid_value".to_owned()),
            ("foo".to_owned(), "unknown_parameter".to_owned()),
            ("limit".to_owned(), "out_of_range".to_owned()),
            ("role".to_owned(), "invalid_value".to_owned()),
            ("sort".to_owned(), "invalid_value".to_owned()),
        ]
    );
    for uri in ["/v1/users?limit=101", "/v1/users?limit=ten", "/v1/users?limit=5&limit=6", "/v1/users?cursor=%00%01"] {
        let reply = send_with(UseCases::new(), bearer(get(uri), ADMIN_TOKEN)).await;
        reply.problem(400, "invalid_parameter");
    }
}

#[actix_web::test]
async fn a_malformed_conditional_header_is_400_naming_it() {
    let request = bearer(get("/v1/users/me"), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "3"));
    let reply = send_with(UseCases::new(), request).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), vec![("If-None-Match".to_owned(), "invalid_format".to_owned())]);
}

// --- store failures ---------------------------------------------------------------------------

#[actix_web::test]
async fn an_unreachable_store_is_503_with_retry_after() {
    let mut use_cases = UseCases::new();
    use_cases
        .users
        .expect_me()
        .times(1)
        .withf(|actor| *actor == Actor { user_id: customer_id(), role: Role::Customer })
        .returning(|_| Err(GetUserError::Store(StoreError::Unavailable(anyhow::anyhow!("pool timed out after 30s")))));
    let reply = send_with(use_cases, bearer(get("/v1/users/me"), CUSTOMER_TOKEN)).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).unwrap().parse::<u32>().unwrap() > 0);
    assert!(!reply.text().contains("pool"), "{}", reply.text());
}

#[actix_web::test]
async fn an_unexpected_failure_is_a_bare_500() {
    let mut use_cases = UseCases::new();
    let mut registering = MockUserUseCases::new();
    registering.expect_register().times(1).returning(|_, _, _| {
        Err(RegisterError::Store(StoreError::Unexpected(
            anyhow::anyhow!("relation \"users\" does not exist").context("INSERT INTO users failed"),
        )))
    });
    users_within(&mut use_cases.users, registering);
    let capture = LogCapture::start();
    let request = json_request(Method::POST, "/v1/users", REGISTRATION).insert_header(("X-Request-Id", "fault-42"));
    let reply = send_with(use_cases, request).await;
    let log = capture.finish();
    let problem = reply.problem(500, "internal_error");
    for leak in ["relation", "INSERT", "anyhow", "StoreError"] {
        assert!(!reply.text().contains(leak), "{leak} leaked: {problem}");
    }
    // The log has what the body does not: the whole cause chain, under the request id.
    let logged = log.lines().find(|line| line.contains("\"ERROR\"") && line.contains("unexpected error")).expect(&log);
    assert!(logged.contains("INSERT INTO users failed: relation"), "{logged}");
    assert!(logged.contains("fault-42"), "{logged}");
    assert!(!log.contains("correct horse"), "the password leaked: {log}");
}

#[actix_web::test]
async fn a_panic_in_a_service_call_is_a_bare_500() {
    let mut use_cases = UseCases::new();
    use_cases.readiness.expect_check().returning(|| panic!("bug in an adapter"));
    let reply = send_with(use_cases, get("/readyz")).await;
    reply.problem(500, "internal_error");
    assert!(!reply.text().contains("bug"));
}

#[actix_web::test]
async fn readiness_reports_503_when_not_ready() {
    let mut use_cases = UseCases::new();
    use_cases.readiness.expect_check().returning(|| Err(NotReady::MigrationsPending { pending: 2 }));
    let reply = send_with(use_cases, get("/readyz")).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());

    let mut use_cases = UseCases::new();
    use_cases.readiness.expect_check().returning(|| Ok(()));
    let reply = send_with(use_cases, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ready"}));
}

#[actix_web::test]
async fn liveness_is_ok() {
    let reply = send_with(UseCases::new(), get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
}
