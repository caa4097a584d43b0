//! Shared by the end-to-end tests of this folder (each declares `mod support;`): the real
//! `orderly` binary started as a child process, a small blocking HTTP/1.1 client over the
//! standard library, and the environment switches that decide whether a test runs.
//!
//! [`api`] has the API calls the tests repeat and the invariant checks over what the API and the
//! database report; [`redis`] a minimal Redis client for cleaning up after the shared limiter.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod redis;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_orderly");

/// Shared by every instance a test starts, so a token issued by one is accepted by the others.
pub const JWT_SECRET: &str = "orderly-end-to-end-tests-shared-secret-0123456789";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-123";
pub const PASSWORD: &str = "correct horse battery";

/// What every instance in these tests gets: quiet logs, the shared secret, the bootstrapped
/// admin, and no login limit (the tests register and log in many users from one address, and
/// both draw from the login bucket; the rate-limit test sets its own limit explicitly).
pub const COMMON_ENV: &[(&str, &str)] = &[
    ("ORDERLY_LOG", "warn"),
    ("ORDERLY_JWT_SECRET", JWT_SECRET),
    ("ORDERLY_ADMIN_EMAIL", ADMIN_EMAIL),
    ("ORDERLY_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("ORDERLY_LOGIN_RATE_LIMIT", "0"),
];

/// [`COMMON_ENV`] followed by `extra` (later entries win).
pub fn with_common_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    COMMON_ENV.iter().copied().chain(extra.iter().copied()).collect()
}

// ---------------------------------------------------------------------------------------------
// Environment switches
// ---------------------------------------------------------------------------------------------

pub const POSTGRES_URL_VAR: &str = "ORDERLY_TEST_POSTGRES_URL";
pub const REQUIRE_POSTGRES_VAR: &str = "ORDERLY_TEST_REQUIRE_POSTGRES";
pub const REDIS_URL_VAR: &str = "ORDERLY_TEST_REDIS_URL";
pub const REQUIRE_REDIS_VAR: &str = "ORDERLY_TEST_REQUIRE_REDIS";

