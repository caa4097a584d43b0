//! The driving ports: what an inbound adapter (the HTTP crate today) may ask of the domain, one
//! trait per resource, each method one use case (ADR 0019). [`crate::ports`] is the other side,
//! what the domain asks of the outside.
//!
//! Each service implements its trait beside its rules, in its own module
//! (`impl OrderUseCases for OrderService` in [`super::orders`], …): a use case's body is the trait
//! method's, and what is not a use case of an adapter (builders, background work, rules shared
//! with other services) stays an inherent method. The domain's tests and the server's background
//! work call the services directly, with the trait in scope. An adapter holds
//! `Arc<dyn …UseCases>`, and its tests put a mockall mock there (feature `mocks`): an HTTP test
//! states what a use case returns, never what a repository two layers down does.
//!
//! A write that joins a caller's unit of work (an `Idempotency-Key` request stores its answer in
//! the same transaction as the change) first rebinds the use cases to that unit's repositories
//! with `within`; a mock answers `within` with the mock the test set up for the rebound calls.
//!
//! Must not hold: rules (they are the services'), or anything an adapter could compute itself.

use crate::Actor;
use crate::auth::{AccessClaims, TokenPair};
use crate::error::StoreError;
use crate::event::{EventQuery, FeedEvent};
use crate::invoice::{Invoice, InvoiceNumber, InvoiceQuery};
use crate::order::{Order, OrderId, OrderQuery, OrderRequest, OrderStatus};
use crate::pagination::Page;
use crate::payment::{Payment, PaymentId, PaymentMethodToken, PaymentQuery};
use crate::ports::Repositories;
use crate::ports::TokenRejected;
use crate::product::{
    AdjustmentQuery, AdjustmentReason, Product, ProductId, ProductQuery, ProductUpdate, StockAdjustment, StockDelta,
};
use crate::services::{
    AdjustStockError, Admission, ApplyEventError, ChangeOrderError, ChangeProductError, CreateProductError,
    EndpointChanges, EndpointDraft, EventApplication, GenerationCache, GetInvoiceError, GetOrderError, GetPaymentError,
    GetProductError, GetUserError, ListAdjustmentsError, ListUsersError, LoginError, PayError, PaymentOutcome,
    PaymentRequestContext, PlaceOrderError, ProductDraft, ReadFeedError, RefreshError, RegisterError, UpdateUserError,
    UserChanges, WebhookError,
};
use crate::user::{Email, Password, User, UserId, UserName, UserQuery};
use crate::webhook::{
    DeliveryQuery, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId, WebhookEndpointQuery,
};

/// Accounts: registration, profiles, roles ([`UserService`](super::UserService)).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserUseCases: Send + Sync {
    /// The same use cases over a unit of work's repositories.
    fn within(&self, repositories: &Repositories) -> Box<dyn UserUseCases>;
    fn register(&self, email: Email, name: UserName, password: Password) -> Result<User, RegisterError>;
    fn me(&self, actor: Actor) -> Result<User, GetUserError>;
    fn get(&self, actor: Actor, id: UserId) -> Result<User, GetUserError>;
    fn list(&self, actor: Actor, query: &UserQuery) -> Result<Page<User>, ListUsersError>;
    fn update(
        &self,
        actor: Actor,
        id: UserId,
        changes: UserChanges,
        expected_version: Option<i64>,
    ) -> Result<User, UpdateUserError>;
}

/// Sessions: logging in and out, refreshing, and admitting access tokens ([`SessionService`](super::SessionService)).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SessionUseCases: Send + Sync {
    fn login(&self, email: &str, password: &str) -> Result<TokenPair, LoginError>;
    fn refresh(&self, presented: &str) -> Result<TokenPair, RefreshError>;
    /// The user whose session was ended, if the token named one.
    fn logout(&self, presented: &str) -> Result<Option<UserId>, StoreError>;
    /// The claims of a well-signed, unexpired access token; no I/O.
    fn verify_access_token(&self, access_token: &str) -> Result<AccessClaims, TokenRejected>;
    /// The revocation check of verified claims (may read and write the store).
    fn admit_access(&self, claims: AccessClaims, memory: &GenerationCache) -> Admission;
}

