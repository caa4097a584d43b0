//! Collections, one model everywhere (docs/api.md#pagination): keyset pagination with opaque signed cursors,
//! the `{data, page}` envelope and the `Link: <…>; rel="next"` header. Generic: a collection
//! supplies its name, its sort orders (a [`Collection`] table) and how to write its sort key as
//! text (a timestamp in microseconds, a name, a price; empty for collections keyed by id
//! alone) and read it back; everything else is here: parsing `sort`, `limit` and `cursor`
//! with their faults, and the cursors themselves.
//!
//! A cursor is `base64url(payload ‖ HMAC-SHA256(key, collection ‖ payload))`, where the
//! payload is `sort \n sort-key \n id`. The MAC makes a tampered, truncated or foreign cursor
//! (another collection, another deployment's key) a 400 `invalid_parameter` naming `cursor`,
//! never a 500; carrying the sort lets a cursor used with a different `sort` be refused with a
//! clear message rather than silently skipping rows, and fixes how the sort key is read back
//! (a `sort=name` key is text, a `sort=price` key an integer). The collection may name one
//! parent (`products/{id}/stock-adjustments`), so a cursor cannot be carried to a sibling.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::pagination::PageLimit;

use crate::ApiState;
use crate::client_address;
use crate::extract::QueryDto;
use crate::problem::{ApiError, FieldError};

/// The query parameter holding the sort order.
pub const SORT: &str = "sort";
/// The query parameter holding the page size.
pub const LIMIT: &str = "limit";
/// The query parameter holding the cursor.
pub const CURSOR: &str = "cursor";

const MAC_LEN: usize = 32;
const MAC_CONTEXT: &[u8] = b"orderly-cursor-v1\n";

/// The pagination parameters every collection takes; for the OpenAPI document (collections
/// parse them with [`parse_limit`] and [`CursorCodec::after`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// Opaque cursor: `page.next_cursor` of the previous page. Only valid with the same `sort`.
    pub cursor: Option<String>,
}

/// The envelope of every collection response.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageEnvelope<T: ToSchema> {
    /// The items of this page, in the requested order.
    pub data: Vec<T>,
    pub page: PageInfo,
}

/// Where this page stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageInfo {
    /// The page size used.
    #[schema(minimum = 1, maximum = 100, example = 20)]
    pub limit: u16,
    /// Cursor of the next page; `null` on the last page.
    #[schema(required = true, example = json!(null))]
    pub next_cursor: Option<String>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// `limit`: 1–100, default 20.
pub fn parse_limit(raw: Option<&str>) -> Result<PageLimit, FieldError> {
    let Some(raw) = raw else { return Ok(PageLimit::default()) };
    let value = raw
        .parse::<i64>()
        .map_err(|_| FieldError::parameter(LIMIT, "invalid_format", "must be an integer between 1 and 100"))?;
    PageLimit::new(value).map_err(|fault| FieldError::invalid_parameter(LIMIT, fault))
}

/// A collection with a choice of sort orders, as its query string and cursors see it.
#[derive(Debug, Clone, Copy)]
pub struct Collection<S: 'static> {
    /// The collection's name in cursors.
    pub name: &'static str,
    /// Every `sort` value as clients write it, with the sort it means; `S::default()` is the
    /// sort of a request without one.
    pub sorts: &'static [(&'static str, S)],
}

impl<S: Copy + PartialEq + Default> Collection<S> {
    /// `sort`: one of the table's names, or the default when absent.
    pub fn parse_sort(&self, raw: Option<&str>) -> Result<S, FieldError> {
        let Some(raw) = raw else { return Ok(S::default()) };
        self.sorts.iter().find(|(name, _)| *name == raw).map(|(_, sort)| *sort).ok_or_else(|| {
            let names: Vec<&str> = self.names().collect();
            FieldError::parameter(SORT, "invalid_value", format!("must be one of: {}", names.join(", ")))
        })
    }

    /// Every `sort` value as clients write it, in the table's order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.sorts.iter().map(|(name, _)| *name)
    }

    /// The scope of the cursors of pages in `sort` order: the collection and the `sort` value
    /// as clients write it. Every sort a query holds came from the table, or is the default,
    /// which is in it too (each collection's tests check).
    pub fn scope(&self, sort: S) -> CursorScope<'static> {
        let name = self.sorts.iter().find(|(_, known)| *known == sort).map_or("", |(name, _)| name);
        CursorScope { collection: self.name, sort: name }
    }
}

