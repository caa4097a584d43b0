//! Request bodies through the real application (docs/api.md#errors): a member named twice is refused
//! before anything is stored, and a body full of faults gets a problem of bounded size.
//! Bodies are sent as text, since a JSON value cannot hold a member twice.

use awc::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{PASSWORD, Reply};

/// Sends `text` as an `application/json` (or `content_type`) body.
async fn send_text(request: awc::ClientRequest, content_type: &str, text: String) -> Reply {
    let mut response =
        request.insert_header(("Content-Type", content_type)).send_body(text).await.expect("request sent");
    let body = response.body().limit(4 * 1024 * 1024).await.expect("body read").to_vec();
    Reply { status: response.status(), headers: response.headers().clone(), body }
}

fn pointers_and_codes(problem: &serde_json::Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pointer"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
        .collect();
    found.sort();
    found
}

on_both_backends! {
    async fn a_member_named_twice_registers_nobody(app) {
        let text = format!(r#"{{"email":"ada@example.com","password":"{PASSWORD}","name":"first","na\u006de":"second"}}"#);
        let reply = send_text(app.client.post(app.url("/v1/users")), "application/json", text).await;
        let problem = reply.problem(422, "validation_failed");
        assert_eq!(pointers_and_codes(&problem), [("/name".to_owned(), "duplicate_member".to_owned())]);

        // Nothing was stored: the address is still free.
        let registered = app.post("/v1/users", None, &json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"})).await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&registered.body));
        assert_eq!(registered.json()["name"], "Ada");
    }

    async fn a_merge_patch_with_a_member_named_twice_changes_nothing(app) {
        let admin = app.admin().await;
        let body = json!({"sku": "MUG-001", "name": "Mug", "unit_price": {"amount": 1250, "currency": "EUR"}});
        let created = app.post("/v1/products", Some(&admin.access_token), &body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
        let etag = created.header("etag").unwrap();
        let path = format!("/v1/products/{}", created.json()["id"].as_str().unwrap());

        let request = app.client.patch(app.url(&path)).bearer_auth(&admin.access_token).insert_header(("If-Match", etag.as_str()));
        let text = r#"{"unit_price":{"amount":990,"currency":"EUR","amount":1}}"#.to_owned();
        let reply = send_text(request, "application/merge-patch+json", text).await;
        let problem = reply.problem(422, "validation_failed");
        assert_eq!(pointers_and_codes(&problem), [("/unit_price/amount".to_owned(), "duplicate_member".to_owned())]);

        let after = app.get(&path, None).await;
        assert_eq!(after.header("etag"), Some(etag));
        assert_eq!(after.json()["unit_price"], json!({"amount": 1250, "currency": "EUR"}));
    }

    async fn five_thousand_unknown_fields_get_a_bounded_problem(app) {
        let fields: Vec<String> = (0..5_000).map(|i| format!(r#""f{i:04}":1"#)).collect();
        let text = format!("{{{}}}", fields.join(","));
        let reply = send_text(app.client.post(app.url("/v1/users")), "application/json", text).await;
        let problem = reply.problem(422, "validation_failed");
        assert_eq!(problem["errors"].as_array().unwrap().len(), 100);
        assert_eq!(problem["errors_truncated"], true);
        assert!(reply.body.len() < 32 * 1024, "{} bytes", reply.body.len());

        let few = app.post("/v1/users", None, &json!({"email": "ada@example.com", "role": "admin"})).await;
        let problem = few.problem(422, "validation_failed");
        assert_eq!(problem["errors"].as_array().unwrap().len(), 3);
        assert!(problem.get("errors_truncated").is_none(), "{problem}");
    }
}
