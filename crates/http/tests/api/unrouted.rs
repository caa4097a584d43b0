//! Requests no route takes, sent as raw request lines over a socket (a test client may
//! normalise the path): a path with an empty first segment (`//v1/products`) is no route of
//! ours, so 404; and no 405 ever lists the method it refused in `Allow`.

use serde_json::Value;

use crate::support::*;
use crate::wire::{exchange, serve};

/// The status, the `Allow` header (if any) and the body of a raw answer.
fn parse(answer: &str) -> (u16, Option<String>, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let allow = head
        .lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("allow")))
        .map(|(_, value)| value.trim().to_owned());
    (status, allow, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn request(method: &str, path: &str) -> Vec<u8> {
    let body = if matches!(method, "POST" | "PUT" | "PATCH") { "Content-Length: 0\r\n" } else { "" };
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{body}Connection: close\r\n\r\n").into_bytes()
}

#[actix_web::test]
async fn a_path_with_an_empty_first_segment_is_404() {
    let address = serve(UseCases::new());
    for (method, path) in
        [("GET", "//v1/products"), ("POST", "//v1/orders"), ("GET", "//healthz"), ("HEAD", "//v1/products")]
    {
        let answer = exchange(address, request(method, path)).await;
        let (status, allow, body) = parse(&answer);
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(allow, None, "{method} {path}: {answer}");
        if method != "HEAD" {
            assert_eq!(body["code"], "not_found", "{method} {path}: {answer}");
            assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
        }
    }
}

#[actix_web::test]
async fn no_405_allows_the_method_it_refused() {
    let address = serve(UseCases::new());
    let api = orderly_http::openapi();
    let id = "0192f5c2-0000-7000-8000-000000000001";
    let mut checked_405s = 0;
    for (template, item) in &api.paths.paths {
        let path = template.split('/').map(|s| if s.starts_with('{') { id } else { s }).collect::<Vec<_>>().join("/");
        let documented = [
            ("GET", item.get.is_some()),
            ("HEAD", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FROB"] {
            // Documented methods run their handlers (over mocks of the use cases with no
            // expectations: whatever they answer, it is no 405); the
            // doubled-slash form of every path takes none, whatever the method.
            let routed = documented.iter().any(|(m, present)| *m == method && *present);
            let targets = if routed { vec![format!("/{path}")] } else { vec![path.clone(), format!("/{path}")] };
            for target in targets {
                let answer = exchange(address, request(method, &target)).await;
                let (status, allow, _) = parse(&answer);
                if target.starts_with("//") {
                    assert_eq!(status, 404, "{method} {target}: {answer}");
                }
                if status == 405 {
                    checked_405s += 1;
                    let allow = allow.unwrap_or_default();
                    assert!(!allow.split(',').any(|m| m.trim() == method), "{method} {target} → Allow: {allow}");
                }
            }
        }
    }
    assert!(checked_405s > 20, "only {checked_405s} 405s were seen");
}