/// The schema of a `sort` parameter that takes `names` (`sort_parameter!`).
pub fn sort_schema(description: &str, names: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    let object = ObjectBuilder::new().schema_type(Type::String).description(Some(description)).enum_values(Some(names));
    RefOr::T(Schema::Object(object.build()))
}

/// Which collection and sort order a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorScope<'a> {
    /// The collection's name, e.g. `users` or `products/{id}/stock-adjustments`; part of what
    /// the MAC covers.
    pub collection: &'a str,
    /// The `sort` value as the client writes it, e.g. `-created_at`.
    pub sort: &'a str,
}

/// The query string of a collection ordered by id alone, with no filter and no choice of sort
/// (a product's stock adjustments, an order's payments, the webhook endpoints and each one's
/// deliveries): `limit` and `cursor`. `limit` is checked with the rest of the query string;
/// the cursor once the handler has read the path and so knows which collection it must come
/// from ([`IdPage::after`]): another product's, order's or endpoint's cursor is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdPageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// [`IdPageParams`] read: the page size, and the cursor as sent.
#[derive(Debug)]
pub struct IdPage {
    pub limit: PageLimit,
    cursor: Option<String>,
}

impl QueryDto for IdPageParams {
    type Domain = IdPage;

    fn try_into_domain(self, _: &CursorCodec) -> Result<IdPage, Vec<FieldError>> {
        let limit = parse_limit(self.limit.as_deref()).map_err(|error| vec![error])?;
        Ok(IdPage { limit, cursor: self.cursor })
    }
}

impl IdPage {
    /// The id of the item this page of `scope` starts after (`None`: the first page); a cursor
    /// that is not from `scope` is 400 `invalid_parameter`.
    pub fn after(&self, cursors: &CursorCodec, scope: CursorScope<'_>) -> Result<Option<Uuid>, ApiError> {
        cursors
            .after(scope, self.cursor.as_deref(), |position| Ok(position.id))
            .map_err(|error| ApiError::invalid_parameters(vec![error]))
    }
}

impl<'a> CursorScope<'a> {
    /// A collection ordered by id, newest first (`-created_at`: ids are UUIDv7).
    pub fn newest_first(collection: &'a str) -> Self {
        Self { collection, sort: "-created_at" }
    }
}

/// A position in a collection: the sort key of the last item (as text, which may contain any
/// character) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPosition {
    pub key: String,
    pub id: Uuid,
}

impl CursorPosition {
    /// The position of a collection whose ids alone order it (UUIDv7: by creation); the key is
    /// empty.
    pub fn of_id(id: Uuid) -> Self {
        Self { key: String::new(), id }
    }

    /// The position of a collection whose key alone orders it; the id is unused.
    pub fn of_key(key: String) -> Self {
        Self { key, id: Uuid::nil() }
    }
}

/// A timestamp as a cursor key: microseconds since the epoch.
pub fn timestamp_key(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

/// A key written by [`timestamp_key`].
pub fn read_timestamp_key(key: &str) -> Result<DateTime<Utc>, FieldError> {
    Utc.timestamp_micros(read_integer_key(key)?).single().ok_or_else(unreadable_cursor)
}

/// An integer key.
pub fn read_integer_key(key: &str) -> Result<i64, FieldError> {
    key.parse::<i64>().map_err(|_| unreadable_cursor())
}

/// The refusal of a cursor that this collection issued but whose key it cannot read.
pub fn unreadable_cursor() -> FieldError {
    FieldError::parameter(CURSOR, "invalid_cursor", "is not a valid cursor")
}

/// Signs and checks cursors with the deployment's cursor key.
#[derive(Clone)]
pub struct CursorCodec {
    /// HMAC-SHA256 keyed with the cursor key, before any input.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(***)")
    }
}

impl CursorCodec {
    pub fn new(key: &[u8]) -> Self {
        // HMAC's own first step (RFC 2104 §2): a key longer than the hash's block is hashed,
        // then it is padded with zeros to the block. Done here, the key has the block's
        // length, so keying cannot fail.
        let hashed;
        let key: &[u8] = if key.len() > Sha256::block_size() {
            hashed = Sha256::digest(key);
            &hashed
        } else {
            key
        };
        let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
        for (slot, byte) in block.iter_mut().zip(key) {
            *slot = *byte;
        }
        Self { keyed: <Hmac<Sha256> as KeyInit>::new(&block) }
    }

