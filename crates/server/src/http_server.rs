//! The HTTP server: the application ([`orderly_http::app`]) on actix-http's HTTP/1.1 service,
//! every connection passing through the head guard first (`orderly-head-guard`, ADR 0016), so
//! that requests refused before routing are answered as problem+json too.
//!
//! Assembled from the parts `actix_web::HttpServer` assembles itself from (`actix-server` for
//! the listener, workers and shutdown; `HttpService` for HTTP/1.1; the `App` mapped to its
//! `AppConfig`), with the guard's stream wrapped around each accepted `TcpStream`. What the
//! application sees is unchanged: the same local address and host in `AppConfig`, the TCP peer
//! as the peer address (rate limiting and `ConnectionInfo` read it), keep-alive, worker count
//! and graceful shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{Service, ServiceFactoryExt, apply_fn_factory, map_config};
use actix_web::dev::{AppConfig, Server};
use actix_web::rt::net::TcpStream;
use orderly_head_guard::{Answer, Limits, Refusal, RefusalKind, Responder};
use orderly_http::ApiState;
use orderly_http::problem::ProblemCode;

/// How the server runs, from configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads; `None` = actix's default (the physical cores).
    pub workers: Option<usize>,
    /// How long in-flight requests get to finish after a graceful stop.
    pub shutdown_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: Duration,
    /// The limits on request heads, and the time a client has to send one.
    pub limits: Limits,
}

/// actix's own head timer runs this much later than the guard's, so that the guard, which
/// answers with a problem, is always the one to time a slow head out.
const ACTIX_HEAD_TIMER_MARGIN: Duration = Duration::from_secs(1);

/// Binds the application to `listener`; the server runs once awaited (or its handle used).
pub fn serve(listener: TcpListener, state: ApiState, settings: ServerSettings) -> std::io::Result<Server> {
    let address = listener.local_addr()?;
    let responder = responder(state.settings.problem_type_base.clone());
    let mut builder = actix_server::Server::build()
        // Signals are handled by the application (`Application::run_until_stopped`).
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if let Some(workers) = settings.workers {
        builder = builder.workers(workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder.listen("orderly-http", listener, move || {
        let shutdown = shutdown.clone();
        let limits = settings.limits;
        let responder = responder.clone();
        let app = orderly_http::app(state.clone());
        let http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .keep_alive(settings.keep_alive)
            .client_request_timeout(limits.head_timeout + ACTIX_HEAD_TIMER_MARGIN)
            .client_disconnect_timeout(Duration::from_secs(1))
            // A refusal ends actix's input; actix still finishes the responses to the requests
            // before it.
            .h1_allow_half_closed(true)
            .local_addr(address)
            .h1(map_config(
                actix_service::IntoServiceFactory::into_factory(app)
                    .map_err(|error: actix_web::Error| error.error_response()),
                // What `HttpServer` gives the app: this listener's address as host (the
                // fallback of `ConnectionInfo::host`) and local address. actix-web makes its
                // constructor public only under this name (ADR 0016).
                move |_| AppConfig::__priv_test_new(false, address.to_string(), address),
            ));
        apply_fn_factory(http, move |stream: TcpStream, http: &_| {
            let peer = stream.peer_addr().ok();
            let (guarded, owed) = orderly_head_guard::guard(stream, limits, responder.clone());
            let connection = http.call((guarded, peer));
            // Within the connection's own task, so a graceful stop waits for the answer too.
            async move {
                let served = connection.await;
                owed.answer().await;
                served
            }
        })
    })?;
    Ok(builder.run())
}

/// The application's problem+json for each refusal.
fn responder(problem_type_base: String) -> Responder {
    Arc::new(move |refusal: &Refusal| {
        let code = match refusal.kind {
            RefusalKind::RequestTimeout => ProblemCode::RequestTimeout,
            RefusalKind::UriTooLong => ProblemCode::UriTooLong,
            RefusalKind::HeaderFieldsTooLarge => ProblemCode::HeaderFieldsTooLarge,
            // The contract's 400 for a request that is not what it should be, as the
            // application answers a bare 400 (`ProblemCode::for_status`).
            RefusalKind::Malformed => ProblemCode::InvalidParameter,
        };
        let instance = refusal.path.as_deref().unwrap_or("");
        let answer = orderly_http::refusals::answer(code, &refusal.detail, instance, &problem_type_base);
        Answer { request_id: answer.request_id.to_string(), bytes: answer.bytes }
    })
}
