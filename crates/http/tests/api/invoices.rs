//! `/v1/invoices` (docs/api.md#invoices) as a consumer sees it, over mocks of `OrderUseCases` (ADR 0019): each
//! test states what `invoice` or `invoices` returns and checks what the adapter passes (the
//! caller as actor, the parsed number, the query and its cursor) and what it renders. One
//! invoice (not found as 404, a strong ETag that is the number, 304, immutable private
//! caching, malformed numbers refused before any use case), and the collection (newest first,
//! a cursor keyed by the number). Who may see which invoice is the domain's rule, tested in
//! `crates/domain/src/services/orders/tests.rs`.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::invoice::{Invoice, InvoiceNumber, InvoiceQuery};
use orderly_domain::pagination::Page;
use orderly_domain::services::GetInvoiceError;
use orderly_domain::user::Role;
use orderly_domain::{Actor, StoreError};
use orderly_http::pagination::{CursorCodec, CursorPosition, CursorScope};

use crate::support::*;

const IMMUTABLE: &str = "private, max-age=31536000, immutable";

fn invoice_uri() -> String {
    format!("/v1/invoices/{}", invoice_number())
}

fn faults(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> =
        list.iter().map(|(at, code)| ((*at).to_owned(), (*code).to_owned())).collect();
    list.sort();
    list
}

/// The actor the adapter makes of `token`.
fn actor_of(token: &str) -> Actor {
    match token {
        CUSTOMER_TOKEN => Actor { user_id: customer_id(), role: Role::Customer },
        ADMIN_TOKEN => Actor { user_id: admin_id(), role: Role::Admin },
        other => panic!("no actor for {other}"),
    }
}

/// `invoice(actor, number)` is asked once and answers `result`.
fn finding(actor: Actor, number: InvoiceNumber, result: Result<Invoice, GetInvoiceError>) -> UseCases {
    let mut use_cases = UseCases::new();
    use_cases
        .orders
        .expect_invoice()
        .withf(move |a, n| (*a, *n) == (actor, number))
        .times(1)
        .return_once(move |_, _| result);
    use_cases
}

/// The customer's invoice 2026-000042, as `invoice` returns it to `actor`.
fn the_invoice_for(actor: Actor) -> UseCases {
    finding(actor, invoice_number(), Ok(invoice(invoice_number(), customer_id())))
}

// --- one invoice -----------------------------------------------------------------------------

#[actix_web::test]
async fn an_invoice_has_exactly_the_contract_fields_and_is_cached_as_immutable() {
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let reply = send_with(the_invoice_for(actor_of(token)), bearer(get(&invoice_uri()), token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{token}: {}", reply.text());
        assert_eq!(reply.header(header::ETAG), Some("\"2026-000042\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some(IMMUTABLE));
        assert_eq!(reply.header(header::VARY), Some("Authorization"));
        assert_eq!(
            reply.json(),
            json!({
                "number": "2026-000042",
                "order_id": order_id().to_string(),
                "customer_id": customer_id().to_string(),
                "issued_at": "2026-11-23T18:13:20.000Z",
                "lines": [{
                    "product_id": product_id().to_string(),
                    "sku": "MUG-001",
                    "name": "Enamel mug",
                    "quantity": 2,
                    "unit_price": {"amount": 1250, "currency": "EUR"},
                    "line_total": {"amount": 2500, "currency": "EUR"}
                }],
                "subtotal": {"amount": 2500, "currency": "EUR"},
                "tax": {"amount": 500, "currency": "EUR"},
                "total": {"amount": 3000, "currency": "EUR"}
            })
        );
    }
}

#[actix_web::test]
async fn the_number_as_etag_is_answered_304() {
    for tag in ["\"2026-000042\"", "W/\"2026-000042\"", "\"2026-000001\", \"2026-000042\"", "*"] {
        let request = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, tag));
        let reply = send_with(the_invoice_for(actor_of(CUSTOMER_TOKEN)), request).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"2026-000042\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some(IMMUTABLE));
    }
    let other = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "\"42\""));
    assert_eq!(send_with(the_invoice_for(actor_of(CUSTOMER_TOKEN)), other).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn an_invoice_the_use_case_does_not_find_for_the_caller_is_404() {
    // Someone else's invoice (the service answers `NotFound`) and a missing one read alike.
    let customer = actor_of(CUSTOMER_TOKEN);
    let use_cases = finding(customer, invoice_number(), Err(GetInvoiceError::NotFound));
    let hidden = send_with(use_cases, bearer(get(&invoice_uri()), CUSTOMER_TOKEN)).await.problem(404, "not_found");
    assert_eq!(hidden["instance"], invoice_uri());
    // Even a tag that would match reveals nothing.
    let use_cases = finding(customer, invoice_number(), Err(GetInvoiceError::NotFound));
    let guess = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "*"));
    send_with(use_cases, guess).await.problem(404, "not_found");
    let other_number = InvoiceNumber::new(2026, 43).unwrap();
    let use_cases = finding(customer, other_number, Err(GetInvoiceError::NotFound));
    let reply = send_with(use_cases, bearer(get("/v1/invoices/2026-000043"), CUSTOMER_TOKEN)).await;
    let missing = reply.problem(404, "not_found");
    assert_eq!(hidden["detail"], missing["detail"]);

    let down = GetInvoiceError::Store(StoreError::Unavailable(anyhow::anyhow!("pool timed out")));
    let use_cases = finding(customer, invoice_number(), Err(down));
    let reply = send_with(use_cases, bearer(get(&invoice_uri()), CUSTOMER_TOKEN)).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());
}

