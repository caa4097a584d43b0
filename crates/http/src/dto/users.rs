//! Users on the wire (docs/api.md#users-and-tokens): the `User` representation, registration and update bodies, and
//! the `GET /v1/users` query string with its cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use orderly_domain::services::UserChanges;
use orderly_domain::user::{Email, Password, Role, User, UserCursor, UserId, UserName, UserQuery, UserSort};
use orderly_domain::validation::{FieldViolation, Violations};

use crate::dto::{PatchField, timestamp};
use crate::extract::query::{self, Faults};
use crate::extract::{BodyContext, QueryDto, RequestBody};
use crate::pagination::{self, Collection, CursorCodec, CursorPosition};
use crate::problem::FieldError;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Role)]
pub enum RoleDto {
    Customer,
    Admin,
}

mirror_enum!(RoleDto <=> Role { Customer, Admin });

/// A user. Never carries the password or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User, example = json!({
    "id": "0192f5c2-5a4b-7c3d-8e9f-0a1b2c3d4e5f",
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "role": "customer",
    "active": true,
    "created_at": "2026-11-23T18:04:05.123Z",
    "updated_at": "2026-11-23T18:04:05.123Z"
}))]
pub struct UserResponse {
    /// UUIDv7: ids sort by creation time.
    pub id: Uuid,
    /// Trimmed, in Unicode NFC and lower-cased: the one spelling emails are compared in.
    #[schema(format = Email)]
    pub email: String,
    pub name: String,
    pub role: RoleDto,
    /// A deactivated user cannot log in or refresh.
    pub active: bool,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T18:04:05.123Z")]
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role.into(),
            active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `POST /v1/users`: self-service registration; the new user is always a customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple", "name": "Ada Lovelace"}))]
pub struct RegisterUserRequest {
    /// Trimmed, put in Unicode NFC and lower-cased; must not be registered yet in any spelling
    /// (a precomposed `ü` and `u` + combining diaeresis are one address).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 12–128 characters.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    password: String,
    /// Display name, 1–200 characters after trimming, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

/// What registration hands the domain.
#[derive(Debug)]
pub struct Registration {
    pub email: Email,
    pub name: UserName,
    pub password: Password,
}

impl RequestBody for RegisterUserRequest {
    type Domain = Registration;

    fn try_into_domain(self, _: &BodyContext) -> Result<Registration, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let email = violations.check(Email::parse(&self.email).map_err(|fault| fault.at("email")));
        let password = violations.check(Password::parse(&self.password).map_err(|fault| fault.at("password")));
        let name = violations.check(UserName::parse(&self.name).map_err(|fault| fault.at("name")));
        match (email, name, password) {
            (Some(email), Some(name), Some(password)) if violations.is_empty() => {
                Ok(Registration { email, name, password })
            }
            _ => Err(violations.into_vec()),
        }
    }
}

/// `PATCH /v1/users/{id}`, a merge patch: fields left out stay as they are. Users may change
/// `name` and `password` (with `current_password`); admins also `role` and `active`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada King", "password": "a much longer new passphrase", "current_password": "correct horse battery staple"}))]
pub struct UpdateUserRequest {
    /// New display name, 1–200 characters.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    name: PatchField<String>,
    /// New password, 12–128 characters. Requires `current_password` when changing your own.
    /// Revokes every session of the user.
    #[serde(default)]
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    password: PatchField<String>,
    /// The password being replaced; only accepted together with `password`.
    #[serde(default)]
    #[schema(value_type = String, format = Password)]
    current_password: PatchField<String>,
    /// Admins only.
    #[serde(default)]
    #[schema(value_type = RoleDto)]
    role: PatchField<RoleDto>,
    /// Admins only. Deactivating revokes every session of the user.
    #[serde(default)]
    #[schema(value_type = bool)]
    active: PatchField<bool>,
}

impl RequestBody for UpdateUserRequest {
    type Domain = UserChanges;

