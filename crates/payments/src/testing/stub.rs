//! [`StubProvider`]: a scripted HTTP/1.1 server on loopback for fault injection.
//!
//! One request per connection (`Connection: close`), each on its own thread, answered with the
//! next scripted [`StubResponse`]; once the script is used up its last response is repeated.
//! Bounded: the server stops on drop or after [`StubProvider::MAX_LIFETIME`], reads time out,
//! and delays end early when it stops.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct StubResponse {
    /// How long to wait before answering (the request is recorded at once).
    pub delay: Duration,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubResponse {
    /// `status` with a JSON body (`Content-Type: application/json`).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::raw(status, "application/json", body.to_string())
    }

    /// `status` with any body and content type.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            delay: Duration::ZERO,
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        let query = format!("http://stub/?{}", String::from_utf8_lossy(&self.body));
        match reqwest::Url::parse(&query) {
            Ok(url) => url.query_pairs().map(|(key, value)| (key.into_owned(), value.into_owned())).collect(),
            Err(error) => panic!("the body is not a form: {error}"),
        }
    }

    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the proxy mode ([`StubProvider::proxy`]) does to the answer of a forwarded request
/// whose path ends with `path_suffix`, for the next `times` such requests.
#[derive(Debug, Clone)]
pub struct ProxyFault {
    pub path_suffix: &'static str,
    pub times: usize,
    pub kind: ProxyFaultKind,
}

#[derive(Debug, Clone)]
pub enum ProxyFaultKind {
    /// Forward, then hold the upstream's answer this long before passing it on: the request
    /// took effect upstream, its answer comes late (or, if the client gave up, never).
    Hold(Duration),
    /// Forward, then answer this instead of the upstream's answer: the request took effect
    /// upstream, and the client is told something else (e.g. a malformed 200).
    Replace(StubResponse),
}

struct Shared {
    script: Vec<StubResponse>,
    /// Proxy mode: the upstream's address and the faults still to apply.
    upstream: Option<(SocketAddr, Mutex<Vec<ProxyFault>>)>,
    seen: Mutex<Vec<SeenRequest>>,
    stop: AtomicBool,
}

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        // A panicking handler thread cannot leave the list half-written: pushes are atomic.
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The scripted server. Dropping it stops it and waits for its threads.
pub struct StubProvider {
    address: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StubProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubProvider").field("address", &self.address).finish_non_exhaustive()
    }
}

impl StubProvider {
    /// The longest a stub serves, whatever its test does.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(120);

    /// Serves `script` on a fresh loopback port: the n-th request gets `script[n]`, the ones
    /// after the last get the last. An empty script answers 500 to everything.
    pub fn start(script: Vec<StubResponse>) -> StubProvider {
        Self::serve_with(Shared { script, upstream: None, seen: Mutex::new(Vec::new()), stop: AtomicBool::new(false) })
    }

    /// A fault-injecting proxy in front of `upstream` (`http://127.0.0.1:<port>`, e.g. a
    /// localstripe): every request is forwarded and its answer passed back, except that each
    /// fault applies to the next `times` requests whose path ends with its suffix.
    pub fn proxy(upstream: &str, faults: Vec<ProxyFault>) -> StubProvider {
        let address = upstream
            .strip_prefix("http://")
            .and_then(|authority| authority.trim_end_matches('/').parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("the proxy's upstream must be http://<ip>:<port>, got {upstream}"));
        Self::serve_with(Shared {
            script: Vec::new(),
            upstream: Some((address, Mutex::new(faults))),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    fn serve_with(shared: Shared) -> StubProvider {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|error| panic!("the stub cannot bind a loopback port: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("the stub has no address: {error}"));
        listener.set_nonblocking(true).unwrap_or_else(|error| panic!("the stub cannot poll: {error}"));
        let shared = Arc::new(shared);
        let thread = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || serve(&listener, &shared)
        });
        StubProvider { address, shared, thread: Some(thread) }
    }

    /// An API base on which nothing listens: connecting is refused.
    pub fn refused_api_base() -> String {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"));
        format!("http://127.0.0.1:{port}")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The URL of `path` on the stub (e.g. a webhook receiver).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base())
    }

    /// What it received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.seen().clone()
    }

