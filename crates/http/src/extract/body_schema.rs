//! Request bodies checked against the schemas the OpenAPI document publishes (ADR 0018): the
//! document is the one statement of what a valid body is, for clients, for fuzzers and for
//! this service alike.
//!
//! [`BodySchemas`] compiles a `jsonschema` validator (draft 2020-12, formats asserted) for each
//! request body's component schema of the *runtime* document — the one `/openapi.json` serves,
//! with the deployment's currency in `MoneyInput` — on its first use in each worker (`app`
//! registers one per worker, built from the document it serves).
//! The `email` format is the domain's own rule (`Email::parse`), so the schema neither refuses
//! an address the service would take nor takes one it would refuse.
//!
//! [`BodySchemas::check`] lists every fault as an `errors[]` entry with Orderly's own code and
//! text: `jsonschema`'s messages quote regular expressions and values, which a client must
//! never see echoed. A missing member (`required`) and an unknown one (`additionalProperties`)
//! are reported by `jsonschema` at the object; they are listed here at the member's own pointer,
//! one entry each.
//!
//! Owns: compiling the validators and translating their faults. Must not: decide a domain rule
//! (the DTOs' `try_into_domain` asks the value objects, whose codes win at a pointer, see
//! `extract::json`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{Draft, JsonType, ValidationError, Validator};
use serde_json::{Value, json};

use orderly_domain::user::Email;

use crate::problem::{FieldError, json_pointer};

/// The compiled validators of one deployment's document, by component name.
pub struct BodySchemas {
    components: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl BodySchemas {
    /// The validators of the document served on a deployment whose currency is `currency`.
    pub fn for_currency(currency: &str) -> Self {
        Self::new(&crate::openapi_for_currency(currency))
    }

    /// The validators of `document`'s component schemas, each compiled on first use.
    pub fn new(document: &utoipa::openapi::OpenApi) -> Self {
        let components = document
            .components
            .as_ref()
            .and_then(|components| serde_json::to_value(components).ok())
            .unwrap_or_else(|| json!({}));
        Self { components, validators: Mutex::default() }
    }

    /// Every fault of `body` against the component schema `name`. A schema that cannot be
    /// compiled is a defect of this service: `Err`, for a 500 that names it in the log.
    pub fn check(&self, name: &str, body: &Value) -> Result<Vec<FieldError>, anyhow::Error> {
        let validator = self.validator(name)?;
        let schema = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut faults: Vec<(u8, FieldError)> = Vec::new();
        for error in validator.iter_errors(body) {
            let required_member = error.instance().is_null() && self.is_required(&schema, error.instance_path());
            faults.extend(translate(&error, required_member, self.dependent_trigger(&error)));
        }
        // One entry per pointer: a missing member or a value of the wrong type says it all (an
        // `enum` or a bound on top of it would only repeat it).
        faults.sort_by_key(|(rank, _)| *rank);
        let mut listed: Vec<FieldError> = Vec::with_capacity(faults.len());
        for (_, fault) in faults {
            if !listed.iter().any(|entry| entry.pointer == fault.pointer) {
                listed.push(fault);
            }
        }
        Ok(listed)
    }

    fn validator(&self, name: &str) -> Result<Arc<Validator>, anyhow::Error> {
        let mut validators = self.validators.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(validator) = validators.get(name) {
            return Ok(Arc::clone(validator));
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.components,
            "$ref": format!("#/components/schemas/{name}"),
        });
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .with_format("email", |text: &str| Email::parse(text).is_ok())
            .build(&root)
            .map_err(|error| anyhow::anyhow!("the schema of {name} does not compile: {error}"))?;
        let validator = Arc::new(validator);
        validators.insert(name.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

impl BodySchemas {
    /// Whether the member at `path` is one its object's schema requires (so `null` there is
    /// reported as missing, the way a client means it).
    fn is_required(&self, root: &Value, path: &Location) -> bool {
        let segments: Vec<LocationSegment<'_>> = path.iter().collect();
        let Some((LocationSegment::Property(member), parent)) = segments.split_last() else { return false };
        let mut schema = self.resolve(root);
        for segment in parent {
            let next = match segment {
                LocationSegment::Property(name) => {
                    schema.get("properties").and_then(|properties| properties.get(name.as_ref()))
                }
                LocationSegment::Index(_) => schema.get("items"),
            };
            let Some(next) = next else { return false };
            schema = self.resolve(next);
        }
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|required| required.iter().any(|name| name.as_str() == Some(member.as_ref())))
    }

    /// For a member missing because another member's `dependentRequired` wants it: that other
    /// member (jsonschema reports the object and the schema's keyword, not which entry).
    fn dependent_trigger(&self, error: &ValidationError<'_>) -> Option<String> {
        let ValidationErrorKind::Required { property } = error.kind() else { return None };
        let location = error.schema_path().as_str();
        let dependents = self.components.pointer(location.strip_prefix("/components")?)?.as_object()?;
        if !location.ends_with("/dependentRequired") {
            return None;
        }
        let present = error.instance().as_object()?;
        dependents
            .iter()
            .find(|(trigger, wanted)| {
                present.contains_key(trigger.as_str())
                    && wanted.as_array().is_some_and(|wanted| wanted.contains(property))
            })
            .map(|(trigger, _)| trigger.clone())
    }

    /// Follows `$ref`s into the components.
    fn resolve<'s>(&'s self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..8 {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else { break };
            let Some(name) = target.strip_prefix("#/components/schemas/") else { break };
            match self.components.get("schemas").and_then(|schemas| schemas.get(name)) {
                Some(next) => schema = next,
                None => break,
            }
        }
        schema
    }
}

impl std::fmt::Debug for BodySchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySchemas").finish_non_exhaustive()
    }
}

