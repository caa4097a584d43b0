//! Safe retries (docs/api.md#retries-idempotency-key): the one mechanism every stored `POST` runs its use case through.
//!
//! A handler hands [`respond`] its use case as a closure that calls the service and renders
//! the success as a [`Reply`]. Then:
//!
//! - **no `Idempotency-Key`**: the closure runs on the blocking pool and the answer is sent as
//!   it always was (failures as `Err`, rendered by `middleware::problem_responses`);
//! - **with a key**: a claim — scope (`User(id)` for an authenticated caller, `Anonymous`
//!   otherwise), key, fingerprint (SHA-256, hex, of `METHOD\npath?query\nraw body bytes`) —
//!   goes to the domain's `IdempotentExecutor`, and the closure runs **inside**
//!   `IdempotentExecutor::run`, on the same blocking thread, so that the executor's
//!   transaction covers the use case's writes. The closure's result is rendered there too —
//!   the status, the outcome headers (`Content-Type`, `Location`, `ETag`) and the exact body
//!   bytes that are sent — and classified: 2xx `Committed`, 4xx `Refused` (stored: a
//!   `sku_taken` stays `sku_taken`), 5xx `Failed` (not stored; a retry runs again).
//!
//! The outcome becomes the response: `Executed` is sent as rendered; `Replayed` is sent
//! verbatim with `Idempotency-Replayed: true`; `KeyReused` is 422 `idempotency_key_reused`;
//! `InProgress` is 409 `idempotency_in_progress` with `Retry-After: 1`. Every response of
//! this path is `Cache-Control: no-store` (as the stored `POST`s and all problems are).
//!
//! Problems rendered inside the closure get the request's `instance` and `request_id` from
//! [`ProblemContext`], exactly as the middleware would render them, and are marked
//! [`Rendered`] so the middleware passes them through. A replayed problem is the first
//! request's problem byte for byte, so its `request_id` is the **first** request's id; the
//! replay's own id is in its `X-Request-Id` header.
//!
//! Failures before the use case runs — 401, 400 (the key itself, parameters, malformed
//! JSON), 413, 415, 422 from the body's shape — are answered before any claim is made, so
//! they are never stored: nothing was executed, and a corrected retry with the same key runs.
//!
//! Only the `POST`s in [`STORED_OPERATIONS`] use this (paying through [`respond_in_phases`]). The `/v1/auth` `POST`s validate
//! the header but never store: their answers carry live credentials, which would otherwise
//! sit in the database in plain text for 24 hours. A webhook endpoint's creation is stored,
//! signing secret included: the secret is stored as it is with its endpoint anyway (signing
//! needs it), and a client whose answer was lost must get it again, or it can never verify a
//! delivery. Retrying a webhook delivery checks the header but does not store: it is safe to
//! repeat by itself.

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use orderly_domain::Actor;
use orderly_domain::idempotency::{Execution, IdempotencyClaim, IdempotencyScope, IdempotentOutcome, StoredResponse};
use orderly_domain::ports::Repositories;

use crate::ApiState;
use crate::blocking::{self, Needs};
use crate::caching::CachePolicy;
use crate::extract::{ETag, IdempotencyKeyHeader, RawBody};
use crate::middleware::problem_responses::{ProblemContext, Rendered};
use crate::problem::ApiError;

/// The response header marking a replay.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";

/// The operations whose outcomes are stored under their `Idempotency-Key` (the OpenAPI
/// document describes replays, 409 and 422 for these).
pub const STORED_OPERATIONS: [&str; 6] =
    ["registerUser", "createProduct", "createStockAdjustment", "placeOrder", "payOrder", "createWebhookEndpoint"];

/// The headers that belong to an outcome, and are stored and replayed with it.
const OUTCOME_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// A successful answer of a use case, rendered (body serialised) on the blocking thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: StatusCode,
    location: Option<String>,
    etag: Option<ETag>,
    body: Vec<u8>,
}

impl Reply {
    /// 201 with `body` as JSON.
    pub fn created(body: &impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::CREATED, body)
    }

    /// 202 with `body` as JSON: accepted, the outcome still open.
    pub fn accepted(body: &impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::ACCEPTED, body)
    }

    fn with_status(status: StatusCode, body: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(body)
            .map_err(|error| ApiError::internal(anyhow::Error::new(error).context("serialising a response")))?;
        Ok(Self { status, location: None, etag: None, body })
    }

    /// With a `Location` header (the path of the new resource).
    pub fn location(mut self, path: impl Into<String>) -> Self {
        self.location = Some(path.into());
        self
    }

    /// With an `ETag` header.
    pub fn etag(mut self, etag: ETag) -> Self {
        self.etag = Some(etag);
        self
    }

    fn into_stored(self) -> StoredResponse {
        let mut headers = vec![(header::CONTENT_TYPE.to_string(), "application/json".to_owned())];
        if let Some(location) = self.location {
            headers.push((header::LOCATION.to_string(), location));
        }
        if let Some(etag) = self.etag {
            headers.push((header::ETAG.to_string(), etag.header_value().to_str().unwrap_or_default().to_owned()));
        }
        StoredResponse { status: self.status.as_u16(), headers, body: self.body }
    }
}

