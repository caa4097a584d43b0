//! Conditional requests (docs/api.md#concurrency-control-lost-updates, RFC 9110 §13): the
//! strong [`ETag`] of a versioned resource, and the `If-Match` / `If-None-Match` request
//! headers.
//!
//! A resource's ETag is its version in quotes (`"3"`): the version changes whenever the
//! representation does. `If-None-Match` uses the weak comparison (a `W/` prefix is ignored),
//! `If-Match` the strong one, so a weak tag there never matches. A header that is not valid
//! entity-tag syntax is a 400 `invalid_parameter` naming the header.
//!
//! Where `If-Match` is required (PATCH and DELETE of products and orders), its absence is
//! 428 `precondition_required`, and so is `If-Match: *`: "any version" is exactly the lost
//! update the requirement exists to prevent. The tag is not compared here but handed to the
//! domain, whose store compares it in the conditional `UPDATE` itself (412 when stale).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpRequest};

use crate::problem::{ApiError, FieldError, ProblemCode};

/// The strong entity tag of a versioned representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    pub fn for_version(version: i64) -> Self {
        Self(format!("\"{version}\""))
    }

    /// The tag of a resource that never changes, so that its key names its one representation
    /// (an invoice's number). `key` must be header-safe and contain no `"`.
    pub fn for_immutable(key: &str) -> Self {
        Self(format!("\"{key}\""))
    }

    pub fn header_value(&self) -> HeaderValue {
        // Digits, `-` and quotes are always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }

    fn opaque(&self) -> &str {
        self.0.trim_matches('"')
    }
}

/// One parsed entity tag from a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

/// A parsed `If-Match` or `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Any,
    Tags(Vec<EntityTag>),
}

fn parse_condition(name: &HeaderName, req: &HttpRequest) -> Result<Option<Condition>, ApiError> {
    let values: Vec<&HeaderValue> = req.headers().get_all(name).collect();
    if values.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        let parameter = if *name == header::IF_MATCH { "If-Match" } else { "If-None-Match" };
        ApiError::invalid_parameters(vec![FieldError::parameter(
            parameter,
            "invalid_format",
            "must be * or a list of entity tags such as \"3\"",
        )])
    };
    // Several header lines are one comma-separated list (RFC 9110 §5.3).
    let lines = values.iter().map(|value| value.to_str()).collect::<Result<Vec<_>, _>>().map_err(|_| invalid())?;
    parse_list(&lines.join(", ")).ok_or_else(invalid).map(Some)
}

/// The syntax [`parse_list`] accepts, as the OpenAPI document states it (`pattern` of the
/// `If-None-Match` and optional `If-Match` parameters). A test checks the two agree.
pub const CONDITION_PATTERN: &str =
    r#"^(\*|(,[ \t,]*)?(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*([ \t]*,([ \t,]*,)?)?)$"#;
/// [`CONDITION_PATTERN`] without `*`: the `If-Match` of operations that require a version.
pub const REQUIRED_CONDITION_PATTERN: &str =
    r#"^(,[ \t,]*)?(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*([ \t]*,([ \t,]*,)?)?$"#;

/// RFC 9110 §13.1.1: `"*"` alone, or `1#entity-tag` where `entity-tag = [ "W/" ] DQUOTE
/// *etagc DQUOTE` and `etagc` is any visible ASCII character but `"` (obs-text is refused:
/// no tag of ours uses it). A comma inside the quotes is part of the tag; empty list elements
/// are skipped, as the list rule requires. `None` when the value is not that syntax. (HTTP
/// has already trimmed the value's leading and trailing whitespace.)
fn parse_list(text: &str) -> Option<Condition> {
    let is_separator = |c: char| c == ',' || c == ' ' || c == '\t';
    if text == "*" {
        return Some(Condition::Any);
    }
    let mut tags = Vec::new();
    let mut rest = text.trim_start_matches(is_separator);
    while !rest.is_empty() {
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = quoted.strip_prefix('"')?;
        let close = inner.find('"')?;
        let opaque = &inner[..close];
        if !opaque.bytes().all(|byte| byte == 0x21 || (0x23..=0x7e).contains(&byte)) {
            return None;
        }
        tags.push(EntityTag { weak, opaque: opaque.to_owned() });
        let after = &inner[close + 1..];
        let trimmed = after.trim_start_matches([' ', '\t']);
        // Tags are separated by a comma; anything else after a tag is not the syntax.
        if !trimmed.is_empty() && !trimmed.starts_with(',') {
            return None;
        }
        rest = trimmed.trim_start_matches(is_separator);
    }
    if tags.is_empty() { None } else { Some(Condition::Tags(tags)) }
}

