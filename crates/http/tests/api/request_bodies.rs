//! Request bodies and the problems they can cause, as a consumer sees them: a member named
//! twice in one object is a 422 `duplicate_member` at its pointer, never "last one wins" (docs/api.md#errors),
//! and a problem's `errors` is capped at 100 entries of bounded size, `errors_truncated`
//! saying when there were more (docs/api.md#errors), so that no request can make a problem much larger than
//! a fixed bound.
//!
//! Over mocks of the use cases ([`UseCases`]): a refused body reaches none (a mock with no
//! expectation would panic), and an accepted one reaches its use case with the values it
//! carried.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use serde_json::json;
use uuid::Uuid;

use orderly_domain::order::OrderStatus;
use orderly_domain::product::ProductId;
use orderly_domain::services::{MockOrderUseCases, MockUserUseCases};
use orderly_domain::user::Role;

use crate::support::*;

fn register(body: impl Into<actix_web::web::Bytes>) -> TestRequest {
    json_request(Method::POST, "/v1/users", body)
}

fn faults(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> =
        list.iter().map(|(at, code)| ((*at).to_owned(), (*code).to_owned())).collect();
    list.sort();
    list
}

/// Use cases that register exactly one user, named `name`.
fn registering(name: &'static str) -> UseCases {
    let mut use_cases = UseCases::new();
    let mut registration = MockUserUseCases::new();
    registration
        .expect_register()
        .times(1)
        .withf(move |email, given, password| {
            (email.as_str(), given.as_str(), password.expose()) == ("ada@example.com", name, "correct horse battery")
        })
        .returning(|_, _, _| Ok(user(customer_id(), Role::Customer, 1)));
    users_within(&mut use_cases.users, registration);
    use_cases
}

fn other_product() -> ProductId {
    ProductId::from_uuid(Uuid::parse_str("0192f5c2-0000-7000-8000-0000000000f2").unwrap())
}

// --- duplicate members ------------------------------------------------------------------------

#[actix_web::test]
async fn a_member_named_twice_is_422_at_its_pointer_not_last_one_wins() {
    // No use case expects a registration: neither "first" nor "second" is registered.
    let body = r#"{"email":"ada@example.com","password":"correct horse battery","name":"first","name":"second"}"#;
    let reply = send_with(UseCases::new(), register(body)).await;
    let problem = reply.problem(422, "validation_failed");
    // Reported once, and not again as `required` although neither value is used.
    assert_eq!(reply.faults(), faults(&[("/name", "duplicate_member")]));
    assert_eq!(problem["errors"][0]["message"], "is named more than once in this object");
    assert_eq!(problem["detail"], "1 field is invalid");
    assert!(!reply.text().contains("second") && !reply.text().contains("first"), "{}", reply.text());
}

#[actix_web::test]
async fn a_duplicate_is_listed_with_every_other_fault() {
    let body = r#"{"email":5,"password":"pw","password":"correct horse battery","name":"Ada","role":"admin"}"#;
    let reply = send_with(UseCases::new(), register(body)).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.faults(),
        faults(&[("/email", "invalid_type"), ("/password", "duplicate_member"), ("/role", "unknown_field")])
    );
}

#[actix_web::test]
async fn a_nested_duplicate_is_422_with_its_full_pointer() {
    let body = format!(
        r#"{{"items":[{{"product_id":"{first}","quantity":1}},{{"product_id":"{second}","quantity":1,"quantity":500}}]}}"#,
        first = product_id(),
        second = other_product(),
    );
    let reply =
        send_with(UseCases::new(), bearer(json_request(Method::POST, "/v1/orders", body), CUSTOMER_TOKEN)).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), faults(&[("/items/1/quantity", "duplicate_member")]));

    // A nested object of a product: its own members, its own pointer.
    let body = r#"{"sku":"MUG-002","name":"Mug","unit_price":{"amount":1250,"currency":"EUR","currency":"USD"}}"#;
    let reply = send_with(UseCases::new(), bearer(json_request(Method::POST, "/v1/products", body), ADMIN_TOKEN)).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), faults(&[("/unit_price/currency", "duplicate_member")]));
}

#[actix_web::test]
async fn escaped_spellings_of_one_name_are_one_member() {
    for body in [
        r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada","na\u006de":"Eve"}"#,
        r#"{"email":"ada@example.com","password":"correct horse battery","\u006eame":"Ada","name":"Eve"}"#,
        r#"{"email":"ada@example.com","password":"correct horse battery","name":"Ada","n\u0061\u006d\u0065":"Eve"}"#,
    ] {
        let reply = send_with(UseCases::new(), register(body)).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&[("/name", "duplicate_member")]), "{body}");
    }
}

#[actix_web::test]
async fn a_merge_patch_with_a_member_named_twice_is_422() {
    // `null` then a value: whichever a merge-patch reader keeps, the other reading differs.
    let body = r#"{"description":null,"description":"Holds 350 ml."}"#;
    let request = bearer(json_request(Method::PATCH, &format!("/v1/products/{}", product_id()), body), ADMIN_TOKEN)
        .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"))
        .insert_header((header::IF_MATCH, "\"2\""));
    let reply = send_with(UseCases::new(), request).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.faults(), faults(&[("/description", "duplicate_member")]));
}

