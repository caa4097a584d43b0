//! `/v1/events` (docs/api.md#events) as a consumer sees it: the shape of an event (its `data` an object, as
//! stored), admins only, the `type` filter, and polling with the cursor the feed always hands
//! back (the position after the last event, or the cursor sent when nothing is new), which is
//! bound to its filter.
//!
//! The feed use case is a mock (`support::UseCases`): a test states the page it returns (or its
//! error) and checks what the adapter asked it (the admin actor, the `type`, `after` and `limit`
//! it parsed from the query and the cursor) and what it renders. Which events the store holds
//! and who may read them are the domain's rules, tested in `orderly_domain::services::events`.
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::test;
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::event::{EventQuery, FeedEvent};
use orderly_domain::pagination::Page;
use orderly_domain::services::ReadFeedError;
use orderly_domain::user::Role;
use orderly_domain::{Actor, StoreError};
use orderly_http::pagination::{CursorCodec, CursorPosition, CursorScope};

use crate::support::*;

const EVENTS: &str = "/v1/events";

fn faults(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> =
        list.iter().map(|(at, code)| ((*at).to_owned(), (*code).to_owned())).collect();
    list.sort();
    list
}

fn event_id(position: i64) -> Uuid {
    Uuid::parse_str(&format!("0192f5c2-0000-7000-8000-{position:012}")).unwrap()
}

/// The event at `position`: an `order.placed` at odd positions, an `order.confirmed` at even.
fn event(position: i64) -> FeedEvent {
    let type_name = if position % 2 == 1 { "order.placed" } else { "order.confirmed" };
    FeedEvent {
        id: event_id(position),
        position,
        type_name: type_name.to_owned(),
        occurred_at: at(1_795_457_045_123_456 + position * 1_000_000),
        subject_type: "order".to_owned(),
        subject_id: order_id().to_string(),
        data_json: format!(r#"{{"customer_id":"{}","total":3000,"position":{position}}}"#, customer_id()),
    }
}

/// What the outbox holds, shared with the mock so a test can commit more while polling.
type Outbox = Arc<Mutex<Vec<FeedEvent>>>;
/// Every query the feed was asked.
type Asked = Arc<Mutex<Vec<EventQuery>>>;

fn admin() -> Actor {
    Actor { user_id: admin_id(), role: Role::Admin }
}

/// A feed use case over `outbox`, asked only by the admin, that answers as `EventService::list`
/// promises: up to `limit` events after `after`, of the type asked for, in position order, and
/// whether more are there right now.
fn with_feed(mut use_cases: UseCases, outbox: &Outbox) -> (UseCases, Asked) {
    let asked: Asked = Arc::default();
    let (outbox, log) = (outbox.clone(), asked.clone());
    use_cases.events.expect_list().withf(|actor, _| *actor == admin()).returning(move |_, query| {
        log.lock().unwrap().push(query.clone());
        let mut items: Vec<FeedEvent> = outbox
            .lock()
            .unwrap()
            .iter()
            .filter(|event| query.after.is_none_or(|after| event.position > after))
            .filter(|event| query.type_name.is_none_or(|name| event.type_name == name))
            .take(usize::from(query.limit.get()) + 1)
            .cloned()
            .collect();
        let has_more = items.len() > usize::from(query.limit.get());
        items.truncate(usize::from(query.limit.get()));
        Ok(Page { items, has_more })
    });
    (use_cases, asked)
}

fn outbox(positions: impl IntoIterator<Item = i64>) -> Outbox {
    Arc::new(Mutex::new(positions.into_iter().map(event).collect()))
}

fn admin_get(uri: &str) -> test::TestRequest {
    bearer(get(uri), ADMIN_TOKEN)
}

fn positions(body: &Value) -> Vec<i64> {
    body["data"].as_array().unwrap().iter().map(|event| event["data"]["position"].as_i64().unwrap()).collect()
}

fn cursor_of(body: &Value) -> String {
    body["page"]["next_cursor"].as_str().expect("a cursor").to_owned()
}

#[actix_web::test]
async fn an_event_has_exactly_the_contract_fields_and_its_data_is_an_object() {
    let (use_cases, _) = with_feed(UseCases::new(), &outbox([1]));
    let reply = send_with(use_cases, admin_get(EVENTS)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(
        reply.json()["data"],
        json!([{
            "id": event_id(1).to_string(),
            "type": "order.placed",
            "occurred_at": "2026-11-23T18:04:06.123Z",
            "subject": {"type": "order", "id": order_id().to_string()},
            "data": {"customer_id": customer_id().to_string(), "total": 3000, "position": 1}
        }])
    );
    // Passed through untouched: the bytes as stored, not re-serialised.
    assert!(reply.text().contains(&format!(r#""data":{}"#, event(1).data_json)), "{}", reply.text());
}

#[actix_web::test]
async fn invoice_subjects_are_addressed_by_their_number() {
    let mut issued = event(1);
    issued.type_name = "invoice.issued".to_owned();
    issued.subject_type = "invoice".to_owned();
    issued.subject_id = invoice_number().to_string();
    let (use_cases, _) = with_feed(UseCases::new(), &Arc::new(Mutex::new(vec![issued])));
    let body = send_with(use_cases, admin_get(EVENTS)).await.json();
    assert_eq!(body["data"][0]["subject"], json!({"type": "invoice", "id": "2026-000042"}));
}

#[actix_web::test]
async fn a_payload_that_is_not_an_object_is_a_500_not_a_string() {
    for stored in ["\"{}\"", "[1]", "not json"] {
        let mut broken = event(1);
        broken.data_json = stored.to_owned();
        let (use_cases, _) = with_feed(UseCases::new(), &Arc::new(Mutex::new(vec![broken])));
        send_with(use_cases, admin_get(EVENTS)).await.problem(500, "internal_error");
    }
}

#[actix_web::test]
async fn only_admins_read_the_feed() {
    // Refused by the adapter before the feed is asked: the use case has no expectation.
    let reply = send_with(UseCases::new(), bearer(get(EVENTS), CUSTOMER_TOKEN)).await;
    let problem = reply.problem(403, "forbidden");
    assert_eq!(problem["detail"], "only admins may read the event feed");

    let reply = send_with(UseCases::new(), get(EVENTS)).await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));

    send_with(UseCases::new(), bearer(get(EVENTS), EXPIRED_TOKEN)).await.problem(401, "unauthenticated");
}

#[actix_web::test]
async fn the_feed_is_private_and_varies_by_caller() {
    let (use_cases, _) = with_feed(UseCases::new(), &outbox([]));
    let reply = send_with(use_cases, admin_get(EVENTS)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
    assert_eq!(reply.header(header::VARY), Some("Authorization"));
}

#[actix_web::test]
async fn the_type_filter_and_limit_pass_through() {
    let (use_cases, asked) = with_feed(UseCases::new(), &outbox(1..=6));
    let body = send_with(use_cases, admin_get("/v1/events?type=order.confirmed&limit=2")).await.json();
    assert_eq!(positions(&body), vec![2, 4]);
    assert!(body["data"].as_array().unwrap().iter().all(|event| event["type"] == "order.confirmed"));
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].type_name, Some("order.confirmed"));
    assert_eq!((asked[0].after, asked[0].limit.get()), (None, 2));

    // Defaults: every type, 20 per page.
    let (use_cases, asked) = with_feed(UseCases::new(), &outbox(1..=3));
    let body = send_with(use_cases, admin_get(EVENTS)).await.json();
    assert_eq!(positions(&body), vec![1, 2, 3]);
    assert_eq!(body["page"]["limit"], 20);
    let asked = asked.lock().unwrap();
    assert_eq!((asked[0].type_name, asked[0].limit.get()), (None, 20));
}

#[actix_web::test]
async fn unknown_types_and_bad_parameters_are_400_naming_them() {
    let reply = send_with(UseCases::new(), admin_get("/v1/events?type=order.exploded")).await;
    let problem = reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("type", "invalid_value")]));
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("order.placed"), "{problem}");

    let reply = send_with(UseCases::new(), admin_get("/v1/events?limit=0&type=&sort=position")).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(
        reply.faults(),
        faults(&[("limit", "out_of_range"), ("sort", "unknown_parameter"), ("type", "invalid_value")])
    );

    let reply =
        send_with(UseCases::new(), admin_get("/v1/events?type=order.placed&type=order.shipped&limit=ten")).await;
    reply.problem(400, "invalid_parameter");
    assert_eq!(reply.faults(), faults(&[("limit", "invalid_format"), ("type", "repeated")]));
}

