//! The real binary's log when clients send what HTTP does not allow (issue 14, item 12): a
//! client's fault is an INFO line with the request id, never an ERROR line. Requests refused
//! before routing are logged by the head guard (ADR 0016); a malformed chunk inside a body
//! reaches actix-http, whose ERROR line about it is rewritten to INFO (`telemetry`). On SQLite,
//! and on PostgreSQL when `ORDERLY_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use orderly_persistence::testing::TestDatabase;
use serde_json::Value;
use support::{Server, postgres_server_url, with_common_env};

/// Sends `request` raw and reads until the server closes.
fn exchange(server: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn request_id(answer: &str) -> String {
    answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: ").or_else(|| line.strip_prefix("X-Request-Id: ")))
        .unwrap_or_else(|| panic!("no X-Request-Id: {answer}"))
        .trim()
        .to_owned()
}

/// The server's JSON log lines, once `wanted` holds for them (the log is written as it goes).
fn log_lines(dir: &std::path::Path, server: &Server, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let path = dir.join(format!("orderly-{}.log", server.port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        if wanted(&lines) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_info_with_id(lines: &[Value], id: &str) -> bool {
    lines.iter().any(|line| line["level"] == "INFO" && line["request_id"] == id)
}

fn check(database: &TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let env = with_common_env(&[
        ("ORDERLY_DATABASE_URL", url.as_str()),
        ("ORDERLY_LOG", "info"),
        ("ORDERLY_LOG_FORMAT", "json"),
    ]);
    let server = Server::start(dir.path(), &env);

    let invalid_value = exchange(&server, b"GET /v1/products HTTP/1.1\r\nHost: t\r\nX-Note: a\x01b\r\n\r\n");
    assert!(invalid_value.starts_with("HTTP/1.1 400"), "{invalid_value}");
    let bad_length = exchange(&server, b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n");
    assert!(bad_length.starts_with("HTTP/1.1 400"), "{bad_length}");
    let (first, second) = (request_id(&invalid_value), request_id(&bad_length));
    // A body whose chunk framing breaks after the head was accepted: only actix sees it.
    let bad_chunk = exchange(
        &server,
        b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\n{}\r\nzz\r\n\r\n",
    );
    assert!(bad_chunk.starts_with("HTTP/1.1 4"), "{bad_chunk}");

    let lines =
        log_lines(dir.path(), &server, |lines| has_info_with_id(lines, &first) && has_info_with_id(lines, &second));
    let errors: Vec<&Value> = lines.iter().filter(|line| line["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "a client's fault was logged as ERROR: {errors:?}");
    for id in [&first, &second] {
        let line = lines.iter().find(|line| line["request_id"] == id.as_str());
        let line = line.unwrap_or_else(|| panic!("no line with request id {id}: {lines:?}"));
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["status"], 400, "{line}");
    }
    assert!(server.terminate().success());
}

#[test]
fn a_clients_malformed_request_is_logged_at_info_with_its_request_id_never_error() {
    check(&TestDatabase::sqlite());
    let test = "head_refusals::a_clients_malformed_request_is_logged_at_info_with_its_request_id_never_error";
    if postgres_server_url(test).is_some()
        && let Some(database) = TestDatabase::postgres()
    {
        check(&database);
    }
}