fn configured(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// Whether `var` is `1`: then a missing service fails the test instead of skipping it.
pub fn required(var: &str) -> bool {
    configured(var).as_deref() == Some("1")
}

/// Says so on the process's stderr, which libtest does not capture.
pub fn announce(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// `ORDERLY_TEST_POSTGRES_URL`, or `None` after saying that `test` does not run. Panics when
/// it is unset and `ORDERLY_TEST_REQUIRE_POSTGRES=1`.
pub fn postgres_server_url(test: &str) -> Option<String> {
    service_url(test, POSTGRES_URL_VAR, REQUIRE_POSTGRES_VAR, "postgres://postgres@127.0.0.1:5432/postgres")
}

/// `ORDERLY_TEST_REDIS_URL`, or `None` after saying that `test` does not run. Panics when it
/// is unset and `ORDERLY_TEST_REQUIRE_REDIS=1`.
pub fn redis_server_url(test: &str) -> Option<String> {
    service_url(test, REDIS_URL_VAR, REQUIRE_REDIS_VAR, "redis://127.0.0.1:6379")
}

fn service_url(test: &str, var: &str, require_var: &str, example: &str) -> Option<String> {
    match configured(var) {
        Some(url) => Some(url),
        None if required(require_var) => panic!("{require_var}=1 but {var} is not set: set it, e.g. {var}={example}"),
        None => {
            announce(&format!("{test} NOT run: set {var} (e.g. {var}={example}) to run it"));
            None
        }
    }
}

/// A name no other run of any test uses (for Redis key prefixes, SKUs, emails).
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// The binary as a child process
// ---------------------------------------------------------------------------------------------

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The binary with an empty environment (only `PATH` and quiet logs), working in `dir`.
pub fn orderly(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORDERLY_LOG", "warn");
    command
}

/// A running `orderly serve`. Its output goes to a log file in its working directory, whose
/// tail is printed when a test fails while the server is alive. Dropping it kills it.
pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the binary on a free port with `extra_env` and waits until `/healthz` answers.
    pub fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = dir.join(format!("orderly-{port}.log"));
        let stdout = File::create(&log).unwrap_or_else(|error| panic!("cannot create {}: {error}", log.display()));
        let stderr = stdout.try_clone().unwrap();
        let mut command = orderly(dir);
        command.env("ORDERLY_BIND", format!("127.0.0.1:{port}")).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the binary starts");
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), port, log };
        server.wait_until_healthy();
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited during start-up ({status}); its log ends:\n{}", self.log_tail());
            }
            let probe = request("GET", &self.url("/healthz")).timeout(Duration::from_secs(2)).send();
            if probe.is_ok_and(|response| response.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not become healthy within 60 s; its log ends:\n{}", self.log_tail());
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return "(nothing logged)".to_owned();
        }
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (`kill -9`): the process gets no chance to finish anything. Waits until it is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        let status = self.child.wait().expect("the killed server is reaped");
        assert!(!status.success(), "a SIGKILLed server cannot exit cleanly, got {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let running = matches!(self.child.try_wait(), Ok(None));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if running && std::thread::panicking() {
            announce(&format!("--- log of the server on port {} (last lines) ---\n{}", self.port, self.log_tail()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// How long a request may take unless it says otherwise: long enough for a loaded 2-core
/// machine, short enough that a hang fails the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A request over a fresh connection (`Connection: close`), enough for these checks without
/// pulling an HTTP client stack into the build.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

pub fn request(method: &str, url: &str) -> Request {
    Request { method: method.to_owned(), url: url.to_owned(), headers: vec![], body: None, timeout: DEFAULT_TIMEOUT }
}

impl Request {
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.header("Content-Type", "application/json")
    }

    /// Bounds connecting, each write and each read; a server that hangs fails the request
    /// with `TimedOut`/`WouldBlock`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and reads the whole response. An error of kind `ConnectionRefused`
    /// means the request never reached a server; any other error means it may have (the
    /// server died or hung before answering completely).
    pub fn send(&self) -> io::Result<Response> {
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only http:// URLs"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let address: SocketAddr = host
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the host does not resolve"))?;
        let mut stream = TcpStream::connect_timeout(&address, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut head = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", self.method);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.as_deref().unwrap_or_default();
        if self.body.is_some() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        stream.write_all(&message)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Response::parse(&raw)
    }
}

/// A complete response: status, headers (names lower-cased) and body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> io::Result<Response> {
        let incomplete =
            |what: &str| io::Error::new(io::ErrorKind::UnexpectedEof, format!("incomplete response: {what}"));
        let head_end = raw.windows(4).position(|window| window == b"\r\n\r\n").ok_or_else(|| incomplete("no head"))?;
        let head = String::from_utf8_lossy(&raw[..head_end]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| incomplete("no status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let payload = &raw[head_end + 4..];
        let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let body = if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
            dechunk(payload).ok_or_else(|| incomplete("truncated chunked body"))?
        } else if let Some(length) = find("content-length").and_then(|value| value.parse::<usize>().ok()) {
            payload.get(..length).ok_or_else(|| incomplete("body shorter than Content-Length"))?.to_vec()
        } else {
            payload.to_vec()
        };
        Ok(Response { status, headers, body })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body as JSON; `Null` when it is empty or not JSON (assertions then show `text()`).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text())
    }
}

/// `None` if the chunked body is cut short.
fn dechunk(mut payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = payload.windows(2).position(|window| window == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&payload[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let rest = &payload[line_end + 2..];
        out.extend_from_slice(rest.get(..size)?);
        payload = rest.get(size + 2..)?;
    }
}

/// The short form the first end-to-end tests use: status and JSON body.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> io::Result<(u16, Value)> {
    let mut request = request(method, url);
    if let Some(token) = token {
        request = request.bearer(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send()?;
    Ok((response.status, response.json()))
}
