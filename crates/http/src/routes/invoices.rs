//! `/v1/invoices` (docs/api.md#invoices): the invoices issued when orders were confirmed, addressed by their
//! number. Customers see their own, admins all; someone else's invoice is `not_found`. An
//! invoice never changes, so one read may be kept by the caller's cache for a year.

use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::ApiState;
use crate::caching::{self, CachePolicy};
use crate::dto::invoices::{self as dto, InvoiceResponse, ListInvoicesParams};
use crate::extract::{Caller, ETag, IfNoneMatch, PathInvoiceNumber, ValidQuery};
use crate::pagination::{self, CursorCodec};
use crate::problem::ApiError;
use crate::routes::responses::{self, InvoiceNotModified};

/// List invoices
///
/// Customers see their own invoices, admins everyone's; newest first (`sort=-issued_at`, the
/// only order). Page with `limit` and `cursor` (or follow the `Link` header). Private
/// (`private, no-cache`): the page grows as orders are confirmed.
#[utoipa::path(
    operation_id = "listInvoices",
    tag = "invoices",
    security(("bearer_auth" = [])),
    params(ListInvoicesParams, pagination::PageParams),
    responses(
        (status = 200, description = "One page of invoices, newest first",
            body = pagination::PageEnvelope<InvoiceResponse>,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, when there is one"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
    )
)]
#[get("/invoices")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Caller,
    query: ValidQuery<ListInvoicesParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit;
    let actor = caller.actor();
    let page = state.blocking.call(&state.orders, move |orders| orders.invoices(actor, query)).await?;
    let next_cursor = page.next_after(|last| last.number).map(|number| dto::next_cursor(&cursors, number));
    let data = page.items.iter().map(InvoiceResponse::from).collect();
    Ok(responses::page(&req, data, limit, next_cursor, CachePolicy::PrivateRevalidate))
}

/// One invoice
///
/// The owner's or any invoice for an admin; someone else's invoice is `not_found`. Invoices
/// never change: the strong `ETag` is the number, quoted, and the answer may be kept by the
/// caller's own cache for a year without revalidating
/// (`Cache-Control: private, max-age=31536000, immutable`). `If-None-Match` with the tag is
/// answered 304 without a body.
#[utoipa::path(
    operation_id = "getInvoice",
    tag = "invoices",
    security(("bearer_auth" = [])),
    params(
        ("number" = String, Path, description = "The invoice's number, `YYYY-NNNNNN`", example = "2026-000042",
            pattern = "^[1-9][0-9]{3}-([1-9][0-9]{5}|0[1-9][0-9]{4}|00[1-9][0-9]{3}|000[1-9][0-9]{2}|0000[1-9][0-9]|00000[1-9])$"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a copy you hold; answered 304 when still current"),
    ),
    responses(
        (status = 200, description = "The invoice", body = InvoiceResponse,
            headers(
                ("ETag" = String, description = "Strong entity tag of the invoice: its number, quoted, e.g. `\"2026-000042\"`"),
                ("Cache-Control" = String, description = "`private, max-age=31536000, immutable`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
        InvoiceNotModified,
        (status = 400, description = "`invalid_parameter`: `number` is not of the form `YYYY-NNNNNN` \
            (`errors[0].parameter` is `number`), or `If-None-Match` is not a list of entity tags"),
        (status = 404, description = "`not_found`: no such invoice, or another customer's"),
    )
)]
#[get("/invoices/{number}")]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    number: PathInvoiceNumber,
    if_none_match: IfNoneMatch,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let invoice = state.blocking.call(&state.orders, move |orders| orders.invoice(actor, number.0)).await?;
    let etag = ETag::for_immutable(&invoice.number.to_string());
    Ok(caching::tagged(etag, &InvoiceResponse::from(&invoice), &if_none_match, CachePolicy::PrivateImmutable))
}