#[actix_web::test]
async fn polling_with_the_last_cursor_sees_every_event_exactly_once() {
    let outbox = outbox(1..=5);
    let (use_cases, asked) = with_feed(UseCases::new(), &outbox);
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;

    // Page 1 of 3: more right now, so a Link to the next page.
    let reply = send_to(&app, admin_get("/v1/events?limit=2").to_request()).await;
    let body = reply.json();
    assert_eq!(positions(&body), vec![1, 2]);
    assert_eq!(body["page"]["has_more"], true);
    assert_eq!(body["page"]["limit"], 2);
    let cursor = cursor_of(&body);
    assert_eq!(
        reply.header(header::LINK),
        Some(format!("<http://localhost:8080/v1/events?limit=2&cursor={cursor}>; rel=\"next\"").as_str())
    );

    let body = send_to(&app, admin_get(&format!("/v1/events?limit=2&cursor={cursor}")).to_request()).await.json();
    assert_eq!(positions(&body), vec![3, 4]);
    assert_eq!(body["page"]["has_more"], true);

    // The last page still has a cursor (the deviation), but no Link: nothing more right now.
    let reply = send_to(&app, admin_get(&format!("/v1/events?limit=2&cursor={}", cursor_of(&body))).to_request()).await;
    let body = reply.json();
    assert_eq!(positions(&body), vec![5]);
    assert_eq!(body["page"]["has_more"], false);
    assert!(reply.header(header::LINK).is_none());
    let caught_up = cursor_of(&body);

    // Nothing new: an empty page that hands back the cursor it was given.
    let reply = send_to(&app, admin_get(&format!("/v1/events?limit=2&cursor={caught_up}")).to_request()).await;
    let body = reply.json();
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["page"], json!({"limit": 2, "next_cursor": caught_up, "has_more": false}));
    assert!(reply.header(header::LINK).is_none());

    // A writer commits; the next poll from the same cursor sees exactly the new events.
    outbox.lock().unwrap().extend([event(6), event(7)]);
    let body = send_to(&app, admin_get(&format!("/v1/events?limit=2&cursor={caught_up}")).to_request()).await.json();
    assert_eq!(positions(&body), vec![6, 7]);
    assert_eq!(body["page"]["has_more"], false);

    let after: Vec<Option<i64>> = asked.lock().unwrap().iter().map(|query| query.after).collect();
    assert_eq!(after, vec![None, Some(2), Some(4), Some(5), Some(5)]);
}

