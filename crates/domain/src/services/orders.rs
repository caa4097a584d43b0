//! Placing, reading and moving orders (docs/api.md#orders), reading invoices
//! (docs/api.md#invoices), and the reservation expiry sweep. Ownership: a customer sees and cancels
//! only their own orders; anyone else's is "not found", never "forbidden".

use std::sync::Arc;

use chrono::Duration;

use crate::actor::Actor;
use crate::error::StoreError;
use crate::invoice::{Invoice, InvoiceNumber, InvoiceQuery};
use crate::order::{
    CancelReason, Mover, Order, OrderId, OrderQuery, OrderRequest, OrderStatus, ReservationCap, TaxRate,
    TransitionRefusal, transition,
};
use crate::pagination::Page;
use crate::ports::{
    Clock, InvoiceRepository, NewOrder, OrderRepository, Repositories, StatusChange, StatusChangeError,
};
use crate::product::Currency;
use crate::services::OrderUseCases;
use crate::user::Role;

pub use crate::order::PlaceOrderError;

#[derive(Debug, thiserror::Error)]
pub enum GetOrderError {
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeOrderError {
    #[error("order not found")]
    NotFound,
    /// A move in the table that the caller's role may not make.
    #[error("this role may not move an order from {from} to {to}")]
    Forbidden { from: OrderStatus, to: OrderStatus },
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition { from: OrderStatus, to: OrderStatus },
    #[error("the order has changed since it was read")]
    VersionMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum GetInvoiceError {
    #[error("invoice not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of the ordering rules that come from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPolicy {
    pub currency: Currency,
    pub tax_rate: TaxRate,
    /// How long a pending order holds its reservation.
    pub reservation_ttl: Duration,
    /// How many units one customer's pending orders may hold together.
    pub reservation_cap: ReservationCap,
}

#[derive(Clone)]
pub struct OrderService {
    orders: Arc<dyn OrderRepository>,
    invoices: Arc<dyn InvoiceRepository>,
    clock: Arc<dyn Clock>,
    policy: OrderPolicy,
}

impl OrderService {
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        invoices: Arc<dyn InvoiceRepository>,
        clock: Arc<dyn Clock>,
        policy: OrderPolicy,
    ) -> Self {
        Self { orders, invoices, clock, policy }
    }

    /// This service with its repositories bound to a unit of work (see [`Repositories`]).
    pub fn within(&self, repositories: &Repositories) -> Self {
        Self { orders: repositories.orders.clone(), invoices: repositories.invoices.clone(), ..self.clone() }
    }

    pub fn policy(&self) -> &OrderPolicy {
        &self.policy
    }

    /// Confirms a pending order because its payment succeeded: reserved stock is committed and
    /// the invoice issued, exactly as an admin's confirmation does. `payer` is who paid (the
    /// event's actor). `false` when the order is no longer pending (cancelled meanwhile, or
    /// confirmed by an admin): the caller must then refund the payment.
    pub fn confirm_paid(&self, id: OrderId, payer: Option<crate::user::UserId>) -> Result<bool, StoreError> {
        let change = StatusChange {
            order_id: id,
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            effect: crate::order::TransitionEffect::CommitReservationAndInvoice,
            expected_version: None,
            actor_id: payer,
            cancel_reason: None,
            now: self.clock.now(),
        };
        applied(self.orders.change_status(&change))
    }

    /// Cancels up to `batch` pending orders whose reservation has lapsed and returns how many
    /// this call cancelled. Safe on many instances at once: each cancellation is conditional on
    /// the order still being pending, so an order another sweep (or its customer) got to first
    /// is skipped and its reservation is released exactly once.
    pub fn expire_reservations(&self, batch: u16) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut cancelled = 0;
        for id in self.orders.expired_pending(now, batch)? {
            let change = StatusChange {
                order_id: id,
                from: OrderStatus::Pending,
                to: OrderStatus::Cancelled,
                effect: crate::order::TransitionEffect::ReleaseReservation,
                expected_version: None,
                actor_id: None,
                cancel_reason: Some(CancelReason::Expired),
                now,
            };
            if applied(self.orders.change_status(&change))? {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }
}

impl OrderUseCases for OrderService {
    fn within(&self, repositories: &Repositories) -> Box<dyn OrderUseCases> {
        Box::new(Self::within(self, repositories))
    }

    /// Any user places an order for themselves; all lines are reserved or none.
    ///
    /// The reservation cap binds admins too: the rule is about stock held, not about roles.
    /// It is checked in the placing transaction (see [`crate::ports::OrderRepository::place`]),
    /// before any line: an order over the cap is refused whatever the stock, and touches no
    /// product.
    fn place(&self, actor: Actor, request: OrderRequest) -> Result<Order, PlaceOrderError> {
        let now = self.clock.now();
        let order = NewOrder {
            id: OrderId::new(),
            customer_id: actor.user_id,
            request,
            tax_rate: self.policy.tax_rate,
            currency: self.policy.currency.clone(),
            placed_at: now,
            expires_at: now + self.policy.reservation_ttl,
            reservation_cap: self.policy.reservation_cap,
        };
        self.orders.place(&order)
    }

    fn get(&self, actor: Actor, id: OrderId) -> Result<Order, GetOrderError> {
        match self.orders.find(id)? {
            Some(order) if order.visible_to(actor) => Ok(order),
            _ => Err(GetOrderError::NotFound),
        }
    }

    /// Customers see their own orders only: a `customer_id` filter naming someone else yields
    /// an empty page, as if that customer had no orders.
    fn list(&self, actor: Actor, mut query: OrderQuery) -> Result<Page<Order>, StoreError> {
        if actor.role != Role::Admin {
            if query.customer_id.is_some_and(|customer| customer != actor.user_id) {
                return Ok(Page { items: Vec::new(), has_more: false });
            }
            query.customer_id = Some(actor.user_id);
        }
        let rows = self.orders.list(&query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }

    /// Moves an order along the transition table, only if it is still at `expected_version`.
    fn change_status(
        &self,
        actor: Actor,
        id: OrderId,
        to: OrderStatus,
        expected_version: i64,
    ) -> Result<Order, ChangeOrderError> {
        let order = self.orders.find(id)?.filter(|order| order.visible_to(actor)).ok_or(ChangeOrderError::NotFound)?;
        if order.version != expected_version {
            return Err(ChangeOrderError::VersionMismatch);
        }
        let from = order.status;
        let effect = transition(from, to, Mover::User(actor)).map_err(|refusal| match refusal {
            TransitionRefusal::NotInTable => ChangeOrderError::InvalidTransition { from, to },
            TransitionRefusal::NotPermitted => ChangeOrderError::Forbidden { from, to },
        })?;
        let cancel_reason =
            (to == OrderStatus::Cancelled).then_some(if actor.is_admin() && actor.user_id != order.customer_id {
                CancelReason::Admin
            } else {
                CancelReason::Customer
            });
        let change = StatusChange {
            order_id: id,
            from,
            to,
            effect,
            expected_version: Some(expected_version),
            actor_id: Some(actor.user_id),
            cancel_reason,
            now: self.clock.now(),
        };
        Ok(self.orders.change_status(&change)?)
    }

    fn invoice(&self, actor: Actor, number: InvoiceNumber) -> Result<Invoice, GetInvoiceError> {
        match self.invoices.find(number)? {
            Some(invoice) if actor.may_access_owned_by(invoice.customer_id) => Ok(invoice),
            _ => Err(GetInvoiceError::NotFound),
        }
    }

    fn invoices(&self, actor: Actor, mut query: InvoiceQuery) -> Result<Page<Invoice>, StoreError> {
        if actor.role != Role::Admin {
            query.customer_id = Some(actor.user_id);
        }
        let rows = self.invoices.list(&query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }
}

/// Whether a change the server makes (no `If-Match`) took effect: an order that is gone or was
/// moved by someone else first is not a failure of the caller's, only a change not to make.
fn applied(result: Result<Order, StatusChangeError>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(StatusChangeError::NotFound | StatusChangeError::Conflict) => Ok(false),
        Err(StatusChangeError::Store(error)) => Err(error),
    }
}

impl From<StatusChangeError> for ChangeOrderError {
    fn from(error: StatusChangeError) -> Self {
        match error {
            StatusChangeError::NotFound => Self::NotFound,
            // The caller's version was checked before: the order moved on since.
            StatusChangeError::Conflict => Self::VersionMismatch,
            StatusChangeError::Store(error) => Self::Store(error),
        }
    }
}

#[cfg(test)]
mod tests;