/// `If-None-Match`: answer 304 when the current ETag matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfNoneMatch(Option<Condition>);

impl IfNoneMatch {
    /// Whether a GET of a representation with `current` should be answered 304.
    pub fn matches(&self, current: &ETag) -> bool {
        match &self.0 {
            None => false,
            Some(Condition::Any) => true,
            Some(Condition::Tags(tags)) => tags.iter().any(|tag| tag.opaque == current.opaque()),
        }
    }
}

impl FromRequest for IfNoneMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_condition(&header::IF_NONE_MATCH, req).map(IfNoneMatch))
    }
}

/// `If-Match`: change the resource only if it is still at the version the client read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfMatch(Option<Condition>);

impl IfMatch {
    /// A version no resource ever has: a tag that cannot be ours then fails the precondition.
    const NEVER: i64 = -1;

    /// The version to pass to the domain as the expected one: `None` when there is no
    /// precondition (header absent, or `*`). A weak tag or one that is not a version of ours
    /// can never match, and turns into a version no resource has. Of several tags the first
    /// strong one is used.
    pub fn expected_version(&self) -> Option<i64> {
        match &self.0 {
            None | Some(Condition::Any) => None,
            Some(Condition::Tags(tags)) => Some(
                tags.iter()
                    .filter(|tag| !tag.weak)
                    .find_map(|tag| tag.opaque.parse::<i64>().ok())
                    .unwrap_or(Self::NEVER),
            ),
        }
    }
}

impl IfMatch {
    /// The version the client read, for operations that require `If-Match`: 428 when the
    /// header is absent or `*`. A weak tag, or one that is not a version of ours, becomes a
    /// version no resource has (412 from the store).
    pub fn required_version(&self) -> Result<i64, ApiError> {
        match (&self.0, self.expected_version()) {
            (Some(Condition::Tags(_)), Some(version)) => Ok(version),
            (Some(Condition::Any), _) => Err(ApiError::new(
                ProblemCode::PreconditionRequired,
                "If-Match: * does not protect against lost updates; send the ETag of the version you read",
            )),
            _ => Err(ApiError::new(
                ProblemCode::PreconditionRequired,
                "this operation requires If-Match with the ETag of the version you read",
            )),
        }
    }
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_condition(&header::IF_MATCH, req).map(IfMatch))
    }
}

/// `If-Match` where the operation requires it: the version the client read, or 428 (absent,
/// or `*`) before the body is even read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredIfMatch(pub i64);

impl RequiredIfMatch {
    /// The version to hand the domain as the expected one.
    pub fn expected_version(self) -> i64 {
        self.0
    }
}

