//! Registering, reading, listing and changing users, under the ownership and role rules of
//! docs/api.md#users-and-tokens: a customer sees and edits only themselves (someone else is "not
//! found", never "forbidden"), may change only `name` and `password`; an admin sees everyone and
//! may also change `role` and `active`.

use std::sync::Arc;

use crate::actor::Actor;
use crate::authorisation::Operation;
use crate::error::StoreError;
use crate::event::DomainEvent;
use crate::pagination::Page;
use crate::ports::{Clock, InsertUserError, PasswordHasher, Repositories, UpdateError, UserRepository};
use crate::services::UserUseCases;
use crate::user::{Email, NewUser, Password, Role, User, UserId, UserName, UserQuery, UserUpdate};
use crate::validation::FieldViolation;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    /// No such user, or one the caller may not see.
    #[error("user not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    #[error("only admins may list users")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    #[error("user not found")]
    NotFound,
    /// The caller's role may never change these fields.
    #[error("this role may not change: {0:?}")]
    Forbidden(Vec<&'static str>),
    /// Field rules that need state to check (e.g. the current password).
    #[error("invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error("the user has changed since it was read")]
    VersionMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<UpdateError> for UpdateUserError {
    fn from(error: UpdateError) -> Self {
        match error {
            UpdateError::NotFound => Self::NotFound,
            UpdateError::VersionMismatch => Self::VersionMismatch,
            UpdateError::Store(error) => Self::Store(error),
        }
    }
}

/// A requested change to a user, already shape-checked by the inbound adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChanges {
    pub name: Option<UserName>,
    pub password: Option<Password>,
    pub current_password: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Outcome of the start-up/CLI admin bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    Created(User),
    /// An account with that email already exists; it is left untouched.
    AlreadyExists(User),
}

#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
}

impl UserService {
    pub fn new(users: Arc<dyn UserRepository>, hasher: Arc<dyn PasswordHasher>, clock: Arc<dyn Clock>) -> Self {
        Self { users, hasher, clock }
    }

    /// This service with its repository bound to a unit of work (see [`Repositories`]).
    pub fn within(&self, repositories: &Repositories) -> Self {
        Self { users: repositories.users.clone(), ..self.clone() }
    }

    /// Creates the first admin if no account has this email (start-up and `orderly users
    /// create-admin`). Idempotent: running it again changes nothing.
    pub fn bootstrap_admin(
        &self,
        email: Email,
        name: UserName,
        password: Password,
    ) -> Result<AdminBootstrap, RegisterError> {
        if let Some(existing) = self.users.find_credentials_by_email(&email)? {
            return Ok(AdminBootstrap::AlreadyExists(existing.user));
        }
        match self.create(email.clone(), name, password, Role::Admin) {
            Ok(user) => Ok(AdminBootstrap::Created(user)),
            // Another instance bootstrapped the same admin between our read and our insert.
            Err(RegisterError::EmailTaken) => match self.users.find_credentials_by_email(&email)? {
                Some(existing) => Ok(AdminBootstrap::AlreadyExists(existing.user)),
                None => Err(RegisterError::EmailTaken),
            },
            Err(other) => Err(other),
        }
    }

    fn create(&self, email: Email, name: UserName, password: Password, role: Role) -> Result<User, RegisterError> {
        let password_hash = self.hasher.hash(&password)?;
        let now = self.clock.now();
        let user = NewUser { id: UserId::new(), email, name, role, password_hash, created_at: now };
        let event = DomainEvent::UserRegistered {
            user_id: user.id,
            email: user.email.as_str().to_owned(),
            role,
            occurred_at: now,
        };
        self.users.insert(&user, &event).map_err(|error| match error {
            InsertUserError::EmailTaken => RegisterError::EmailTaken,
            InsertUserError::Store(store) => RegisterError::Store(store),
        })
    }

