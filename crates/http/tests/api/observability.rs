//! Observability as an operator sees it: `/metrics` serves what the binary's recorder renders
//! (or 404 without one), and every log line of a request carries its W3C trace id.
//! (What the metrics contain is tested through the real recorder in the server's tests.)

use std::sync::Arc;

use actix_web::http::StatusCode;
use orderly_http::metrics::MetricsSource;
use serde_json::Value;

use crate::support::*;

/// A metrics source that renders a fixed text.
pub struct FixedMetrics(pub &'static str);

impl MetricsSource for FixedMetrics {
    fn render(&self) -> String {
        self.0.to_owned()
    }
}

const RENDERED: &str = "# HELP orderly_test_total A test.\n# TYPE orderly_test_total counter\norderly_test_total 1\n";

#[actix_web::test]
async fn metrics_serves_the_rendered_text_in_the_prometheus_format() {
    let mut state = UseCases::new().into_state();
    state.metrics = Some(Arc::new(FixedMetrics(RENDERED)));
    let app = actix_web::test::init_service(orderly_http::app(state)).await;
    let reply = send_to(&app, get("/metrics").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.text(), RENDERED);
}

#[actix_web::test]
async fn metrics_without_a_recorder_is_not_found() {
    let reply = send_with(UseCases::new(), get("/metrics")).await;
    reply.problem(404, "not_found");
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// The root span's fields on the request's "request completed" log line.
async fn logged_span(traceparent: Option<&str>) -> Value {
    let mut request = get("/healthz");
    if let Some(value) = traceparent {
        request = request.insert_header(("traceparent", value));
    }
    let capture = LogCapture::start();
    let reply = send_with(UseCases::new(), request).await;
    let log = capture.finish();
    assert_eq!(reply.status, StatusCode::OK);
    let line = log.lines().find(|line| line.contains("request completed")).unwrap_or_else(|| panic!("{log}"));
    let line: Value = serde_json::from_str(line).unwrap();
    line["span"].clone()
}

fn is_trace_id(value: &Value) -> bool {
    value.as_str().is_some_and(|id| {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) && id != "0".repeat(32)
    })
}

#[actix_web::test]
async fn a_valid_traceparent_names_the_trace_and_parent_of_every_log_line() {
    let span = logged_span(Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01"))).await;
    assert_eq!(span["trace_id"], TRACE_ID, "{span}");
    assert_eq!(span["parent_span_id"], PARENT_ID, "{span}");
    // The request's other fields are still there.
    assert!(span["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{span}");
}

#[actix_web::test]
async fn without_a_valid_traceparent_a_fresh_trace_begins() {
    let absent = logged_span(None).await;
    assert!(is_trace_id(&absent["trace_id"]), "{absent}");
    assert!(absent.get("parent_span_id").is_none(), "{absent}");

    let invalid = [
        format!("00-{}-{PARENT_ID}-01", "0".repeat(32)),
        format!("00-{TRACE_ID}-{}-01", "0".repeat(16)),
        format!("00-{}-{PARENT_ID}-01", TRACE_ID.to_uppercase()),
        format!("01-{TRACE_ID}-{PARENT_ID}-01"),
        format!("00-{TRACE_ID}-{PARENT_ID}"),
        "not a traceparent".to_owned(),
    ];
    for value in invalid {
        let span = logged_span(Some(&value)).await;
        assert!(is_trace_id(&span["trace_id"]), "{value}: {span}");
        assert_ne!(span["trace_id"], TRACE_ID, "{value}: {span}");
        assert!(span.get("parent_span_id").is_none(), "{value}: {span}");
    }

    let another = logged_span(None).await;
    assert_ne!(absent["trace_id"], another["trace_id"]);
}