#[actix_web::test]
async fn an_empty_feed_without_a_cursor_has_no_cursor() {
    let (use_cases, _) = with_feed(UseCases::new(), &outbox([]));
    let reply = send_with(use_cases, admin_get(EVENTS)).await;
    assert_eq!(reply.json(), json!({"data": [], "page": {"limit": 20, "next_cursor": null, "has_more": false}}));
    assert!(reply.header(header::LINK).is_none());
}

#[actix_web::test]
async fn a_filtered_feed_resumes_within_its_filter() {
    let outbox = outbox(1..=6);
    let (use_cases, asked) = with_feed(UseCases::new(), &outbox);
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let body = send_to(&app, admin_get("/v1/events?type=order.placed&limit=2").to_request()).await.json();
    assert_eq!(positions(&body), vec![1, 3]);
    let uri = format!("/v1/events?type=order.placed&limit=2&cursor={}", cursor_of(&body));
    let body = send_to(&app, admin_get(&uri).to_request()).await.json();
    assert_eq!(positions(&body), vec![5]);
    let last = asked.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.type_name, last.after), (Some("order.placed"), Some(3)));
}

#[actix_web::test]
async fn a_cursor_is_bound_to_its_type_filter() {
    let (use_cases, _) = with_feed(UseCases::new(), &outbox(1..=6));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let unfiltered = cursor_of(&send_to(&app, admin_get("/v1/events?limit=1").to_request()).await.json());
    let placed = cursor_of(&send_to(&app, admin_get("/v1/events?type=order.placed&limit=1").to_request()).await.json());

    for uri in [
        format!("/v1/events?type=order.placed&cursor={unfiltered}"),
        format!("/v1/events?cursor={placed}"),
        format!("/v1/events?type=order.confirmed&cursor={placed}"),
    ] {
        let reply = send_to(&app, admin_get(&uri).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "filter_mismatch")]), "{uri}");
    }
}

#[actix_web::test]
async fn tampered_and_foreign_cursors_are_400() {
    let (use_cases, _) = with_feed(UseCases::new(), &outbox(1..=3));
    let app = test::init_service(orderly_http::app(use_cases.into_state())).await;
    let cursor = cursor_of(&send_to(&app, admin_get("/v1/events?limit=1").to_request()).await.json());
    let mut tampered = cursor.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // Another collection's cursor, validly signed with the same key.
    let codec = CursorCodec::new(b"test cursor key");
    let invoices = codec.encode(
        CursorScope { collection: "invoices", sort: "-issued_at" },
        &CursorPosition { key: "\n1".to_owned(), id: Uuid::nil() },
    );
    // A validly signed events cursor whose position is not a number.
    let garbled = codec.encode(
        CursorScope { collection: "events", sort: "position" },
        &CursorPosition { key: "\nlast".to_owned(), id: Uuid::nil() },
    );
    for bad in [tampered.as_str(), &cursor[..cursor.len() - 3], "!!!", invoices.as_str(), garbled.as_str()] {
        let reply = send_to(&app, admin_get(&format!("/v1/events?cursor={bad}")).to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]), "{bad}");
    }
}

#[actix_web::test]
async fn the_use_case_refusing_the_caller_is_403_forbidden() {
    let mut use_cases = UseCases::new();
    use_cases
        .events
        .expect_list()
        .withf(|actor, _| *actor == admin())
        .times(1)
        .returning(|_, _| Err(ReadFeedError::Forbidden));
    let reply = send_with(use_cases, admin_get(EVENTS)).await;
    let problem = reply.problem(403, "forbidden");
    assert_eq!(problem["detail"], "only admins may read the event feed");
}

#[actix_web::test]
async fn store_failures_map_to_503_and_500() {
    let mut use_cases = UseCases::new();
    use_cases
        .events
        .expect_list()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("pool timed out")).into()));
    let reply = send_with(use_cases, admin_get(EVENTS)).await;
    reply.problem(503, "service_unavailable");
    assert!(reply.header(header::RETRY_AFTER).is_some());

    let mut use_cases = UseCases::new();
    use_cases
        .events
        .expect_list()
        .times(1)
        .returning(|_, _| Err(StoreError::Unexpected(anyhow::anyhow!("bad row")).into()));
    send_with(use_cases, admin_get(EVENTS)).await.problem(500, "internal_error");
}
