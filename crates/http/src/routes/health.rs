//! Operational endpoints (§3): liveness and readiness.

use actix_web::{HttpResponse, get, web};

use crate::ApiState;
use crate::blocking;
use crate::caching::CachePolicy;
use crate::dto::health::{Health, HealthStatus, Readiness, ReadinessStatus};
use crate::problem::ApiError;

/// Liveness
///
/// Answers 200 while the process runs; checks nothing else.
#[utoipa::path(
    operation_id = "getHealth",
    tag = "operations",
    responses(
        (status = 200, description = "The process is running", body = Health),
    )
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    let mut response = HttpResponse::Ok();
    CachePolicy::NoStore.apply(&mut response);
    response.json(Health { status: HealthStatus::Ok })
}

/// Readiness
///
/// Answers 200 when the database answers and every migration is applied, otherwise 503 with
/// `Retry-After`: take the instance out of rotation until it is ready.
#[utoipa::path(
    operation_id = "getReadiness",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to take traffic", body = Readiness),
        (status = 503, description = "`service_unavailable`: the database is unreachable or migrations are pending",
            body = crate::problem::ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again"))),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let readiness = state.readiness.clone();
    blocking::run(move || readiness.check()).await??;
    let mut response = HttpResponse::Ok();
    CachePolicy::NoStore.apply(&mut response);
    Ok(response.json(Readiness { status: ReadinessStatus::Ready }))
}
