//! Marking an operation deprecated: one list, two effects (policy: `docs/operations.md`).
//!
//! An entry in [`DEPRECATED_OPERATIONS`] makes
//! - every response of that operation carry `Deprecation: @<unix seconds>` (RFC 9745), and,
//!   when a removal date is set, `Sunset: <HTTP-date>` (RFC 8594), plus a `Link` to the
//!   successor (`rel="successor-version"`) and to the notice (`rel="deprecation"`);
//! - the OpenAPI document mark the operation `deprecated: true` and state the dates in its
//!   description (see `openapi::finish`),
//!
//! so consumers who read headers and consumers who read the document learn it at once, from
//! one source that cannot drift. Removing an operation before its `Sunset` date is a breaking
//! change and is not allowed.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use chrono::{DateTime, Utc};

use crate::middleware::RouteTemplate;

/// An operation (method and route template, as registered) that consumers should stop using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecation {
    /// Upper-case HTTP method, e.g. `"GET"`.
    pub method: &'static str,
    /// Route template exactly as in the OpenAPI document, e.g. `"/v1/products/{id}"`.
    pub path: &'static str,
    /// When the operation became deprecated (Unix seconds).
    pub deprecated_at: i64,
    /// When it will stop working (Unix seconds); `None` until a date is announced.
    pub sunset_at: Option<i64>,
    /// What to use instead: a path or URL, sent as `Link: <...>; rel="successor-version"`.
    pub successor: Option<&'static str>,
    /// Where the change is explained, sent as `Link: <...>; rel="deprecation"`.
    pub notice: Option<&'static str>,
}

/// The operations deprecated in this release. Empty: nothing in v1 is deprecated yet.
///
/// To deprecate one, add an entry (the OpenAPI snapshot test will then show
/// `deprecated: true` on it), announce it, and keep it working until `sunset_at`.
pub const DEPRECATED_OPERATIONS: &[Deprecation] = &[];

/// The list in force, as app data (tests install their own list through `crate::app_with`).
#[derive(Debug, Clone, Copy)]
pub struct Deprecations(pub &'static [Deprecation]);

impl Deprecations {
    /// The entry for `method` on the route template `path`, if deprecated.
    pub fn find(&self, method: &str, path: &str) -> Option<&'static Deprecation> {
        self.0.iter().find(|entry| entry.method.eq_ignore_ascii_case(method) && entry.path == path)
    }
}

/// `Deprecation` (RFC 9745: a structured-field date, `@` and Unix seconds).
const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
/// `Sunset` (RFC 8594: an HTTP-date).
const SUNSET: HeaderName = HeaderName::from_static("sunset");

impl Deprecation {
    /// The `(name, value)` headers every response of this operation carries.
    pub fn headers(&self) -> Vec<(HeaderName, String)> {
        let mut headers = vec![(DEPRECATION, format!("@{}", self.deprecated_at))];
        if let Some(sunset) = self.sunset_at.and_then(http_date) {
            headers.push((SUNSET, sunset));
        }
        let links: Vec<String> = [(self.successor, "successor-version"), (self.notice, "deprecation")]
            .into_iter()
            .filter_map(|(target, rel)| target.map(|target| format!("<{target}>; rel=\"{rel}\"")))
            .collect();
        if !links.is_empty() {
            headers.push((header::LINK, links.join(", ")));
        }
        headers
    }

    /// The sentence added to the operation's description in the OpenAPI document.
    pub fn description(&self) -> String {
        let mut text = match rfc3339_date(self.deprecated_at) {
            Some(date) => format!("**Deprecated** since {date}."),
            None => "**Deprecated.**".to_owned(),
        };
        match self.sunset_at.and_then(rfc3339_date) {
            Some(date) => text.push_str(&format!(" It stops working on {date} (`Sunset` header).")),
            None => text.push_str(" No removal date is set yet."),
        }
        if let Some(successor) = self.successor {
            text.push_str(&format!(" Use `{successor}` instead."));
        }
        text
    }
}

fn http_date(unix_seconds: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0).map(|at| at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

fn rfc3339_date(unix_seconds: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0).map(|at| at.format("%Y-%m-%d").to_string())
}

