//! Query strings: [`ValidQuery`] accepts only the parameters an operation declares, each at
//! most once, and converts them into domain values; every fault is a 400 `invalid_parameter`
//! naming the parameter (docs/api.md#errors), all faults in one answer.
//!
//! A query DTO lists its parameters as `Option<String>` fields (that list is also what makes
//! an unknown parameter unknown) and parses them in `try_into_domain`, recording each refusal
//! in [`Faults`] so that all are reported. Pagination's `sort`, `limit` and `cursor` are parsed
//! by the shared helpers in `crate::pagination`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use orderly_domain::validation::InvalidValue;

use crate::extract::shape;
use crate::pagination::CursorCodec;
use crate::problem::{ApiError, FieldError};

/// A query-string DTO.
pub trait QueryDto: DeserializeOwned + 'static {
    type Domain;
    /// Parses the parameters, reporting every invalid one. `cursors` decodes `cursor`.
    fn try_into_domain(self, cursors: &CursorCodec) -> Result<Self::Domain, Vec<FieldError>>;
}

/// The refusals of a query string's parameters, collected while a DTO parses them so that the
/// answer lists them all. Each parsed parameter is kept as an `Option`, `None` when refused;
/// [`Faults::finish`] builds the domain value from them only when nothing was refused.
#[derive(Debug, Default)]
pub struct Faults(Vec<FieldError>);

impl Faults {
    /// The value `parsed` holds, or `None` with its refusal recorded.
    pub fn check<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|fault| self.0.push(fault)).ok()
    }

    /// Records a refusal found without parsing a value.
    pub fn push(&mut self, fault: FieldError) {
        self.0.push(fault);
    }

    /// The optional parameter `name` read by a domain parser: `Some(None)` when it is absent,
    /// `None` when `parse` refused it (recorded against `name`).
    pub fn filter<T>(
        &mut self,
        name: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<Option<T>> {
        self.check(raw.map(parse).transpose().map_err(|fault| FieldError::invalid_parameter(name, fault)))
    }

    /// The value `build` makes of the parsed parameters (with `?` on each, as every `None` is a
    /// recorded refusal), or every refusal.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Vec<FieldError>> {
        match build() {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self.0),
        }
    }
}

/// A boolean parameter: `true` or `false`, nothing else.
pub fn boolean(raw: &str) -> Result<bool, InvalidValue> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(InvalidValue::new("invalid_value", "must be true or false")),
    }
}

/// A query string that passed every check, already converted into domain values.
#[derive(Debug)]
pub struct ValidQuery<T: QueryDto>(pub T::Domain);

impl<T: QueryDto> ValidQuery<T> {
    pub fn into_inner(self) -> T::Domain {
        self.0
    }
}

impl<T: QueryDto> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse::<T>(req).map(ValidQuery))
    }
}

fn parse<T: QueryDto>(req: &HttpRequest) -> Result<T::Domain, ApiError> {
    let cursors = req
        .app_data::<web::Data<CursorCodec>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("CursorCodec is not registered as app data")))?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string()).map_err(|_| {
        ApiError::invalid_parameters(vec![FieldError::parameter(
            "query",
            "invalid_format",
            "is not a valid query string",
        )])
    })?;

    let declared = shape::declared_fields::<T>();
    let mut errors = Vec::new();
    let mut values = Map::new();
    for (name, value) in pairs.into_inner() {
        if !declared.contains(&name.as_str()) {
            if !errors.iter().any(|error: &FieldError| error.parameter.as_deref() == Some(name.as_str())) {
                errors.push(FieldError::parameter(name, "unknown_parameter", "is not a parameter of this operation"));
            }
        } else if values.contains_key(&name) {
            errors.push(FieldError::parameter(name, "repeated", "must be given at most once"));
        } else {
            values.insert(name, Value::String(value));
        }
    }

    // Every parameter of a query DTO is an `Option<String>` and every name left is declared:
    // reading the DTO cannot fail, unless the DTO breaks that rule (a defect of this service).
    let dto = serde_json::from_value::<T>(Value::Object(values)).map_err(|error| {
        ApiError::internal(anyhow::anyhow!("a query DTO does not take its parameters as strings: {error}"))
    })?;
    match dto.try_into_domain(cursors) {
        Ok(domain) if errors.is_empty() => Ok(domain),
        parsed => {
            errors.extend(parsed.err().unwrap_or_default());
            Err(ApiError::invalid_parameters(errors))
        }
    }
}
