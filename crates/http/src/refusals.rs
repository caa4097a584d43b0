//! The answers to requests the server refuses before a route is matched (docs/api.md#errors, ADR 0016): a
//! request line or header section over the limit, a head that came too slowly, malformed
//! framing. The server's connection guard (`orderly-head-guard`) decides *that* a request is
//! refused; this module says *what* the client reads, so that those answers have the same
//! shape as every other failure: problem+json with a fresh request id (in `X-Request-Id` and
//! `request_id`), `Cache-Control: no-store` and the security headers — plus
//! `Connection: close`, since the connection ends with the answer.
//!
//! The answer is written as raw HTTP/1.1 bytes: actix never sees these requests.

use crate::middleware::request_id::RequestId;
use crate::middleware::security_headers::API_HEADERS;
use crate::problem::{ApiError, PROBLEM_JSON, ProblemCode};

/// A refusal's answer: the request id it carries and the whole response.
#[derive(Debug, Clone)]
pub struct RefusalAnswer {
    pub request_id: RequestId,
    pub bytes: Vec<u8>,
}

/// The answer to a request refused with `code` (`instance` is its path, or `""` when it could
/// not be read), with problem `type`s under `type_base`.
pub fn answer(code: ProblemCode, detail: &str, instance: &str, type_base: &str) -> RefusalAnswer {
    let request_id = RequestId::generate();
    let problem = ApiError::new(code, detail).problem(type_base, instance, request_id.as_str());
    // The body is a struct of strings and numbers; it serialises.
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let status = code.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\ndate: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT"),
    );
    for (name, value) in API_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    RefusalAnswer { request_id, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_a_problem_with_its_request_id_and_the_security_headers() {
        let answer = answer(ProblemCode::UriTooLong, "too long", "/v1/x", "https://p.test/");
        let text = String::from_utf8(answer.bytes).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        // Every header line, the last one too, ends with CRLF.
        let head = format!("{head}\r\n");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("x-request-id: {}\r\n", answer.request_id)), "{head}");
        assert!(head.contains("connection: close\r\n") && head.contains("cache-control: no-store\r\n"), "{head}");
        for (name, value) in API_HEADERS {
            assert!(head.contains(&format!("{name}: {value}\r\n")), "{head}");
        }
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(body["code"], "uri_too_long");
        assert_eq!(body["status"], 414);
        assert_eq!(body["type"], "https://p.test/uri-too-long");
        assert_eq!(body["instance"], "/v1/x");
        assert_eq!(body["request_id"], answer.request_id.as_str());
    }
}
