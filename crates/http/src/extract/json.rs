//! The JSON request body extractor, [`ValidJson`]: media type, size, encoding, depth, syntax,
//! shape and field rules, each failure with its own problem (docs/api.md#errors):
//!
//! | check | problem |
//! |---|---|
//! | `Content-Type` is `application/json` (`; charset=utf-8` allowed); PATCH also `application/merge-patch+json` | 415 `unsupported_media_type` |
//! | at most 64 KiB, by `Content-Length` up front and by counting what arrives (chunked or lying) | 413 `payload_too_large` |
//! | UTF-8, JSON, nested at most 32 levels | 400 `malformed_json` |
//! | no member named twice in one object ([`super::duplicates`]), the DTO's shape (types, unknown fields) and its `try_into_domain` rules | 422 `validation_failed`, every fault with a JSON Pointer |

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

use crate::ApiState;
use crate::extract::{duplicates, shape};
use crate::problem::{ApiError, FieldError, ProblemCode, json_pointer};

/// Bodies above this many bytes are refused before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;
/// The `errors[].code` of a member named twice in one object; reported like an unknown field.
pub const DUPLICATE_MEMBER: &str = "duplicate_member";

/// A request DTO: deserialized with `Option` fields and `deny_unknown_fields`, then converted
/// into what the domain takes. `try_into_domain` reports every rule it breaks, each naming the
/// field by its path from the body's root.
pub trait RequestBody: DeserializeOwned + 'static {
    type Domain;
    fn try_into_domain(self, context: &BodyContext) -> Result<Self::Domain, Vec<FieldViolation>>;
}

/// Deployment facts some field rules need, so that they are reported with every other fault
/// of the body in one 422 (e.g. a price must be in the deployment's currency).
#[derive(Debug, Clone)]
pub struct BodyContext {
    pub currency: Currency,
}

impl BodyContext {
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = req
            .app_data::<web::Data<ApiState>>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ApiState is not registered as app data")))?;
        Ok(Self { currency: state.products.currency().clone() })
    }
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
        let context = BodyContext::of(req);
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
            parse::<T>(&bytes, &context?).map(ValidJson)
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

/// Everything after the bytes have arrived: encoding, depth, syntax, shape, rules.
pub fn parse<T: RequestBody>(bytes: &[u8], context: &BodyContext) -> Result<T::Domain, ApiError> {
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

    // A duplicated member was left out of `value`, so it is reported here and nowhere else.
    let mut errors: Vec<FieldError> = duplicates
        .iter()
        .map(|path| {
            FieldError::at_pointer(json_pointer(path), DUPLICATE_MEMBER, "is named more than once in this object")
        })
        .collect();
    let (dto, shape_faults) = shape::deserialize_collecting::<T>(value);
    errors.extend(
        shape_faults
            .into_iter()
            .map(|fault| FieldError::at_pointer(json_pointer(&fault.path), fault.code, fault.message)),
    );
    let domain = match dto.map(|dto| dto.try_into_domain(context)) {
        Some(Ok(domain)) => Some(domain),
        Some(Err(violations)) => {
            // A field already reported for its shape or as a duplicate (and then removed) must
            // not be reported again as, say, missing.
            let shape_pointers: Vec<String> = errors.iter().filter_map(|error| error.pointer.clone()).collect();
            let already_reported =
                |pointer: &str| shape_pointers.iter().any(|p| pointer == p || pointer.starts_with(&format!("{p}/")));
            errors.extend(
                violations
                    .into_iter()
                    .map(FieldError::from_body_violation)
                    .filter(|error| !error.pointer.as_deref().is_some_and(already_reported)),
            );
            None
        }
        None => None,
    };
    match domain {
        Some(domain) if errors.is_empty() => Ok(domain),
        _ => Err(ApiError::validation(errors)),
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
