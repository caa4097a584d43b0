//! `TestApp`: one running server on a free port with its own database, plus the actors a test
//! needs (anonymous, a fresh customer, the bootstrapped admin).

use std::collections::HashMap;

use awc::http::StatusCode;
use orderly::{Application, Config};
use orderly_persistence::testing::{Backend, TestDatabase};
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-123";
pub const PASSWORD: &str = "correct horse battery";

/// Writes each test once and runs it on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[actix_web::test]
                async fn $name() {
                    let $app = $crate::support::TestApp::spawn(orderly_persistence::testing::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[actix_web::test]
                async fn $name() {
                    let Some($app) = $crate::support::TestApp::spawn(orderly_persistence::testing::Backend::Postgres).await
                    else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub client: awc::Client,
    // Dropped last: the server's pool is gone with the test's runtime, then the database is.
    _database: TestDatabase,
}

/// A response read whole: status, headers and body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    /// Asserts a problem+json answer with the given status and code, and returns its body.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type").as_deref(), Some("application/problem+json"));
        assert_eq!(self.header("cache-control").as_deref(), Some("no-store"));
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status);
        assert_eq!(body["request_id"].as_str(), self.header("x-request-id").as_deref());
        body
    }
}

/// A logged-in user.
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// Like `spawn`, with extra or overriding `ORDERLY_*` settings.
    pub async fn spawn_with(backend: Backend, settings: &[(&'static str, &str)]) -> Option<TestApp> {
        let database = TestDatabase::for_backend(backend)?;
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("ORDERLY_BIND", "127.0.0.1:0".to_owned()),
            ("ORDERLY_DATABASE_URL", database.url()),
            ("ORDERLY_DATABASE_POOL_SIZE", "4".to_owned()),
            ("ORDERLY_JWT_SECRET", "test-secret-that-is-at-least-32-bytes-long".to_owned()),
            ("ORDERLY_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
            ("ORDERLY_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("ORDERLY_WORKERS", "1".to_owned()),
            ("ORDERLY_SHUTDOWN_TIMEOUT", "0".to_owned()),
            ("ORDERLY_TAX_RATE_BPS", "1000".to_owned()),
        ]);
        for (name, value) in settings {
            vars.insert(name, (*value).to_owned());
        }
        let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid");
        let application = Application::build(config).await.expect("the application starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        actix_web::rt::spawn(application.run_until_stopped());
        Some(TestApp { address, client: awc::Client::default(), _database: database })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, request: awc::ClientRequest, body: Option<&Value>) -> Reply {
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .expect("request sent");
        let body = response.body().limit(4 * 1024 * 1024).await.expect("body read").to_vec();
        Reply { status: response.status(), headers: response.headers().clone(), body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, if_match: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.patch(self.url(path)).bearer_auth(token);
        if let Some(etag) = if_match {
            request = request.insert_header(("If-Match", etag));
        }
        self.send(request, Some(body)).await
    }

    pub async fn register(&self, email: &str, name: &str) -> Value {
        let reply = self.post("/v1/users", None, &json!({"email": email, "password": PASSWORD, "name": name})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/v1/auth/tokens", None, &json!({"email": email, "password": password})).await
    }

    pub async fn session(&self, email: &str, password: &str) -> Session {
        let reply = self.login(email, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
        let tokens = reply.json();
        let access_token = tokens["access_token"].as_str().unwrap().to_owned();
        let me = self.get("/v1/users/me", Some(&access_token)).await.json();
        Session {
            user_id: me["id"].as_str().unwrap().to_owned(),
            access_token,
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers a customer and logs them in.
    pub async fn customer(&self, email: &str) -> Session {
        self.register(email, "Test Customer").await;
        self.session(email, PASSWORD).await
    }

    pub async fn admin(&self) -> Session {
        self.session(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }
}
