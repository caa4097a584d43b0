//! The default service: requests no route took. If the path is one of ours, the method is
//! wrong: 405 `method_not_allowed` with `Allow` listing what the path does take (HEAD wherever
//! GET is); otherwise 404 `not_found`. Any method counts, TRACE, CONNECT and made-up ones too.
//!
//! The method table is read off the OpenAPI document (plus the few undocumented routes such
//! as `/docs`), the same document the routes are registered into, so the two cannot drift.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::middleware::head::ArrivedAsHead;
use crate::problem::ApiError;

/// Canonical order of methods in `Allow`.
const METHOD_ORDER: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"];

/// One path template, split into segments.
#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Segment>,
    methods: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Parameter,
    /// `{name:.*}`: the rest of the path, however long.
    Tail,
}

impl Template {
    fn parse(template: &str, methods: Vec<&'static str>) -> Self {
        let segments = template
            .strip_prefix('/')
            .unwrap_or(template)
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(inner) if inner.ends_with(":.*") => Segment::Tail,
                Some(_) => Segment::Parameter,
                None => Segment::Literal(segment.to_owned()),
            })
            .collect();
        Self { segments, methods }
    }

    /// How specifically this template matches `path`, segment by segment (a literal beats a
    /// parameter, which beats a tail), or `None` when it does not match at all.
    fn match_specificity(&self, path: &str) -> Option<Vec<Specificity>> {
        // One leading slash only: in `//v1/products` the first segment is empty, so the path
        // is no route of ours (404), not `/v1/products` (whose 405 would allow GET).
        let path = path.strip_prefix('/')?;
        let mut parts = path.split('/');
        let mut specificity = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            match segment {
                Segment::Tail => {
                    specificity.push(Specificity::Tail);
                    return Some(specificity);
                }
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return None;
                    }
                    specificity.push(Specificity::Literal);
                }
                Segment::Parameter => {
                    if parts.next().is_none_or(str::is_empty) {
                        return None;
                    }
                    specificity.push(Specificity::Parameter);
                }
            }
        }
        parts.next().is_none().then_some(specificity)
    }
}

/// How one segment of a template matched, least specific first (so `Ord` ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Tail,
    Parameter,
    Literal,
}

/// Which methods each path template takes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    templates: Vec<Template>,
}

impl RouteTable {
    /// The table of every operation in `api`, plus `extra` routes (template, methods).
    pub fn new(api: &utoipa::openapi::OpenApi, extra: &[(&str, &[&'static str])]) -> Self {
        let documented = api.paths.paths.iter().map(|(path, item)| {
            let mut methods = Vec::new();
            let operations = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            methods.extend(operations.iter().filter(|(_, present)| *present).map(|(method, _)| *method));
            Template::parse(path, methods)
        });
        let extra = extra.iter().map(|(path, methods)| Template::parse(path, methods.to_vec()));
        Self { templates: documented.chain(extra).collect() }
    }

    /// The methods `path` takes, in canonical order with HEAD wherever GET is; empty when no
    /// route has this path. Where several templates match, the most specific wins, as in
    /// OpenAPI's path matching: `/v1/users/me` takes only what `/v1/users/me` declares, not
    /// the methods of `/v1/users/{id}` (the router sends those to a 405 too, see
    /// `routes::register`).
    pub fn allowed_methods(&self, path: &str) -> Vec<&'static str> {
        let matching: Vec<(Vec<Specificity>, &Template)> = self
            .templates
            .iter()
            .filter_map(|template| template.match_specificity(path).map(|specificity| (specificity, template)))
            .collect();
        let Some(best) = matching.iter().map(|(specificity, _)| specificity).max() else {
            return Vec::new();
        };
        let mut methods: Vec<&'static str> = matching
            .iter()
            .filter(|(specificity, _)| specificity == best)
            .flat_map(|(_, template)| template.methods.iter().copied())
            .collect();
        if methods.contains(&"GET") {
            methods.push("HEAD");
        }
        let mut allowed: Vec<&'static str> = METHOD_ORDER.iter().copied().filter(|m| methods.contains(m)).collect();
        allowed.dedup();
        allowed
    }
}

/// The default service.
pub async fn answer(req: HttpRequest, table: web::Data<RouteTable>) -> Result<HttpResponse, ApiError> {
    let allowed = table.allowed_methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!("there is no resource at {}", req.path())));
    }
    let method =
        if req.extensions().contains::<ArrivedAsHead>() { "HEAD".to_owned() } else { req.method().to_string() };
    // The router took no route although the table lists this method for the path: the path is
    // one the router does not match the way the table does. A 405 whose `Allow` lists the
    // refused method would send a client that follows it in a loop; there is no resource here.
    if allowed.contains(&method.as_str()) {
        return Err(ApiError::not_found(format!("there is no resource at {}", req.path())));
    }
    Err(ApiError::method_not_allowed(&method, &allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable {
            templates: vec![
                Template::parse("/v1/users", vec!["GET", "POST"]),
                Template::parse("/v1/users/me", vec!["GET"]),
                Template::parse("/v1/users/{id}", vec!["GET", "PATCH"]),
                Template::parse("/docs/{tail:.*}", vec!["GET"]),
            ],
        }
    }

    #[test]
    fn methods_are_listed_in_canonical_order_with_head() {
        assert_eq!(table().allowed_methods("/v1/users"), vec!["GET", "HEAD", "POST"]);
        assert_eq!(table().allowed_methods("/v1/users/123"), vec!["GET", "HEAD", "PATCH"]);
        assert_eq!(table().allowed_methods("/docs/a/b.js"), vec!["GET", "HEAD"]);
    }

    #[test]
    fn a_literal_segment_beats_a_parameter() {
        // `/v1/users/me` declares GET only; `PATCH /v1/users/{id}` must not leak into its Allow.
        assert_eq!(table().allowed_methods("/v1/users/me"), vec!["GET", "HEAD"]);
        assert_eq!(table().allowed_methods("/v1/users/mee"), vec!["GET", "HEAD", "PATCH"]);
    }

    #[test]
    fn unknown_paths_have_no_methods() {
        for path in [
            "/",
            "/v1",
            "/v1/users/",
            "/v1/users/1/2",
            "/v2/users",
            "/v1/users//",
            "//v1/users",
            "//v1/users/me",
            "v1/users",
        ] {
            assert!(table().allowed_methods(path).is_empty(), "{path}");
        }
    }
}