    /// Waits (bounded by `within`) until at least `count` requests arrived; returns them all.
    pub fn wait_for_requests(&self, count: usize, within: Duration) -> Vec<SeenRequest> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.requests();
            if seen.len() >= count || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StubProvider {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, shared: &Arc<Shared>) {
    let started = Instant::now();
    let mut handlers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < StubProvider::MAX_LIFETIME {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                handlers.push(std::thread::spawn(move || handle(stream, &shared)));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    for handler in handlers {
        let _ = handler.join();
    }
}

fn handle(stream: TcpStream, shared: &Shared) {
    // Accepted sockets may inherit non-blocking mode on some platforms.
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(READ_TIMEOUT)).is_err() {
        return;
    }
    let Some(request) = read_request(&stream) else { return };
    if let Some((upstream, faults)) = &shared.upstream {
        let fault = {
            let mut faults = faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            faults.iter_mut().find(|fault| fault.times > 0 && request.path().ends_with(fault.path_suffix)).map(
                |fault| {
                    fault.times -= 1;
                    fault.kind.clone()
                },
            )
        };
        let answer = forward(*upstream, &request);
        shared.seen().push(request);
        let Some(answer) = answer else { return };
        let mut stream = stream;
        match fault {
            Some(ProxyFaultKind::Replace(response)) => {
                send(&mut stream, &response);
            }
            Some(ProxyFaultKind::Hold(delay)) => {
                if wait(shared, delay) {
                    let _ = stream.write_all(&answer).and_then(|()| stream.flush());
                }
            }
            None => {
                let _ = stream.write_all(&answer).and_then(|()| stream.flush());
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let index = {
        let mut seen = shared.seen();
        seen.push(request);
        seen.len() - 1
    };
    let response = match shared.script.get(index).or(shared.script.last()) {
        Some(response) => response.clone(),
        None => StubResponse::raw(500, "text/plain", "the stub has no script"),
    };
    if !wait(shared, response.delay) {
        return;
    }
    let mut stream = stream;
    send(&mut stream, &response);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Sleeps for `delay`; `false` if the stub was stopped meanwhile.
fn wait(shared: &Shared, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

/// Writes `response` (with `Connection: close`).
fn send(stream: &mut TcpStream, response: &StubResponse) {
    let mut head = format!(
        "HTTP/1.1 {} Stub\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // The client may have given up (that is what some tests are about): write errors are fine.
    let _ =
        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&response.body)).and_then(|()| stream.flush());
}

/// Sends `request` to `upstream` on a connection of its own (`Connection: close`) and returns
/// the upstream's whole answer, bytes as received; `None` if the upstream could not be reached.
fn forward(upstream: SocketAddr, request: &SeenRequest) -> Option<Vec<u8>> {
    let mut connection = TcpStream::connect_timeout(&upstream, READ_TIMEOUT).ok()?;
    connection.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", request.body.len()));
    connection.write_all(head.as_bytes()).ok()?;
    connection.write_all(&request.body).ok()?;
    let mut answer = Vec::new();
    connection.take(MAX_BODY_BYTES as u64).read_to_end(&mut answer).ok()?;
    Some(answer)
}

fn read_request(stream: &TcpStream) -> Option<SeenRequest> {
    let mut reader = BufReader::new(stream.take((MAX_HEAD_BYTES + MAX_BODY_BYTES) as u64));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut head_bytes = line.len();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).ok()?;
        head_bytes += read;
        if read == 0 || head_bytes > MAX_HEAD_BYTES {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(SeenRequest { method, target, headers, body })
}
