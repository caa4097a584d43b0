//! The last stop of every failure: whatever failed — a handler, an extractor, the fallback,
//! or a service this crate embeds (Swagger UI) — leaves here as an RFC 9457 problem with the
//! request's path as `instance` and its id as `request_id`, and with `Cache-Control: no-store`.
//!
//! Server faults are logged here, once, inside the request's span: 500s at `error` with the
//! full cause chain, 503s at `warn`. The body never says more than the code's generic detail.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, web};

use crate::ApiState;
use crate::middleware::request_id::RequestId;
use crate::problem::{ApiError, ProblemCode};

pub async fn render(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    // The request cannot be cloned before routing (the router needs it unshared), so an error
    // that escapes as `Err` rather than as an error response is left to actix, which renders
    // it with `ApiError::error_response`. Handlers, extractors and the fallback never do that.
    match next.call(req).await? {
        // Rendered with this request's context already (and possibly stored for replays,
        // `crate::idempotency`): sent as it is.
        response if response.response().extensions().contains::<Rendered>() => Ok(response.map_into_left_body()),
        response if response.status().is_client_error() || response.status().is_server_error() => {
            let (request, mut response) = response.into_parts();
            let problem = match response.error() {
                Some(error) => problem_response(&request, error, response.status()),
                None => problem_for_status(&request, response.status()),
            };
            let rendered = match problem {
                Some(problem) => problem.map_into_right_body(),
                None => {
                    // A status no problem code covers: keep the response, but never cache it.
                    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    response.map_into_left_body()
                }
            };
            Ok(ServiceResponse::new(request, rendered))
        }
        response => Ok(response.map_into_left_body()),
    }
}

/// The problem for a failure that carries an error: ours re-rendered with context, anyone
/// else's mapped by status.
fn problem_response(req: &HttpRequest, error: &Error, status: StatusCode) -> Option<HttpResponse> {
    match error.as_error::<ApiError>() {
        Some(api_error) => Some(respond(req, api_error)),
        None => {
            let code = ProblemCode::for_status(status)?;
            let api_error = match code {
                ProblemCode::InternalError => ApiError::internal(anyhow::anyhow!("{error}")),
                ProblemCode::ServiceUnavailable => ApiError::unavailable(anyhow::anyhow!("{error}")),
                code => ApiError::new(code, code.title().to_lowercase()),
            };
            Some(respond(req, &api_error))
        }
    }
}

/// The problem for a bare error status (no error attached), e.g. an embedded service's 404.
fn problem_for_status(req: &HttpRequest, status: StatusCode) -> Option<HttpResponse> {
    let code = ProblemCode::for_status(status)?;
    let api_error = match code {
        ProblemCode::InternalError => ApiError::internal(anyhow::anyhow!("a bare {status} response")),
        ProblemCode::NotFound => ApiError::not_found("no such resource"),
        code => ApiError::new(code, code.title().to_lowercase()),
    };
    Some(respond(req, &api_error))
}

fn respond(req: &HttpRequest, error: &ApiError) -> HttpResponse {
    ProblemContext::of(req).render(error)
}

/// Marks a response whose problem body (if any) is already final: this middleware passes it
/// through untouched. Set by `crate::idempotency` on the responses it sends, whose bodies are
/// rendered (with [`ProblemContext`]) on the blocking thread and stored for replays.
#[derive(Debug, Clone, Copy)]
pub struct Rendered;

/// What rendering a problem needs from the request (`instance`, `request_id`, the `type`
/// base), captured so that a problem can be rendered away from the request, e.g. on the
/// blocking pool. Rendering logs server faults, as this middleware does.
#[derive(Debug, Clone)]
pub struct ProblemContext {
    type_base: String,
    instance: String,
    request_id: String,
}

impl ProblemContext {
    pub fn of(req: &HttpRequest) -> Self {
        let type_base = req
            .app_data::<web::Data<ApiState>>()
            .map_or(crate::DEFAULT_PROBLEM_TYPE_BASE, |state| state.settings.problem_type_base.as_str());
        Self { type_base: type_base.to_owned(), instance: req.path().to_owned(), request_id: RequestId::of(req) }
    }

    /// The problem response for `error`, exactly as this middleware would send it.
    pub fn render(&self, error: &ApiError) -> HttpResponse {
        log(error, &self.request_id);
        error.render(&error.problem(&self.type_base, &self.instance, &self.request_id))
    }
}

fn log(error: &ApiError, request_id: &str) {
    let cause = error.cause().map(|cause| format!("{cause:#}")).unwrap_or_default();
    match error.code() {
        ProblemCode::InternalError => tracing::error!(%request_id, error = %cause, "unexpected error"),
        ProblemCode::ServiceUnavailable => tracing::warn!(%request_id, error = %cause, "service unavailable"),
        _ => {}
    }
}
