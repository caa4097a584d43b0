//! Field-level violations, collected rather than short-circuited, so a client learns every
//! fault in one round trip.
//!
//! The convention: **a value object says why, the caller says where.** A value object's
//! constructor (`Sku::parse`, `Quantity::parse`, `PageLimit::new`, …) knows its rule but not
//! the input it was read from, so it refuses with an [`InvalidValue`] (a code and a message)
//! and takes no field name. Whoever read the value — the inbound adapter's DTO, or a use case
//! for the raw inputs it receives itself — attaches the place with [`InvalidValue::at`],
//! giving a [`FieldViolation`] whose path the HTTP adapter turns into a JSON Pointer.

use std::fmt;

/// A value refused by a value object's rule: why (a stable code and a message), not where.
/// [`InvalidValue::at`] attaches the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    /// Stable machine-readable reason, e.g. `too_short`, `invalid_format`, `required`.
    pub code: &'static str,
    /// Human-readable explanation, phrased to follow the field's name ("must not be empty").
    pub message: String,
}

impl InvalidValue {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// This refusal as a violation of the input field `field` (path `[field]`; nest it
    /// further with [`FieldViolation::within`]).
    pub fn at(self, field: &str) -> FieldViolation {
        FieldViolation::new(field, self.code, self.message)
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidValue {}

/// One faulty input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path segments from the root of the input, e.g. `["items", "1", "quantity"]`.
    pub path: Vec<String>,
    /// Stable machine-readable reason, e.g. `too_short`, `invalid_format`, `required`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldViolation {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self { path: vec![field.to_owned()], code, message: message.into() }
    }

    /// Prefixes the path, for violations found inside a nested value.
    pub fn within(mut self, parent: &str) -> Self {
        self.path.insert(0, parent.to_owned());
        self
    }
}

/// The rule shared by single-line names (people, products): trimmed, 1 to `max_chars`
/// characters (not bytes), no control characters. Returns the trimmed text.
pub(crate) fn single_line_text(raw: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new("required", "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(InvalidValue::new("too_long", format!("must be at most {max_chars} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(InvalidValue::new("invalid_characters", "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// Accumulates violations while an input is converted into domain values.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value when the result is `Ok`, records the violation otherwise.
    pub fn check<T, E: Into<FieldViolation>>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error.into());
                None
            }
        }
    }

    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_says_why_and_its_caller_says_where() {
        let fault = InvalidValue::new("out_of_range", "must be between 1 and 1000");
        assert_eq!(fault.to_string(), "must be between 1 and 1000");
        assert_eq!(
            fault.at("quantity").within("1").within("items"),
            FieldViolation {
                path: vec!["items".to_owned(), "1".to_owned(), "quantity".to_owned()],
                code: "out_of_range",
                message: "must be between 1 and 1000".to_owned(),
            }
        );
    }
}
