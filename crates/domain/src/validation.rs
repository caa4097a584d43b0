//! Field-level violations, collected rather than short-circuited, so a client learns every
//! fault in one round trip. A violation names the field by the path of the input it came from;
//! the HTTP adapter turns that path into a JSON Pointer.

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
pub(crate) fn single_line_text(raw: &str, field: &str, max_chars: usize) -> Result<String, FieldViolation> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldViolation::new(field, "required", "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(FieldViolation::new(field, "too_long", format!("must be at most {max_chars} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldViolation::new(field, "invalid_characters", "must not contain control characters"));
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
