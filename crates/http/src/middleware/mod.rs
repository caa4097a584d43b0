//! Cross-cutting request/response processing, outermost first:
//!
//! 1. [`request_id`] — gives every request an id and echoes it on every response;
//! 2. [`metrics`] — counts and times every response by method, route template and status;
//!    outside everything that can answer (fallback, problem rendering, rate limiting, CORS
//!    refusals), so it records the status the client gets;
//! 3. [`security_headers`] — the headers every response carries;
//! 4. [`telemetry`] — one tracing span per request (via `tracing-actix-web`), with the
//!    request's W3C trace id;
//! 5. `crate::rate_limit::enforce` — takes a token from the caller's buckets, refuses with a
//!    complete 429 problem before any handler runs, and writes the RateLimit fields; inside the
//!    span (its refusals are logged with the request) and outside problem rendering (so every
//!    response, problems included, carries the fields);
//! 6. [`problem_responses`] — turns every failure into a problem+json body with the request's
//!    context, and logs server faults;
//! 7. [`head`] — answers `HEAD` with the matching `GET` route;
//! 8. `crate::revocation::admit` — judges whether the request's access token was revoked
//!    (ADR 0015), for the `Caller` extractors; innermost, so a request refused for its rate
//!    never costs the read a cache miss needs, and its 503 is rendered like any other.
//!
//! `crate::app` registers them in that order; the order matters (each relies on the ones
//! outside it), so it is kept in one place.
//!
//! The route template (`/v1/products/{id}`) labels the metrics and names the span;
//! [`RouteTemplate::of`] works it out once per request (the resource map is walked with every
//! dynamic route's regex) and keeps it in the request's extensions.

pub mod cors;
pub mod head;
pub mod metrics;
pub mod problem_responses;
pub mod request_id;
pub mod security_headers;
pub mod telemetry;

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};

/// The route template the request's path matches, `None` for a path no route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate(pub Option<Arc<str>>);

impl RouteTemplate {
    /// The template of `req`: computed by the first caller (the metrics middleware, outermost)
    /// and read from the request's extensions by every later one. Valid before routing:
    /// `match_pattern` matches the path against the application's resource map.
    pub fn of(req: &HttpRequest) -> Self {
        if let Some(known) = req.extensions().get::<Self>() {
            return known.clone();
        }
        let template = Self(req.match_pattern().map(Arc::from));
        req.extensions_mut().insert(template.clone());
        template
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;

    /// Worked out by the outermost middleware, before routing, and read back by the handler.
    #[actix_web::test]
    async fn the_template_is_known_before_routing_and_kept_for_later_callers() {
        let app = test::init_service(
            App::new()
                .wrap_fn(|req, service| {
                    let template = RouteTemplate::of(req.request());
                    req.extensions_mut().insert(template.as_deref().map(str::to_owned));
                    service.call(req)
                })
                .route(
                    "/things/{id}",
                    web::get().to(|req: HttpRequest| async move {
                        let kept = req.extensions().get::<RouteTemplate>().cloned();
                        let before_routing = req.extensions().get::<Option<String>>().cloned().flatten();
                        HttpResponse::Ok().body(format!("{:?} {before_routing:?}", kept.and_then(|t| t.0)))
                    }),
                ),
        )
        .await;
        let body = test::call_and_read_body(&app, test::TestRequest::get().uri("/things/7").to_request()).await;
        assert_eq!(body, r#"Some("/things/{id}") Some("/things/{id}")"#);
        let unmatched = test::TestRequest::get().uri("/elsewhere").to_http_request();
        assert_eq!(RouteTemplate::of(&unmatched), RouteTemplate(None));
    }
}
