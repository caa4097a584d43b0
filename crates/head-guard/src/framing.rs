//! The guard's parser: where each request head and body ends in the byte stream of one
//! connection, and whether a head may go on to actix. It decides, it does not transform: every
//! byte it lets through is passed to actix unchanged, and actix parses it again.
//!
//! A head is held back until it is complete (its empty line has arrived), then checked with
//! `httparse` (the parser actix-http uses) and the `http` types actix builds the request from,
//! plus the framing rules of RFC 9112 §6 that actix enforces too. A body is let through as it
//! arrives; the parser only follows its framing (`Content-Length` bytes, or chunks) to find
//! where the next head starts.

use std::time::Duration;

/// The limits on a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version; without its line ending) → 414.
    pub max_request_line: usize,
    /// Longest header section (every header line after the request line) → 431.
    pub max_header_section: usize,
    /// Most header fields → 431.
    pub max_header_fields: usize,
    /// Time a client has to send a whole head: from the connection's start for its first
    /// request, from the head's first byte for later ones → 408.
    pub head_timeout: Duration,
}

impl Limits {
    /// actix-http refuses more than 96 header fields with a bare status of its own; the guard
    /// must refuse first.
    pub const ACTIX_MAX_HEADER_FIELDS: usize = 96;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_header_section: 32 * 1024,
            max_header_fields: Self::ACTIX_MAX_HEADER_FIELDS,
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a request was refused before reaching the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// 408: the head did not arrive in time.
    RequestTimeout,
    /// 414: the request line is over the limit.
    UriTooLong,
    /// 431: too many header fields, or a header section over the limit.
    HeaderFieldsTooLarge,
    /// 400: the head is not HTTP/1.1 that actix would accept, or its framing is ambiguous.
    Malformed,
}

impl RefusalKind {
    pub fn status(self) -> u16 {
        match self {
            Self::RequestTimeout => 408,
            Self::UriTooLong => 414,
            Self::HeaderFieldsTooLarge => 431,
            Self::Malformed => 400,
        }
    }
}

/// A refused request: why, in words for the client, and its path when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub detail: String,
    /// The request target's path, when the request line was read and is within the limit.
    pub path: Option<String>,
}

impl Refusal {
    fn new(kind: RefusalKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), path: None }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        Self::new(RefusalKind::Malformed, detail)
    }
}

/// What to do with the bytes at the front of the not-yet-released input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Let this many bytes through to actix.
    Release(usize),
    /// Nothing can be decided before more bytes arrive.
    NeedMore,
    /// Refuse the request whose head starts at the front of the input; nothing more goes to
    /// actix on this connection.
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete head.
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    /// Chunked body: a chunk-size line is next.
    ChunkSize,
    /// Chunked body: this many chunk-data bytes are still to come.
    ChunkData(u64),
    /// Chunked body: the line ending after a chunk's data.
    ChunkDataEnd,
    /// Chunked body: trailer lines up to the empty line.
    Trailers,
    /// Everything from here on goes to actix unexamined: an upgraded connection, or a body
    /// whose framing the guard cannot follow (actix refuses it itself, mid-request, where
    /// only actix can still answer).
    Passthrough,
}

/// The longest chunk-size line (with extensions) the guard follows.
const MAX_CHUNK_LINE: usize = 4096;