#[actix_web::test]
async fn a_body_without_duplicates_is_accepted_escapes_and_all() {
    let body = r#"{"email":"ada@example.com","password":"correct horse battery","na\u006de":"Ada"}"#;
    let reply = send_with(registering("Ada"), register(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    // One name in sibling objects is no duplicate.
    let mut use_cases = UseCases::new();
    let mut placing = MockOrderUseCases::new();
    placing
        .expect_place()
        .times(1)
        .withf(|actor, request| {
            let lines: Vec<(ProductId, i64)> =
                request.lines().iter().map(|line| (line.product_id, line.quantity.get())).collect();
            actor.user_id == customer_id() && lines == vec![(product_id(), 2), (other_product(), 1)]
        })
        .returning(|actor, _| Ok(order(order_id(), actor.user_id, OrderStatus::Pending, 1)));
    orders_within(&mut use_cases.orders, placing);
    let body = json!({"items": [
        {"product_id": product_id().to_string(), "quantity": 2},
        {"product_id": other_product().to_string(), "quantity": 1},
    ]});
    let request = bearer(json_request(Method::POST, "/v1/orders", body.to_string()), CUSTOMER_TOKEN);
    let reply = send_with(use_cases, request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[actix_web::test]
async fn malformed_json_is_still_400_with_its_position() {
    let reply = send_with(UseCases::new(), register(r#"{"name":"a","name":}"#)).await;
    let problem = reply.problem(400, "malformed_json");
    assert_eq!(problem["detail"], "the request body is not valid JSON (line 1, column 20)");
}

// --- the size of problems ----------------------------------------------------------------------

#[actix_web::test]
async fn five_thousand_unknown_fields_give_100_entries_and_errors_truncated() {
    let fields: Vec<String> = (0..5_000).map(|i| format!(r#""f{i:04}":1"#)).collect();
    let body = format!("{{{}}}", fields.join(","));
    assert!(body.len() > 45_000 && body.len() < 64 * 1024, "{} bytes", body.len());

    let reply = send_with(UseCases::new(), register(body)).await;
    let problem = reply.problem(422, "validation_failed");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100);
    assert_eq!(problem["errors_truncated"], true);
    // The faults are all still counted; only the list is cut.
    assert_eq!(problem["detail"], "5003 fields are invalid");
    assert!(reply.text().len() < 32 * 1024, "{} bytes", reply.text().len());
}

#[actix_web::test]
async fn a_problem_with_a_few_faults_has_no_errors_truncated() {
    let reply =
        send_with(UseCases::new(), register(r#"{"email":"ada@example.com","password":5,"role":"admin"}"#)).await;
    let problem = reply.problem(422, "validation_failed");
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3);
    assert!(problem.get("errors_truncated").is_none(), "{problem}");
}

#[actix_web::test]
async fn an_unknown_field_with_a_huge_name_gives_an_entry_of_bounded_size() {
    let name = "x".repeat(10_000);
    let body = format!(r#"{{"email":"ada@example.com","password":"correct horse battery","name":"Ada","{name}":1}}"#);
    let reply = send_with(UseCases::new(), register(body)).await;
    let problem = reply.problem(422, "validation_failed");
    let entry = &problem["errors"][0];
    assert_eq!(entry["code"], "unknown_field");
    let pointer = entry["pointer"].as_str().unwrap();
    assert!(pointer.starts_with("/xxxx") && pointer.ends_with('…'), "{pointer}");
    assert!(pointer.len() <= 200, "{} bytes", pointer.len());
    assert!(entry.to_string().len() <= 300, "{entry}");
    assert!(reply.text().len() < 1024, "{}", reply.text());
}

#[actix_web::test]
async fn the_cap_holds_for_query_parameters_too() {
    let query: Vec<String> = (0..150).map(|i| format!("u{i}=1")).collect();
    let reply = send_with(UseCases::new(), get(&format!("/v1/products?{}", query.join("&")))).await;
    let problem = reply.problem(400, "invalid_parameter");
    assert_eq!(problem["errors"].as_array().unwrap().len(), 100);
    assert_eq!(problem["errors_truncated"], true);
    assert!(problem["errors"].as_array().unwrap().iter().all(|entry| entry["code"] == "unknown_parameter"));
}

#[actix_web::test]
async fn a_huge_unknown_path_gives_a_bounded_instance() {
    let path = format!("/v1/{}", "p".repeat(4_000));
    let reply = send_with(UseCases::new(), get(&path)).await;
    let problem = reply.problem(404, "not_found");
    let instance = problem["instance"].as_str().unwrap();
    assert!(instance.starts_with("/v1/ppp") && instance.ends_with('…') && instance.len() <= 1000, "{instance}");
}
