//! The order of checks (docs/api.md#authentication-and-authorisation): authentication (401), then
//! authorisation (403 for an operation the caller's role may never perform), then validation (400,
//! 413, 415, 422, 428). For every admin-only operation, a request that is wrong in some other way
//! too is refused:
//!
//! - without a token, 401 `unauthenticated`;
//! - from a customer, 403 `forbidden` — never the validation error, which would tell them
//!   about an operation they may not use;
//! - from an admin, the validation error.
//!
//! None of these requests reaches a use case: they run against mocks of the use cases
//! (`support::UseCases`) with no expectation set, so a use case called would fail the test.

use actix_web::http::Method;
use actix_web::test::{self, TestRequest};

use crate::support::*;

const PRODUCT: &str = "/v1/products/0192f5c2-0000-7000-8000-0000000000f1";
const ENDPOINT: &str = "/v1/webhook-endpoints/0192f5c2-0000-7000-8000-0000000000b1";

/// One admin-only request with something else wrong, and what an admin gets for it.
struct Case {
    what: &'static str,
    request: fn() -> TestRequest,
    admin_status: u16,
    admin_code: &'static str,
}

fn json(method: Method, uri: &str, body: &str) -> TestRequest {
    json_request(method, uri, body.to_owned())
}

fn cases() -> Vec<Case> {
    vec![
        // GET /v1/events
        Case {
            what: "events: a tampered cursor",
            request: || get("/v1/events?cursor=abc"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        Case {
            what: "events: an unknown type and a limit out of range",
            request: || get("/v1/events?type=nope&limit=0"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // GET /v1/users
        Case {
            what: "users: an unknown sort and an unknown parameter",
            request: || get("/v1/users?sort=email&colour=blue"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // POST /v1/products
        Case {
            what: "create product: a body that breaks the schema",
            request: || json(Method::POST, "/v1/products", r#"{"sku": 1, "role": "admin"}"#),
            admin_status: 422,
            admin_code: "validation_failed",
        },
        Case {
            what: "create product: a body that is not JSON",
            request: || json(Method::POST, "/v1/products", "{"),
            admin_status: 400,
            admin_code: "malformed_json",
        },
        Case {
            what: "create product: another media type",
            request: || {
                with_method(Method::POST, "/v1/products")
                    .insert_header(("Content-Type", "text/plain"))
                    .set_payload("sku=MUG")
            },
            admin_status: 415,
            admin_code: "unsupported_media_type",
        },
        Case {
            what: "create product: a body over 64 KiB",
            request: || json(Method::POST, "/v1/products", &format!(r#"{{"name": "{}"}}"#, "m".repeat(70 * 1024))),
            admin_status: 413,
            admin_code: "payload_too_large",
        },
        Case {
            what: "create product: an Idempotency-Key over 255 characters",
            request: || {
                json(
                    Method::POST,
                    "/v1/products",
                    r#"{"sku": "MUG-1", "name": "Mug", "unit_price": {"amount": 1, "currency": "EUR"}}"#,
                )
                .insert_header(("Idempotency-Key", "k".repeat(256)))
            },
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // PATCH /v1/products/{id}
        Case {
            what: "change product: no If-Match",
            request: || json(Method::PATCH, PRODUCT, r#"{"name": "Mug"}"#),
            admin_status: 428,
            admin_code: "precondition_required",
        },
        Case {
            what: "change product: a body that breaks the schema",
            request: || json(Method::PATCH, PRODUCT, r#"{"stock": 5}"#).insert_header(("If-Match", "\"1\"")),
            admin_status: 422,
            admin_code: "validation_failed",
        },
        Case {
            what: "change product: an id that is not a UUID",
            request: || {
                json(Method::PATCH, "/v1/products/42", r#"{"name": "Mug"}"#).insert_header(("If-Match", "\"1\""))
            },
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // DELETE /v1/products/{id}
        Case {
            what: "archive product: no If-Match",
            request: || with_method(Method::DELETE, PRODUCT),
            admin_status: 428,
            admin_code: "precondition_required",
        },
        Case {
            what: "archive product: an id in braces",
            request: || {
                with_method(Method::DELETE, "/v1/products/%7B0192f5c2-0000-7000-8000-0000000000f1%7D")
                    .insert_header(("If-Match", "\"1\""))
            },
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // POST /v1/products/{id}/stock-adjustments
        Case {
            what: "adjust stock: a body that breaks the schema",
            request: || json(Method::POST, &format!("{PRODUCT}/stock-adjustments"), r#"{"delta": "many"}"#),
            admin_status: 422,
            admin_code: "validation_failed",
        },
        // GET /v1/products/{id}/stock-adjustments
        Case {
            what: "stock audit trail: a tampered cursor",
            request: || get(&format!("{PRODUCT}/stock-adjustments?cursor=abc")),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        // /v1/webhook-endpoints
        Case {
            what: "register webhook endpoint: a body that breaks the schema",
            request: || json(Method::POST, "/v1/webhook-endpoints", r#"{"url": 7}"#),
            admin_status: 422,
            admin_code: "validation_failed",
        },
        Case {
            what: "list webhook endpoints: a limit out of range",
            request: || get("/v1/webhook-endpoints?limit=1000"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        Case {
            what: "read webhook endpoint: an id without hyphens",
            request: || get("/v1/webhook-endpoints/0192f5c2000070008000000000000b1a"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        Case {
            what: "change webhook endpoint: a body that breaks the schema",
            request: || json(Method::PATCH, ENDPOINT, r#"{"active": "yes"}"#),
            admin_status: 422,
            admin_code: "validation_failed",
        },
        Case {
            what: "remove webhook endpoint: an upper-case id",
            request: || with_method(Method::DELETE, "/v1/webhook-endpoints/0192F5C2-0000-7000-8000-0000000000B1"),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        Case {
            what: "webhook deliveries: a limit that is not a number",
            request: || get(&format!("{ENDPOINT}/deliveries?limit=ten")),
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
        Case {
            what: "retry webhook delivery: a delivery id that is a URN",
            request: || {
                with_method(
                    Method::POST,
                    &format!("{ENDPOINT}/deliveries/urn:uuid:0192f5c2-0000-7000-8000-0000000000d1/retries"),
                )
            },
            admin_status: 400,
            admin_code: "invalid_parameter",
        },
    ]
}

/// Sends every case with `token` (none: no `Authorization`) and checks each reply.
async fn check_every_case(token: Option<&str>, expect: impl Fn(&Case, &Reply)) {
    let app = test::init_service(orderly_http::app(UseCases::new().into_state())).await;
    for case in cases() {
        let request = (case.request)();
        let request = match token {
            Some(token) => bearer(request, token),
            None => request,
        };
        let reply = send_to(&app, request.to_request()).await;
        expect(&case, &reply);
    }
}

/// Without a token: 401, whatever else is wrong with the request.
#[actix_web::test]
async fn without_a_token_every_admin_operation_is_401_first() {
    check_every_case(None, |case, reply| {
        assert_eq!(reply.status.as_u16(), 401, "{}: {}", case.what, reply.text());
        assert_eq!(reply.json()["code"], "unauthenticated", "{}", case.what);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{}", case.what);
    })
    .await;
}

/// A customer: 403 `forbidden`, never the validation error of the request.
#[actix_web::test]
async fn a_customer_is_refused_403_before_any_validation() {
    check_every_case(Some(CUSTOMER_TOKEN), |case, reply| {
        assert_eq!(reply.status.as_u16(), 403, "{}: {}", case.what, reply.text());
        let problem = reply.problem(403, "forbidden");
        assert!(problem.get("errors").is_none(), "{}: nothing about the request's faults: {problem}", case.what);
    })
    .await;
}

/// An admin, who may perform these operations, gets each request's validation error.
#[actix_web::test]
async fn an_admin_gets_the_validation_error() {
    check_every_case(Some(ADMIN_TOKEN), |case, reply| {
        assert_eq!(reply.status.as_u16(), case.admin_status, "{}: {}", case.what, reply.text());
        assert_eq!(reply.json()["code"], case.admin_code, "{}", case.what);
    })
    .await;
}