/// The framing state of one connection.
#[derive(Debug, Clone)]
pub struct Framer {
    limits: Limits,
    state: State,
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Self { limits, state: State::Head }
    }

    /// Whether the next bytes belong to a request head (the head deadline applies).
    pub fn awaiting_head(&self) -> bool {
        self.state == State::Head
    }

    /// Decides about the front of `input`, the bytes not released yet. Call again after
    /// releasing, until it answers `NeedMore`.
    pub fn step(&mut self, input: &[u8]) -> Step {
        match self.state {
            State::Head => self.head(input),
            State::Length(remaining) => self.body_bytes(input, remaining, State::Length, State::Head),
            State::ChunkData(remaining) => self.body_bytes(input, remaining, State::ChunkData, State::ChunkDataEnd),
            State::ChunkSize => self.chunk_size(input),
            State::ChunkDataEnd => match input {
                [] | [b'\r'] => Step::NeedMore,
                [b'\r', b'\n', ..] => self.go(State::ChunkSize, 2),
                [b'\n', ..] => self.go(State::ChunkSize, 1),
                _ => self.go(State::Passthrough, input.len()),
            },
            State::Trailers => match split_line(input) {
                None if input.len() > self.limits.max_header_section => self.go(State::Passthrough, input.len()),
                None => Step::NeedMore,
                Some((line, _)) if line.iter().all(|b| *b == b'\r' || *b == b'\n') => self.go(State::Head, line.len()),
                Some((line, _)) => self.go(State::Trailers, line.len()),
            },
            State::Passthrough if input.is_empty() => Step::NeedMore,
            State::Passthrough => Step::Release(input.len()),
        }
    }

    fn go(&mut self, state: State, release: usize) -> Step {
        self.state = state;
        Step::Release(release)
    }

    fn body_bytes(&mut self, input: &[u8], remaining: u64, more: fn(u64) -> State, done: State) -> Step {
        if remaining == 0 {
            self.state = done;
            return self.step(input);
        }
        if input.is_empty() {
            return Step::NeedMore;
        }
        let take = remaining.min(input.len() as u64);
        let left = remaining - take;
        self.state = if left == 0 { done } else { more(left) };
        Step::Release(take as usize)
    }

    fn chunk_size(&mut self, input: &[u8]) -> Step {
        let Some((line, _)) = split_line(input) else {
            return if input.len() > MAX_CHUNK_LINE {
                self.go(State::Passthrough, input.len())
            } else {
                Step::NeedMore
            };
        };
        match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((_, 0))) => self.go(State::Trailers, line.len()),
            Ok(httparse::Status::Complete((_, size))) => self.go(State::ChunkData(size), line.len()),
            _ => self.go(State::Passthrough, input.len()),
        }
    }

    fn head(&mut self, input: &[u8]) -> Step {
        // Empty lines before a request line are ignored by actix (RFC 9112 §2.2); they go
        // through as they are.
        let blank = input.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        if blank > 0 {
            return Step::Release(blank);
        }
        if input.is_empty() {
            return Step::NeedMore;
        }
        let request_line = split_line(input);
        let line_len = request_line.map_or(input.len(), |(line, _)| trim_line_ending(line).len());
        if line_len > self.limits.max_request_line {
            return Step::Refuse(Refusal::new(
                RefusalKind::UriTooLong,
                format!("the request line is over {} bytes", self.limits.max_request_line),
            ));
        }
        let Some((line, rest)) = request_line else { return Step::NeedMore };
        let complete = split_section(rest);
        let section = complete.unwrap_or(rest);
        let fields = section.iter().filter(|b| **b == b'\n').count().saturating_sub(usize::from(complete.is_some()));
        let too_large = |detail: String| {
            let mut refusal = Refusal::new(RefusalKind::HeaderFieldsTooLarge, detail);
            refusal.path = target_path(line);
            Step::Refuse(refusal)
        };
        if fields > self.limits.max_header_fields {
            return too_large(format!("the request has more than {} header fields", self.limits.max_header_fields));
        }
        if section.len() > self.limits.max_header_section {
            return too_large(format!("the header section is over {} bytes", self.limits.max_header_section));
        }
        let Some(section) = complete else { return Step::NeedMore };
        // The request line and the section are the front of `input`, one after the other.
        let Some((head, _)) = input.split_at_checked(line.len() + section.len()) else { return Step::NeedMore };
        match check_head(head, &self.limits) {
            Ok(body) => {
                self.state = match body {
                    Body::None => State::Head,
                    Body::Length(length) => State::Length(length),
                    Body::Chunked => State::ChunkSize,
                    Body::Rest => State::Passthrough,
                };
                Step::Release(head.len())
            }
            Err(mut refusal) => {
                refusal.path = target_path(line);
                Step::Refuse(refusal)
            }
        }
    }
}