#[actix_web::test]
async fn a_malformed_number_is_400_naming_the_parameter() {
    // No use case expects a call: the number is refused before any is asked.
    for bad in ["2026-42", "42", "2026-000000", "2026-0000042", "abcd-000001", Uuid::now_v7().to_string().as_str()] {
        let reply = send_with(UseCases::new(), bearer(get(&format!("/v1/invoices/{bad}")), CUSTOMER_TOKEN)).await;
        let problem = reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("number", "invalid_format")]), "{bad}");
        assert_eq!(problem["errors"][0]["message"], "must look like 2026-000042");
    }
    send_with(UseCases::new(), get(&invoice_uri())).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn invoices_are_read_only() {
    let reply = send_with(UseCases::new(), with_method(Method::PATCH, &invoice_uri())).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
    let reply = send_with(UseCases::new(), with_method(Method::POST, "/v1/invoices")).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
}

// --- the collection --------------------------------------------------------------------------

fn numbered(sequence: u32) -> Invoice {
    invoice(InvoiceNumber::new(2026, sequence).unwrap(), customer_id())
}

/// `invoices` answers `page(query)` and records every `(actor, query)` it is asked with.
fn recording_list(
    use_cases: &mut UseCases,
    page: impl Fn(&InvoiceQuery) -> Page<Invoice> + Send + 'static,
) -> Arc<Mutex<Vec<(Actor, InvoiceQuery)>>> {
    let seen: Arc<Mutex<Vec<(Actor, InvoiceQuery)>>> = Arc::default();
    let recorder = seen.clone();
    use_cases.orders.expect_invoices().returning(move |actor, query| {
        let answer = page(&query);
        recorder.lock().unwrap().push((actor, query));
        Ok(answer)
    });
    seen
}

#[actix_web::test]
async fn a_listing_passes_the_caller_and_renders_the_page_newest_first_privately() {
    // Narrowing a customer to their own invoices is the service's: the adapter passes the
    // caller and no customer filter, whoever asks.
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let mut use_cases = UseCases::new();
        let seen = recording_list(&mut use_cases, |_| Page { items: vec![numbered(2), numbered(1)], has_more: false });
        let reply = send_with(use_cases, bearer(get("/v1/invoices?sort=-issued_at"), token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{token}: {}", reply.text());
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
        assert_eq!(reply.header(header::VARY), Some("Authorization"));
        let body = reply.json();
        assert_eq!(body["page"], json!({"limit": 20, "next_cursor": null, "has_more": false}));
        let numbers: Vec<Value> = body["data"].as_array().unwrap().iter().map(|i| i["number"].clone()).collect();
        assert_eq!(numbers, vec![json!("2026-000002"), json!("2026-000001")]);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{token}");
        let (actor, query) = seen[0].clone();
        assert_eq!(actor, actor_of(token));
        assert_eq!((query.customer_id, query.after, query.limit.get()), (None, None, 20), "{token}");
    }
    send_with(UseCases::new(), get("/v1/invoices")).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn a_store_outage_is_503() {
    let mut use_cases = UseCases::new();
    use_cases
        .orders
        .expect_invoices()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("pool timed out"))));
    let reply = send_with(use_cases, bearer(get("/v1/invoices"), ADMIN_TOKEN)).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());
}

#[actix_web::test]
async fn pages_carry_a_link_and_a_cursor_keyed_by_the_number() {
    let mut use_cases = UseCases::new();
    let seen = recording_list(&mut use_cases, |query| {
        if query.after.is_none() {
            Page { items: vec![numbered(9), numbered(8)], has_more: true }
        } else {
            Page { items: vec![numbered(7)], has_more: false }
        }
    });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let first = send_to(&app, bearer(get("/v1/invoices?limit=2"), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(seen.lock().unwrap()[0].1.limit.get(), 2);
    let cursor = first.json()["page"]["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header(header::LINK).unwrap(),
        format!("<http://localhost:8080/v1/invoices?limit=2&cursor={cursor}>; rel=\"next\"")
    );
    let last =
        send_to(&app, bearer(get(&format!("/v1/invoices?limit=2&cursor={cursor}")), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    assert_eq!(last.json()["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
    assert!(last.header(header::LINK).is_none());
    assert_eq!(seen.lock().unwrap().last().unwrap().1.after, InvoiceNumber::new(2026, 8));

    // An orders cursor (same key, another collection) or a tampered one is refused.
    let codec = CursorCodec::new(b"test cursor key");
    let orders_cursor = codec.encode(
        CursorScope { collection: "orders", sort: "-issued_at" },
        &CursorPosition { key: "2026-000008".into(), id: Uuid::nil() },
    );
    let mut tampered = cursor.into_bytes();
    tampered[4] = if tampered[4] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [orders_cursor.as_str(), tampered.as_str()] {
        let reply =
            send_to(&app, bearer(get(&format!("/v1/invoices?cursor={bad}")), CUSTOMER_TOKEN).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]), "{bad}");
    }
    // The refused cursors never reached the use case.
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[actix_web::test]
async fn every_invalid_list_parameter_is_listed() {
    let reply =
        send_with(UseCases::new(), bearer(get("/v1/invoices?sort=issued_at&limit=0&status=paid"), ADMIN_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        faults(&[("limit", "out_of_range"), ("sort", "invalid_value"), ("status", "unknown_parameter")])
    );
}
