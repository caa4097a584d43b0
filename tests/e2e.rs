//! End-to-end: the real `orderly` binary, started as an operator would start it, driven over
//! HTTP, and stopped with a signal. Complements the in-process API tests by covering the CLI,
//! configuration from the environment, start-up migrations and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_orderly");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn orderly(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORDERLY_LOG", "warn");
    command
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut command = orderly(dir);
        command.env("ORDERLY_BIND", format!("127.0.0.1:{port}")).stdout(Stdio::null()).stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the binary starts");
        let server = Server { child, base: format!("http://127.0.0.1:{port}") };
        server.wait_until_healthy();
        server
    }

    fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http("GET", &format!("{}/healthz", self.base), None, None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not become healthy within 60 s");
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 client over the standard library: enough for these checks
/// without pulling an HTTP client stack into the build.
fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    let json = serde_json::from_str(&payload).unwrap_or(Value::Null);
    Ok((status, json))
}

fn dechunk(mut payload: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = payload.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        payload = &rest[size + 2..];
    }
    out
}

fn output(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("the binary runs")
}

#[test]
fn a_customer_registers_logs_in_refreshes_and_logs_out_then_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let base = server.base.clone();

    let (status, user) = http(
        "POST",
        &format!("{base}/v1/users"),
        None,
        Some(&json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{user}");
    let (status, tokens) = http(
        "POST",
        &format!("{base}/v1/auth/tokens"),
        None,
        Some(&json!({"email": "ada@example.com", "password": "correct horse battery"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (status, me) = http("GET", &format!("{base}/v1/users/me"), Some(access), None).unwrap();
    assert_eq!((status, me["id"].clone()), (200, user["id"].clone()));
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let (status, pair) = http("POST", &format!("{base}/v1/auth/refresh"), None, Some(&refresh)).unwrap();
    assert_eq!(status, 200, "{pair}");
    let (status, _) =
        http("POST", &format!("{base}/v1/auth/logout"), None, Some(&json!({"refresh_token": pair["refresh_token"]})))
            .unwrap();
    assert_eq!(status, 204);

    // With no ORDERLY_DATABASE_URL the binary made and migrated orderly.db in its working directory.
    assert!(dir.path().join("orderly.db").exists());
    let exit = server.terminate();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}

#[test]
fn an_unknown_database_scheme_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let result = output(orderly(dir.path()).env("ORDERLY_DATABASE_URL", "mysql://localhost/orderly"));
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("ORDERLY_DATABASE_URL"), "{stderr}");
}

#[test]
fn production_refuses_to_start_without_a_strong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let result = output(orderly(dir.path()).env("ORDERLY_ENV", "production").env("ORDERLY_JWT_SECRET", "short"));
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("ORDERLY_JWT_SECRET") && stderr.contains("32 bytes"), "{stderr}");
}

#[test]
fn openapi_subcommand_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let result = output(orderly(dir.path()).arg("openapi"));
    assert!(result.status.success());
    let document: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(document["paths"]["/v1/auth/tokens"]["post"].is_object());
}

#[test]
fn migrate_and_create_admin_are_idempotent_and_the_admin_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let db = db.to_str().unwrap();
    let migrate = output(orderly(dir.path()).env("ORDERLY_DATABASE_URL", db).arg("migrate"));
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    for expected in ["created", "already exists"] {
        let result = output(
            orderly(dir.path())
                .env("ORDERLY_DATABASE_URL", db)
                .env("ORDERLY_ADMIN_PASSWORD", "admin-password-123")
                .args(["users", "create-admin", "--email", "root@example.com"]),
        );
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        assert!(String::from_utf8_lossy(&result.stdout).contains(expected));
    }
    let server = Server::start(dir.path(), &[("ORDERLY_DATABASE_URL", db)]);
    let (status, tokens) = http(
        "POST",
        &format!("{}/v1/auth/tokens", server.base),
        None,
        Some(&json!({"email": "root@example.com", "password": "admin-password-123"})),
    )
    .unwrap();
    assert_eq!(status, 200);
    let (status, me) =
        http("GET", &format!("{}/v1/users/me", server.base), tokens["access_token"].as_str(), None).unwrap();
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")));
}
