//! The OpenAPI document: a snapshot of the whole contract (a change shows up as a reviewed
//! diff), checks that it is complete, and checks that it and the router agree.

use actix_web::http::{Method, StatusCode};
use serde_json::Value;

use crate::support::*;

fn document() -> Value {
    serde_json::to_value(orderly_http::openapi()).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(METHOD, path, operation)` for every operation.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

#[test]
fn the_document_matches_the_snapshot() {
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!("openapi", document());
    });
}

/// The published contract, exactly as `orderly openapi` prints it.
const PUBLISHED: &str = include_str!("../../../../docs/openapi.json");
const REGENERATE: &str = "cargo run -q -p orderly -- openapi > docs/openapi.json";

/// `docs/openapi.json` is the published contract: a change to the API must change it in the
/// same commit (and so shows in review), and CI fails while the two differ.
#[test]
fn the_published_contract_is_the_generated_document() {
    let published: Value = serde_json::from_str(PUBLISHED)
        .unwrap_or_else(|error| panic!("docs/openapi.json is not JSON ({error}); regenerate it with `{REGENERATE}`"));
    let generated = document();
    let mut differences = Vec::new();
    differing_pointers(&published, &generated, String::new(), &mut differences);
    assert!(
        differences.is_empty(),
        "docs/openapi.json (the published contract) differs from the generated document at {} place(s), \
         first: {:?}.\nIf the API change is intended, regenerate it with `{REGENERATE}` and commit it.",
        differences.len(),
        &differences[..differences.len().min(10)],
    );
    // Same values; the bytes must agree too, as `orderly openapi` prints them (pretty, one newline).
    let printed = format!("{}\n", serde_json::to_string_pretty(&orderly_http::openapi()).unwrap());
    assert!(
        PUBLISHED == printed,
        "docs/openapi.json has the right content but not the layout `orderly openapi` prints; regenerate it \
         with `{REGENERATE}`"
    );
}

/// JSON Pointers of where `a` and `b` differ (a key or item present in one only, or a different
/// value), at most a few hundred.
fn differing_pointers(a: &Value, b: &Value, at: String, into: &mut Vec<String>) {
    if into.len() >= 200 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(a), Some(b)) => differing_pointers(a, b, pointer, into),
                    (Some(_), None) => into.push(format!("{pointer} (only in docs/openapi.json)")),
                    (None, _) => into.push(format!("{pointer} (only in the generated document)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                differing_pointers(a, b, format!("{at}/{index}"), into);
            }
        }
        _ => into.push(if at.is_empty() { "/".to_owned() } else { at }),
    }
}

#[test]
fn the_document_describes_itself() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["license"]["identifier"], "MIT");
    assert!(document["servers"].as_array().is_some_and(|servers| !servers.is_empty()));
    assert_eq!(document["components"]["securitySchemes"]["bearer_auth"]["scheme"], "bearer");
    assert_eq!(document["components"]["securitySchemes"]["bearer_auth"]["bearerFormat"], "JWT");
}

#[test]
fn every_operation_is_fully_described() {
    let document = document();
    let operations = operations(&document);
    assert_eq!(operations.len(), 36);
    for (method, path, operation) in operations {
        let name = format!("{method} {path}");
        for field in ["summary", "description", "operationId"] {
            assert!(operation[field].as_str().is_some_and(|text| !text.is_empty()), "{name}: {field}");
        }
        assert!(operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()), "{name}: tags");
        if let Some(body) = operation.get("requestBody") {
            for (media_type, content) in body["content"].as_object().unwrap() {
                let schema = resolve(&document, &content["schema"]);
                assert!(schema.get("example").is_some(), "{name}: example for {media_type}");
                // The provider's events are the provider's format: Orderly cannot refuse members.
                if operation["operationId"] != "receivePaymentEvent" {
                    assert_eq!(schema["additionalProperties"], false, "{name}: additionalProperties");
                }
            }
        }
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.contains_key("500"), "{name}: 500");
        assert!(responses.contains_key("429"), "{name}: every request counts against a rate limit");
        let rate_limited = resolve(&document, &responses["429"]);
        for header in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
            assert!(rate_limited["headers"].get(header).is_some(), "{name} 429: {header}");
        }
        for (status, response) in responses {
            let response = resolve(&document, response);
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{name} {status}: description");
            assert!(response["headers"].get("X-Request-Id").is_some(), "{name} {status}: X-Request-Id");
            for header in ["RateLimit-Policy", "RateLimit"] {
                assert!(response["headers"].get(header).is_some(), "{name} {status}: {header}");
            }
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ProblemDetails", "{name} {status}: problem schema");
            }
        }
        let secured = operation["security"].as_array().is_some_and(|security| !security.is_empty());
        let refuses_credentials = ["/v1/auth/tokens", "/v1/auth/refresh"].contains(&path.as_str());
        assert_eq!(responses.contains_key("401"), secured || refuses_credentials, "{name}: 401");
    }
}

#[test]
fn every_reference_resolves() {
    let document = document();
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(document.pointer(pointer).is_some(), "dangling {reference}");
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                into.push(reference.clone());
            }
            map.values().for_each(|child| collect_references(child, into));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_references(child, into)),
        _ => {}
    }
}

fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => document.pointer(reference.strip_prefix('#').unwrap()).unwrap(),
        None => value,
    }
}

/// What the document lists, the router serves; what it does not list, the router refuses
/// with 405.
#[actix_web::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let document = document();
    let mut state = UseCases::new().into_state();
    // Without a recorder `/metrics` is 404 by design; with one it serves.
    state.metrics = Some(std::sync::Arc::new(crate::observability::FixedMetrics("")));
    let app = actix_web::test::init_service(orderly_http::app(state)).await;
    for (method, path, _) in operations(&document) {
        let uri = path
            .replace("{id}", &other_id().to_string())
            .replace("{payment_id}", &other_id().to_string())
            .replace("{delivery_id}", &other_id().to_string())
            .replace("{number}", "2026-000042");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = send_to(&app, with_method(method.clone(), &uri).to_request()).await;
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");

        let documented = |m: &str| document["paths"][&path].get(m.to_lowercase()).is_some();
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().filter(|m| !documented(m)) {
            let reply =
                send_to(&app, with_method(Method::from_bytes(other.as_bytes()).unwrap(), &uri).to_request()).await;
            // `/v1/users/me` also matches `/v1/users/{id}`, which takes PATCH.
            if !(path == "/v1/users/me" && other == "PATCH") {
                assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
            }
        }
    }
}

/// docs/api.md#retries-idempotency-key: every POST takes `Idempotency-Key`; those that store their
/// outcomes document the replay header, 409 `idempotency_in_progress` and 422
/// `idempotency_key_reused`.
#[test]
fn every_post_documents_idempotency() {
    let document = document();
    let stored =
        ["registerUser", "createProduct", "createStockAdjustment", "placeOrder", "payOrder", "createWebhookEndpoint"];
    let mut seen = Vec::new();
    for (method, path, operation) in operations(&document) {
        let name = format!("{method} {path}");
        let key = operation["parameters"]
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == "Idempotency-Key"));
        if method != "POST" {
            assert!(key.is_none(), "{name}: Idempotency-Key only on POST");
            continue;
        }
        let key = key.unwrap_or_else(|| panic!("{name}: Idempotency-Key"));
        assert_eq!((key["in"].clone(), key["required"].clone()), (Value::from("header"), Value::from(false)), "{name}");
        assert_eq!((key["schema"]["minLength"].clone(), key["schema"]["maxLength"].clone()), (1.into(), 255.into()));
        assert!(key["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}");
        let responses = operation["responses"].as_object().unwrap();
        // Not every POST has a body (retrying a webhook delivery), so not every one has a 422.
        let described = |status: &str, text: &str| {
            responses.get(status).is_some_and(|response| {
                resolve(&document, response)["description"].as_str().is_some_and(|d| d.contains(text))
            })
        };
        assert!(described("400", "invalid_parameter"), "{name}: 400 for a malformed key");
        let id = operation["operationId"].as_str().unwrap();
        if stored.contains(&id) {
            seen.push(id.to_owned());
            assert!(described("409", "idempotency_in_progress"), "{name}: 409");
            assert!(described("422", "idempotency_key_reused"), "{name}: 422");
            assert!(resolve(&document, &responses["409"])["headers"].get("Retry-After").is_some(), "{name}");
            for (status, response) in responses.iter().filter(|(status, _)| status.starts_with('2')) {
                let headers = &resolve(&document, response)["headers"];
                assert!(headers.get("Idempotency-Replayed").is_some(), "{name} {status}: Idempotency-Replayed");
            }
        } else {
            assert!(key["description"].as_str().unwrap().contains("not stored"), "{name}");
            assert!(!described("422", "idempotency_key_reused"), "{name}");
        }
    }
    seen.sort();
    let mut expected = stored.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(orderly_http::idempotency::STORED_OPERATIONS.len(), stored.len());
}
