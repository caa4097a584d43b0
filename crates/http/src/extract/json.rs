//! The JSON request body extractor, [`ValidJson`]: media type, size, encoding, depth, syntax,
//! shape and field rules, each failure with its own problem (docs/api.md#errors):
//!
//! | check | problem |
//! |---|---|
//! | `Content-Type` is `application/json` (`; charset=utf-8` allowed); PATCH also `application/merge-patch+json` | 415 `unsupported_media_type` |
//! | at most 64 KiB, by `Content-Length` up front and by counting what arrives (chunked or lying) | 413 `payload_too_large` |
//! | UTF-8, JSON, nested at most 32 levels | 400 `malformed_json` |
//! | no member named twice in one object ([`super::duplicates`]), the published schema ([`super::body_schema`]) and the DTO's `try_into_domain` rules | 422 `validation_failed`, every fault with a JSON Pointer |

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{BodyStream, to_bytes_limited};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use orderly_domain::product::Currency;
use orderly_domain::validation::FieldViolation;
use orderly_domain::webhook::DestinationPolicy;

use crate::extract::body_schema::BodySchemas;
use crate::extract::{duplicates, shape};
use crate::problem::{ApiError, FieldError, MAX_ERRORS, ProblemCode, json_pointer};

/// Bodies above this many bytes are refused before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;
/// The `errors[].code` of a member named twice in one object; reported like an unknown field.
pub const DUPLICATE_MEMBER: &str = "duplicate_member";

/// A request DTO: its `ToSchema` is the published schema the body is checked against (by its
/// component name), its fields are real types read once the schema has passed the body's
/// structure, and `try_into_domain` asks the value objects, reporting every rule they find
/// broken, each naming the field by its path from the body's root.
pub trait RequestBody: DeserializeOwned + utoipa::ToSchema + 'static {
    type Domain;
    fn try_into_domain(self, context: &BodyContext) -> Result<Self::Domain, Vec<FieldViolation>>;
}

/// Deployment facts some field rules need, so that they are reported with every other fault
/// of the body in one 422 (a price must be in the deployment's currency, a webhook endpoint
/// point where the deployment lets it).
#[derive(Debug, Clone)]
pub struct BodyContext {
    pub currency: Currency,
    pub destinations: DestinationPolicy,
}

/// The deployment's facts and the compiled schemas, as `app` registered them (shared, not
/// copied per request).
fn checks_of(req: &HttpRequest) -> Result<(web::Data<BodyContext>, web::Data<BodySchemas>), ApiError> {
    let missing = |what: &str| ApiError::internal(anyhow::anyhow!("{what} is not registered as app data"));
    let context = req.app_data::<web::Data<BodyContext>>().ok_or_else(|| missing("BodyContext"))?;
    let schemas = req.app_data::<web::Data<BodySchemas>>().ok_or_else(|| missing("BodySchemas"))?;
    Ok((context.clone(), schemas.clone()))
}

/// A request body that passed every check, already converted into domain values.
#[derive(Debug)]
pub struct ValidJson<T: RequestBody>(pub T::Domain);

impl<T: RequestBody> ValidJson<T> {
    pub fn into_inner(self) -> T::Domain {
        self.0
    }
}

impl<T: RequestBody> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = check_media_type(req);
        let checks = checks_of(req);
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            media_type?;
            if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
                return Err(too_large());
            }
            let bytes = match to_bytes_limited(BodyStream::new(payload), MAX_BODY_BYTES).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(PayloadError::Overflow)) | Err(_) => return Err(too_large()),
                Ok(Err(_)) => return Err(ApiError::malformed_json("the request body could not be read completely")),
            };
            req.extensions_mut().insert(RawBody(bytes.clone()));
            let (context, schemas) = checks?;
            parse::<T>(&bytes, &context, &schemas).map(ValidJson)
        })
    }
}

