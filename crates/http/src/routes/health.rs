//! Operational endpoints (README.md#resource-model, "operational"): liveness, readiness and
//! metrics. None of them is under `/v1`: they are for the platform (probes, scrapers), not for API
//! consumers.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

use crate::ApiState;
use crate::blocking::{self, Needs};
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
pub(crate) async fn healthz() -> HttpResponse {
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
pub(crate) async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let readiness = state.readiness.clone();
    state.blocking.run(Needs::Database, move || readiness.check()).await??;
    let mut response = HttpResponse::Ok();
    CachePolicy::NoStore.apply(&mut response);
    Ok(response.json(Readiness { status: ReadinessStatus::Ready }))
}

/// Metrics
///
/// The process's metrics in the Prometheus text format: requests by method, route template and
/// status (count and latency histogram), the database pool, failed logins, rate limiting and
/// the background sweep. Meant for a scraper on the internal network; 404 on an instance
/// without metrics.
#[utoipa::path(
    operation_id = "getMetrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text exposition format 0.0.4",
            body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "`not_found`: this instance does not collect metrics",
            body = crate::problem::ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let Some(source) = state.metrics.clone() else {
        return Err(ApiError::not_found("metrics are not collected on this instance"));
    };
    // Rendering formats every series (and refreshes the pool gauges): CPU work that grows with
    // the number of series, kept off the async worker like any other blocking call. It takes
    // no connection, so it does not queue behind database calls: an overloaded instance
    // still tells its scraper so.
    let text = blocking::run_unadmitted(move || source.render()).await?;
    let mut response = HttpResponse::Ok();
    CachePolicy::NoStore.apply(&mut response);
    Ok(response.insert_header((header::CONTENT_TYPE, crate::metrics::PROMETHEUS_TEXT)).body(text))
}
