//! Refusals made before a route is matched (docs/api.md#errors, ADR 0016), on the real server over a raw
//! socket (an HTTP client would refuse to send most of these): a request line or header
//! section over the limit, a slow head and malformed framing are answered as problem+json with
//! a request id and the security headers; good requests around them are unchanged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use orderly_persistence::testing::Backend;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::TestApp;

/// One response read off the wire.
#[derive(Debug)]
struct RawReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts a refusal's problem: status, code, request id (header and body), `no-store`,
    /// the security headers and `Connection: close`.
    fn refusal(&self, status: u16, code: &str) -> Value {
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {self:?} {}", String::from_utf8_lossy(&self.body)));
        assert_eq!(self.status, status, "{body}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("connection"), Some("close"));
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status);
        let id = self.header("x-request-id").expect("an X-Request-Id header");
        assert_eq!(body["request_id"], id);
        assert!(uuid::Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 7), "{id}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert!(self.header("content-security-policy").is_some_and(|csp| csp.starts_with("default-src 'none'")));
        body
    }
}

/// Splits a stream of responses (each with a `Content-Length` body).
fn responses(mut raw: &[u8]) -> Vec<RawReply> {
    let mut replies = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + length).min(raw.len());
        replies.push(RawReply { status, headers, body: raw[end + 4..body_end].to_vec() });
        raw = &raw[body_end..];
    }
    replies
}

fn address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Sends `parts` one after another (waiting `pause` between them) and reads until the server
/// closes the connection.
async fn exchange(app: &TestApp, parts: Vec<Vec<u8>>, pause: Duration) -> Vec<RawReply> {
    let address = address(app);
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(pause);
            }
            // The server may answer (and stop reading) before everything is written.
            let _ = stream.write_all(part);
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        responses(&answer)
    })
    .await
    .unwrap()
}

async fn one(app: &TestApp, request: Vec<u8>) -> RawReply {
    let mut replies = exchange(app, vec![request], Duration::ZERO).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies.remove(0)
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").into_bytes()
}

on_both_backends! {
    async fn a_request_line_over_the_limit_is_414(app) {
        for length in [70_000, 65_520, 8_200] {
            let path = format!("/v1/products?q={}", "a".repeat(length));
            let reply = one(&app, get(&path, "")).await;
            let body = reply.refusal(414, "uri_too_long");
            assert_eq!(body["instance"], "", "the path of an unread request line is not echoed");
        }
    }

    async fn too_many_header_fields_are_431(app) {
        let fields: String = (0..200).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
        let reply = one(&app, get("/v1/products", &fields)).await;
        let body = reply.refusal(431, "header_fields_too_large");
        assert_eq!(body["instance"], "/v1/products");
    }

    async fn a_header_section_over_the_limit_is_431(app) {
        let big = format!("X-Big: {}\r\n", "b".repeat(40_000));
        one(&app, get("/v1/products", &big)).await.refusal(431, "header_fields_too_large");
    }

    async fn malformed_framing_is_400(app) {
        let requests: [&[u8]; 5] = [
            b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            b"POST /v1/users HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET /v1/products please HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /v1/products HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n",
        ];
        for request in requests {
            let reply = one(&app, request.to_vec()).await;
            let body = reply.refusal(400, "invalid_parameter");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        }
    }

    async fn a_keep_alive_connection_gets_the_good_answer_then_the_refusal(app) {
        // One after the other on one connection, and pipelined in one write.
        let good = get("/healthz", "");
        let bad = get("/healthz", "Content-Length: abc\r\n");
        let sequential = exchange(&app, vec![good.clone(), bad.clone()], Duration::from_millis(200)).await;
        let pipelined = exchange(&app, vec![[good, bad].concat()], Duration::ZERO).await;
        for replies in [sequential, pipelined] {
            assert_eq!(replies.len(), 2, "{replies:?}");
            assert_eq!(replies[0].status, 200);
            assert_eq!(replies[0].body, br#"{"status":"ok"}"#);
            replies[1].refusal(400, "invalid_parameter");
            assert_ne!(replies[0].header("x-request-id"), replies[1].header("x-request-id"));
        }
    }

    async fn pipelined_requests_and_a_chunked_post_are_served_unchanged(app) {
        let body = br#"{"email":"chunked@example.com","password":"correct horse battery","name":"Chunky"}"#;
        let (first, rest) = body.split_at(20);
        let mut chunked = b"POST /v1/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                            Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for piece in [first, rest] {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let stream = [get("/healthz", ""), chunked, get("/v1/products?limit=1", ""), get("/healthz", "Connection: close\r\n")]
            .concat();
        let replies = exchange(&app, vec![stream], Duration::ZERO).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 201, 200, 200], "{replies:?}");
        let user: Value = serde_json::from_slice(&replies[1].body).unwrap();
        assert_eq!(user["email"], "chunked@example.com");
        for reply in &replies {
            assert!(reply.header("x-request-id").is_some() && reply.header("x-frame-options") == Some("DENY"));
        }
    }
}

/// The head timeout is `ORDERLY_CLIENT_TIMEOUT_MS`; a second here.
async fn a_slow_head_is_408(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("ORDERLY_CLIENT_TIMEOUT_MS", "1000")]).await else { return };
    // Half a head, then nothing: answered once the second is up, well before actix's own timer.
    let started = std::time::Instant::now();
    let replies = exchange(&app, vec![b"GET /v1/products HTTP/1.1\r\nHo".to_vec()], Duration::ZERO).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies[0].refusal(408, "request_timeout");
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    // A head that trickles in within the time is served.
    let parts = vec![b"GET /healthz HTTP/1.1\r\nHo".to_vec(), b"st: t\r\nConnection: close\r\n\r\n".to_vec()];
    let replies = exchange(&app, parts, Duration::from_millis(300)).await;
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    // The second head on a keep-alive connection gets its own time, from its first byte.
    let parts = vec![get("/healthz", ""), b"GET /healthz HTTP/1.1\r\n".to_vec()];
    let replies = exchange(&app, parts, Duration::from_millis(1500)).await;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].status, 200);
    replies[1].refusal(408, "request_timeout");
}

mod slow_head {
    use super::*;

    #[actix_web::test]
    async fn sqlite() {
        a_slow_head_is_408(Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        a_slow_head_is_408(Backend::Postgres).await;
    }
}