/// Runs `work` — the use case and the rendering of its success — once, honouring the
/// request's `Idempotency-Key` (see the module documentation). `actor` is the authenticated
/// caller, if any: it scopes the key.
///
/// `work` is handed the repositories its use case must use (`service.within(repositories)`):
/// with a key, those of the executor's transaction, so the change and its stored response
/// commit together; without one, the pool's. It is admitted to the blocking pool as `needs`
/// says.
pub async fn respond<W>(
    req: &HttpRequest,
    state: &ApiState,
    key: IdempotencyKeyHeader,
    actor: Option<Actor>,
    needs: Needs,
    work: W,
) -> Result<HttpResponse, ApiError>
where
    W: FnOnce(&Repositories) -> Result<Reply, ApiError> + Send + 'static,
{
    let Some(claim) = claim(req, key, actor) else {
        let repositories = state.repositories.clone();
        let reply = state.blocking.run(needs, move || work(&repositories)).await??;
        return Ok(send(&reply.into_stored(), false));
    };
    let context = ProblemContext::of(req);
    let executor = state.idempotency.clone();
    let outcome = state
        .blocking
        .run(needs, move || {
            let mut work = Some(work);
            executor.run(&claim, &mut |repositories| execute_once(&mut work, repositories, &context))
        })
        .await??;
    answer(outcome)
}

/// [`respond`] for a use case that runs in phases of its own and must not run inside one
/// transaction (paying: the provider is called between its transactions). `work` is handed
/// the request's key as `scope:key`, its recovery point: a retry with the same key after a
/// crash resumes what the first request recorded instead of starting again. It runs without
/// admission (`blocking::run_unadmitted`): a database permit must not wait seconds on the
/// provider, and no connection is held while it does.
pub async fn respond_in_phases<W>(
    req: &HttpRequest,
    state: &ApiState,
    key: IdempotencyKeyHeader,
    actor: Option<Actor>,
    work: W,
) -> Result<HttpResponse, ApiError>
where
    W: FnOnce(Option<String>) -> Result<Reply, ApiError> + Send + 'static,
{
    let Some(claim) = claim(req, key, actor) else {
        let reply = blocking::run_unadmitted(move || work(None)).await??;
        return Ok(send(&reply.into_stored(), false));
    };
    let context = ProblemContext::of(req);
    let executor = state.idempotency.clone();
    let outcome = blocking::run_unadmitted(move || {
        let request_key = format!("{}:{}", claim.scope, claim.key.as_str());
        let mut work = Some(work);
        executor.run_in_phases(&claim, &mut || execute_once(&mut work, Some(request_key.clone()), &context))
    })
    .await??;
    answer(outcome)
}

/// Runs `work` with `input` the one time the executor asks for it (a second call would be an
/// executor bug, answered 500), and renders its result as an [`Execution`].
fn execute_once<I, W>(work: &mut Option<W>, input: I, context: &ProblemContext) -> Execution
where
    W: FnOnce(I) -> Result<Reply, ApiError>,
{
    let result = match work.take() {
        Some(work) => work(input),
        None => Err(ApiError::internal(anyhow::anyhow!("the idempotent executor ran a request twice"))),
    };
    execution(result, context)
}

/// The claim of a request that carries a key.
fn claim(req: &HttpRequest, key: IdempotencyKeyHeader, actor: Option<Actor>) -> Option<IdempotencyClaim> {
    Some(IdempotencyClaim {
        scope: actor.map_or(IdempotencyScope::Anonymous, |actor| IdempotencyScope::User(actor.user_id)),
        key: key.into_inner()?,
        fingerprint: fingerprint(req),
        now: chrono::Utc::now(),
    })
}

fn answer(outcome: IdempotentOutcome) -> Result<HttpResponse, ApiError> {
    match outcome {
        IdempotentOutcome::Executed(response) => Ok(send(&response, false)),
        IdempotentOutcome::Replayed(response) => Ok(send(&response, true)),
        IdempotentOutcome::KeyReused => Err(ApiError::idempotency_key_reused()),
        IdempotentOutcome::InProgress => Err(ApiError::idempotency_in_progress()),
    }
}

/// SHA-256 (lower-case hex) of `METHOD\npath?query\nbody`: what "the same request" means.
pub fn fingerprint(req: &HttpRequest) -> String {
    let target = req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |target| target.as_str().to_owned());
    let mut digest = Sha256::new();
    digest.update(req.method().as_str().as_bytes());
    digest.update(b"\n");
    digest.update(target.as_bytes());
    digest.update(b"\n");
    if let Some(RawBody(body)) = req.extensions().get::<RawBody>() {
        digest.update(body);
    }
    digest.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Renders the use case's result as it will be sent, and classifies it by status.
fn execution(result: Result<Reply, ApiError>, context: &ProblemContext) -> Execution {
    let response = match result {
        Ok(reply) => reply.into_stored(),
        Err(error) => stored_problem(context.render(&error)),
    };
    match response.status {
        200..=299 => Execution::Committed(response),
        400..=499 => Execution::Refused(response),
        _ => Execution::Failed(response),
    }
}

/// A rendered problem response as a `StoredResponse`. A server failure (never stored) keeps
/// its `Retry-After` too.
fn stored_problem(response: HttpResponse) -> StoredResponse {
    let status = response.status();
    let keep =
        |name: &HeaderName| OUTCOME_HEADERS.contains(name) || (status.is_server_error() && name == header::RETRY_AFTER);
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| keep(name))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    // `ApiError::render` sets the body from bytes, so this never falls back.
    let body = response.into_body().try_into_bytes().map(|bytes| bytes.to_vec()).unwrap_or_default();
    StoredResponse { status: status.as_u16(), headers, body }
}

/// The response for a stored (or just rendered) outcome.
fn send(stored: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.append_header((name, value));
        }
    }
    CachePolicy::NoStore.apply(&mut response);
    if replayed {
        response.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    }
    let mut response = response.body(stored.body.clone());
    response.extensions_mut().insert(Rendered);
    response
}
