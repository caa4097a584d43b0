//! What only shows on a real socket: HEAD sends headers and no body, and a chunked body over
//! the limit is refused with 413 while it streams in (before any use case: the mocks of the use
//! cases, [`UseCases`], expect nothing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix_web::HttpServer;

use crate::support::*;

/// Serves `app` over `use_cases` on a free loopback port with one worker; the server stops
/// with the test's runtime.
pub fn serve(use_cases: UseCases) -> SocketAddr {
    let state = use_cases.into_state();
    let server = HttpServer::new(move || orderly_http::app(state.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let address = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    address
}

/// Sends raw bytes and reads the whole answer (the request says `Connection: close`).
pub async fn exchange(address: SocketAddr, request: Vec<u8>) -> String {
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may answer (and stop reading) before everything is written.
        let _ = stream.write_all(&request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn head_sends_the_get_headers_and_no_body() {
    let address = serve(UseCases::new());
    let get = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec()).await;
    let head = exchange(address, b"HEAD /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec()).await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(get.ends_with(r#"{"status":"ok"}"#), "{get}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    assert!(head.to_lowercase().contains("content-length: 15\r\n"), "{head}");
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let address = serve(UseCases::new());
    let mut request = b"POST /v1/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    let chunk = vec![b' '; 8 * 1024];
    for _ in 0..9 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(address, request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(answer.to_lowercase().contains("x-request-id: "), "{answer}");
}