impl FromRequest for RequiredIfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            parse_condition(&header::IF_MATCH, req)
                .and_then(|condition| IfMatch(condition).required_version())
                .map(RequiredIfMatch),
        )
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn if_match(value: &str) -> Result<IfMatch, ApiError> {
        let req = TestRequest::default().insert_header((header::IF_MATCH, value)).to_http_request();
        parse_condition(&header::IF_MATCH, &req).map(IfMatch)
    }

    fn if_none_match(value: &str) -> IfNoneMatch {
        let req = TestRequest::default().insert_header((header::IF_NONE_MATCH, value)).to_http_request();
        IfNoneMatch(parse_condition(&header::IF_NONE_MATCH, &req).unwrap())
    }

    #[test]
    fn if_match_gives_the_expected_version() {
        assert_eq!(if_match("\"3\"").unwrap().expected_version(), Some(3));
        assert_eq!(if_match("*").unwrap().expected_version(), None);
        assert_eq!(if_match("W/\"3\"").unwrap().expected_version(), Some(IfMatch::NEVER));
        assert_eq!(if_match("\"abc\"").unwrap().expected_version(), Some(IfMatch::NEVER));
        assert_eq!(if_match("\"abc\", \"7\"").unwrap().expected_version(), Some(7));
        assert_eq!(IfMatch::default().expected_version(), None);
        assert!(if_match("3").is_err());
    }

    #[test]
    fn a_required_if_match_must_name_a_version() {
        assert_eq!(if_match("\"3\"").unwrap().required_version().unwrap(), 3);
        assert_eq!(if_match("W/\"3\"").unwrap().required_version().unwrap(), IfMatch::NEVER);
        for absent_or_any in [IfMatch::default(), if_match("*").unwrap()] {
            let error = absent_or_any.required_version().unwrap_err();
            assert_eq!(error.code(), ProblemCode::PreconditionRequired);
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let current = ETag::for_version(3);
        assert!(if_none_match("\"3\"").matches(&current));
        assert!(if_none_match("W/\"3\"").matches(&current));
        assert!(if_none_match("\"1\", \"3\"").matches(&current));
        assert!(if_none_match("*").matches(&current));
        assert!(!if_none_match("\"4\"").matches(&current));
        assert!(!IfNoneMatch::default().matches(&current));
    }

    #[test]
    fn entity_tag_lists_follow_rfc_9110() {
        let tags = |text: &str| -> Vec<(bool, String)> {
            match parse_list(text) {
                Some(Condition::Tags(tags)) => tags.into_iter().map(|tag| (tag.weak, tag.opaque)).collect(),
                other => panic!("{text:?} gave {other:?}"),
            }
        };
        assert_eq!(tags("\"a,b\""), vec![(false, "a,b".to_owned())], "a comma inside quotes is part of the tag");
        assert_eq!(tags(", \"1\",, W/\"2\" ,"), vec![(false, "1".to_owned()), (true, "2".to_owned())]);
        assert_eq!(tags("\"\""), vec![(false, String::new())]);
        assert_eq!(parse_list("*"), Some(Condition::Any));
        for invalid in
            ["", ",", "*, \"1\"", "\"1\", *", "\"1\" \"2\"", "\"1", "1", "w/\"1\"", "\"a b\"", "\"é\"", "W/ \"1\""]
        {
            assert_eq!(parse_list(invalid), None, "{invalid:?}");
        }
    }

    /// Header values built from the pieces entity-tag lists are made of, so that valid and
    /// nearly valid lists are both common.
    fn condition_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "\"", "\"", "\"1\"", "W/", "*", ",", ", ", " ", "\t", "a", "~", "!", "#", "é", "w/", "W", "\"~\"",
            "\"a,b\"", "\"é\"",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2048))]

        /// The documented pattern and the parser agree on every value HTTP can deliver (no
        /// leading or trailing whitespace), so the OpenAPI document states exactly what is
        /// accepted: a fuzzer's schema-valid value is never refused, nor an invalid one taken.
        #[test]
        fn the_documented_pattern_is_what_the_parser_accepts(text in condition_like()) {
            proptest::prop_assume!(text == text.trim_matches([' ', '\t']));
            let documented = regex::Regex::new(CONDITION_PATTERN).unwrap();
            proptest::prop_assert_eq!(documented.is_match(&text), parse_list(&text).is_some());
            let required = regex::Regex::new(REQUIRED_CONDITION_PATTERN).unwrap();
            proptest::prop_assert_eq!(required.is_match(&text), matches!(parse_list(&text), Some(Condition::Tags(_))));
        }

        #[test]
        fn every_value_the_pattern_generates_is_accepted(text in CONDITION_PATTERN.trim_start_matches('^').trim_end_matches('$')) {
            proptest::prop_assume!(text == text.trim_matches([' ', '\t']));
            proptest::prop_assert!(parse_list(&text).is_some());
        }
    }
}