/// The body's bytes exactly as they arrived, kept in the request's extensions once read (a
/// cheap reference-counted copy): an `Idempotency-Key`'s fingerprint covers them
/// (`crate::idempotency`).
#[derive(Debug, Clone)]
pub struct RawBody(pub web::Bytes);

fn too_large() -> ApiError {
    ApiError::new(ProblemCode::PayloadTooLarge, format!("request bodies are limited to {} KiB", MAX_BODY_BYTES / 1024))
}

/// `application/json` everywhere, `application/merge-patch+json` too on PATCH; a `charset`
/// parameter must say UTF-8 (RFC 8259 §8.1).
fn check_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let accepts_merge_patch = req.method() == Method::PATCH;
    let expected =
        if accepts_merge_patch { "application/json or application/merge-patch+json" } else { "application/json" };
    let unsupported =
        || ApiError::new(ProblemCode::UnsupportedMediaType, format!("the request body must be sent as {expected}"));
    let value =
        req.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let essence_ok = essence.eq_ignore_ascii_case("application/json")
        || (accepts_merge_patch && essence.eq_ignore_ascii_case("application/merge-patch+json"));
    let charset_ok = parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if essence_ok && charset_ok { Ok(()) } else { Err(unsupported()) }
}

/// Everything after the bytes have arrived: encoding, depth, syntax, the published schema, the
/// domain's rules.
///
/// The schema's faults and the domain's are merged into one 422. The typed DTO is read
/// whenever the body's structure is sound (types, members) — even if a value broke one of the
/// schema's rules — so the value objects rule on every value they can see, and where both
/// found a fault at a pointer, the domain's code and text win: they are more precise (a blank
/// name is `required`, a price in another currency `unsupported_currency`).
pub fn parse<T: RequestBody>(
    bytes: &[u8],
    context: &BodyContext,
    schemas: &BodySchemas,
) -> Result<T::Domain, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::malformed_json("the request body is not UTF-8"))?;
    if nesting_exceeds(text.as_bytes(), MAX_DEPTH) {
        return Err(ApiError::malformed_json(format!("the request body is nested deeper than {MAX_DEPTH} levels")));
    }
    let duplicates::Parsed { mut value, duplicates } = duplicates::parse(text).map_err(|error| {
        ApiError::malformed_json(format!(
            "the request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    integral_numbers_as_integers(&mut value);

    let schema_name = T::name();
    let mut errors = schemas.check(&schema_name, &value).map_err(ApiError::internal)?;
    // The members the schema found unknown are not the DTO's; the typed read leaves them out,
    // and any other value it cannot hold (`read_typed`), so the domain rules on the rest.
    for error in errors.iter().filter(|error| error.code == "unknown_field") {
        if let Some(pointer) = &error.pointer {
            remove_member(&mut value, pointer);
        }
    }
    let violations = match read_typed::<T>(value, errors.len()) {
        Some(dto) => match dto.try_into_domain(context) {
            Ok(domain) if errors.is_empty() && duplicates.is_empty() => return Ok(domain),
            Ok(_) => Vec::new(),
            Err(violations) => violations,
        },
        // The structure is unsound where the DTO needs it: the schema has said where.
        None => Vec::new(),
    };
    let ruled: Vec<FieldError> = violations.into_iter().map(FieldError::from_body_violation).collect();
    errors.retain(|error| !ruled.iter().any(|ruling| ruling.pointer == error.pointer));
    errors.extend(ruled);

    // A duplicated member was left out of `value`: it is reported as such, and nothing else is
    // said at or under its pointer (it would be "required", say).
    let duplicate_pointers: Vec<String> = duplicates.iter().map(|path| json_pointer(path)).collect();
    let under_duplicate =
        |pointer: &str| duplicate_pointers.iter().any(|p| pointer == p || pointer.starts_with(&format!("{p}/")));
    errors.retain(|error| !error.pointer.as_deref().is_some_and(under_duplicate));
    errors.extend(
        duplicate_pointers
            .into_iter()
            .map(|pointer| FieldError::at_pointer(pointer, DUPLICATE_MEMBER, "is named more than once in this object")),
    );
    if errors.is_empty() {
        // The schema took the body but the DTO did not: the two disagree, a defect of this
        // service. The client still gets a 4xx for a body this service cannot take.
        tracing::error!(schema = %schema_name, "a request body passed its schema but not its DTO");
        errors.push(FieldError::at_pointer("", "invalid_value", "this body cannot be processed"));
    }
    errors.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    Err(ApiError::validation(errors))
}

/// The DTO read from `value`. A member it cannot hold (a string where it takes a number, a
/// value none of its enum's) is left out and the read tried again, at most once for each fault
/// the schema found: the schema has reported it already.
fn read_typed<T: DeserializeOwned>(mut value: Value, faults: usize) -> Option<T> {
    for _ in 0..=faults.min(MAX_ERRORS) {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(dto) => return Some(dto),
            Err(error) => {
                let segments = shape::path_segments(error.path());
                if !remove_member(&mut value, &json_pointer(&segments)) {
                    return None;
                }
            }
        }
    }
    None
}

/// Removes the object member at `pointer` (RFC 6901), saying whether there was one; an array
/// item stays (removing it would shift the indexes of the items after it).
fn remove_member(value: &mut Value, pointer: &str) -> bool {
    let segments: Vec<String> =
        pointer.split('/').skip(1).map(|segment| segment.replace("~1", "/").replace("~0", "~")).collect();
    let Some((member, parents)) = segments.split_last() else { return false };
    let mut parent = value;
    for segment in parents {
        let next = match parent {
            Value::Object(members) => members.get_mut(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|index| items.get_mut(index)),
            _ => None,
        };
        let Some(next) = next else { return false };
        parent = next;
    }
    match parent {
        Value::Object(members) => members.remove(member).is_some(),
        _ => false,
    }
}

/// JSON Schema's `integer` is any number with a zero fractional part (2020-12 §6.1.1), so
/// `685.0` and `1e3` are integers to every client that reads the OpenAPI document; serde
/// would refuse them for an `i64`. The API has no fractional fields (docs/api.md#money-and-time), so
/// every integral number in range becomes an integer before the shape is checked; `685.5` or
/// one beyond `i64` stays as it is and is refused by the field.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) if !number.is_i64() && !number.is_u64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float >= i64::MIN as f64
                && float < i64::MAX as f64
            {
                // In range and integral, so the conversion is exact.
                let integer = float as i64;
                *value = Value::from(integer);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// Whether arrays and objects nest deeper than `max` levels, ignoring brackets in strings.
/// Runs before parsing, so a deeply nested body costs one linear scan.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_are_integers_as_json_schema_says() {
        let mut value: Value =
            serde_json::from_str(r#"{"a": 685.0, "b": [1e3, -0.0, 2.5, 1e300], "c": {"d": 7, "e": "8.0"}}"#).unwrap();
        integral_numbers_as_integers(&mut value);
        assert_eq!(value["a"].as_i64(), Some(685));
        assert_eq!(value["b"][0].as_i64(), Some(1000));
        assert_eq!(value["b"][1].as_i64(), Some(0));
        assert!(value["b"][2].is_f64(), "a fraction stays a fraction");
        assert!(value["b"][3].is_f64(), "out of i64 range stays as it is");
        assert_eq!(value["c"]["d"].as_i64(), Some(7));
        assert_eq!(value["c"]["e"], "8.0", "strings are not numbers");
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!nesting_exceeds(br#"{"a":[1]}"#, 2));
        assert!(nesting_exceeds(br#"{"a":[[1]]}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":"[[[[\"[[["}"#, 1));
        let deep = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(!nesting_exceeds(deep.as_bytes(), 32));
        let deeper = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(nesting_exceeds(deeper.as_bytes(), 32));
    }
}
