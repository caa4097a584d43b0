//! A `localstripe` process for one test.
//!
//! localstripe 1.15.10 facts the helpers rely on (read in its `resources.py` and `server.py`):
//! it takes any `sk_…` key (Basic or Bearer); `POST /_config/webhooks/{id}` with `url` and
//! `secret` (optionally `events`) registers a receiver, signed with Stripe's scheme about one
//! second after each change; it writes its whole store to `/tmp/localstripe.pickle` on every
//! change and reloads it at start unless `--from-scratch`, so every instance here starts from
//! scratch (the shared file is written, never read).
//!
//! The helpers talk to it over a minimal HTTP/1.1 client of their own (one request per
//! connection, loopback only) rather than `reqwest::blocking`, so that they also work inside
//! an async test, where a blocking reqwest client panics.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::StripeSettings;

/// Path of the `localstripe` executable to use, overriding the search.
pub const LOCALSTRIPE_VAR: &str = "ORDERLY_TEST_LOCALSTRIPE";
/// Set to `1` to make localstripe tests fail, rather than skip, when it cannot be found.
pub const REQUIRE_LOCALSTRIPE_VAR: &str = "ORDERLY_TEST_REQUIRE_LOCALSTRIPE";

/// How long a fresh process may take to answer (Python and aiohttp start in about a second).
const STARTUP_LIMIT: Duration = Duration::from_secs(15);
/// Ports are picked by binding port 0 and letting go: another process may take it meanwhile.
const START_TRIES: u32 = 3;

/// A running localstripe, killed (and reaped) on drop.
pub struct LocalStripe {
    child: Child,
    port: u16,
}

impl std::fmt::Debug for LocalStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStripe").field("port", &self.port).field("pid", &self.child.id()).finish_non_exhaustive()
    }
}

impl LocalStripe {
    /// The API key tests use (localstripe takes any `sk_…`).
    pub const SECRET_KEY: &str = "sk_test_orderly_localstripe";

    /// A fresh localstripe on a free loopback port, or `None` when its executable cannot be
    /// found (see the module docs). Panics when it is found but does not start, or when it is
    /// missing and `ORDERLY_TEST_REQUIRE_LOCALSTRIPE=1`.
    pub fn start() -> Option<LocalStripe> {
        let Some(executable) = find_executable() else {
            let why =
                "no localstripe executable (set ORDERLY_TEST_LOCALSTRIPE, run .ci/localstripe-venv, or put it on PATH)";
            if std::env::var(REQUIRE_LOCALSTRIPE_VAR).is_ok_and(|value| value == "1") {
                panic!("{REQUIRE_LOCALSTRIPE_VAR}=1 but {why}");
            }
            // Once per test binary, straight to the process's stderr: libtest captures `eprintln!`.
            static SKIPPED: Once = Once::new();
            SKIPPED.call_once(|| {
                let _ = writeln!(std::io::stderr(), "localstripe tests NOT run: {why}");
            });
            return None;
        };
        let mut last_error = String::new();
        for _ in 0..START_TRIES {
            match Self::spawn(&executable) {
                Ok(localstripe) => return Some(localstripe),
                Err(error) => last_error = error,
            }
        }
        panic!("localstripe ({}) did not start: {last_error}", executable.display());
    }

    fn spawn(executable: &Path) -> Result<LocalStripe, String> {
        let port = free_port();
        let child = Command::new(executable)
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot run it: {error}"))?;
        // From here on, dropping `localstripe` kills the process, whatever happens.
        let mut localstripe = LocalStripe { child, port };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = localstripe.child.try_wait() {
                return Err(format!("it exited with {status} (port {port} taken?)"));
            }
            // A list: no side effects (reading the balance would create one and send an event).
            if localstripe.request("GET", "/v1/events?limit=1", None).is_ok_and(|(status, _)| status == 200) {
                return Ok(localstripe);
            }
            if started.elapsed() > STARTUP_LIMIT {
                return Err(format!("no answer on port {port} within {STARTUP_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn secret_key(&self) -> SecretString {
        SecretString::from(Self::SECRET_KEY)
    }

    /// Settings for a `StripeProvider` on this localstripe, with time bounds generous enough for
    /// a busy machine.
    pub fn settings(&self, webhook_secret: &str) -> StripeSettings {
        let mut settings = StripeSettings::new(self.secret_key(), SecretString::from(webhook_secret));
        settings.api_base = self.api_base();
        settings.timeout = Duration::from_secs(10);
        settings.connect_timeout = Duration::from_secs(2);
        settings
    }

    /// A card payment method (`pm_…`) for `card_number`. Numbers that matter here:
    /// `4242424242424242` succeeds; `4000000000000341` is declined when charged
    /// (`card_declined`); `4000002500003155` requires authentication.
    pub fn create_payment_method(&self, card_number: &str) -> String {
        let created = self.post_form(
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", card_number),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2034"),
                ("card[cvc]", "123"),
            ],
        );
        match created.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => id.to_owned(),
            None => panic!("localstripe created a payment method without an id: {created}"),
        }
    }

    /// Registers a webhook receiver: localstripe POSTs every event to `url`, signed with
    /// `secret`, about a second after the change.
    pub fn register_webhook(&self, url: &str, secret: &str) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("orderly_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let path = format!("/_config/webhooks/{id}");
        let (status, body) = self
            .request("POST", &path, Some(&[("url", url), ("secret", secret)]))
            .unwrap_or_else(|error| panic!("registering a webhook failed: {error}"));
        assert!((200..300).contains(&status), "registering a webhook: HTTP {status}: {body}");
    }

    /// `GET <path>` (path and query) with the test key, as JSON; panics on anything but a 2xx.
    pub fn get_json(&self, path_and_query: &str) -> serde_json::Value {
        Self::json_of(self.request("GET", path_and_query, None), path_and_query)
    }

    /// `POST <path>` with a form body and the test key, as JSON; panics on anything but a 2xx.
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        Self::json_of(self.request("POST", path, Some(form)), path)
    }

    fn json_of(answer: Result<(u16, String), String>, what: &str) -> serde_json::Value {
        let (status, body) = answer.unwrap_or_else(|error| panic!("{what} failed: {error}"));
        assert!((200..300).contains(&status), "{what}: HTTP {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{what}: not JSON ({error}): {body}"))
    }

    /// One request, on its own connection, with the test key: the status and the body.
    fn request(&self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Result<(u16, String), String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let body = form.map(encode_form).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            Self::SECRET_KEY,
            body.len(),
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or("no HTTP status")?;
        Ok((status, body.to_owned()))
    }
}

/// `application/x-www-form-urlencoded`, every byte but the unreserved ones percent-encoded.
fn encode_form(form: &[(&str, &str)]) -> String {
    let encode = |raw: &str| -> String {
        raw.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    form.iter().map(|(key, value)| format!("{}={}", encode(key), encode(value))).collect::<Vec<_>>().join("&")
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        // Already exited is fine; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ORDERLY_TEST_LOCALSTRIPE`, else the venv `.ci/localstripe-venv` makes, else `PATH`.
/// A variable naming a missing file is a mistake, not a reason to skip.
fn find_executable() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(LOCALSTRIPE_VAR).filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{LOCALSTRIPE_VAR}={} is not a file", path.display());
        return Some(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join("target/localstripe-venv/bin/localstripe");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("localstripe")).find(|path| path.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
}
