//! `/v1/events` (docs/api.md#events): the event feed. Admins only (`Operation::ReadEventFeed`, asked by the
//! `Authorised` extractor before the query is checked, and again by `EventService`). Every state
//! change wrote its event in the same transaction as the change; the feed serves them in commit
//! order, and always hands back a cursor to resume from, because a feed consumer keeps polling
//! (a deliberate deviation from docs/api.md#pagination, where the last page has no cursor).

use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::ApiState;
use crate::caching::CachePolicy;
use crate::dto::events::{self as dto, EventPage, EventResponse, FeedPageInfo, ListEventsParams};
use crate::extract::{Authorised, ValidQuery, operation};
use crate::pagination::{self, CursorCodec};
use crate::problem::ApiError;

/// Read the event feed
///
/// Admins only. Every state change (registration, catalogue and stock changes, orders moving
/// along their transitions, invoices issued) records one event in the same transaction as the
/// change, and the feed serves them **in commit order**, oldest first: an event appears once
/// its transaction has committed, and a transaction that commits later always comes later in
/// the feed, even if it started earlier. Filter with `type` (one of the event types); page
/// with `limit` and `cursor`.
///
/// **Polling, exactly once.** A consumer stores `page.next_cursor` of each page it has
/// processed and asks again with it; it sees every event exactly once, with no gaps and no
/// repeats, also while writers are committing.
///
/// **Deviation from the other collections:** `page.next_cursor` is present on *every* page,
/// also the last: it is the position after the last event of the page, or, when the page is
/// empty, the `cursor` that was sent (so polling an empty feed hands the same cursor back).
/// It is `null` only when no cursor was sent and there are no events (yet). `page.has_more`
/// says whether more events are available right now: if `true`, fetch the next page at once
/// (the `Link: rel="next"` header is set only then); if `false`, the consumer has caught up
/// and should poll again later with `next_cursor`.
///
/// A cursor is only valid with the `type` filter (or absence of one) it was issued under: a
/// consumer that changes its filter starts again without a cursor, since resuming a new filter
/// from an old position would silently skip that type's earlier events. Private
/// (`private, no-cache`).
#[utoipa::path(
    operation_id = "listEvents",
    tag = "events",
    security(("bearer_auth" = [])),
    params(ListEventsParams),
    responses(
        (status = 200, description = "One page of the feed, oldest first, with the cursor to resume from",
            body = EventPage,
            headers(
                ("Link" = String, description = "`<URL of the next page>; rel=\"next\"`, only when `has_more` is true"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
                ("Vary" = String, description = "`Authorization`: the answer depends on who asks"),
            )),
        (status = 400, description = "`invalid_parameter`: `type` is not an event type, `limit` is not 1–100, \
            `cursor` is not one this feed issued (`invalid_cursor`) or was issued under another `type` filter \
            (`filter_mismatch`), or a parameter is unknown or repeated; `errors[].parameter` names each"),
        (status = 403, description = "`forbidden`: only admins may read the event feed"),
    )
)]
#[get("/events")]
pub(crate) async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cursors: web::Data<CursorCodec>,
    caller: Authorised<operation::ReadEventFeed>,
    query: ValidQuery<ListEventsParams>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let actor = caller.actor();
    let page = {
        let query = query.clone();
        state.blocking.call(&state.events, move |events| events.list(actor, &query)).await?
    };
    let next_cursor =
        query.resume_position(&page).map(|position| dto::next_cursor(&cursors, query.type_name, position));
    let data = page.items.iter().map(EventResponse::try_from).collect::<Result<Vec<_>, _>>()?;
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = next_cursor.as_deref().filter(|_| page.has_more) {
        pagination::link_next(&req, &mut response, cursor);
    }
    CachePolicy::PrivateRevalidate.apply(&mut response);
    Ok(response.json(EventPage {
        data,
        page: FeedPageInfo { limit: query.limit.get(), next_cursor, has_more: page.has_more },
    }))
}