/// The `errors[]` entries for one `jsonschema` fault, each with its rank among faults at the
/// same pointer (lower says more). `required_member`: the value is `null` where its object
/// requires the member; `dependent_trigger`: the member whose `dependentRequired` wants the
/// missing one.
fn translate(
    error: &ValidationError<'_>,
    required_member: bool,
    dependent_trigger: Option<String>,
) -> Vec<(u8, FieldError)> {
    let at = error.instance_path().as_str().to_owned();
    let member = |name: &str| format!("{at}{}", json_pointer(&[name]));
    let entry = |code: &str, message: String| vec![(2, FieldError::at_pointer(at.clone(), code, message))];
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            // `dependentRequired`: the member that needs the missing one is the one out of place.
            match dependent_trigger {
                Some(trigger) => vec![(
                    0,
                    FieldError::at_pointer(
                        member(&trigger),
                        "unexpected",
                        format!("is only accepted together with `{name}`"),
                    ),
                )],
                None => vec![(0, FieldError::at_pointer(member(name), "required", "is required"))],
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|name| (0, FieldError::at_pointer(member(name), "unknown_field", "is not a field of this request")))
            .collect(),
        ValidationErrorKind::Type { .. } | ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. }
            if required_member =>
        {
            vec![(0, FieldError::at_pointer(at.clone(), "required", "is required"))]
        }
        ValidationErrorKind::Type { kind } => {
            let message = if error.instance().is_null() {
                "must not be null".to_owned()
            } else {
                format!("expected {}", expected(kind))
            };
            vec![(1, FieldError::at_pointer(at.clone(), "invalid_type", message))]
        }
        ValidationErrorKind::Enum { options } => entry("invalid_value", one_of(options)),
        ValidationErrorKind::Constant { expected_value } => entry("invalid_value", one_of(expected_value)),
        ValidationErrorKind::Format { format } => entry("invalid_format", format_message(format)),
        ValidationErrorKind::Pattern { .. } => {
            entry("invalid_format", "is not in the form this field takes (see its pattern)".to_owned())
        }
        ValidationErrorKind::MinLength { limit } => entry("too_short", format!("must be at least {limit} characters")),
        ValidationErrorKind::MaxLength { limit } => entry("too_long", format!("must be at most {limit} characters")),
        ValidationErrorKind::Minimum { limit } => entry("out_of_range", format!("must be at least {limit}")),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            entry("out_of_range", format!("must be greater than {limit}"))
        }
        ValidationErrorKind::Maximum { limit } => entry("out_of_range", format!("must be at most {limit}")),
        ValidationErrorKind::ExclusiveMaximum { limit } => entry("out_of_range", format!("must be less than {limit}")),
        ValidationErrorKind::MinItems { limit } => entry("too_short", format!("must have at least {limit} items")),
        ValidationErrorKind::MaxItems { limit } => entry("too_long", format!("must have at most {limit} items")),
        // At the first item that repeats an earlier one, as the domain reports a repeat.
        ValidationErrorKind::UniqueItems => {
            let items = error.instance().as_array().map(Vec::as_slice).unwrap_or_default();
            let repeat = items
                .iter()
                .enumerate()
                .position(|(index, item)| items.iter().take(index).any(|before| before == item));
            let pointer = repeat.map_or_else(|| at.clone(), |index| format!("{at}/{index}"));
            vec![(2, FieldError::at_pointer(pointer, "duplicate", "repeats an earlier item"))]
        }
        // A value that fits none of the alternatives: the first alternative's first fault says
        // the most (every `oneOf` of a request schema differs only in its bounds).
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            match context.iter().flatten().next() {
                Some(first) => translate(first, required_member, None),
                None => entry("invalid_value", "is not an allowed value".to_owned()),
            }
        }
        _ => entry("invalid_value", "is not an allowed value".to_owned()),
    }
}

