//! The crate boundaries of docs/architecture.md, checked from the manifests, so that a new
//! dependency that breaks them fails a test rather than waiting for a reviewer:
//!
//! - the domain depends on no I/O crate, runtime, web framework, database or serialisation
//!   format;
//! - an adapter depends on the domain at most, never on another adapter (the server alone wires
//!   them together);
//! - the head guard does not know the domain (the server passes it a renderer).
//!
//! Only `[dependencies]` count: a test may drive a real adapter of another crate
//! (`orderly-http`'s rate-limit tests run `orderly-rate-limit`), as the server does.

use std::path::{Path, PathBuf};

/// Crates the domain may never depend on: I/O, runtimes, frameworks, formats, cryptography.
const FORBIDDEN_IN_THE_DOMAIN: &[&str] = &[
    "actix-web",
    "argon2",
    "diesel",
    "governor",
    "jsonwebtoken",
    "redis",
    "reqwest",
    "serde",
    "serde_json",
    "tokio",
    "utoipa",
];

/// The adapters, each with the workspace crates it may depend on.
const ADAPTERS: &[(&str, &[&str])] = &[
    ("auth", &["orderly-domain"]),
    ("head-guard", &[]),
    ("http", &["orderly-domain"]),
    ("payments", &["orderly-domain"]),
    ("persistence", &["orderly-domain"]),
    ("rate-limit", &["orderly-domain"]),
    ("webhooks", &["orderly-domain"]),
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The names in a manifest's `[dependencies]` table (not dev- or build-dependencies).
fn dependencies(crate_dir: &str) -> Vec<String> {
    let path = crates_dir().join(crate_dir).join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_owned());
        }
    }
    assert!(!names.is_empty(), "{} has no [dependencies] table I can read", path.display());
    names
}

#[test]
fn the_domain_depends_on_no_io_crate() {
    let dependencies = dependencies("domain");
    let forbidden: Vec<_> =
        dependencies.iter().filter(|name| FORBIDDEN_IN_THE_DOMAIN.contains(&name.as_str())).collect();
    assert!(forbidden.is_empty(), "orderly-domain depends on {forbidden:?}");
    let workspace: Vec<_> = dependencies.iter().filter(|name| name.starts_with("orderly-")).collect();
    assert!(workspace.is_empty(), "orderly-domain depends on {workspace:?}");
}

#[test]
fn no_adapter_reaches_another() {
    for (adapter, allowed) in ADAPTERS {
        let reached: Vec<_> = dependencies(adapter)
            .into_iter()
            .filter(|name| name.starts_with("orderly-") && !allowed.contains(&name.as_str()))
            .collect();
        assert!(reached.is_empty(), "crates/{adapter} depends on {reached:?}");
    }
}

#[test]
fn every_crate_of_the_workspace_is_classified() {
    let mut found: Vec<String> = std::fs::read_dir(crates_dir())
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    found.sort();
    let mut classified: Vec<String> =
        ADAPTERS.iter().map(|(name, _)| (*name).to_owned()).chain(["domain".to_owned(), "server".to_owned()]).collect();
    classified.sort();
    assert_eq!(found, classified, "a new crate must be placed in the hexagon: add it to ADAPTERS (or here)");
}