/// Marks every listed operation `deprecated: true` in `api` and puts the dates first in its
/// description. An entry naming no documented operation is a mistake, so it is returned.
pub fn mark_in_document(api: &mut utoipa::openapi::OpenApi, list: &[Deprecation]) -> Vec<Deprecation> {
    let mut unmatched = Vec::new();
    for entry in list {
        let operation = api.paths.paths.get_mut(entry.path).and_then(|item| match entry.method {
            "GET" => item.get.as_mut(),
            "POST" => item.post.as_mut(),
            "PUT" => item.put.as_mut(),
            "PATCH" => item.patch.as_mut(),
            "DELETE" => item.delete.as_mut(),
            "HEAD" => item.head.as_mut(),
            _ => None,
        });
        match operation {
            Some(operation) => {
                operation.deprecated = Some(utoipa::openapi::Deprecated::True);
                let notice = entry.description();
                operation.description = Some(match operation.description.take() {
                    Some(existing) => format!("{notice}\n\n{existing}"),
                    None => notice,
                });
            }
            None => unmatched.push(*entry),
        }
    }
    unmatched
}

/// Adds the deprecation headers to every response of a deprecated operation, errors included
/// (it runs outside the problem rendering).
pub async fn announce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let deprecation = req.app_data::<web::Data<Deprecations>>().and_then(|deprecations| {
        deprecations.find(req.method().as_str(), RouteTemplate::of(req.request()).as_deref()?)
    });
    let mut response = next.call(req).await?;
    if let Some(deprecation) = deprecation {
        let headers = response.headers_mut();
        for (name, value) in deprecation.headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                // `append`: a paginated response already has its own `Link: rel="next"`.
                headers.append(name, value);
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use utoipa_actix_web::AppExt;

    use super::*;

    const OLD_LIST: Deprecation = Deprecation {
        method: "GET",
        path: "/v1/things",
        deprecated_at: 1_798_761_600,   // 2027-01-01
        sunset_at: Some(1_814_400_000), // 2027-07-01
        successor: Some("/v2/things"),
        notice: Some("https://orderly.example/changelog#things"),
    };

    #[test]
    fn headers_follow_rfc_9745_and_8594() {
        let headers: Vec<(String, String)> =
            OLD_LIST.headers().into_iter().map(|(name, value)| (name.to_string(), value)).collect();
        assert_eq!(
            headers,
            [
                ("deprecation".to_owned(), "@1798761600".to_owned()),
                ("sunset".to_owned(), "Thu, 01 Jul 2027 00:00:00 GMT".to_owned()),
                (
                    "link".to_owned(),
                    "</v2/things>; rel=\"successor-version\", <https://orderly.example/changelog#things>; \
                     rel=\"deprecation\""
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn without_sunset_or_links_only_deprecation_is_sent() {
        let bare = Deprecation { sunset_at: None, successor: None, notice: None, ..OLD_LIST };
        assert_eq!(bare.headers().len(), 1);
        assert!(bare.description().contains("No removal date is set yet"));
    }

    #[test]
    fn description_names_the_dates_and_the_successor() {
        assert_eq!(
            OLD_LIST.description(),
            "**Deprecated** since 2027-01-01. It stops working on 2027-07-01 (`Sunset` header). Use `/v2/things` instead."
        );
    }

    #[test]
    fn an_entry_naming_no_documented_operation_is_reported() {
        let mut api = utoipa::openapi::OpenApiBuilder::new().build();
        let unmatched = mark_in_document(&mut api, std::slice::from_ref(&OLD_LIST));
        assert_eq!(unmatched, [OLD_LIST]);
    }

    #[test]
    fn the_published_list_names_only_documented_operations() {
        let (_, mut api) =
            crate::routes::register(actix_web::App::new().into_utoipa_app().openapi(crate::openapi::ApiDoc::base()))
                .split_for_parts();
        assert_eq!(mark_in_document(&mut api, DEPRECATED_OPERATIONS), []);
    }

    #[test]
    fn lookup_matches_method_and_template_exactly() {
        let list = Deprecations(std::slice::from_ref(&OLD_LIST));
        assert!(list.find("GET", "/v1/things").is_some());
        assert!(list.find("get", "/v1/things").is_some());
        assert!(list.find("POST", "/v1/things").is_none());
        assert!(list.find("GET", "/v1/things/{id}").is_none());
        assert!(Deprecations(DEPRECATED_OPERATIONS).find("GET", "/v1/products").is_none());
    }
}
