//! Which operations a role may ever perform (docs/api.md#authentication-and-authorisation: 403
//! `forbidden` for "an operation this role may never do").
//!
//! This is the role rule only, decided from who is calling and nothing else: no resource, no
//! parameter, no body. That is what lets an inbound adapter ask it *before* it reads and
//! validates a request (authentication, then authorisation, then validation), so a caller who
//! may not use an operation learns nothing from its parameter errors. The use cases ask the
//! same rule again, so it holds whichever adapter calls them.
//!
//! Decisions that depend on the request are not here: whose resource it is (someone else's is
//! "not found", `Actor::may_access_owned_by`), which fields a role may change
//! (`UserService::update`), which order transitions a role may make (`order::Transition`).

use crate::actor::Actor;
use crate::user::Role;

/// An operation that some role may never perform, whatever the request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /v1/users`: the user collection.
    ListUsers,
    /// `POST /v1/products`.
    CreateProduct,
    /// `PATCH /v1/products/{id}`.
    ChangeProduct,
    /// `DELETE /v1/products/{id}` (archiving).
    ArchiveProduct,
    /// `POST /v1/products/{id}/stock-adjustments`.
    AdjustStock,
    /// `GET /v1/products/{id}/stock-adjustments`: the stock audit trail.
    ReadStockAdjustments,
    /// `GET /v1/events`: the event feed.
    ReadEventFeed,
    /// Every `/v1/webhook-endpoints` operation: endpoints, their deliveries and retries.
    ManageWebhooks,
}

impl Operation {
    /// Every operation, for exhaustive checks.
    pub const ALL: [Operation; 8] = [
        Operation::ListUsers,
        Operation::CreateProduct,
        Operation::ChangeProduct,
        Operation::ArchiveProduct,
        Operation::AdjustStock,
        Operation::ReadStockAdjustments,
        Operation::ReadEventFeed,
        Operation::ManageWebhooks,
    ];

    /// Whether `role` may perform this operation at all.
    pub fn permits(self, role: Role) -> bool {
        // Every operation named here is the administration of the shop (docs/api.md#resources: the "who" column
        // says "admin"); the match stays exhaustive so that a new operation is decided here.
        match self {
            Operation::ListUsers
            | Operation::CreateProduct
            | Operation::ChangeProduct
            | Operation::ArchiveProduct
            | Operation::AdjustStock
            | Operation::ReadStockAdjustments
            | Operation::ReadEventFeed
            | Operation::ManageWebhooks => role == Role::Admin,
        }
    }
}

impl Actor {
    /// Whether this caller's role may perform `operation` at all ([`Operation::permits`]).
    pub fn may(&self, operation: Operation) -> bool {
        operation.permits(self.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserId;

    fn actor(role: Role) -> Actor {
        Actor { user_id: UserId::new(), role }
    }

    #[test]
    fn admins_may_perform_every_operation() {
        for operation in Operation::ALL {
            assert!(operation.permits(Role::Admin), "{operation:?}");
            assert!(actor(Role::Admin).may(operation), "{operation:?}");
        }
    }

    #[test]
    fn customers_may_perform_none_of_the_administration() {
        for operation in Operation::ALL {
            assert!(!operation.permits(Role::Customer), "{operation:?}");
            assert!(!actor(Role::Customer).may(operation), "{operation:?}");
        }
    }
}
