//! End-to-end: the real `orderly` binary, started as an operator would start it, driven over
//! HTTP, and stopped with a signal. Complements the in-process API tests by covering the CLI,
//! configuration from the environment, start-up migrations and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::{Server, http, orderly};

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