    /// Users changing their own password must prove they know the current one; an admin
    /// resetting someone else's password cannot know it and need not.
    fn check_current_password(&self, actor: Actor, id: UserId, current: Option<&str>) -> Result<(), UpdateUserError> {
        if actor.is_admin() && actor.user_id != id {
            return Ok(());
        }
        let Some(current) = current else {
            return Err(UpdateUserError::Invalid(vec![FieldViolation::new(
                "current_password",
                "required",
                "is required to change the password",
            )]));
        };
        let credentials = self.users.find_credentials_by_id(id)?.ok_or(UpdateUserError::NotFound)?;
        if self.hasher.verify(current, &credentials.password_hash)? {
            Ok(())
        } else {
            Err(UpdateUserError::Invalid(vec![FieldViolation::new(
                "current_password",
                "incorrect",
                "does not match the current password",
            )]))
        }
    }
}

impl UserUseCases for UserService {
    fn within(&self, repositories: &Repositories) -> Box<dyn UserUseCases> {
        Box::new(Self::within(self, repositories))
    }

    /// Self-service registration: always a customer.
    fn register(&self, email: Email, name: UserName, password: Password) -> Result<User, RegisterError> {
        self.create(email, name, password, Role::Customer)
    }

    /// The caller's own account. A token for a user that no longer exists reads as not found.
    fn me(&self, actor: Actor) -> Result<User, GetUserError> {
        self.users.find_by_id(actor.user_id)?.ok_or(GetUserError::NotFound)
    }

    fn get(&self, actor: Actor, id: UserId) -> Result<User, GetUserError> {
        if !actor.may_access_owned_by(id) {
            return Err(GetUserError::NotFound);
        }
        self.users.find_by_id(id)?.ok_or(GetUserError::NotFound)
    }

    fn list(&self, actor: Actor, query: &UserQuery) -> Result<Page<User>, ListUsersError> {
        if !actor.may(Operation::ListUsers) {
            return Err(ListUsersError::Forbidden);
        }
        let rows = self.users.list(query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }

    /// Applies `changes` to user `id` if the caller may, optionally only if the user is still at
    /// `expected_version`. Changing the password or deactivating revokes every session;
    /// changing the role revokes the access tokens already issued (ADR 0015).
    fn update(
        &self,
        actor: Actor,
        id: UserId,
        changes: UserChanges,
        expected_version: Option<i64>,
    ) -> Result<User, UpdateUserError> {
        if !actor.may_access_owned_by(id) {
            return Err(UpdateUserError::NotFound);
        }
        let mut forbidden = Vec::new();
        if !actor.is_admin() {
            if changes.role.is_some() {
                forbidden.push("role");
            }
            if changes.active.is_some() {
                forbidden.push("active");
            }
        }
        if !forbidden.is_empty() {
            return Err(UpdateUserError::Forbidden(forbidden));
        }

        if changes.current_password.is_some() && changes.password.is_none() {
            return Err(UpdateUserError::Invalid(vec![FieldViolation::new(
                "current_password",
                "unexpected",
                "is only accepted together with a new password",
            )]));
        }
        let mut update =
            UserUpdate { name: changes.name, role: changes.role, active: changes.active, ..UserUpdate::default() };
        if let Some(new_password) = changes.password {
            self.check_current_password(actor, id, changes.current_password.as_deref())?;
            update.password_hash = Some(self.hasher.hash(&new_password)?);
            update.revoke_sessions = true;
        }
        if update.active == Some(false) {
            update.revoke_sessions = true;
        }
        // The sessions go on, but no access token may go on claiming the old role (ADR 0015):
        // the next refresh issues one with the new role.
        if update.role.is_some() {
            update.revoke_access_tokens = true;
        }

        if update.is_empty() {
            // Nothing to change: answer with the current state, still honouring the precondition.
            let user = self.users.find_by_id(id)?.ok_or(UpdateUserError::NotFound)?;
            return match expected_version {
                Some(version) if version != user.version => Err(UpdateUserError::VersionMismatch),
                _ => Ok(user),
            };
        }
        Ok(self.users.update(id, &update, expected_version, self.clock.now())?)
    }
}

#[cfg(test)]
mod tests;
