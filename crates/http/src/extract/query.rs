//! Query strings: [`ValidQuery`] accepts only the parameters an operation declares, each at
//! most once, and converts them into domain values; every fault is a 400 `invalid_parameter`
//! naming the parameter (docs/api.md#errors), all faults in one answer.
//!
//! A query DTO lists its parameters as `Option<String>` fields (that list is also what makes
//! an unknown parameter unknown) and parses them in `try_into_domain`. Pagination's `limit`
//! and `cursor` are parsed by the shared helpers in `crate::pagination`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::extract::shape;
use crate::pagination::CursorCodec;
use crate::problem::{ApiError, FieldError};

/// A query-string DTO.
pub trait QueryDto: DeserializeOwned + 'static {
    type Domain;
    /// Parses the parameters, reporting every invalid one. `cursors` decodes `cursor`.
    fn try_into_domain(self, cursors: &CursorCodec) -> Result<Self::Domain, Vec<FieldError>>;
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

    let (dto, faults) = shape::deserialize_collecting::<T>(Value::Object(values));
    errors.extend(faults.into_iter().map(|fault| {
        FieldError::parameter(fault.path.first().cloned().unwrap_or_default(), fault.code, fault.message)
    }));
    match dto.map(|dto| dto.try_into_domain(cursors)) {
        Some(Ok(domain)) if errors.is_empty() => Ok(domain),
        Some(Err(more)) => {
            errors.extend(more);
            Err(ApiError::invalid_parameters(errors))
        }
        _ => Err(ApiError::invalid_parameters(errors)),
    }
}