/// The catalogue and its stock ([`ProductService`](super::ProductService)).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ProductUseCases: Send + Sync {
    fn within(&self, repositories: &Repositories) -> Box<dyn ProductUseCases>;
    fn create(&self, actor: Actor, draft: ProductDraft) -> Result<Product, CreateProductError>;
    fn get(&self, actor: Option<Actor>, id: ProductId) -> Result<Product, GetProductError>;
    fn list(&self, actor: Option<Actor>, query: ProductQuery) -> Result<Page<Product>, StoreError>;
    fn update(
        &self,
        actor: Actor,
        id: ProductId,
        update: ProductUpdate,
        expected_version: i64,
    ) -> Result<Product, ChangeProductError>;
    fn archive(&self, actor: Actor, id: ProductId, expected_version: i64) -> Result<(), ChangeProductError>;
    fn adjust_stock(
        &self,
        actor: Actor,
        id: ProductId,
        delta: StockDelta,
        reason: AdjustmentReason,
    ) -> Result<(StockAdjustment, Product), AdjustStockError>;
    fn list_adjustments(
        &self,
        actor: Actor,
        id: ProductId,
        query: &AdjustmentQuery,
    ) -> Result<Page<StockAdjustment>, ListAdjustmentsError>;
}

/// Orders and their invoices ([`OrderService`](super::OrderService)).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait OrderUseCases: Send + Sync {
    fn within(&self, repositories: &Repositories) -> Box<dyn OrderUseCases>;
    fn place(&self, actor: Actor, request: OrderRequest) -> Result<Order, PlaceOrderError>;
    fn get(&self, actor: Actor, id: OrderId) -> Result<Order, GetOrderError>;
    fn list(&self, actor: Actor, query: OrderQuery) -> Result<Page<Order>, StoreError>;
    fn change_status(
        &self,
        actor: Actor,
        id: OrderId,
        to: OrderStatus,
        expected_version: i64,
    ) -> Result<Order, ChangeOrderError>;
    fn invoice(&self, actor: Actor, number: InvoiceNumber) -> Result<Invoice, GetInvoiceError>;
    fn invoices(&self, actor: Actor, query: InvoiceQuery) -> Result<Page<Invoice>, StoreError>;
}

/// The event feed ([`EventService`](super::EventService)).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait EventUseCases: Send + Sync {
    fn list(&self, actor: Actor, query: &EventQuery) -> Result<Page<FeedEvent>, ReadFeedError>;
}

/// Paying orders, and the provider's event notifications ([`PaymentService`](super::PaymentService)). It runs its own
/// phases (ADR 0013), so it has no `within`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PaymentUseCases: Send + Sync {
    fn pay(
        &self,
        actor: Actor,
        order_id: OrderId,
        method: PaymentMethodToken,
        context: &PaymentRequestContext,
    ) -> Result<PaymentOutcome, PayError>;
    fn list(&self, actor: Actor, query: PaymentQuery) -> Result<Page<Payment>, GetPaymentError>;
    fn get(&self, actor: Actor, order_id: OrderId, id: PaymentId) -> Result<Payment, GetPaymentError>;
    // The named lifetime is for mockall, which cannot mock an elided one inside `Option`.
    #[allow(clippy::needless_lifetimes)]
    fn apply_event<'a>(&self, signature: Option<&'a str>, body: &[u8]) -> Result<EventApplication, ApplyEventError>;
}

/// Webhook endpoints and their deliveries ([`WebhookService`](super::WebhookService); dispatching and delivering are
/// the server's background work, not use cases of an adapter).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait WebhookUseCases: Send + Sync {
    fn within(&self, repositories: &Repositories) -> Box<dyn WebhookUseCases>;
    fn create(&self, actor: Actor, draft: EndpointDraft) -> Result<WebhookEndpoint, WebhookError>;
    fn list(&self, actor: Actor, query: &WebhookEndpointQuery) -> Result<Page<WebhookEndpoint>, WebhookError>;
    fn get(&self, actor: Actor, id: WebhookEndpointId) -> Result<WebhookEndpoint, WebhookError>;
    fn update(
        &self,
        actor: Actor,
        id: WebhookEndpointId,
        changes: EndpointChanges,
        expected_version: Option<i64>,
    ) -> Result<WebhookEndpoint, WebhookError>;
    fn delete(&self, actor: Actor, id: WebhookEndpointId, expected_version: Option<i64>) -> Result<(), WebhookError>;
    fn deliveries(&self, actor: Actor, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>, WebhookError>;
    fn retry(
        &self,
        actor: Actor,
        endpoint_id: WebhookEndpointId,
        delivery_id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, WebhookError>;
}
