//! `UserRepository` over diesel: users, their credentials, conditional updates and keyset
//! listing.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use orderly_domain::StoreError;
use orderly_domain::auth::TokenGeneration;
use orderly_domain::event::DomainEvent;
use orderly_domain::ports::{InsertUserError, UpdateError, UserRepository};
use orderly_domain::user::{
    Email, NewUser, PasswordHash, Role, User, UserCredentials, UserId, UserName, UserQuery, UserSort, UserUpdate,
};
use uuid::Uuid;

use crate::connection::write_transaction;
use crate::database::Database;
use crate::error::{corrupt_row, query_failed};
use crate::schema::{refresh_token_families, users};
use crate::{events, timestamps};

/// The unique constraint on `users.email`, named in both migrations. PostgreSQL reports the
/// name; SQLite reports "UNIQUE constraint failed: users.email".
const EMAIL_CONSTRAINT: &str = "users_email_key";
const EMAIL_COLUMN: &str = "users.email";

/// A user as stored, without the password hash.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    name: String,
    role: String,
    active: bool,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// `UserRow`'s columns in its field order, for `RETURNING` (which cannot take
/// `UserRow::as_returning()` through `MultiConnection`).
const USER_COLUMNS: (
    users::id,
    users::email,
    users::name,
    users::role,
    users::active,
    users::version,
    users::created_at,
    users::updated_at,
) = (
    users::id,
    users::email,
    users::name,
    users::role,
    users::active,
    users::version,
    users::created_at,
    users::updated_at,
);

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
struct CredentialsRow {
    #[diesel(embed)]
    user: UserRow,
    password_hash: String,
    token_generation: i64,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    id: String,
    email: &'a str,
    name: &'a str,
    password_hash: &'a str,
    role: &'a str,
    active: bool,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// The fields a `UserUpdate` may change; `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset<'a> {
    name: Option<&'a str>,
    password_hash: Option<&'a str>,
    role: Option<&'a str>,
    active: Option<bool>,
    updated_at: NaiveDateTime,
}

impl UserRow {
    fn into_domain(self) -> Result<User, StoreError> {
        let id = Uuid::parse_str(&self.id).map_err(|error| corrupt_row("user", error))?;
        let email = Email::parse(&self.email).map_err(|error| corrupt_row("user", error.message))?;
        let name = UserName::parse(&self.name).map_err(|error| corrupt_row("user", error.message))?;
        let role = self.role.parse::<Role>().map_err(|error| corrupt_row("user", error.message))?;
        Ok(User {
            id: UserId::from_uuid(id),
            email,
            name,
            role,
            active: self.active,
            version: self.version,
            created_at: timestamps::from_db(self.created_at),
            updated_at: timestamps::from_db(self.updated_at),
        })
    }
}

impl CredentialsRow {
    fn into_domain(self) -> Result<UserCredentials, StoreError> {
        Ok(UserCredentials {
            user: self.user.into_domain()?,
            password_hash: PasswordHash::new(self.password_hash),
            token_generation: self.token_generation,
        })
    }
}

/// Users in the `users` table.
#[derive(Debug, Clone)]
pub struct DieselUserRepository {
    db: Database,
}

impl DieselUserRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn find_credentials(
        &self,
        operation: &'static str,
        filter: impl FnOnce(
            users::BoxedQuery<'static, crate::connection::MultiBackend>,
        ) -> users::BoxedQuery<'static, crate::connection::MultiBackend>,
    ) -> Result<Option<UserCredentials>, StoreError> {
        self.db.with_connection(|conn| {
            let row = filter(users::table.into_boxed())
                .select(CredentialsRow::as_select())
                .first::<CredentialsRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, operation))?;
            row.map(CredentialsRow::into_domain).transpose()
        })
    }
}

fn is_email_taken(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name() == Some(EMAIL_CONSTRAINT) || info.message().contains(EMAIL_COLUMN)
        }
        _ => false,
    }
}

impl UserRepository for DieselUserRepository {
    fn insert(&self, user: &NewUser, event: &DomainEvent) -> Result<User, InsertUserError> {
        let created_at = timestamps::to_db(user.created_at);
        let row = NewUserRow {
            id: user.id.to_string(),
            email: user.email.as_str(),
            name: user.name.as_str(),
            password_hash: user.password_hash.as_str(),
            role: user.role.as_str(),
            active: true,
            version: 1,
            created_at,
            updated_at: created_at,
        };
        self.db.with_connection(|conn| {
            // The user and its event commit together or not at all; the insert comes first so that
            // on SQLite the write lock is taken before anything is read.
            write_transaction(conn, |conn| {
                diesel::insert_into(users::table).values(&row).execute(conn)?;
                events::insert_events(conn, std::slice::from_ref(event)).map(drop)
            })
            .map_err(|error| {
                if is_email_taken(&error) {
                    InsertUserError::EmailTaken
                } else {
                    InsertUserError::Store(query_failed(error, "inserting a user"))
                }
            })?;
            Ok(User {
                id: user.id,
                email: user.email.clone(),
                name: user.name.clone(),
                role: user.role,
                active: true,
                version: 1,
                created_at: timestamps::from_db(created_at),
                updated_at: timestamps::from_db(created_at),
            })
        })
    }

    fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.db.with_connection(|conn| {
            let row = users::table
                .filter(users::id.eq(id.to_string()))
                .select(UserRow::as_select())
                .first::<UserRow>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading a user"))?;
            row.map(UserRow::into_domain).transpose()
        })
    }

    fn find_credentials_by_email(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        let email = email.as_str().to_owned();
        self.find_credentials("reading a user by email", |query| query.filter(users::email.eq(email)))
    }

    fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>, StoreError> {
        self.find_credentials("reading a user's credentials", |query| query.filter(users::id.eq(id.to_string())))
    }

    fn update(
        &self,
        id: UserId,
        update: &UserUpdate,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<User, UpdateError> {
        let id = id.to_string();
        let now = timestamps::to_db(now);
        // A revoking change bumps the token generation in the same statement (ADR 0015), so
        // no access token issued before it is accepted once it has committed.
        let generation_bump = i64::from(update.revoke_sessions || update.revoke_access_tokens);
        let changes = (
            UserChangeset {
                name: update.name.as_ref().map(UserName::as_str),
                password_hash: update.password_hash.as_ref().map(PasswordHash::as_str),
                role: update.role.map(Role::as_str),
                active: update.active,
                updated_at: now,
            },
            users::version.eq(users::version + 1),
            users::token_generation.eq(users::token_generation + generation_bump),
        );
        self.db.with_connection(|conn| {
            let outcome = write_transaction(conn, |conn| -> QueryResult<Result<UserRow, UpdateError>> {
                // The version check is part of the UPDATE itself, so of two concurrent writers
                // holding the same version only one can match.
                let updated = match expected_version {
                    Some(version) => {
                        diesel::update(users::table.filter(users::id.eq(&id)).filter(users::version.eq(version)))
                            .set(changes)
                            .returning(USER_COLUMNS)
                            .get_result::<UserRow>(conn)
                            .optional()?
                    }
                    None => diesel::update(users::table.filter(users::id.eq(&id)))
                        .set(changes)
                        .returning(USER_COLUMNS)
                        .get_result::<UserRow>(conn)
                        .optional()?,
                };
                let Some(updated) = updated else {
                    // Nothing matched: tell a missing user from a stale version.
                    let exists = diesel::select(diesel::dsl::exists(users::table.filter(users::id.eq(&id))))
                        .get_result::<bool>(conn)?;
                    return Ok(Err(if exists { UpdateError::VersionMismatch } else { UpdateError::NotFound }));
                };
                if update.revoke_sessions {
                    diesel::update(
                        refresh_token_families::table
                            .filter(refresh_token_families::user_id.eq(&id))
                            .filter(refresh_token_families::revoked_at.is_null()),
                    )
                    .set(refresh_token_families::revoked_at.eq(Some(now)))
                    .execute(conn)?;
                }
                Ok(Ok(updated))
            })
            .map_err(|error| query_failed(error, "updating a user"))?;
            Ok(outcome?.into_domain()?)
        })
    }

    fn token_generation(&self, id: UserId) -> Result<Option<TokenGeneration>, StoreError> {
        self.db.with_connection(|conn| {
            users::table
                .filter(users::id.eq(id.to_string()))
                .select(users::token_generation)
                .first::<i64>(conn)
                .optional()
                .map_err(|error| query_failed(error, "reading a user's token generation"))
        })
    }

    fn list(&self, query: &UserQuery) -> Result<Vec<User>, StoreError> {
        let mut select = users::table.select(UserRow::as_select()).into_boxed();
        if let Some(role) = query.role {
            select = select.filter(users::role.eq(role.as_str()));
        }
        if let Some(active) = query.active {
            select = select.filter(users::active.eq(active));
        }
        // Keyset pagination on (created_at, id): `created_at >= t AND (created_at > t OR id > i)`
        // is the same set as `created_at > t OR (created_at = t AND id > i)`, written so that
        // its first term bounds an index range scan on both backends. Never OFFSET: a page
        // costs the same wherever it is, and rows inserted meanwhile cannot shift it.
        select = match query.sort {
            UserSort::CreatedAtAscending => {
                if let Some(after) = query.after {
                    let (created_at, id) = (timestamps::to_db(after.created_at), after.id.to_string());
                    select = select.filter(
                        users::created_at.ge(created_at).and(users::created_at.gt(created_at).or(users::id.gt(id))),
                    );
                }
                select.order((users::created_at.asc(), users::id.asc()))
            }
            UserSort::CreatedAtDescending => {
                if let Some(after) = query.after {
                    let (created_at, id) = (timestamps::to_db(after.created_at), after.id.to_string());
                    select = select.filter(
                        users::created_at.le(created_at).and(users::created_at.lt(created_at).or(users::id.lt(id))),
                    );
                }
                select.order((users::created_at.desc(), users::id.desc()))
            }
        };
        self.db.with_connection(|conn| {
            let rows = select
                .limit(i64::from(query.limit.get()) + 1)
                .load::<UserRow>(conn)
                .map_err(|error| query_failed(error, "listing users"))?;
            rows.into_iter().map(UserRow::into_domain).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_conflicts_are_recognised_on_both_backends() {
        let sqlite = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: users.email".to_owned()),
        );
        assert!(is_email_taken(&sqlite));
        let id_clash = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: users.id".to_owned()),
        );
        assert!(!is_email_taken(&id_clash));
    }
}