    fn try_into_domain(self, _: &BodyContext) -> Result<UserChanges, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let name = self
            .name
            .into_option()
            .and_then(|name| violations.check(UserName::parse(&name).map_err(|fault| fault.at("name"))));
        let password = self
            .password
            .into_option()
            .and_then(|password| violations.check(Password::parse(&password).map_err(|fault| fault.at("password"))));
        let current_password = self.current_password.into_option();
        let role = self.role.into_option().map(Role::from);
        let active = self.active.into_option();
        if violations.is_empty() {
            Ok(UserChanges { name, password, current_password, role, active })
        } else {
            Err(violations.into_vec())
        }
    }
}

/// The collection in cursors, with its sorts (`UserSort::default()`: `created_at`).
const USERS: Collection<UserSort> = Collection {
    name: "users",
    sorts: &[("created_at", UserSort::CreatedAtAscending), ("-created_at", UserSort::CreatedAtDescending)],
};

sort_parameter!(UserSortParameter as "UserSort", "Sort orders of `GET /v1/users`.", USERS.names());

/// `GET /v1/users` filters and sort (pagination: `crate::pagination::PageParams`).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Only users with this role.
    #[param(value_type = Option<RoleDto>)]
    role: Option<String>,
    /// Only active (`true`) or only deactivated (`false`) users.
    #[param(value_type = Option<bool>)]
    active: Option<String>,
    /// Order of the collection; a cursor is only valid with the sort it was issued for.
    #[param(value_type = Option<UserSortParameter>)]
    sort: Option<String>,
    #[param(ignore)]
    limit: Option<String>,
    #[param(ignore)]
    cursor: Option<String>,
}

impl QueryDto for ListUsersParams {
    type Domain = UserQuery;

    fn try_into_domain(self, cursors: &CursorCodec) -> Result<UserQuery, Vec<FieldError>> {
        let mut faults = Faults::default();
        let role = faults.filter("role", self.role.as_deref(), str::parse::<Role>);
        let active = faults.filter("active", self.active.as_deref(), query::boolean);
        let sort = faults.check(USERS.parse_sort(self.sort.as_deref()));
        let limit = faults.check(pagination::parse_limit(self.limit.as_deref()));
        // A cursor can only be checked against a known sort.
        let after =
            sort.and_then(|sort| faults.check(cursors.after(USERS.scope(sort), self.cursor.as_deref(), user_cursor)));
        faults.finish(|| Some(UserQuery { role: role?, active: active?, sort: sort?, after: after?, limit: limit? }))
    }
}

fn user_cursor(position: CursorPosition) -> Result<UserCursor, FieldError> {
    Ok(UserCursor { created_at: pagination::read_timestamp_key(&position.key)?, id: UserId::from_uuid(position.id) })
}

/// The cursor of the page after `last`, in `sort` order.
pub fn next_cursor(cursors: &CursorCodec, sort: UserSort, last: UserCursor) -> String {
    let position = CursorPosition { key: pagination::timestamp_key(last.created_at), id: last.id.as_uuid() };
    cursors.encode(USERS.scope(sort), &position)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn every_sort_name_round_trips() {
        for &(name, sort) in USERS.sorts {
            assert_eq!(USERS.parse_sort(Some(name)), Ok(sort));
            assert_eq!(USERS.scope(sort).sort, name);
        }
        assert_eq!(USERS.parse_sort(None), Ok(UserSort::CreatedAtAscending));
        assert_eq!(USERS.scope(UserSort::CreatedAtAscending).sort, "created_at");
        let refused = USERS.parse_sort(Some("name")).unwrap_err();
        assert_eq!(refused.message, "must be one of: created_at, -created_at");
    }

    #[test]
    fn cursors_round_trip_through_their_sort() {
        let codec = CursorCodec::new(b"k");
        let last = UserCursor { created_at: Utc.timestamp_micros(1_795_457_045_123_456).unwrap(), id: UserId::new() };
        for sort in [UserSort::CreatedAtAscending, UserSort::CreatedAtDescending] {
            let cursor = next_cursor(&codec, sort, last);
            assert_eq!(codec.after(USERS.scope(sort), Some(&cursor), user_cursor), Ok(Some(last)));
        }
    }
}
