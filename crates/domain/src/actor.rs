//! Who is calling: the authenticated principal every protected use case receives.

use crate::user::{Role, UserId};

/// An authenticated caller, established from a verified access token by an inbound adapter.
/// Carrying it explicitly (rather than looking it up from ambient state) keeps each use case's
/// authorisation decision visible in its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Ownership rule shared by every resource: an admin may act on anyone's resource, a
    /// customer only on their own.
    pub fn may_access_owned_by(&self, owner: UserId) -> bool {
        self.is_admin() || self.user_id == owner
    }
}