fn expected(kind: &TypeKind) -> String {
    let name = |json_type: JsonType| match json_type {
        JsonType::Array => "an array",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a string",
    };
    match kind {
        TypeKind::Single(json_type) => name(*json_type).to_owned(),
        TypeKind::Multiple(types) => {
            types.iter().filter(|json_type| *json_type != JsonType::Null).map(name).collect::<Vec<_>>().join(" or ")
        }
    }
}

/// "must be one of: `a`, `b`" — the allowed values are the document's, never the input.
fn one_of(options: &Value) -> String {
    match options {
        Value::Array(options) => {
            let listed: Vec<String> = options.iter().map(|option| format!("`{}`", plain(option))).collect();
            format!("must be one of: {}", listed.join(", "))
        }
        other => format!("must be `{}`", plain(other)),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn format_message(format: &str) -> String {
    match format {
        "uuid" => "must be a UUID".to_owned(),
        "email" => "must be an email address".to_owned(),
        "uri" => "must be an absolute URL".to_owned(),
        "date-time" => "must be an RFC 3339 date-time".to_owned(),
        other => format!("must be a valid {other}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    fn faults(schema: &str, body: Value) -> Vec<(String, String)> {
        pointers_and_codes(&BodySchemas::for_currency("EUR").check(schema, &body).unwrap())
    }

    /// (pointer, code) of each entry, sorted: what the tests of body checks compare.
    pub(crate) fn pointers_and_codes(errors: &[FieldError]) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> =
            errors.iter().map(|error| (error.pointer.clone().unwrap_or_default(), error.code.clone())).collect();
        found.sort();
        found
    }

    pub(crate) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(pointer, code)| ((*pointer).to_owned(), (*code).to_owned())).collect()
    }

    #[test]
    fn missing_and_unknown_members_are_listed_at_their_own_pointers() {
        assert_eq!(
            faults("CreateProductRequest", json!({"unit_price": {"amount": 1}, "stock": 1, "id": "x"})),
            pairs(&[
                ("/id", "unknown_field"),
                ("/name", "required"),
                ("/sku", "required"),
                ("/stock", "unknown_field"),
                ("/unit_price/currency", "required"),
            ])
        );
    }

    #[test]
    fn null_is_missing_where_required_and_a_type_fault_where_the_field_cannot_be_removed() {
        assert_eq!(faults("ChangeOrderStatusRequest", json!({"status": null})), pairs(&[("/status", "required")]));
        assert_eq!(faults("UpdateProductRequest", json!({"status": null})), pairs(&[("/status", "invalid_type")]));
        assert_eq!(faults("UpdateProductRequest", json!({"description": null})), pairs(&[]));
    }

    #[test]
    fn one_entry_per_pointer_and_the_repeat_of_a_unique_list_is_pointed_at() {
        assert_eq!(
            faults("UpdateProductRequest", json!({"unit_price": {"amount": "1", "currency": 978}})),
            pairs(&[("/unit_price/amount", "invalid_type"), ("/unit_price/currency", "invalid_type")])
        );
        assert_eq!(
            faults(
                "CreateWebhookEndpointRequest",
                json!({"url": "https://a.example/", "event_types": ["order.placed", "order.paid", "order.placed"]})
            ),
            pairs(&[("/event_types/1", "invalid_value"), ("/event_types/2", "duplicate")])
        );
    }

    #[test]
    fn a_member_that_needs_another_is_the_one_reported() {
        assert_eq!(
            faults("UpdateUserRequest", json!({"current_password": "correct horse battery"})),
            pairs(&[("/current_password", "unexpected")])
        );
    }

    #[test]
    fn messages_never_quote_the_value_or_the_pattern() {
        let errors = BodySchemas::for_currency("EUR")
            .check(
                "CreateProductRequest",
                &json!({"sku": "secret!value", "name": "\u{7}", "unit_price": {"amount": 1, "currency": "EUR"}}),
            )
            .unwrap();
        assert_eq!(errors.len(), 2);
        for error in errors {
            assert!(!error.message.contains("secret") && !error.message.contains('^'), "{}", error.message);
        }
    }

    #[test]
    fn the_currency_is_the_deployments() {
        let body = json!({"amount": 1, "currency": "USD"});
        assert_eq!(faults("MoneyInput", body.clone()), pairs(&[("/currency", "invalid_value")]));
        let usd = BodySchemas::for_currency("USD").check("MoneyInput", &body).unwrap();
        assert!(usd.is_empty(), "{usd:?}");
    }
}
