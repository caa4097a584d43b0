//! `HEAD` behaves like `GET` (RFC 9110 §9.3.2): the request is routed as a `GET`, so every GET
//! route answers HEAD with the same status and headers, and `Allow` lists HEAD wherever it
//! lists GET (see `fallback`).
//!
//! The body is left in place on purpose: actix-web's HTTP/1 and HTTP/2 encoders know the
//! request was a HEAD (they read the method off the wire before any middleware runs), send
//! the `Content-Length` the GET would have had, and write no body bytes.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

/// Marks a request that arrived as `HEAD`, so messages can name the method the client used.
#[derive(Debug, Clone, Copy)]
pub struct ArrivedAsHead;

pub async fn route_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(ArrivedAsHead);
    }
    next.call(req).await
}
