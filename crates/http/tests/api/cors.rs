//! CORS (off by default, an allow-list when configured), as a browser app would see it. The
//! routes answer over mocks of the use cases ([`UseCases`]) that expect nothing: no request
//! here reaches a use case.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;

use crate::support::*;

const APP_ORIGIN: &str = "https://shop.example";

fn with_cors(use_cases: UseCases) -> orderly_http::ApiState {
    let mut state = use_cases.into_state();
    state.settings.cors_origins = vec![APP_ORIGIN.to_owned(), "http://localhost:3000".to_owned()];
    state
}

async fn send_state(state: orderly_http::ApiState, request: actix_web::test::TestRequest) -> Reply {
    let service = test::init_service(orderly_http::app(state)).await;
    send_to(&service, request.to_request()).await
}

fn preflight(origin: &str, method: &str, headers: &str) -> actix_web::test::TestRequest {
    with_method(Method::OPTIONS, "/v1/orders")
        .insert_header((header::ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, method))
        .insert_header((header::ACCESS_CONTROL_REQUEST_HEADERS, headers))
}

#[actix_web::test]
async fn cors_is_off_by_default_no_header_and_options_is_405() {
    let reply = send_with(UseCases::new(), get("/healthz").insert_header((header::ORIGIN, APP_ORIGIN))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send_with(UseCases::new(), preflight(APP_ORIGIN, "POST", "authorization,content-type")).await;
    reply.problem(405, "method_not_allowed");
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[actix_web::test]
async fn an_allowed_origin_gets_a_preflight_answer_naming_methods_and_headers() {
    let reply = send_state(
        with_cors(UseCases::new()),
        preflight(APP_ORIGIN, "POST", "authorization,content-type,idempotency-key"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(APP_ORIGIN));
    let methods = reply.header(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap().to_owned();
    assert!(methods.contains("POST") && methods.contains("PATCH"), "{methods}");
    let allowed = reply.header(header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap().to_lowercase();
    for name in ["authorization", "content-type", "idempotency-key", "if-match"] {
        assert!(allowed.contains(name), "{name} missing from {allowed}");
    }
    assert_eq!(reply.header(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
    // Bearer tokens only: cookies are never invited.
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
}

#[actix_web::test]
async fn actual_requests_from_an_allowed_origin_expose_the_headers_clients_need() {
    let reply =
        send_state(with_cors(UseCases::new()), get("/v1/nothing-here").insert_header((header::ORIGIN, APP_ORIGIN)))
            .await;
    // Even a problem response is readable by the browser app.
    reply.problem(404, "not_found");
    assert_eq!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(APP_ORIGIN));
    let exposed = reply.header(header::ACCESS_CONTROL_EXPOSE_HEADERS).unwrap().to_lowercase();
    for name in ["etag", "location", "link", "ratelimit", "ratelimit-policy", "retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{name} missing from {exposed}");
    }
    assert!(reply.header(header::VARY).unwrap_or_default().to_lowercase().contains("origin"));
}

#[actix_web::test]
async fn another_origin_is_served_without_cors_headers_and_its_preflight_is_a_403_problem() {
    let reply =
        send_state(with_cors(UseCases::new()), get("/healthz").insert_header((header::ORIGIN, "https://evil.example")))
            .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send_state(with_cors(UseCases::new()), preflight("https://evil.example", "POST", "content-type")).await;
    let problem = reply.problem(403, "forbidden");
    assert!(problem["detail"].as_str().unwrap().contains("origin"), "{problem}");
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send_state(with_cors(UseCases::new()), preflight(APP_ORIGIN, "POST", "x-made-up")).await;
    reply.problem(403, "forbidden");
}

#[actix_web::test]
async fn requests_without_an_origin_are_untouched_by_cors() {
    let reply = send_state(with_cors(UseCases::new()), get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
