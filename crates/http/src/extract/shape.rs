//! A DTO's serde shape, read without any input: the field names its derived `Deserialize`
//! declares ([`declared_fields`], which is how [`super::query`] tells an unknown parameter),
//! and the segments of a `serde_path_to_error` path ([`path_segments`], used by
//! [`super::json`] to point at a member its DTO could not hold).
//!
//! Checking values is not done here: request bodies are checked against their published
//! schemas (`super::body_schema`), and query parameters are flat strings that every query DTO
//! takes as `Option<String>`, so a declared name cannot fail to deserialize.

use serde::de::{self, DeserializeOwned, Visitor};

/// The serialized field names of `T`, as its derived `Deserialize` passes them to
/// `deserialize_struct`. Empty when `T` is not a plain struct.
pub fn declared_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The recorder always fails after recording: there is no value to produce.
    let _ = T::deserialize(FieldRecorder { fields: &mut fields });
    fields
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

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        name: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        limit: Option<String>,
    }

    #[test]
    fn declared_fields_are_read_from_serde() {
        assert_eq!(declared_fields::<Params>(), &["name", "type", "limit"]);
        assert!(declared_fields::<String>().is_empty());
    }
}
