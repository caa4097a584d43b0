//! `/v1/orders/{id}/payments` as a consumer pages it, over mocked `PaymentUseCases` (ADR 0019):
//! what the adapter passes to `list` and renders from its pages. Paying, and the provider's
//! events, run against localstripe in `crates/server/tests/api/payments.rs`.

use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test;
use uuid::Uuid;

use orderly_domain::Actor;
use orderly_domain::order::OrderId;
use orderly_domain::pagination::Page;
use orderly_domain::payment::{Payment, PaymentId, PaymentQuery, PaymentStatus};
use orderly_domain::user::Role;

use crate::support::*;

fn customer() -> Actor {
    Actor { user_id: customer_id(), role: Role::Customer }
}

fn attempt(n: u128) -> Payment {
    Payment {
        id: PaymentId::from_uuid(Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_0a00 + n)),
        order_id: order_id(),
        customer_id: customer_id(),
        status: PaymentStatus::Failed,
        amount: 1250,
        currency: eur(),
        provider: "stripe".to_owned(),
        provider_reference: None,
        failure: None,
        request_key: None,
        created_at: at(1_795_457_045_000_000),
        updated_at: at(1_795_457_045_000_000),
    }
}

fn payments_uri(order: OrderId) -> String {
    format!("/v1/orders/{order}/payments")
}

#[actix_web::test]
async fn an_orders_attempts_are_paged_with_a_cursor_bound_to_the_order() {
    let seen: Arc<Mutex<Vec<PaymentQuery>>> = Arc::default();
    let recorder = seen.clone();
    let mut use_cases = UseCases::new();
    // Two pages are asked for; the cursor sent for another order is refused before the use case.
    use_cases.payments.expect_list().withf(|actor, _| *actor == customer()).times(2).returning(move |_, query| {
        recorder.lock().unwrap().push(query.clone());
        let (items, has_more) = match query.after {
            None => (vec![attempt(3), attempt(2)], true),
            Some(_) => (vec![attempt(1)], false),
        };
        Ok(Page { items, has_more })
    });
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;

    let first =
        send_to(&app, bearer(get(&format!("{}?limit=2", payments_uri(order_id()))), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let cursor = first.json()["page"]["next_cursor"].as_str().unwrap().to_owned();
    let next = format!("{}?limit=2&cursor={cursor}", payments_uri(order_id()));
    let second = send_to(&app, bearer(get(&next), CUSTOMER_TOKEN).to_request()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.json()["data"][0]["id"], attempt(1).id.to_string());
    {
        let seen = seen.lock().unwrap();
        let asked: Vec<(OrderId, Option<PaymentId>, u16)> =
            seen.iter().map(|query| (query.order_id, query.after, query.limit.get())).collect();
        assert_eq!(asked, [(order_id(), None, 2), (order_id(), Some(attempt(2).id), 2)]);
    }

    // Not valid for another order's attempts.
    let other_order = OrderId::from_uuid(Uuid::from_u128(0x0192_f5c2_0000_7000_8000_0000_0000_00e2));
    let elsewhere = format!("{}?cursor={cursor}", payments_uri(other_order));
    let reply = send_to(&app, bearer(get(&elsewhere), CUSTOMER_TOKEN).to_request()).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), [("cursor".to_owned(), "invalid_cursor".to_owned())]);
}
