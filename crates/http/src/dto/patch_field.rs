//! A field of a merge-patch body (RFC 7396), where absent, `null` and a value mean different
//! things: absent leaves the field alone, `null` would remove it, a value replaces it.

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PatchField<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T> PatchField<T> {
    /// For fields that cannot be removed: `Ok(None)` when absent, a violation when `null`.
    pub fn into_option(self, field: &str) -> Result<Option<T>, orderly_domain::validation::FieldViolation> {
        match self {
            Self::Absent => Ok(None),
            Self::Null => Err(orderly_domain::validation::FieldViolation::new(
                field,
                "invalid_type",
                "cannot be null: this field cannot be removed",
            )),
            Self::Set(value) => Ok(Some(value)),
        }
    }

    /// For fields that `null` removes: `None` when absent, `Some(None)` when `null`.
    pub fn into_removable(self) -> Option<Option<T>> {
        match self {
            Self::Absent => None,
            Self::Null => Some(None),
            Self::Set(value) => Some(Some(value)),
        }
    }
}

/// Used with `#[serde(default)]`, so an absent key never reaches this and stays `Absent`.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for PatchField<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Self::Null,
            Some(value) => Self::Set(value),
        })
    }
}
