//! `/v1/webhook-endpoints` (docs/api.md#webhooks) as a consumer sees it, over the real webhook store on SQLite
//! and, when `ORDERLY_TEST_POSTGRES_URL` is set, PostgreSQL: the endpoint's two
//! representations (the secret only in the creation answer), every refused destination, shape
//! and rule faults, admins only (401, then 403 before any validation), the list's pages,
//! ETags, merge patches with an optional `If-Match`, removal, the delivery log and retries.
//!
//! Delivery rows are made through the persistence port directly: the HTTP adapter only reads
//! them and retries them; dispatching and sending are the server's.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use orderly_domain::webhook::{
    DeliveryAttempt, DeliveryStatus, NewWebhookDelivery, WebhookDeliveryId, WebhookEndpointId,
};
use orderly_persistence::testing::TestDatabase;

use crate::support::*;

const ENDPOINTS: &str = "/v1/webhook-endpoints";
const ENDPOINT_FIELDS: [&str; 7] = ["active", "created_at", "description", "event_types", "id", "updated_at", "url"];
const DELIVERY_FIELDS: [&str; 12] = [
    "attempt",
    "created_at",
    "duration_ms",
    "endpoint_id",
    "error",
    "event_id",
    "event_type",
    "id",
    "next_attempt_at",
    "response_status",
    "status",
    "updated_at",
];

fn fields(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value.as_object().expect("an object").keys().cloned().collect();
    names.sort();
    names
}

fn faults(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> =
        list.iter().map(|(at, code)| ((*at).to_owned(), (*code).to_owned())).collect();
    list.sort();
    list
}

fn create(token: &str, body: impl Into<String>) -> TestRequest {
    bearer(json_request(Method::POST, ENDPOINTS, body.into()), token)
}

fn admin(request: TestRequest) -> TestRequest {
    bearer(request, ADMIN_TOKEN)
}

fn patch(uri: &str, body: &str) -> TestRequest {
    admin(json_request(Method::PATCH, uri, body.to_owned()))
}

fn endpoint_uri(id: &str) -> String {
    format!("{ENDPOINTS}/{id}")
}

fn deliveries_uri(endpoint: &str) -> String {
    format!("{ENDPOINTS}/{endpoint}/deliveries")
}

fn retry_uri(endpoint: &str, delivery: &str) -> String {
    format!("{ENDPOINTS}/{endpoint}/deliveries/{delivery}/retries")
}