    pub fn encode(&self, scope: CursorScope<'_>, position: &CursorPosition) -> String {
        let mut token = format!("{}\n{}\n{}", scope.sort, position.key, position.id).into_bytes();
        let tag = self.mac(scope.collection, &token);
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    pub fn decode(&self, scope: CursorScope<'_>, raw: &str) -> Result<CursorPosition, FieldError> {
        let invalid = || {
            FieldError::parameter(
                CURSOR,
                "invalid_cursor",
                "is not a cursor this collection issued; start from the first page",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        if bytes.len() <= MAC_LEN {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        self.verifier(scope.collection, payload).verify_slice(tag).map_err(|_| invalid())?;
        let payload = std::str::from_utf8(payload).map_err(|_| invalid())?;
        // The sort and the id never contain a newline; the key, between them, may.
        let (sort, rest) = payload.split_once('\n').ok_or_else(invalid)?;
        let (key, id) = rest.rsplit_once('\n').ok_or_else(invalid)?;
        if sort != scope.sort {
            return Err(FieldError::parameter(
                CURSOR,
                "sort_mismatch",
                format!("belongs to sort {sort:?}; send the same sort as the page it came from"),
            ));
        }
        let id = id.parse::<Uuid>().map_err(|_| invalid())?;
        Ok(CursorPosition { key: key.to_owned(), id })
    }

    /// Where a page starts: after the position the cursor `raw` holds for `scope`, as `read`
    /// reads it; `None` (the first page) without a cursor, absent or empty.
    pub fn after<T>(
        &self,
        scope: CursorScope<'_>,
        raw: Option<&str>,
        read: impl FnOnce(CursorPosition) -> Result<T, FieldError>,
    ) -> Result<Option<T>, FieldError> {
        raw.filter(|raw| !raw.is_empty()).map(|raw| self.decode(scope, raw).and_then(read)).transpose()
    }

    /// The cursor of the page of `scope` after the item `last`, in a collection ordered by id.
    pub fn after_id(&self, scope: CursorScope<'_>, last: Uuid) -> String {
        self.encode(scope, &CursorPosition::of_id(last))
    }

    fn verifier(&self, collection: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(MAC_CONTEXT);
        mac.update(collection.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    fn mac(&self, collection: &str, payload: &[u8]) -> [u8; MAC_LEN] {
        self.verifier(collection, payload).finalize().into_bytes().into()
    }
}

/// A page ready to send: the `{data, page}` body, plus `Link: <next>; rel="next"` when
/// another page follows. Cache headers are the handler's to add.
pub fn page_response<T: Serialize + ToSchema>(
    req: &HttpRequest,
    data: Vec<T>,
    limit: PageLimit,
    next_cursor: Option<String>,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        link_next(req, &mut response, cursor);
    }
    let has_more = next_cursor.is_some();
    response.json(PageEnvelope { data, page: PageInfo { limit: limit.get(), next_cursor, has_more } })
}

/// Sets `Link: <next>; rel="next"`, the URL of this request with `cursor` in place of the one
/// sent. For collections whose envelope differs (the event feed); others use [`page_response`].
pub fn link_next(req: &HttpRequest, response: &mut HttpResponseBuilder, cursor: &str) {
    response.insert_header((header::LINK, format!("<{}>; rel=\"next\"", next_url(req, cursor))));
}

/// The full URL of the next page: this request's URL with `cursor` replaced, every other
/// parameter kept exactly as the client wrote it. Scheme and host are the ones the client
/// used; forwarding headers count only from a trusted proxy ([`client_address::request_origin`]).
fn next_url(req: &HttpRequest, cursor: &str) -> String {
    let trusted_proxies =
        req.app_data::<web::Data<ApiState>>().map_or(&[][..], |state| state.settings.trusted_proxies.as_slice());
    next_url_behind(req, trusted_proxies, cursor)
}

fn next_url_behind(req: &HttpRequest, trusted_proxies: &[IpNet], cursor: &str) -> String {
    let origin = client_address::request_origin(req, trusted_proxies);
    let mut query: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            web::Query::<Vec<(String, String)>>::from_query(name)
                .map(|decoded| decoded.first().map(|(name, _)| name.as_str()) != Some(CURSOR))
                .unwrap_or(true)
        })
        .collect();
    let cursor_pair = format!("{CURSOR}={cursor}");
    query.push(&cursor_pair);
    format!("{}://{}{}?{}", origin.scheme, origin.host, req.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: CursorScope<'static> = CursorScope { collection: "users", sort: "created_at" };

    fn position() -> CursorPosition {
        CursorPosition { key: "1700000000000000".into(), id: Uuid::now_v7() }
    }

    #[test]
    fn the_mac_is_hmac_sha256_under_the_key_as_given() {
        // Empty, short, a block long, and longer than a block (hashed first).
        for key in [&b""[..], b"k", &[7; 64], &[9; 65], &[1; 200]] {
            let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            reference.update(MAC_CONTEXT);
            reference.update(b"users\npayload");
            let expected: [u8; MAC_LEN] = reference.finalize().into_bytes().into();
            assert_eq!(CursorCodec::new(key).mac("users", b"payload"), expected, "key of {} bytes", key.len());
        }
    }

    #[test]
    fn cursors_round_trip() {
        let codec = CursorCodec::new(b"k");
        let position = position();
        assert_eq!(codec.decode(USERS, &codec.encode(USERS, &position)), Ok(position));
    }

    #[test]
    fn tampered_truncated_foreign_and_cross_sort_cursors_are_refused() {
        let codec = CursorCodec::new(b"k");
        let cursor = codec.encode(USERS, &position());
        let mut tampered = cursor.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [tampered.as_str(), &cursor[..cursor.len() - 2], "", "!!!", "AAAA"] {
            assert_eq!(codec.decode(USERS, bad).unwrap_err().code, "invalid_cursor", "{bad}");
        }
        assert!(CursorCodec::new(b"other").decode(USERS, &cursor).is_err());
        let orders = CursorScope { collection: "orders", sort: "created_at" };
        assert!(codec.decode(orders, &cursor).is_err());
        let descending = CursorScope { collection: "users", sort: "-created_at" };
        assert_eq!(codec.decode(descending, &cursor).unwrap_err().code, "sort_mismatch");
    }

    #[test]
    fn keys_may_hold_any_text_and_collections_may_name_a_parent() {
        let codec = CursorCodec::new(b"k");
        let scope = CursorScope { collection: "products", sort: "-name" };
        for key in ["", "Mug\nwith newline", "a\nb\nc", "Émaille — 350 ml"] {
            let position = CursorPosition { key: key.to_owned(), id: Uuid::now_v7() };
            assert_eq!(codec.decode(scope, &codec.encode(scope, &position)), Ok(position), "{key:?}");
        }
        let parent = format!("products/{}/stock-adjustments", Uuid::now_v7());
        let sibling = format!("products/{}/stock-adjustments", Uuid::now_v7());
        let scope = CursorScope { collection: &parent, sort: "-created_at" };
        let cursor = codec.encode(scope, &position());
        assert!(codec.decode(scope, &cursor).is_ok());
        let sibling = CursorScope { collection: &sibling, sort: "-created_at" };
        assert_eq!(codec.decode(sibling, &cursor).unwrap_err().code, "invalid_cursor");
    }

    #[test]
    fn next_urls_keep_the_query_and_take_the_host_only_from_trusted_proxies() {
        let request = actix_web::test::TestRequest::get()
            .uri("/v1/users?limit=5&cursor=old&sort=-created_at")
            .peer_addr("203.0.113.7:50000".parse().unwrap())
            .insert_header((header::HOST, "orderly.internal:8080"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let untrusted = next_url_behind(&request, &[], "next");
        assert_eq!(untrusted, "http://orderly.internal:8080/v1/users?limit=5&sort=-created_at&cursor=next");
        // Also through `next_url`, which finds no trusted proxy without `ApiState`.
        assert_eq!(next_url(&request, "next"), untrusted);

        let proxies: Vec<IpNet> = vec!["203.0.113.0/24".parse().unwrap()];
        let trusted = next_url_behind(&request, &proxies, "next");
        assert_eq!(trusted, "https://evil.example/v1/users?limit=5&sort=-created_at&cursor=next");
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None).unwrap().get(), 20);
        assert_eq!(parse_limit(Some("100")).unwrap().get(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            assert_eq!(parse_limit(Some(bad)).unwrap_err().parameter.as_deref(), Some(LIMIT), "{bad}");
        }
    }
}
