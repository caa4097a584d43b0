//! Operational endpoints and the cross-cutting failure paths, through the real wiring.

use awc::http::StatusCode;

use crate::on_both_backends;

on_both_backends! {
    async fn health_and_readiness_answer(app) {
        let health = app.get("/healthz", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", String::from_utf8_lossy(&ready.body));
    }

    async fn the_openapi_document_and_swagger_ui_are_served_from_the_binary(app) {
        let document = app.get("/openapi.json", None).await;
        assert_eq!(document.status, StatusCode::OK);
        let document = document.json();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(document["paths"]["/v1/users"]["post"].is_object());
        let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        let mut docs = docs;
        let html = String::from_utf8(docs.body().await.unwrap().to_vec()).unwrap();
        assert!(html.to_lowercase().contains("swagger"), "{html}");
        assert!(!html.contains("cdn") && !html.contains("unpkg"), "Swagger UI must not load from a CDN");
    }

    async fn every_response_carries_a_request_id_and_security_headers(app) {
        let request = app.client.get(app.url("/v1/nowhere")).insert_header(("X-Request-Id", "trace-me.123"));
        let reply = app.send(request, None).await;
        let problem = reply.problem(404, "not_found");
        assert_eq!(problem["request_id"], "trace-me.123");
        assert_eq!(reply.header("x-content-type-options").as_deref(), Some("nosniff"));

        let invalid = app.client.get(app.url("/healthz")).insert_header(("X-Request-Id", "no spaces allowed"));
        let reply = app.send(invalid, None).await;
        let generated = reply.header("x-request-id").unwrap();
        assert_ne!(generated, "no spaces allowed");
        assert!(!generated.is_empty() && generated.len() <= 128);
    }
}
