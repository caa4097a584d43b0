//! `/v1/invoices` (docs/api.md#invoices) as a consumer sees it: one invoice (ownership as 404, a strong ETag
//! that is the number, 304, immutable private caching, malformed numbers), and the collection
//! (own invoices for customers, newest first, a cursor keyed by the number).

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::invoice::{Invoice, InvoiceNumber, InvoiceQuery};
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

fn with_invoice(mut mocks: Mocks, invoice: Invoice) -> Mocks {
    mocks.invoices.expect_find().returning(move |number| Ok((number == invoice.number).then(|| invoice.clone())));
    mocks
}

// --- one invoice -----------------------------------------------------------------------------

#[actix_web::test]
async fn an_invoice_has_exactly_the_contract_fields_and_is_cached_as_immutable() {
    for token in [CUSTOMER_TOKEN, ADMIN_TOKEN] {
        let mocks = with_invoice(Mocks::new(), invoice(invoice_number(), customer_id()));
        let reply = send(mocks, bearer(get(&invoice_uri()), token)).await;
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
        let mocks = with_invoice(Mocks::new(), invoice(invoice_number(), customer_id()));
        let request = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, tag));
        let reply = send(mocks, request).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"2026-000042\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some(IMMUTABLE));
    }
    let mocks = with_invoice(Mocks::new(), invoice(invoice_number(), customer_id()));
    let other = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "\"42\""));
    assert_eq!(send(mocks, other).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn another_customers_invoice_is_404_like_a_missing_one() {
    let theirs = invoice(invoice_number(), other_id());
    let reply = send(with_invoice(Mocks::new(), theirs.clone()), bearer(get(&invoice_uri()), CUSTOMER_TOKEN)).await;
    let hidden = reply.problem(404, "not_found");
    // Even a tag that would match reveals nothing.
    let guess = bearer(get(&invoice_uri()), CUSTOMER_TOKEN).insert_header((header::IF_NONE_MATCH, "*"));
    send(with_invoice(Mocks::new(), theirs.clone()), guess).await.problem(404, "not_found");
    let reply = send(with_invoice(Mocks::new(), theirs), bearer(get("/v1/invoices/2026-000043"), CUSTOMER_TOKEN)).await;
    let missing = reply.problem(404, "not_found");
    assert_eq!(hidden["detail"], missing["detail"]);
}

#[actix_web::test]
async fn a_malformed_number_is_400_naming_the_parameter() {
    for bad in ["2026-42", "42", "2026-000000", "2026-0000042", "abcd-000001", Uuid::now_v7().to_string().as_str()] {
        let reply = send(Mocks::new(), bearer(get(&format!("/v1/invoices/{bad}")), CUSTOMER_TOKEN)).await;
        let problem = reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("number", "invalid_format")]), "{bad}");
        assert_eq!(problem["errors"][0]["message"], "must look like 2026-000042");
    }
    send(Mocks::new(), get(&invoice_uri())).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn invoices_are_read_only() {
    let reply = send(Mocks::new(), with_method(Method::PATCH, &invoice_uri())).await;
    reply.problem(405, "method_not_allowed");
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
    let reply = send(Mocks::new(), with_method(Method::POST, "/v1/invoices")).await;
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
}

// --- the collection --------------------------------------------------------------------------

fn numbered(sequence: u32) -> Invoice {
    invoice(InvoiceNumber::new(2026, sequence).unwrap(), customer_id())
}

fn recording_list(
    mocks: &mut Mocks,
    rows: impl Fn(&InvoiceQuery) -> Vec<Invoice> + Send + 'static,
) -> Arc<Mutex<Vec<InvoiceQuery>>> {
    let seen: Arc<Mutex<Vec<InvoiceQuery>>> = Arc::default();
    let recorder = seen.clone();
    mocks.invoices.expect_list().returning(move |query| {
        recorder.lock().unwrap().push(query.clone());
        Ok(rows(query))
    });
    seen
}

#[actix_web::test]
async fn customers_list_their_own_invoices_and_admins_everyones() {
    for (token, customer) in [(CUSTOMER_TOKEN, Some(customer_id())), (ADMIN_TOKEN, None)] {
        let mut mocks = Mocks::new();
        let seen = recording_list(&mut mocks, |_| vec![numbered(2), numbered(1)]);
        let reply = send(mocks, bearer(get("/v1/invoices?sort=-issued_at"), token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{token}: {}", reply.text());
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
        assert_eq!(reply.header(header::VARY), Some("Authorization"));
        let body = reply.json();
        assert_eq!(body["page"], json!({"limit": 20, "next_cursor": null, "has_more": false}));
        let numbers: Vec<Value> = body["data"].as_array().unwrap().iter().map(|i| i["number"].clone()).collect();
        assert_eq!(numbers, vec![json!("2026-000002"), json!("2026-000001")]);
        let query = seen.lock().unwrap()[0].clone();
        assert_eq!((query.customer_id, query.after, query.limit.get()), (customer, None, 20));
    }
    send(Mocks::new(), get("/v1/invoices")).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn pages_carry_a_link_and_a_cursor_keyed_by_the_number() {
    let mut mocks = Mocks::new();
    let seen = recording_list(&mut mocks, |query| {
        if query.after.is_none() { vec![numbered(9), numbered(8), numbered(7)] } else { vec![numbered(7)] }
    });
    let app = test::init_service(orderly_http::app(mocks.into_state())).await;
    let first = send_to(&app, bearer(get("/v1/invoices?limit=2"), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let cursor = first.json()["page"]["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        first.header(header::LINK).unwrap(),
        format!("<http://localhost:8080/v1/invoices?limit=2&cursor={cursor}>; rel=\"next\"")
    );
    let last =
        send_to(&app, bearer(get(&format!("/v1/invoices?limit=2&cursor={cursor}")), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    assert_eq!(last.json()["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
    assert_eq!(seen.lock().unwrap().last().unwrap().after, InvoiceNumber::new(2026, 8));

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
}

#[actix_web::test]
async fn every_invalid_list_parameter_is_listed() {
    let reply = send(Mocks::new(), bearer(get("/v1/invoices?sort=issued_at&limit=0&status=paid"), ADMIN_TOKEN)).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        faults(&[("limit", "out_of_range"), ("sort", "invalid_value"), ("status", "unknown_parameter")])
    );
}