/// Registers an endpoint at `url` for every event type on `app` and gives its representation.
macro_rules! register {
    ($app:expr, $url:expr) => {{
        let reply = send_to($app, create(ADMIN_TOKEN, json!({"url": $url}).to_string()).to_request()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }};
}

/// Deliveries of `count` events to `endpoint`, as the dispatcher would create them (pending,
/// due now), oldest first.
fn deliveries(db: &TestDatabase, endpoint: &str, count: usize) -> Vec<WebhookDeliveryId> {
    let store = orderly_persistence::repositories(db.database()).webhooks;
    let endpoint_id = WebhookEndpointId::from_uuid(Uuid::parse_str(endpoint).unwrap());
    let new: Vec<NewWebhookDelivery> = (0..count)
        .map(|_| NewWebhookDelivery {
            id: WebhookDeliveryId::new(),
            endpoint_id,
            event_id: Uuid::now_v7(),
            event_type: "order.placed".to_owned(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    let inserted = store.insert_deliveries(&new).unwrap();
    assert_eq!(inserted.len(), count);
    new.iter().map(|delivery| delivery.id).collect()
}

/// Records a failed last attempt on `delivery` (a 500 answer after 120 ms): it is `failed`.
fn fail(db: &TestDatabase, delivery: WebhookDeliveryId) {
    let store = orderly_persistence::repositories(db.database()).webhooks;
    let attempt = DeliveryAttempt {
        sent: true,
        status: DeliveryStatus::Failed,
        response_status: Some(500),
        duration_ms: 120,
        error: Some("the endpoint answered 500".to_owned()),
        next_attempt_at: None,
        at: chrono::Utc::now(),
    };
    assert!(store.record_attempt(delivery, 0, &attempt).unwrap());
}

orderly_persistence::backend_tests! {
    /// 201 with `Location`, `ETag` and `no-store`; the secret in this answer only.
    #[actix_web::test]
    async fn registering_shows_the_secret_once(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let body = json!({
            "url": "https://hooks.example.com/orderly",
            "event_types": ["order.placed", "order.confirmed"],
            "description": "  Fulfilment system\n"
        });
        let reply = send_to(&app, create(ADMIN_TOKEN, body.to_string()).to_request()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"), "the answer carries a secret");
        assert_eq!(reply.header(header::ETAG), Some("\"1\""));
        let created = reply.json();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        assert_eq!(reply.header(header::LOCATION), Some(endpoint_uri(&id).as_str()));
        let mut with_secret = ENDPOINT_FIELDS.map(str::to_owned).to_vec();
        with_secret.push("secret".to_owned());
        with_secret.sort();
        assert_eq!(fields(&created), with_secret);
        let secret = created["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_") && secret.len() > "whsec_".len() + 32, "{secret}");
        assert_eq!(created["url"], "https://hooks.example.com/orderly");
        assert_eq!(created["event_types"], json!(["order.placed", "order.confirmed"]));
        assert_eq!(created["description"], "Fulfilment system", "trimmed");
        assert_eq!(created["active"], true);
        let created_at = created["created_at"].as_str().unwrap();
        assert!(regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap().is_match(created_at));
        assert_eq!(created["updated_at"], created["created_at"]);

        // Never again: neither the endpoint itself nor the list shows the secret.
        let read = send_to(&app, admin(get(&endpoint_uri(&id))).to_request()).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        assert_eq!(fields(&read.json()), ENDPOINT_FIELDS.map(str::to_owned).to_vec());
        assert!(!read.text().contains(secret));
        let mut expected = created.clone();
        expected.as_object_mut().unwrap().remove("secret");
        assert_eq!(read.json(), expected);
        let list = send_to(&app, admin(get(ENDPOINTS)).to_request()).await;
        assert_eq!(list.json()["data"], json!([expected]));
        assert!(!list.text().contains(secret));

        // Without event types or description: every type, no description.
        let all = register!(&app, "https://hooks.example.com/all");
        assert_eq!((all["event_types"].clone(), all["description"].clone()), (Value::Null, Value::Null));
        assert_ne!(all["secret"], created["secret"], "every endpoint has its own secret");
        let blank = json!({"url": "https://hooks.example.com/b", "event_types": null, "description": " \t"});
        let blank = send_to(&app, create(ADMIN_TOKEN, blank.to_string()).to_request()).await.json();
        assert_eq!((blank["event_types"].clone(), blank["description"].clone()), (Value::Null, Value::Null));
    }

    /// docs/api.md#retries-idempotency-key on the real executor (and on SQLite its one write
    /// transaction): the replay is the first answer byte for byte, secret included, and registers
    /// nothing more.
    #[actix_web::test]
    async fn a_retried_registration_is_replayed_with_its_secret(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let request = || {
            create(ADMIN_TOKEN, r#"{"url":"https://hooks.example.com/orderly"}"#)
                .insert_header(("Idempotency-Key", "register-hook-1"))
        };
        let first = send_to(&app, request().to_request()).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        let again = send_to(&app, request().to_request()).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.header("idempotency-replayed"), Some("true"));
        assert_eq!(again.body, first.body);
        assert_eq!(again.header(header::LOCATION), first.header(header::LOCATION));
        assert_eq!(again.header(header::CACHE_CONTROL), Some("no-store"));
        let list = send_to(&app, admin(get(ENDPOINTS)).to_request()).await.json();
        assert_eq!(list["data"].as_array().unwrap().len(), 1);

        let other = create(ADMIN_TOKEN, r#"{"url":"https://hooks.example.com/other"}"#)
            .insert_header(("Idempotency-Key", "register-hook-1"));
        send_to(&app, other.to_request()).await.problem(422, "idempotency_key_reused");
    }

    /// docs/api.md#webhooks: refused when saved, each at `/url`, and nothing is stored.
    #[actix_web::test]
    async fn every_refused_destination_is_422_at_the_url(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        for (url, code) in [
            ("http://hooks.example.com/orderly", "invalid_value"),
            ("https://127.0.0.1/hooks", "forbidden_destination"),
            ("https://127.1.2.3:8443/hooks", "forbidden_destination"),
            ("https://localhost/hooks", "forbidden_destination"),
            ("https://api.localhost./hooks", "forbidden_destination"),
            ("https://10.0.0.1/hooks", "forbidden_destination"),
            ("https://172.16.5.4/hooks", "forbidden_destination"),
            ("https://192.168.1.1/hooks", "forbidden_destination"),
            ("https://169.254.169.254/latest/meta-data/", "forbidden_destination"),
            ("https://[::1]/hooks", "forbidden_destination"),
            ("https://[::ffff:127.0.0.1]/hooks", "forbidden_destination"),
            ("https://[fd00::1]/hooks", "forbidden_destination"),
            ("https://[fe80::1]/hooks", "forbidden_destination"),
            ("https://0.0.0.0/hooks", "forbidden_destination"),
            ("https://[::]/hooks", "forbidden_destination"),
            ("https://224.0.0.1/hooks", "forbidden_destination"),
            ("https://[ff02::1]/hooks", "forbidden_destination"),
            ("https://100.64.0.1/hooks", "forbidden_destination"),
            ("https://user:secret@hooks.example.com/", "invalid_value"),
            ("https://hooks.example.com/#fragment", "invalid_value"),
            ("ftp://hooks.example.com/", "invalid_value"),
            ("not a url", "invalid_format"),
            ("/relative/path", "invalid_format"),
        ] {
            let reply = send_to(&app, create(ADMIN_TOKEN, json!({"url": url}).to_string()).to_request()).await;
            let problem = reply.problem(422, "validation_failed");
            assert_eq!(reply.faults(), faults(&[("/url", code)]), "{url}");
            assert_eq!(problem["instance"], ENDPOINTS);
            assert!(!reply.text().contains("secret@"), "the URL's credentials are not echoed: {}", reply.text());
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        let reply = send_to(&app, create(ADMIN_TOKEN, json!({"url": long}).to_string()).to_request()).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&[("/url", "too_long")]));

        let list = send_to(&app, admin(get(ENDPOINTS)).to_request()).await.json();
        assert_eq!(list["data"], json!([]), "nothing was registered");
    }

    /// Unknown fields (the secret and `active` cannot be set), types, and every rule fault of
    /// the body at its pointer.
    #[actix_web::test]
    async fn faults_of_the_body_are_422_with_pointers(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let url = "https://hooks.example.com/orderly";
        let cases: [(Value, &[(&str, &str)]); 9] = [
            (json!({"url": url, "secret": "whsec_mine"}), &[("/secret", "unknown_field")]),
            (json!({"url": url, "active": false, "id": "x"}), &[("/active", "unknown_field"), ("/id", "unknown_field")]),
            (json!({}), &[("/url", "required")]),
            (json!({"url": null}), &[("/url", "required")]),
            (json!({"url": 42, "event_types": "order.placed"}), &[("/event_types", "invalid_type"), ("/url", "invalid_type")]),
            (json!({"url": url, "event_types": []}), &[("/event_types", "too_short")]),
            (json!({"url": url, "event_types": ["order.shipped", "order.exploded"]}), &[("/event_types/1", "invalid_value")]),
            (json!({"url": url, "event_types": ["order.placed", "order.placed"]}), &[("/event_types/1", "duplicate")]),
            (
                json!({"url": "http://127.0.0.1/", "event_types": ["nope"], "description": "x".repeat(501)}),
                &[("/description", "too_long"), ("/event_types/0", "invalid_value"), ("/url", "invalid_value")],
            ),
        ];
        for (body, expected) in cases {
            let reply = send_to(&app, create(ADMIN_TOKEN, body.to_string()).to_request()).await;
            reply.problem(422, "validation_failed");
            assert_eq!(reply.faults(), faults(expected), "{body}");
        }
        let reply = send_to(&app, create(ADMIN_TOKEN, r#"{"url":"https://hooks.example.com/","description":"a\rb"}"#).to_request()).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.faults(), faults(&[("/description", "invalid_format")]));

        send_to(&app, create(ADMIN_TOKEN, "{").to_request()).await.problem(400, "malformed_json");
        let text = admin(TestRequest::post().uri(ENDPOINTS).insert_header((header::CONTENT_TYPE, "text/plain")))
            .set_payload(format!(r#"{{"url":"{url}"}}"#));
        send_to(&app, text.to_request()).await.problem(415, "unsupported_media_type");
    }

    /// docs/api.md#authentication-and-authorisation: who (401), then whether they may (403) —
    /// before the path, the query or the body is looked at.
    #[actix_web::test]
    async fn admins_only_and_customers_learn_nothing_from_validation(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let created = register!(&app, "https://hooks.example.com/orderly");
        let id = created["id"].as_str().unwrap().to_owned();
        let delivery = Uuid::now_v7().to_string();
        let requests = |token: Option<&str>| {
            let requests = [
                json_request(Method::POST, ENDPOINTS, r#"{"url":"http://10.0.0.1/","bogus":1}"#),
                json_request(Method::POST, ENDPOINTS, r#"{"url":"https://hooks.example.com/"}"#),
                get(&format!("{ENDPOINTS}?limit=0&foo=1")),
                get(ENDPOINTS),
                get(&endpoint_uri("not-a-uuid")),
                get(&endpoint_uri(&id)).insert_header((header::IF_NONE_MATCH, "3")),
                json_request(Method::PATCH, &endpoint_uri(&id), r#"{"active":"no"}"#),
                json_request(Method::PATCH, &endpoint_uri(&id), r#"{"active":false}"#),
                with_method(Method::DELETE, &endpoint_uri(&id)),
                get(&format!("{}?cursor=forged", deliveries_uri(&id))),
                get(&deliveries_uri(&id)),
                with_method(Method::POST, &retry_uri(&id, "42")),
                with_method(Method::POST, &retry_uri(&id, &delivery)),
            ];
            requests.map(|request| match token {
                Some(token) => bearer(request, token),
                None => request,
            })
        };
        for request in requests(Some(CUSTOMER_TOKEN)) {
            let request = request.to_request();
            let name = format!("{} {}", request.method(), request.uri());
            let reply = send_to(&app, request).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{name}: {}", reply.text());
            let problem = reply.problem(403, "forbidden");
            assert!(problem.get("errors").is_none(), "{name}: nothing about the request's faults");
        }
        for request in requests(None) {
            let request = request.to_request();
            let name = format!("{} {}", request.method(), request.uri());
            let reply = send_to(&app, request).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}");
            reply.problem(401, "unauthenticated");
            assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"), "{name}");
        }
        for request in requests(Some(EXPIRED_TOKEN)) {
            send_to(&app, request.to_request()).await.problem(401, "unauthenticated");
        }
        // Nothing was changed by the refused requests.
        let read = send_to(&app, admin(get(&endpoint_uri(&id))).to_request()).await;
        assert_eq!(read.header(header::ETAG), Some("\"1\""));
        let list = send_to(&app, admin(get(ENDPOINTS)).to_request()).await.json();
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
    }

    /// docs/api.md#pagination: oldest first, every endpoint once, `Link` to the next page, signed cursors.
    #[actix_web::test]
    async fn the_list_is_oldest_first_in_pages(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(register!(&app, &format!("https://hooks{n}.example.com/"))["id"].as_str().unwrap().to_owned());
        }

        let mut seen = Vec::new();
        let mut uri = format!("{ENDPOINTS}?limit=2");
        loop {
            let reply = send_to(&app, admin(get(&uri)).to_request()).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
            assert_eq!(reply.header(header::VARY), Some("Authorization"));
            let body = reply.json();
            assert_eq!(body["page"]["limit"], 2);
            for item in body["data"].as_array().unwrap() {
                assert_eq!(fields(item), ENDPOINT_FIELDS.map(str::to_owned).to_vec());
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match body["page"]["next_cursor"].as_str() {
                Some(cursor) => {
                    assert_eq!(body["page"]["has_more"], true);
                    let link = reply.header(header::LINK).expect("a Link to the next page");
                    assert!(link.ends_with(&format!("cursor={cursor}>; rel=\"next\"")), "{link}");
                    uri = format!("{ENDPOINTS}?limit=2&cursor={cursor}");
                }
                None => {
                    assert_eq!(body["page"]["has_more"], false);
                    assert!(reply.header(header::LINK).is_none());
                    break;
                }
            }
        }
        assert_eq!(seen, ids, "oldest first, each once");

        let first = send_to(&app, admin(get(&format!("{ENDPOINTS}?limit=1"))).to_request()).await.json();
        let cursor = first["page"]["next_cursor"].as_str().unwrap().to_owned();
        let mut tampered = cursor.clone().into_bytes();
        tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        // Another collection's cursor: the delivery log of the first endpoint.
        let log = deliveries_uri(&ids[0]);
        deliveries(db, &ids[0], 2);
        let foreign = send_to(&app, admin(get(&format!("{log}?limit=1"))).to_request()).await.json();
        let foreign = foreign["page"]["next_cursor"].as_str().unwrap().to_owned();
        for bad in [tampered.as_str(), foreign.as_str(), "AAAA"] {
            let reply = send_to(&app, admin(get(&format!("{ENDPOINTS}?cursor={bad}"))).to_request()).await;
            reply.problem(400, "invalid_parameter");
            assert_eq!(reply.faults(), faults(&[("cursor", "invalid_cursor")]), "{bad}");
        }
        for bad in ["limit=0", "limit=101", "limit=x", "sort=url"] {
            let reply = send_to(&app, admin(get(&format!("{ENDPOINTS}?{bad}"))).to_request()).await;
            reply.problem(400, "invalid_parameter");
        }
    }

    /// docs/api.md#caching: a strong ETag from the version, 304 for a current `If-None-Match`; ids are UUIDs.
    #[actix_web::test]
    async fn one_endpoint_has_an_etag_and_answers_304(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let id = register!(&app, "https://hooks.example.com/orderly")["id"].as_str().unwrap().to_owned();
        let reply = send_to(&app, admin(get(&endpoint_uri(&id))).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header(header::ETAG), Some("\"1\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));

        let cached = admin(get(&endpoint_uri(&id))).insert_header((header::IF_NONE_MATCH, "\"1\""));
        let reply = send_to(&app, cached.to_request()).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(header::ETAG), Some("\"1\""));
        let stale = admin(get(&endpoint_uri(&id))).insert_header((header::IF_NONE_MATCH, "\"0\""));
        assert_eq!(send_to(&app, stale.to_request()).await.status, StatusCode::OK);

        send_to(&app, admin(get(&endpoint_uri(&Uuid::now_v7().to_string()))).to_request())
            .await
            .problem(404, "not_found");
        for bad in ["not-a-uuid", "42", "0192f5c2-0000-7000-8000-00000000000"] {
            let reply = send_to(&app, admin(get(&endpoint_uri(bad))).to_request()).await;
            reply.problem(400, "invalid_parameter");
            assert_eq!(reply.faults(), faults(&[("id", "invalid_format")]), "{bad}");
        }
    }

    /// A merge patch: each field alone, `null` where it means something, the URL checked again,
    /// and `If-Match` honoured when sent.
    #[actix_web::test]
    async fn an_endpoint_is_changed_by_merge_patch(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let body = json!({"url": "https://hooks.example.com/a", "event_types": ["order.placed"], "description": "A"});
        let created = send_to(&app, create(ADMIN_TOKEN, body.to_string()).to_request()).await.json();
        let uri = endpoint_uri(created["id"].as_str().unwrap());

        let reply = send_to(&app, patch(&uri, r#"{"active":false}"#).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.header(header::ETAG), Some("\"2\""));
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        let changed = reply.json();
        assert_eq!(fields(&changed), ENDPOINT_FIELDS.map(str::to_owned).to_vec(), "no secret");
        assert_eq!(changed["active"], false);
        assert_eq!((changed["url"].clone(), changed["description"].clone()), (created["url"].clone(), created["description"].clone()));
        assert_eq!(changed["event_types"], json!(["order.placed"]));
        assert_eq!(changed["created_at"], created["created_at"]);

        // `null`: every type again; no description.
        let merge = patch(&uri, r#"{"event_types":null,"description":null,"active":true}"#)
            .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"));
        let changed = send_to(&app, merge.to_request()).await.json();
        assert_eq!((changed["event_types"].clone(), changed["description"].clone()), (Value::Null, Value::Null));
        assert_eq!(changed["active"], true);

        // The URL is checked like at creation; nothing changes.
        for (url, code) in [("https://10.1.2.3/", "forbidden_destination"), ("http://hooks.example.com/", "invalid_value")] {
            let reply = send_to(&app, patch(&uri, &json!({"url": url}).to_string()).to_request()).await;
            reply.problem(422, "validation_failed");
            assert_eq!(reply.faults(), faults(&[("/url", code)]), "{url}");
        }
        for (body, expected) in [
            (r#"{"url":null,"active":null}"#, &[("/active", "invalid_type"), ("/url", "invalid_type")][..]),
            (r#"{"event_types":[]}"#, &[("/event_types", "too_short")]),
            (r#"{"event_types":["nope"]}"#, &[("/event_types/0", "invalid_value")]),
            (r#"{"secret":"whsec_x","version":3}"#, &[("/secret", "unknown_field"), ("/version", "unknown_field")]),
        ] {
            let reply = send_to(&app, patch(&uri, body).to_request()).await;
            reply.problem(422, "validation_failed");
            assert_eq!(reply.faults(), faults(expected), "{body}");
        }
        let reply = send_to(&app, admin(get(&uri)).to_request()).await;
        assert_eq!(reply.header(header::ETAG), Some("\"3\""), "refused patches changed nothing");

        let reply = send_to(&app, patch(&uri, r#"{"url":"https://hooks.example.com/b"}"#).to_request()).await;
        assert_eq!(reply.json()["url"], "https://hooks.example.com/b");
        assert_eq!(reply.header(header::ETAG), Some("\"4\""));

        // If-Match: optional, honoured when sent.
        let stale = patch(&uri, r#"{"description":"stale"}"#).insert_header((header::IF_MATCH, "\"3\""));
        send_to(&app, stale.to_request()).await.problem(412, "precondition_failed");
        let current = patch(&uri, r#"{"description":"current"}"#).insert_header((header::IF_MATCH, "\"4\""));
        let reply = send_to(&app, current.to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["description"], "current");
        let weak = patch(&uri, "{}").insert_header((header::IF_MATCH, "W/\"5\""));
        send_to(&app, weak.to_request()).await.problem(412, "precondition_failed");
        let empty = send_to(&app, patch(&uri, "{}").to_request()).await;
        assert_eq!((empty.status, empty.header(header::ETAG)), (StatusCode::OK, Some("\"5\"")), "an empty patch changes nothing");

        let missing = endpoint_uri(&Uuid::now_v7().to_string());
        send_to(&app, patch(&missing, r#"{"active":false}"#).to_request()).await.problem(404, "not_found");
    }

    /// Removal: 204, then it is gone (its delivery log with it); `If-Match` honoured when sent.
    #[actix_web::test]
    async fn a_removed_endpoint_is_gone(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let id = register!(&app, "https://hooks.example.com/orderly")["id"].as_str().unwrap().to_owned();
        deliveries(db, &id, 1);
        let uri = endpoint_uri(&id);

        let stale = admin(with_method(Method::DELETE, &uri)).insert_header((header::IF_MATCH, "\"7\""));
        send_to(&app, stale.to_request()).await.problem(412, "precondition_failed");
        let reply = send_to(&app, admin(with_method(Method::DELETE, &uri)).insert_header((header::IF_MATCH, "\"1\"")).to_request()).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert!(reply.body.is_empty());

        send_to(&app, admin(get(&uri)).to_request()).await.problem(404, "not_found");
        send_to(&app, admin(get(&deliveries_uri(&id))).to_request()).await.problem(404, "not_found");
        send_to(&app, admin(with_method(Method::DELETE, &uri)).to_request()).await.problem(404, "not_found");
        assert_eq!(db.count_rows("webhook_deliveries"), 0, "the log went with it");
    }

    /// The delivery log: newest first, in pages, each delivery with exactly the contract's
    /// fields; an unknown endpoint is 404.
    #[actix_web::test]
    async fn the_delivery_log_is_newest_first(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        send_to(&app, admin(get(&deliveries_uri(&Uuid::now_v7().to_string()))).to_request())
            .await
            .problem(404, "not_found");
        send_to(&app, admin(get(&deliveries_uri("nope"))).to_request()).await.problem(400, "invalid_parameter");

        let id = register!(&app, "https://hooks.example.com/orderly")["id"].as_str().unwrap().to_owned();
        let other = register!(&app, "https://hooks.example.com/other")["id"].as_str().unwrap().to_owned();
        let made = deliveries(db, &id, 3);
        deliveries(db, &other, 1);
        fail(db, made[0]);

        let reply = send_to(&app, admin(get(&format!("{}?limit=2", deliveries_uri(&id)))).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("private, no-cache"));
        let page = reply.json();
        let listed: Vec<&str> = page["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert_eq!(listed, vec![made[2].to_string(), made[1].to_string()], "newest first");
        let pending = &page["data"][0];
        assert_eq!(fields(pending), DELIVERY_FIELDS.map(str::to_owned).to_vec());
        assert_eq!(pending["endpoint_id"], id.as_str());
        assert_eq!(pending["event_type"], "order.placed");
        assert_eq!(pending["status"], "pending");
        assert_eq!(pending["attempt"], 0);
        assert_eq!((pending["response_status"].clone(), pending["duration_ms"].clone(), pending["error"].clone()), (Value::Null, Value::Null, Value::Null));
        assert!(pending["next_attempt_at"].as_str().is_some_and(|at| at.ends_with('Z')));

        let cursor = page["page"]["next_cursor"].as_str().unwrap();
        assert!(reply.header(header::LINK).is_some());
        let rest = send_to(&app, admin(get(&format!("{}?limit=2&cursor={cursor}", deliveries_uri(&id)))).to_request()).await.json();
        assert_eq!(rest["page"], json!({"limit": 2, "next_cursor": null, "has_more": false}));
        let failed = &rest["data"][0];
        assert_eq!(failed["id"], made[0].to_string().as_str());
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["attempt"], 1);
        assert_eq!(failed["response_status"], 500);
        assert_eq!(failed["duration_ms"], 120);
        assert_eq!(failed["error"], "the endpoint answered 500");
        assert_eq!(failed["next_attempt_at"], Value::Null);

        // A cursor of one endpoint's log is not one of another's.
        let reply = send_to(&app, admin(get(&format!("{}?cursor={cursor}", deliveries_uri(&other)))).to_request()).await;
        reply.problem(400, "invalid_parameter");
    }

    /// A retry makes the delivery pending again (202); not for a disabled endpoint (409), nor
    /// for a delivery that is not the endpoint's (404).
    #[actix_web::test]
    async fn a_delivery_is_retried(db: &TestDatabase) {
        let app = test::init_service(orderly_http::app(UseCases::new().into_state_over(db.database()))).await;
        let id = register!(&app, "https://hooks.example.com/orderly")["id"].as_str().unwrap().to_owned();
        let other = register!(&app, "https://hooks.example.com/other")["id"].as_str().unwrap().to_owned();
        let delivery = deliveries(db, &id, 1)[0];
        let elsewhere = deliveries(db, &other, 1)[0];
        fail(db, delivery);
        let post = |endpoint: &str, delivery: &str| admin(with_method(Method::POST, &retry_uri(endpoint, delivery)));

        let unknown = Uuid::now_v7().to_string();
        send_to(&app, post(&id, &unknown).to_request()).await.problem(404, "not_found");
        send_to(&app, post(&unknown, &delivery.to_string()).to_request()).await.problem(404, "not_found");
        send_to(&app, post(&id, &elsewhere.to_string()).to_request()).await.problem(404, "not_found");
        let reply = send_to(&app, post(&id, "nope").to_request()).await;
        reply.problem(400, "invalid_parameter");
        assert_eq!(reply.faults(), faults(&[("delivery_id", "invalid_format")]));

        let reply = send_to(&app, post(&id, &delivery.to_string()).insert_header(("Idempotency-Key", "retry-1")).to_request()).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        let retried = reply.json();
        assert_eq!(fields(&retried), DELIVERY_FIELDS.map(str::to_owned).to_vec());
        assert_eq!(retried["id"], delivery.to_string().as_str());
        assert_eq!(retried["status"], "pending");
        assert_eq!(retried["attempt"], 1, "the attempts made so far are kept");
        assert!(retried["next_attempt_at"].as_str().is_some());
        assert_eq!(db.count_rows("jobs"), 1, "its attempt is queued");
        // Safe to repeat: the key is checked, not stored.
        let again = send_to(&app, post(&id, &delivery.to_string()).insert_header(("Idempotency-Key", "retry-1")).to_request()).await;
        assert_eq!(again.status, StatusCode::ACCEPTED);
        assert!(again.header("idempotency-replayed").is_none());
        assert_eq!(db.count_rows("jobs"), 1, "still one attempt queued");
        let bad_key = post(&id, &delivery.to_string()).insert_header(("Idempotency-Key", ""));
        send_to(&app, bad_key.to_request()).await.problem(400, "invalid_parameter");

        send_to(&app, patch(&endpoint_uri(&id), r#"{"active":false}"#).to_request()).await;
        let reply = send_to(&app, post(&id, &delivery.to_string()).to_request()).await;
        let problem = reply.problem(409, "invalid_transition");
        assert!(problem["detail"].as_str().unwrap().contains("disabled"), "{problem}");
    }
}
