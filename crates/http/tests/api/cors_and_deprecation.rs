//! CORS (off by default, an allow-list when configured) and the deprecation mechanism
//! (`Deprecation`/`Sunset` headers plus `deprecated: true` in the document), as a browser app
//! and a consumer reading headers would see them.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use orderly_http::deprecation::Deprecation;

use crate::support::*;

const APP_ORIGIN: &str = "https://shop.example";

fn with_cors(mocks: Mocks) -> orderly_http::ApiState {
    let mut state = mocks.into_state();
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
    let reply = send(Mocks::new(), get("/healthz").insert_header((header::ORIGIN, APP_ORIGIN))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send(Mocks::new(), preflight(APP_ORIGIN, "POST", "authorization,content-type")).await;
    reply.problem(405, "method_not_allowed");
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[actix_web::test]
async fn an_allowed_origin_gets_a_preflight_answer_naming_methods_and_headers() {
    let reply = send_state(
        with_cors(Mocks::new()),
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
        send_state(with_cors(Mocks::new()), get("/v1/nothing-here").insert_header((header::ORIGIN, APP_ORIGIN))).await;
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
        send_state(with_cors(Mocks::new()), get("/healthz").insert_header((header::ORIGIN, "https://evil.example")))
            .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send_state(with_cors(Mocks::new()), preflight("https://evil.example", "POST", "content-type")).await;
    let problem = reply.problem(403, "forbidden");
    assert!(problem["detail"].as_str().unwrap().contains("origin"), "{problem}");
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let reply = send_state(with_cors(Mocks::new()), preflight(APP_ORIGIN, "POST", "x-made-up")).await;
    reply.problem(403, "forbidden");
}

#[actix_web::test]
async fn requests_without_an_origin_are_untouched_by_cors() {
    let reply = send_state(with_cors(Mocks::new()), get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

static DEPRECATED_GET_USER: &[Deprecation] = &[Deprecation {
    method: "GET",
    path: "/v1/users/{id}",
    deprecated_at: 1_798_761_600,
    sunset_at: Some(1_814_400_000),
    successor: Some("/v1/users/me"),
    notice: None,
}];

#[actix_web::test]
async fn a_deprecated_operation_announces_it_on_every_response_errors_included() {
    let service = test::init_service(orderly_http::app_with(Mocks::new().into_state(), DEPRECATED_GET_USER)).await;

    // Unauthenticated: still a response of the deprecated operation.
    let reply = send_to(&service, get(&format!("/v1/users/{}", other_id())).to_request()).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header("deprecation"), Some("@1798761600"));
    assert_eq!(reply.header("sunset"), Some("Thu, 01 Jul 2027 00:00:00 GMT"));
    assert_eq!(reply.header(header::LINK), Some("</v1/users/me>; rel=\"successor-version\""));

    // Other operations, and other methods on the same path, say nothing.
    for request in [get("/v1/users/me"), with_method(Method::PATCH, &format!("/v1/users/{}", other_id()))] {
        let reply = send_to(&service, request.to_request()).await;
        assert!(reply.header("deprecation").is_none());
        assert!(reply.header("sunset").is_none());
    }
}

#[actix_web::test]
async fn a_deprecated_operation_is_marked_in_the_served_document() {
    let service = test::init_service(orderly_http::app_with(Mocks::new().into_state(), DEPRECATED_GET_USER)).await;
    let document = send_to(&service, get("/openapi.json").to_request()).await.json();

    let get_user = &document["paths"]["/v1/users/{id}"]["get"];
    assert_eq!(get_user["deprecated"], true);
    assert!(get_user["description"].as_str().unwrap().starts_with("**Deprecated** since 2027-01-01."), "{get_user}");
    assert!(document["paths"]["/v1/users/{id}"]["patch"].get("deprecated").is_none());

    let marked_in = |document: &serde_json::Value| {
        document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter(|operation| operation.get("deprecated").is_some())
            .count()
    };
    assert_eq!(marked_in(&document), 1);
    // The published document (no deprecations yet) marks nothing.
    let published = serde_json::to_value(orderly_http::openapi()).unwrap();
    assert_eq!(marked_in(&published), 0);
}
