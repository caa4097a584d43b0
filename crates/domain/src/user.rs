//! Users: identity value objects, the `User` entity and its persistence-facing shapes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use unicode_normalization::UnicodeNormalization as _;

use crate::validation::InvalidValue;

crate::id::uuid_id!(
    /// A user's id.
    UserId
);

/// An email address in its one comparable spelling (see [`Email::normalise`]). The check is
/// deliberately modest (one `@`, a non-empty local part, a dotted domain, no whitespace or
/// control characters, ≤ 254 chars): only delivery proves an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let email = Self::normalise(raw);
        let invalid = || InvalidValue::new("invalid_format", "must be an email address such as name@example.com");
        if email.is_empty() || email.chars().count() > 254 {
            return Err(invalid());
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let Some((local, domain)) = email.split_once('@') else { return Err(invalid()) };
        let domain_ok =
            !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || local.chars().count() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The spelling two addresses are compared in (docs/api.md#authentication-and-authorisation):
    /// trimmed, in Unicode NFC, lower-cased, so that `jürgen@` typed with a precomposed `ü` and
    /// with `u` + combining diaeresis is one account. NFC is applied again after lower-casing
    /// because lower-casing can leave a string that is no longer composed (a lower-case letter
    /// followed by a mark it composes with).
    ///
    /// No validation: [`Email::parse`] checks the result. The database adapter also applies this
    /// to stored rows when it migrates them, so the rule lives here once.
    pub fn normalise(raw: &str) -> String {
        let composed: String = raw.trim().nfc().collect();
        composed.to_lowercase().nfc().collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plain-text password on its way to the hasher: 12–128 characters
/// (docs/api.md#authentication-and-authorisation). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(InvalidValue::new("too_short", format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidValue::new("too_long", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if raw.contains('\0') {
            return Err(InvalidValue::new("invalid_characters", "must not contain NUL characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A person's display name: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        crate::validation::single_line_text(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Role::Customer),
            "admin" => Ok(Role::Admin),
            _ => Err(InvalidValue::new("invalid_value", "must be one of: customer, admin")),
        }
    }
}

/// A PHC-format password hash as produced by the `PasswordHasher` port. Opaque to the domain.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// A user as the API shows it. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub role: Role,
    pub active: bool,
    /// Incremented on every change; the source of the ETag and of optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user together with what issuing them a session needs: the hash to check a login against,
/// and their token generation (ADR 0015), read in the same row so that a token carries the
/// generation of exactly the state (role, active) it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: PasswordHash,
    pub token_generation: crate::auth::TokenGeneration,
}

/// What the store needs to create a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub role: Role,
    pub password_hash: PasswordHash,
    pub created_at: DateTime<Utc>,
}

/// A change to a user, already authorised and validated by the domain. `None` leaves a field
/// as it is. The store applies it atomically, bumping `version` and `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserUpdate {
    pub name: Option<UserName>,
    pub password_hash: Option<PasswordHash>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Revoke every refresh-token family of the user in the same transaction (password
    /// change, deactivation): a stolen session must not outlive either. Implies
    /// `revoke_access_tokens`.
    pub revoke_sessions: bool,
    /// Bump the user's token generation in the same transaction, so the access tokens already
    /// issued stop working (ADR 0015) while the sessions may go on: a change of role, which
    /// the next refresh picks up.
    pub revoke_access_tokens: bool,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.password_hash.is_none() && self.role.is_none() && self.active.is_none()
    }
}

/// Sort orders the user collection allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    #[default]
    CreatedAtAscending,
    CreatedAtDescending,
}

/// Position after which the next page starts: the sort key and the id as a tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: DateTime<Utc>,
    pub id: UserId,
}

impl UserCursor {
    pub fn of(user: &User) -> Self {
        Self { created_at: user.created_at, id: user.id }
    }
}

/// `GET /v1/users` filters, sort and position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserQuery {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub sort: UserSort,
    pub after: Option<UserCursor>,
    pub limit: crate::pagination::PageLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
    }

    /// "jürgen@example.com" with a precomposed `ü` (U+00FC).
    const PRECOMPOSED: &str = "j\u{fc}rgen@example.com";
    /// The same address with `u` followed by a combining diaeresis (U+0308).
    const DECOMPOSED: &str = "ju\u{308}rgen@example.com";

    #[test]
    fn precomposed_and_decomposed_spellings_are_one_address() {
        let precomposed = Email::parse(PRECOMPOSED).unwrap();
        let decomposed = Email::parse(DECOMPOSED).unwrap();
        assert_eq!(precomposed, decomposed);
        assert_eq!(decomposed.as_str(), PRECOMPOSED, "the stored spelling is NFC");
    }

    #[test]
    fn upper_case_umlauts_are_lower_cased_in_either_spelling() {
        // Precomposed Ü (U+00DC), and U + combining diaeresis.
        for raw in ["J\u{dc}RGEN@EXAMPLE.COM", "JU\u{308}RGEN@Example.com"] {
            assert_eq!(Email::parse(raw).unwrap().as_str(), PRECOMPOSED, "{raw:?}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_before_normalising() {
        assert_eq!(Email::parse(&format!(" \t{DECOMPOSED}\n ")).unwrap().as_str(), PRECOMPOSED);
    }

    #[test]
    fn the_rule_is_a_fixed_point_so_stored_addresses_compare_equal_to_their_input() {
        // İ (U+0130) lower-cases to two characters (i + U+0307); Ω + combining acute composes
        // to one capital before lower-casing; the Kelvin sign becomes an ASCII k under NFC.
        for raw in
            [PRECOMPOSED, DECOMPOSED, "\u{130}lke@example.com", "\u{3a9}\u{301}@example.com", "\u{212a}@example.com"]
        {
            let once = Email::normalise(raw);
            assert_eq!(Email::normalise(&once), once, "{raw:?}");
        }
        assert_eq!(Email::normalise("\u{3a9}\u{301}@example.com"), "\u{3ce}@example.com");
        assert_eq!(Email::normalise("\u{212a}@example.com"), "k@example.com");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@example..com",
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.code, "invalid_format", "{raw:?}");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert_eq!(Password::parse("short").unwrap_err().code, "too_short");
        assert!(Password::parse(&"é".repeat(12)).is_ok());
        assert_eq!(Password::parse(&"x".repeat(129)).unwrap_err().code, "too_long");
        assert!(Password::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn password_debug_hides_the_value() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert_eq!(UserName::parse("   ").unwrap_err().code, "required");
        assert_eq!(UserName::parse(&"n".repeat(201)).unwrap_err().code, "too_long");
        assert_eq!(UserName::parse("a\u{7}b").unwrap_err().code, "invalid_characters");
    }

    #[test]
    fn roles_parse_from_their_wire_names() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("customer".parse::<Role>().unwrap(), Role::Customer);
        assert!("root".parse::<Role>().is_err());
    }
}
