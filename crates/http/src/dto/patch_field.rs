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
    /// The new value of a field that cannot be removed, if one was sent. `null` was refused
    /// by the published schema before the DTO was read, so it reads as "left out" here.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Absent | Self::Null => None,
            Self::Set(value) => Some(value),
        }
    }

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
