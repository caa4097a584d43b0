//! [`Receiver`]: a scripted, recording HTTP/1.1 webhook receiver on loopback.
//!
//! One request per connection (`Connection: close`), each on its own thread, recorded as soon
//! as it is read and then answered with the next scripted [`Reply`] (the default reply once
//! the script is used up). Bounded: the receiver stops on drop or after
//! [`Receiver::MAX_LIFETIME`], reads and writes time out, delays end early when it stops, and
//! an endless body ends when the client goes away or after [`Reply::ENDLESS_CAP`] bytes.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
    /// How long to wait before answering (the request is recorded at once). A delay longer
    /// than the sender's timeout makes it give up; the receiver stops waiting when dropped.
    pub delay: Duration,
    /// The answer's body (with its `Content-Length`).
    pub body: Vec<u8>,
    /// Instead of `body`: a body with no length that never ends — it stops when the client
    /// goes away, the receiver stops, or after [`Reply::ENDLESS_CAP`] bytes.
    pub endless: bool,
}

impl Reply {
    /// The most an endless body sends.
    pub const ENDLESS_CAP: u64 = 1024 * 1024 * 1024;

    /// `status` with an empty body, at once.
    pub fn status(status: u16) -> Self {
        Self { status, location: None, delay: Duration::ZERO, body: Vec::new(), endless: false }
    }

    /// 200, empty, at once: the default reply.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `status` (e.g. 302) with `Location: location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self { location: Some(location.to_owned()), ..Self::status(status) }
    }

    /// `status` with a body that never ends (see [`Reply::endless`]).
    pub fn endless(status: u16) -> Self {
        Self { endless: true, ..Self::status(status) }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A request the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("the body is not JSON: {error}"))
    }

    /// The headers as an `http` header map (what `standardwebhooks::Webhook::verify` takes);
    /// headers that are not valid names or values are left out.
    pub fn header_map(&self) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    seen: Mutex<Vec<ReceivedRequest>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// Locks `mutex`; a panicking handler thread cannot leave these half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receiver. Dropping it stops it and waits for its threads.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Receiver {
    /// The longest a receiver serves, whatever its test does.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

    /// Listens on a fresh port of 127.0.0.1, answering 200 to everything until scripted.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|error| panic!("the receiver cannot bind a loopback port: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("the receiver has no address: {error}"));
        listener.set_nonblocking(true).unwrap_or_else(|error| panic!("the receiver cannot poll: {error}"));
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::ok()),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let thread = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || serve(&listener, &shared)
        });
        Receiver { address, shared, thread: Some(thread) }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Replaces the script: the next requests get `replies` in order, then the default reply.
    pub fn script(&self, replies: Vec<Reply>) {
        *lock(&self.shared.script) = replies.into();
    }

    /// Adds `reply` to the end of the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// What requests get once the script is used up (200 until changed).
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.default) = reply;
    }

    /// What it received so far, in order of arrival.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.seen).clone()
    }

    /// TCP connections accepted so far, whether or not a request followed.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `within`) until at least `count` requests arrived; returns them all,
    /// however many that is by then.
    pub fn wait_for(&self, count: usize, within: Duration) -> Vec<ReceivedRequest> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.requests();
            if seen.len() >= count || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, shared: &Arc<Shared>) {
    let started = Instant::now();
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < Receiver::MAX_LIFETIME {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(shared);
                handlers.push(std::thread::spawn(move || handle(stream, &shared)));
                handlers.retain(|handler| !handler.is_finished());
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
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let Some(request) = read_request(&stream) else { return };
    lock(&shared.seen).push(request);
    let reply = lock(&shared.script).pop_front().unwrap_or_else(|| lock(&shared.default).clone());
    if !wait(shared, reply.delay) {
        return;
    }
    let mut stream = stream;
    send(&mut stream, &reply, shared);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Sleeps for `delay`; `false` if the receiver was stopped meanwhile.
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

/// Writes `reply` (with `Connection: close`). The client may have given up (that is what some
/// tests are about): write errors end it quietly.
fn send(stream: &mut TcpStream, reply: &Reply, shared: &Shared) {
    let mut head = format!("HTTP/1.1 {} Receiver\r\nConnection: close\r\n", reply.status);
    if let Some(location) = &reply.location {
        head.push_str(&format!("Location: {location}\r\n"));
    }
    if reply.endless {
        head.push_str("Content-Type: application/octet-stream\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
    }
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if !reply.endless {
        let _ = stream.write_all(&reply.body).and_then(|()| stream.flush());
        return;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0_u64;
    while sent < Reply::ENDLESS_CAP && !shared.stop.load(Ordering::SeqCst) {
        if stream.write_all(&chunk).is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
}

fn read_request(stream: &TcpStream) -> Option<ReceivedRequest> {
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
    Some(ReceivedRequest { method, target, headers, body })
}
