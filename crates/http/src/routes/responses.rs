//! What many operations answer alike, written once. For the document: the responses that
//! several `#[utoipa::path]` attributes list, each a type implementing [`IntoResponses`] named
//! in `responses(...)` beside the operation's own tuples, e.g. `responses((status = 200, …),
//! ProductNotFound, PreconditionRequired)`. Each is one status, inline, exactly as the tuple it
//! replaces (no `components/responses` entry: `crate::openapi::finish` completes it like any
//! other); a response worded differently on one operation stays a tuple there. For the
//! handlers: a page, cached as its policy says ([`page`]), and the answers to a change
//! ([`changed`], [`no_content`]).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use orderly_domain::pagination::PageLimit;
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::caching::CachePolicy;
use crate::extract::ETag;
use crate::openapi::{problem, string_header};
use crate::pagination;

/// Declares each response: a unit type whose `IntoResponses` is the one response of `$status`,
/// built by `$response` (a [`ResponseBuilder`]).
macro_rules! shared_responses {
    ($($(#[doc = $doc:literal])* $name:ident => $status:literal, $response:expr;)*) => {$(
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([($status.to_owned(), RefOr::T($response.build()))])
            }
        }
    )*};
}

shared_responses! {
    /// 304 of a read with a token (`CachePolicy::PrivateRevalidate`).
    NotModified => "304", not_modified("The current entity tag", "`private, no-cache`");
    /// 304 of a catalogue read (`CachePolicy::for_catalogue`).
    CatalogueNotModified => "304", not_modified("The current entity tag", "As on 200");
    /// 304 of an invoice (`CachePolicy::PrivateImmutable`), whose tag never changes.
    InvoiceNotModified => "304", not_modified("The entity tag", "`private, max-age=31536000, immutable`");
    /// 401 where a token is optional, but one that is sent must be valid.
    InvalidToken => "401", problem("`unauthenticated`: a bearer token was sent and is malformed, expired or \
        wrongly signed (send none to read anonymously)")
        .header("WWW-Authenticate", string_header("`Bearer error=\"invalid_token\"`"));
    WebhooksForbidden => "403", problem("`forbidden`: only admins may manage webhooks");
    ProductNotFound => "404", problem("`not_found`: no such product");
    OrderNotFound => "404", problem("`not_found`: no such order, or another customer's");
    UserNotFound => "404", problem("`not_found`: no such user, or not one the caller may see");
    EndpointNotFound => "404", problem("`not_found`: no such endpoint");
    ProductPreconditionFailed => "412", precondition_failed("product");
    OrderPreconditionFailed => "412", precondition_failed("order");
    UserPreconditionFailed => "412", precondition_failed("user");
    EndpointPreconditionFailed => "412", precondition_failed("endpoint");
    /// 428 where `If-Match` is required (`RequiredIfMatch`).
    PreconditionRequired => "428", problem("`precondition_required`: `If-Match` is missing (or `*`)");
}

/// 304: `If-None-Match` named the current tag (`caching::tagged`), so no body.
fn not_modified(etag: &str, cache_control: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description("Not modified: the `If-None-Match` tag is current")
        .header("ETag", string_header(etag))
        .header("Cache-Control", string_header(cache_control))
        .header("Vary", string_header("`Authorization`"))
}

fn precondition_failed(resource: &str) -> ResponseBuilder {
    problem(&format!("`precondition_failed`: the {resource} changed since the `If-Match` ETag was read"))
}

/// One page of a collection (`pagination::page_response`), cached as `policy` says.
pub fn page<T: Serialize + ToSchema>(
    req: &HttpRequest,
    data: Vec<T>,
    limit: PageLimit,
    next_cursor: Option<String>,
    policy: CachePolicy,
) -> HttpResponse {
    let mut response = pagination::page_response(req, data, limit, next_cursor);
    policy.apply_to(&mut response);
    response
}

/// 200 with the changed resource and its new strong `ETag`; never cached.
pub fn changed<T: Serialize>(version: i64, body: &T) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::ETAG, ETag::for_version(version).header_value()));
    CachePolicy::NoStore.apply(&mut response);
    response.json(body)
}

/// 204 without a body; never cached.
pub fn no_content() -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    CachePolicy::NoStore.apply(&mut response);
    response.finish()
}
