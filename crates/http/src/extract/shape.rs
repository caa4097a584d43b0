//! Checking a query string against its DTO's serde shape and collecting **every** fault, not
//! just the first one serde stops at (docs/api.md#errors: "`errors` lists every fault").
//! Request bodies are checked against their published schemas instead (`super::body_schema`);
//! query parameters are flat strings, which this covers in a few lines.
//!
//! DTO fields are `Option<T>` at the serde level, so a missing field is never a serde error;
//! the DTO's `try_into_domain` reports it. What serde does see is collected like this:
//!
//! 1. unknown keys, all at once, by comparing the object's keys with the field names the
//!    DTO's derived `Deserialize` declares (read by [`declared_fields`]);
//! 2. then repeatedly: deserialize with `serde_path_to_error`; on an error, record it at its
//!    path, remove the offending value and try again.
//!
//! Messages never echo the submitted value (it might be a password), nor name a Rust type.

use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// Bounds the retry loop: each round re-reads at most 64 KiB, so a body full of faults cannot
/// cost more than this many passes. Faults beyond it are not listed (the request still fails).
const MAX_ROUNDS: usize = 100;

/// One fault found while deserializing: where it is (path segments from the root), why, and
/// a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeFault {
    pub path: Vec<String>,
    pub code: &'static str,
    pub message: String,
}

/// The serialized field names of `T`, as its derived `Deserialize` passes them to
/// `deserialize_struct`. Empty when `T` is not a plain struct.
pub fn declared_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The recorder always fails after recording: there is no value to produce.
    let _ = T::deserialize(FieldRecorder { fields: &mut fields });
    fields
}

/// Deserializes `value` as `T`, collecting every fault. The DTO returned (if any) is what was
/// left once every faulty value had been removed, so that its own rules can still be checked
/// and reported alongside; the request is valid only if the fault list is empty.
pub fn deserialize_collecting<T: DeserializeOwned>(mut value: Value) -> (Option<T>, Vec<ShapeFault>) {
    let mut faults = Vec::new();
    let Value::Object(object) = &mut value else {
        faults.push(ShapeFault { path: Vec::new(), code: "invalid_type", message: "must be a JSON object".into() });
        return (None, faults);
    };
    remove_unknown_keys(object, declared_fields::<T>(), &mut faults);

    for _ in 0..MAX_ROUNDS {
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(dto) => return (Some(dto), faults),
            Err(error) => error,
        };
        let path = path_segments(error.path());
        let fault = classify(path, &error.inner().to_string());
        let removed = remove_at(&mut value, &fault.path);
        faults.push(fault);
        if !removed {
            break;
        }
    }
    (None, faults)
}

fn remove_unknown_keys(object: &mut Map<String, Value>, declared: &[&str], faults: &mut Vec<ShapeFault>) {
    if declared.is_empty() {
        return;
    }
    let unknown: Vec<String> = object.keys().filter(|key| !declared.contains(&key.as_str())).cloned().collect();
    for key in unknown {
        object.remove(&key);
        faults.push(unknown_field(vec![key]));
    }
}

fn unknown_field(path: Vec<String>) -> ShapeFault {
    ShapeFault { path, code: "unknown_field", message: "is not a field of this request".into() }
}

/// The segments of a `serde_path_to_error` path (map keys and sequence indexes).
pub(crate) fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

/// Turns serde's message into a code and a message that does not repeat the input.
fn classify(path: Vec<String>, serde_message: &str) -> ShapeFault {
    if serde_message.starts_with("unknown field") {
        return unknown_field(path);
    }
    if serde_message.starts_with("missing field") {
        return ShapeFault { path, code: "required", message: "is required".into() };
    }
    let code = if serde_message.starts_with("invalid type") { "invalid_type" } else { "invalid_value" };
    let message = match serde_message.split_once(", expected ") {
        // serde names derived types (`struct MoneyInput`, `enum Role`): internal names.
        Some((_, expected)) if expected.starts_with("struct ") => "expected an object".to_owned(),
        Some((_, expected)) if expected.starts_with("enum ") => "expected one of the allowed values".to_owned(),
        // ... and primitives by their Rust names (`i64`, `u32`, `f64`).
        Some((
            _,
            "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "isize",
        )) => "expected an integer".to_owned(),
        Some((_, "f32" | "f64")) => "expected a number".to_owned(),
        Some((_, expected)) => format!("expected {expected}"),
        None => "has an invalid value".to_owned(),
    };
    ShapeFault { path, code, message }
}

/// Removes the value at `path` so the next round gets past it. An array element is removed
/// with its whole array (removing just the element would shift the indices of later faults).
fn remove_at(value: &mut Value, path: &[String]) -> bool {
    // Each segment with the path to its parent, the deepest first.
    let Some((key, parent_path)) = std::iter::successors(path.split_last(), |(_, parent)| parent.split_last())
        .find(|(_, parent)| lookup(value, parent).is_some_and(Value::is_object))
    else {
        return false;
    };
    match lookup_mut(value, parent_path) {
        Some(Value::Object(parent)) => parent.remove(key).is_some(),
        _ => false,
    }
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |current, segment| match current {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

fn lookup_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |current, segment| match current {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// A deserializer that only records the field list a derived `Deserialize` asks for.
struct FieldRecorder<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> de::Deserializer<'de> for FieldRecorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        quantity: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        active: Option<bool>,
        items: Option<Vec<Inner>>,
    }

    fn paths(faults: &[ShapeFault]) -> Vec<(String, &'static str)> {
        faults.iter().map(|f| (f.path.join("/"), f.code)).collect()
    }

    #[test]
    fn declared_fields_are_read_from_serde() {
        assert_eq!(declared_fields::<Outer>(), &["name", "active", "items"]);
    }

    #[test]
    fn every_fault_is_collected() {
        let (dto, faults) = deserialize_collecting::<Outer>(json!({
            "name": 5, "active": "yes", "role": "admin", "x/y": 1,
            "items": [{"quantity": 1}, {"quantity": "two", "extra": true}]
        }));
        let items = Some(vec![Inner { quantity: Some(1) }, Inner { quantity: None }]);
        assert_eq!(dto, Some(Outer { name: None, active: None, items }));
        let mut found = paths(&faults);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("active".to_owned(), "invalid_type"),
                ("items/1/extra".to_owned(), "unknown_field"),
                ("items/1/quantity".to_owned(), "invalid_type"),
                ("name".to_owned(), "invalid_type"),
                ("role".to_owned(), "unknown_field"),
                ("x/y".to_owned(), "unknown_field"),
            ]
        );
    }

    #[test]
    fn messages_do_not_echo_values() {
        let (_, faults) = deserialize_collecting::<Outer>(json!({"active": "secret-value"}));
        assert_eq!(faults.len(), 1);
        assert!(!faults[0].message.contains("secret-value"), "{}", faults[0].message);
        assert_eq!(faults[0].message, "expected a boolean");
    }

    #[test]
    fn non_objects_are_one_fault_at_the_root() {
        let (dto, faults) = deserialize_collecting::<Outer>(json!([1, 2]));
        assert!(dto.is_none());
        assert_eq!(paths(&faults), vec![(String::new(), "invalid_type")]);
    }

    #[test]
    fn a_clean_value_deserializes() {
        let (dto, faults) = deserialize_collecting::<Outer>(json!({"name": "a"}));
        assert!(faults.is_empty());
        assert_eq!(dto, Some(Outer { name: Some("a".into()), active: None, items: None }));
    }
}