/// The first line of `input` through its `\n`, and what follows it.
fn split_line(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let newline = input.iter().position(|b| *b == b'\n')?;
    input.split_at_checked(newline + 1)
}

fn trim_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The header section at the front of `rest` (what follows the request line), through the
/// empty line that ends the head; `None` while that line has not arrived.
fn split_section(rest: &[u8]) -> Option<&[u8]> {
    let mut len = 0;
    let mut remaining = rest;
    while let Some((line, next)) = split_line(remaining) {
        len += line.len();
        if trim_line_ending(line).is_empty() {
            return rest.split_at_checked(len).map(|(section, _)| section);
        }
        remaining = next;
    }
    None
}

/// The path of a request line's target (up to `?`), if it reads as one.
fn target_path(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(trim_line_ending(line)).ok()?;
    let target = line.split(' ').nth(1)?;
    let path = target.split('?').next()?;
    path.starts_with('/').then(|| path.to_owned())
}

/// How the body of a checked head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    /// The connection is upgraded (or tunnelled): the rest of it is actix's.
    Rest,
}

/// Checks a complete head as actix-http would read it, and tells how its body is framed.
fn check_head(head: &[u8], limits: &Limits) -> Result<Body, Refusal> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_header_fields];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Refusal::malformed("the request head is incomplete")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                RefusalKind::HeaderFieldsTooLarge,
                format!("the request has more than {} header fields", limits.max_header_fields),
            ));
        }
        Err(error) => return Err(Refusal::malformed(format!("the request head is not valid HTTP/1.1: {error}"))),
    }
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err(Refusal::malformed("the request line is incomplete"));
    };
    http::Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::malformed("the method is not a valid token"))?;
    http::Uri::try_from(target).map_err(|_| Refusal::malformed("the request target is not a valid URI"))?;

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut hosts = 0;
    let mut websocket = false;
    for field in request.headers.iter() {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Refusal::malformed("a header field name is not a valid token"))?;
        let value = http::HeaderValue::from_bytes(field.value)
            .map_err(|_| Refusal::malformed(format!("the value of `{name}` has a byte a header value may not have")))?;
        let text = value.to_str().map(str::trim);
        if name == http::header::CONTENT_LENGTH {
            // As actix reads it: trimmed, digits only (no sign), once.
            let length = text
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Refusal::malformed("`Content-Length` is not a number"))?;
            if content_length.is_some() {
                return Err(Refusal::malformed("`Content-Length` is sent more than once"));
            }
            content_length = Some(length);
        } else if name == http::header::TRANSFER_ENCODING {
            if transfer_encoding.is_some() {
                return Err(Refusal::malformed("`Transfer-Encoding` is sent more than once"));
            }
            let text = text.map_err(|_| Refusal::malformed("`Transfer-Encoding` is not ASCII"))?;
            transfer_encoding = Some(text.to_owned());
        } else if name == http::header::HOST {
            hosts += 1;
        } else if name == http::header::UPGRADE {
            websocket |= text.is_ok_and(|v| v.eq_ignore_ascii_case("websocket"));
        }
    }
    if hosts > 1 {
        return Err(Refusal::malformed("`Host` is sent more than once"));
    }
    if version == 1 && hosts == 0 {
        return Err(Refusal::malformed("an HTTP/1.1 request must have a `Host` header"));
    }
    let chunked = match transfer_encoding {
        None => false,
        Some(_) if version == 0 => return Err(Refusal::malformed("`Transfer-Encoding` is not allowed in HTTP/1.0")),
        Some(_) if content_length.is_some() => {
            return Err(Refusal::malformed("both `Content-Length` and `Transfer-Encoding` are sent"));
        }
        Some(encoding) if encoding.eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err(Refusal::malformed("`Transfer-Encoding` must be `chunked`")),
    };
    if version == 0 && method == "POST" && content_length.is_none() {
        return Err(Refusal::malformed("an HTTP/1.0 POST must have a `Content-Length`"));
    }
    Ok(match content_length {
        _ if chunked => Body::Chunked,
        Some(length) if length > 0 => Body::Length(length),
        _ if websocket || method == "CONNECT" => Body::Rest,
        _ => Body::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(Limits { max_request_line: 64, max_header_section: 256, max_header_fields: 4, ..Limits::default() })
    }

    /// Feeds `input` in pieces of `piece` bytes and returns what was released in order, and
    /// the refusal if there was one.
    fn run(framer: &mut Framer, input: &[u8], piece: usize) -> (Vec<u8>, Option<Refusal>) {
        let mut pending = Vec::new();
        let mut released = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            pending.extend_from_slice(chunk);
            loop {
                match framer.step(&pending) {
                    Step::Release(n) => released.extend(pending.drain(..n)),
                    Step::NeedMore => break,
                    Step::Refuse(refusal) => return (released, Some(refusal)),
                }
            }
        }
        (released, None)
    }

    fn refused(input: &[u8]) -> Refusal {
        let (_, refusal) = run(&mut framer(), input, input.len());
        refusal.unwrap_or_else(|| panic!("not refused: {:?}", String::from_utf8_lossy(input)))
    }

    #[test]
    fn good_requests_pass_unchanged_in_any_pieces() {
        let stream = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                       POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
                       POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n\
                       GET /d HTTP/1.0\r\n\r\n";
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            let mut framer = framer();
            let (released, refusal) = run(&mut framer, stream, piece);
            assert_eq!(refusal, None, "piece {piece}");
            assert_eq!(released, stream.to_vec(), "piece {piece}");
            assert!(framer.awaiting_head());
        }
    }

    #[test]
    fn a_head_is_held_back_until_it_is_complete() {
        let mut framer = framer();
        assert_eq!(framer.step(b"GET / HTTP/1.1\r\nHost: x\r\n"), Step::NeedMore);
        assert_eq!(framer.step(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Release(27));
    }

    #[test]
    fn a_bad_request_after_a_good_one_is_refused_after_the_good_one_is_released() {
        let good = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let mut stream = good.clone();
        stream.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n");
        let (released, refusal) = run(&mut framer(), &stream, stream.len());
        assert_eq!(released, good);
        let refusal = refusal.unwrap();
        assert_eq!(refusal.kind, RefusalKind::Malformed);
        assert_eq!(refusal.path.as_deref(), Some("/b"));
    }

    #[test]
    fn a_long_request_line_is_414_before_it_ends() {
        let mut line = b"GET /".to_vec();
        line.extend(std::iter::repeat_n(b'a', 100));
        let refusal = refused(&line);
        assert_eq!(refusal.kind, RefusalKind::UriTooLong);
        assert_eq!(refusal.path, None);
    }

    #[test]
    fn too_many_or_too_large_header_fields_are_431() {
        let many = b"GET /p HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n";
        let refusal = refused(many);
        assert_eq!(refusal.kind, RefusalKind::HeaderFieldsTooLarge);
        assert_eq!(refusal.path.as_deref(), Some("/p"));
        let mut large = b"GET / HTTP/1.1\r\nHost: x\r\nBig: ".to_vec();
        large.extend(std::iter::repeat_n(b'a', 300));
        assert_eq!(refused(&large).kind, RefusalKind::HeaderFieldsTooLarge);
        // Exactly at the limits is fine.
        let four = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n";
        assert_eq!(framer().step(four), Step::Release(four.len()));
    }

    #[test]
    fn malformed_heads_and_ambiguous_framing_are_400() {
        let cases: [&[u8]; 14] = [
            b"POST / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        ];
        for case in cases {
            assert_eq!(refused(case).kind, RefusalKind::Malformed, "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn chunk_framing_the_guard_cannot_follow_goes_to_actix_unexamined() {
        let stream = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /x HTTP/1.1\r\n\r\n";
        let (released, refusal) = run(&mut framer(), stream, stream.len());
        assert_eq!(refusal, None);
        assert_eq!(released, stream.to_vec());
    }

    #[test]
    fn an_upgraded_connection_is_not_examined_further() {
        let stream = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x00\x01\x02";
        let (released, refusal) = run(&mut framer(), stream, 5);
        assert_eq!(refusal, None);
        assert_eq!(released, stream.to_vec());
    }
}
