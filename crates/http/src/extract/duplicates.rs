//! Parsing a request body into a JSON [`Value`] while finding every member named twice in one
//! object (docs/api.md#errors: "a member named twice in one object is rejected the same way,
//! never 'last one wins'").
//!
//! serde_json keeps the last of two members with one name and says nothing, so a gateway or an
//! audit log that reads the first member sees another request than Orderly would. Instead, the
//! body is read once with serde_json's streaming `Deserializer` and a [`DeserializeSeed`] that
//! builds the `Value` itself: it knows the path it is at and keeps the names seen in each
//! object, so every duplicate is found with its full path (`/name`, `/items/0/quantity`) in
//! the same pass, in objects at any depth and in objects inside arrays.
//!
//! Names are compared as decoded strings, code point by code point (RFC 8259 §8.3): `"name"`
//! and `"na\u006de"` are one name, whereas no Unicode normalisation is applied. A member named
//! twice (or more) is reported once and then **left out** of the value: neither occurrence is
//! trusted, so what is checked next (shape, field rules) never sees a value the client did not
//! unambiguously send, and the pointer already reported is not reported again as `required`.
//!
//! Syntax errors are serde_json's own, with their line and column, exactly as a plain
//! `serde_json::from_str` would report them; trailing characters are refused as it does.
//! Depth is bounded by the caller's scan before this parse (`super::json`).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A body parsed into a value, with the members that were left out for being named twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The body, every duplicated member removed from its object.
    pub value: Value,
    /// The path (segments from the root) of every member named more than once, each once, in
    /// the order their second occurrences appear in the body.
    pub duplicates: Vec<Vec<String>>,
}

/// Parses `text` as one JSON value, finding every duplicate member on the way.
pub fn parse(text: &str) -> Result<Parsed, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut walk = Walk::default();
    let value = ValueSeed { walk: &mut walk }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(Parsed { value, duplicates: walk.duplicates })
}

/// What the pass carries along: the path it is at and what it has found.
#[derive(Default)]
struct Walk {
    path: Vec<String>,
    duplicates: Vec<Vec<String>>,
}

impl Walk {
    /// Visits the value at `segment` below the current path.
    fn below<T>(&mut self, segment: String, visit: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment);
        let result = visit(self);
        self.path.pop();
        result
    }
}

/// Deserializes any JSON value into a [`Value`], like `Value`'s own `Deserialize`, but
/// recording duplicate members into the [`Walk`].
struct ValueSeed<'w> {
    walk: &'w mut Walk,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // As `Value` does: serde_json never yields a non-finite number from text anyway.
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let index = items.len().to_string();
            let item = self.walk.below(index, |walk| seq.next_element_seed(ValueSeed { walk }))?;
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // Names seen more than once in this object: reported once each, left out at the end.
        let mut repeated = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            // Walked even when it is a duplicate: duplicates inside it are faults too.
            let value = self.walk.below(name.clone(), |walk| map.next_value_seed(ValueSeed { walk }))?;
            if !object.contains_key(&name) {
                object.insert(name, value);
            } else if repeated.insert(name.clone()) {
                let mut path = self.walk.path.clone();
                path.push(name);
                self.walk.duplicates.push(path);
            }
        }
        for name in &repeated {
            object.remove(name);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn duplicates_in(text: &str) -> Vec<String> {
        parse(text).unwrap().duplicates.iter().map(|path| path.join("/")).collect()
    }

    #[test]
    fn a_body_without_duplicates_parses_as_serde_json_would() {
        let text = r#"{"name": "mug", "n": [1, -2, 2.5, 1e300, true, null, {"a": {}}], "s": "\u00e9\"", "big": 18446744073709551615}"#;
        let parsed = parse(text).unwrap();
        assert!(parsed.duplicates.is_empty());
        assert_eq!(parsed.value, serde_json::from_str::<Value>(text).unwrap());
        for scalar in ["1", "-1", "0.5", "\"x\"", "null", "[]", "{}"] {
            assert_eq!(parse(scalar).unwrap().value, serde_json::from_str::<Value>(scalar).unwrap(), "{scalar}");
        }
    }

    #[test]
    fn a_top_level_duplicate_is_found_and_left_out() {
        let parsed = parse(r#"{"name": "first", "email": "a@b.c", "name": "second"}"#).unwrap();
        assert_eq!(parsed.duplicates, vec![vec!["name".to_owned()]]);
        assert_eq!(parsed.value, json!({"email": "a@b.c"}));
    }

    #[test]
    fn a_member_named_three_times_is_reported_once() {
        assert_eq!(duplicates_in(r#"{"a": 1, "a": 2, "a": 3}"#), vec!["a"]);
        assert_eq!(parse(r#"{"a": 1, "a": 2, "a": 3}"#).unwrap().value, json!({}));
    }

    #[test]
    fn duplicates_are_found_at_any_depth_with_their_paths() {
        let text = r#"{"items": [{"quantity": 1}, {"product_id": "p", "quantity": 1, "quantity": 2}],
                       "unit_price": {"amount": 1, "currency": "EUR", "currency": "USD"},
                       "x": [[{"y": {"z": 1, "z": 2}}]]}"#;
        assert_eq!(duplicates_in(text), vec!["items/1/quantity", "unit_price/currency", "x/0/0/y/z"]);
        let value = parse(text).unwrap().value;
        assert_eq!(value["items"], json!([{"quantity": 1}, {"product_id": "p"}]));
        assert_eq!(value["unit_price"], json!({"amount": 1}));
    }

    #[test]
    fn names_are_compared_decoded() {
        assert_eq!(duplicates_in(r#"{"name": 1, "na\u006de": 2}"#), vec!["name"]);
        assert_eq!(duplicates_in(r#"{"a\/b": 1, "a/b": 2}"#), vec!["a/b"]);
        // Code point by code point: a precomposed é and e + U+0301 are two names.
        assert!(duplicates_in(r#"{"\u00e9": 1, "e\u0301": 2}"#).is_empty());
        // Case matters.
        assert!(duplicates_in(r#"{"Name": 1, "name": 2}"#).is_empty());
    }

    #[test]
    fn the_same_name_in_different_objects_is_no_duplicate() {
        assert!(duplicates_in(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": {"a": {"a": 1}}}"#).is_empty());
    }

    #[test]
    fn duplicates_inside_a_duplicated_member_are_reported_too() {
        assert_eq!(duplicates_in(r#"{"a": {"x": 1, "x": 2}, "a": 3}"#), vec!["a/x", "a"]);
    }

    #[test]
    fn syntax_errors_are_serde_jsons_own() {
        for text in ["", "{", r#"{"a": 1,}"#, r#"{"a": 1}{"b": 2}"#, r#"{"a" 1}"#, "[1,]", "nul", r#"{"a": 1} x"#] {
            let ours = parse(text).unwrap_err();
            let theirs = serde_json::from_str::<Value>(text).unwrap_err();
            assert_eq!((ours.line(), ours.column()), (theirs.line(), theirs.column()), "{text:?}");
            assert_eq!(ours.classify(), theirs.classify(), "{text:?}");
        }
    }
}
