//! The ports: everything the domain needs from the outside world, as traits. Adapters in
//! `orderly-persistence` and `orderly-auth` implement them; tests use the mockall mocks.
//!
//! Each method that changes state is one atomic unit of work: the adapter runs it in one
//! database transaction, so a failure leaves nothing half-written.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::auth::{
    AccessClaims, AccessToken, NewRefreshToken, RefreshTokenHash, RefreshTokenSecret, Rotation, StoredRefreshToken,
};
use crate::event::DomainEvent;
use crate::product::{
    AdjustmentQuery, AdjustmentReason, NewProduct, Product, ProductId, ProductQuery, ProductUpdate, StockAdjustment,
    StockDelta,
};
use crate::user::{Email, NewUser, Password, PasswordHash, User, UserCredentials, UserId, UserQuery, UserUpdate};

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a conditional write (applied only at the version the caller expected) changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("not found")]
    NotFound,
    /// The row exists but its version differs from the one the caller expected.
    #[error("the version differs from the one expected")]
    VersionMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users and their credentials.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserRepository: Send + Sync {
    /// Inserts the user and records `event` in the same transaction.
    fn insert(&self, user: &NewUser, event: &DomainEvent) -> Result<User, InsertUserError>;
    fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    fn find_credentials_by_email(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;
    fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>, StoreError>;
    /// Applies `update` only if the user's version equals `expected_version` (any version when
    /// `None`), atomically with that check, so of two writers holding one version only one
    /// wins; the other is `VersionMismatch` and changes nothing.
    fn update(
        &self,
        id: UserId,
        update: &UserUpdate,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<User, UpdateError>;
    /// Up to `query.limit + 1` users after `query.after` in `query.sort` order.
    fn list(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;
    /// The user's current token generation (ADR 0015); `None` when there is no such user. One
    /// read by primary key: it runs on a cache miss of every authenticated request.
    fn token_generation(&self, id: UserId) -> Result<Option<crate::auth::TokenGeneration>, StoreError>;
}

/// Refresh tokens, stored by hash and grouped in families.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RefreshTokenRepository: Send + Sync {
    /// Creates a new family holding its first token (a login).
    fn start_family(&self, token: &NewRefreshToken) -> Result<(), StoreError>;
    fn find_by_hash(&self, hash: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError>;
    /// Marks `spent` as spent and stores `next` in its family, in one transaction, only if
    /// `spent` was unspent and its family unrevoked at that moment.
    fn rotate(&self, spent: Uuid, next: &NewRefreshToken, now: DateTime<Utc>) -> Result<Rotation, StoreError>;
    /// A retry within the reuse leeway (ADR 0015): voids `successor`, the token that rotating
    /// `spent` issued, and stores `next` as `spent`'s successor instead — in one transaction,
    /// only if `successor` is still unused in both senses (never presented for a refresh nor
    /// voided, and no use of the access token issued with it recorded), is `spent`'s successor
    /// and the family unrevoked at that moment. Racing retries, and a retry racing a use of
    /// either token of the successor pair, are decided one at a time on every instance: one
    /// wins, the others are `Lost`. The family keeps exactly one live token either way.
    fn replace_unused_successor(
        &self,
        spent: Uuid,
        successor: Uuid,
        next: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;
    /// Records that the access token issued together with refresh token `token` has been
    /// used, once: only the first call sets the time (`now`), later ones change nothing, and an
    /// unknown token is not an error. From then on a retry can no longer void `token`
    /// ([`Self::replace_unused_successor`] is `Lost`): its pair was evidently received.
    fn record_access_use(&self, token: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Revokes the family and, in the same transaction, bumps its user's token generation so
    /// their access tokens stop working too (ADR 0015). Revoking a revoked family changes
    /// nothing.
    fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// One-way password hashing (argon2id in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PasswordHasher: Send + Sync {
    fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;
    /// `Ok(false)` for a wrong password; `Err` only when the hash itself is unusable.
    fn verify(&self, candidate: &str, hash: &PasswordHash) -> anyhow::Result<bool>;
    /// A valid hash of no one's password, verified against when the email is unknown so a
    /// failed login costs the same whether or not the account exists.
    fn dummy_hash(&self) -> PasswordHash;
}

/// Why an access token was refused. Deliberately coarse: clients learn only "invalid".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRejected {
    #[error("the token has expired")]
    Expired,
    #[error("the token is malformed, wrongly signed, or not for this service")]
    Invalid,
    /// Well-formed and signed, but issued before its user's sessions were revoked, or for a
    /// user who no longer exists (ADR 0015).
    #[error("the token has been revoked")]
    Revoked,
}

/// Issues and checks access tokens and mints refresh tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenService: Send + Sync {
    fn issue_access_token(&self, claims: AccessClaims, now: DateTime<Utc>) -> anyhow::Result<AccessToken>;
    fn verify_access_token(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenRejected>;
    /// A new random refresh token and the digest to store.
    fn mint_refresh_token(&self) -> anyhow::Result<(RefreshTokenSecret, RefreshTokenHash)>;
    /// The digest of a presented refresh token, to look it up.
    fn hash_refresh_token(&self, presented: &str) -> RefreshTokenHash;
    /// How long refresh tokens live.
    fn refresh_token_lifetime(&self) -> chrono::Duration;
}

/// The current time, injected so expiry rules can be tested.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock. Truncated to microseconds, the precision both databases store, so a value
/// read back equals the value written.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        chrono::DurationRound::duration_trunc(now, chrono::Duration::microseconds(1)).unwrap_or(now)
    }
}

/// Why a product could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertProductError {
    #[error("the SKU is already in use")]
    SkuTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a stock adjustment was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StockAdjustmentError {
    #[error("product not found")]
    NotFound,
    /// The adjustment would take `on_hand` below `reserved` (values at the moment of the check).
    #[error("on hand would fall below reserved")]
    BelowReserved { on_hand: i64, reserved: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Products, their stock and its audit trail.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ProductRepository: Send + Sync {
    /// Inserts the product (with its initial stock) and records `event`, in one transaction.
    fn insert(&self, product: &NewProduct, event: &DomainEvent) -> Result<Product, InsertProductError>;
    fn find_by_id(&self, id: ProductId) -> Result<Option<Product>, StoreError>;
    /// Up to `query.limit + 1` products after `query.after` in the query's order. `query.status`
    /// is already resolved by the service (`None` here means every status).
    fn list(&self, query: &ProductQuery) -> Result<Vec<Product>, StoreError>;
    /// Applies `update` only if the product is still at `expected_version`, atomically with
    /// that check (of two writers holding one version only one wins), and records `event` in
    /// the same transaction.
    fn update(
        &self,
        id: ProductId,
        update: &ProductUpdate,
        expected_version: i64,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<Product, UpdateError>;
    /// Adds `delta` to `on_hand` only if the result stays ≥ `reserved`, atomically with that
    /// check, so concurrent adjustments and reservations never lose an update nor take
    /// `on_hand` below what pending orders hold; records the adjustment (the audit trail) and
    /// its `stock.adjusted` event ([`StockAdjustment::event`], with the counters after it) in
    /// the same transaction. Returns the adjustment and the product after it.
    fn adjust_stock(
        &self,
        id: ProductId,
        delta: StockDelta,
        reason: &AdjustmentReason,
        actor: UserId,
        now: DateTime<Utc>,
    ) -> Result<(StockAdjustment, Product), StockAdjustmentError>;
    /// Up to `query.limit + 1` adjustments of one product, newest first.
    fn list_adjustments(&self, product: ProductId, query: &AdjustmentQuery)
    -> Result<Vec<StockAdjustment>, StoreError>;
}

/// Why the service is not ready to take traffic.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the database is unreachable")]
    DatabaseUnreachable(#[source] anyhow::Error),
    #[error("{pending} database migration(s) not applied")]
    MigrationsPending { pending: usize },
}

/// Answers `/readyz`: can the store be reached, and is its schema current?
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Readiness: Send + Sync {
    fn check(&self) -> Result<(), NotReady>;
}

/// An order to place: the requested lines and how to price them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub id: crate::order::OrderId,
    pub customer_id: UserId,
    pub request: crate::order::OrderRequest,
    pub tax_rate: crate::order::TaxRate,
    pub currency: crate::product::Currency,
    pub placed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// How many units the customer's pending orders may hold, this order included.
    pub reservation_cap: crate::order::ReservationCap,
}

/// A status change, already allowed by the transition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub order_id: crate::order::OrderId,
    pub from: crate::order::OrderStatus,
    pub to: crate::order::OrderStatus,
    pub effect: crate::order::TransitionEffect,
    /// Apply only at this version (from `If-Match`); `None` for the expiry sweep, which relies
    /// on the `status = from` condition alone.
    pub expected_version: Option<i64>,
    /// Who moves it; `None` for the server.
    pub actor_id: Option<UserId>,
    pub cancel_reason: Option<crate::order::CancelReason>,
    pub now: DateTime<Utc>,
}

impl StatusChange {
    /// The events this change records: `order.<to>` and, when it issued an invoice (its number
    /// and total), `invoice.issued`. The adapter calls it inside the changing transaction, once
    /// it knows the order's customer and the invoice it issued.
    pub fn events(
        &self,
        customer_id: UserId,
        invoice: Option<(crate::invoice::InvoiceNumber, i64)>,
    ) -> Vec<DomainEvent> {
        let changed = DomainEvent::OrderStatusChanged {
            order_id: self.order_id,
            customer_id,
            from: self.from,
            to: self.to,
            actor_id: self.actor_id,
            reason: self.cancel_reason,
            occurred_at: self.now,
        };
        let issued = invoice.map(|(number, total)| DomainEvent::InvoiceIssued {
            number,
            order_id: self.order_id,
            customer_id,
            total,
            occurred_at: self.now,
        });
        std::iter::once(changed).chain(issued).collect()
    }
}

/// Why a status change was not made; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StatusChangeError {
    #[error("order not found")]
    NotFound,
    /// The order is no longer at `from` or at the expected version: someone else moved it
    /// first. Also an expiry (`CancelReason::Expired`) of an order with a payment attempt
    /// `processing`: money may be moving for it.
    #[error("the order was moved by someone else first")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Orders, with their reservations and invoices.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait OrderRepository: Send + Sync {
    /// Places the order atomically: reserves every line or none, and records the order, its
    /// lines and `order.placed` ([`crate::order::Order::placed_event`]) in the same
    /// transaction.
    ///
    /// - The cap first: unless `order.reservation_cap` is unlimited, the units the customer's
    ///   pending orders hold are read so that the customer's concurrent placements (on any
    ///   instance) are decided one after the other, and
    ///   [`crate::order::ReservationCap::admit`] decides; an order over the cap is
    ///   `ReservationLimitExceeded` and touches no product.
    /// - Then every line is reserved only if its product is active and has the units
    ///   available, atomically with that check, so stock is never oversold; concurrent
    ///   placements over the same products neither deadlock nor lose a reservation.
    /// - Every line is tried, and the refusal, if any, is the one
    ///   [`crate::order::PlaceOrderError::for_unreserved_lines`] picks from every fault at
    ///   once; then nothing was reserved.
    /// - Prices are the products' at the moment their lines are reserved (snapshotted while the
    ///   reservation holds the product), and the order is priced inside the transaction with
    ///   [`crate::order::price_lines`].
    ///
    /// How each of these holds on each database: `docs/invariants.md`.
    fn place(&self, order: &NewOrder) -> Result<crate::order::Order, crate::order::PlaceOrderError>;
    fn find(&self, id: crate::order::OrderId) -> Result<Option<crate::order::Order>, StoreError>;
    /// Up to `query.limit + 1` orders after `query.after`.
    fn list(&self, query: &crate::order::OrderQuery) -> Result<Vec<crate::order::Order>, StoreError>;
    /// Moves the order from `change.from` to `change.to` only if it is still at `from` (and at
    /// `change.expected_version` when given), atomically with that check: of several changes
    /// racing from one status exactly one is made, the others are `Conflict` and change
    /// nothing — so two sweeps, or a sweep and a customer, never release one reservation
    /// twice. In the same transaction: the stock effect (commit or release the reservation),
    /// for a confirmation the invoice (its number gapless and unique per year across
    /// instances), and the events of [`StatusChange::events`]. An expiry
    /// (`CancelReason::Expired`) of an order with a payment attempt `processing` is refused as
    /// `Conflict`, even if the attempt began after the order was listed as expired.
    fn change_status(&self, change: &StatusChange) -> Result<crate::order::Order, StatusChangeError>;
    /// Ids of up to `limit` pending orders whose reservation expired at or before `now`.
    fn expired_pending(&self, now: DateTime<Utc>, limit: u16) -> Result<Vec<crate::order::OrderId>, StoreError>;
}

/// Issued invoices (read side; they are written by `OrderRepository::change_status`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait InvoiceRepository: Send + Sync {
    fn find(&self, number: crate::invoice::InvoiceNumber) -> Result<Option<crate::invoice::Invoice>, StoreError>;
    /// Up to `query.limit + 1` invoices after `query.after`, newest first.
    fn list(&self, query: &crate::invoice::InvoiceQuery) -> Result<Vec<crate::invoice::Invoice>, StoreError>;
}

/// The outbox, read as a feed in commit order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait EventFeed: Send + Sync {
    /// Up to `query.limit + 1` events with a position greater than `query.after`, in position
    /// order.
    fn list(&self, query: &crate::event::EventQuery) -> Result<Vec<crate::event::FeedEvent>, StoreError>;
    /// One event by id, as the feed serves it (webhook deliveries send it).
    fn find(&self, id: Uuid) -> Result<Option<crate::event::FeedEvent>, StoreError>;
}

/// Runs a request at most once per idempotency key (see [`crate::idempotency`]).
pub trait IdempotentExecutor: Send + Sync {
    /// Claims `claim`'s key and, if it is new, runs `execute` inside one database transaction,
    /// handing it the [`Repositories`] bound to that transaction, and records the response in
    /// the same transaction when `execute` answers `Committed`.
    fn run(
        &self,
        claim: &crate::idempotency::IdempotencyClaim,
        execute: &mut dyn FnMut(&Repositories) -> crate::idempotency::Execution,
    ) -> Result<crate::idempotency::IdempotentOutcome, StoreError>;

    /// For a use case that runs in phases of its own (one that calls another service and so
    /// may hold no transaction across the call): claims the key, runs `execute` with no
    /// transaction open, and then records its response in a short transaction. A use case run
    /// this way makes its own changes resumable (its recovery point is keyed by the request),
    /// so a retry after a crash between its last phase and the record finds them.
    fn run_in_phases(
        &self,
        claim: &crate::idempotency::IdempotencyClaim,
        execute: &mut dyn FnMut() -> crate::idempotency::Execution,
    ) -> Result<crate::idempotency::IdempotentOutcome, StoreError>;

    /// Deletes records older than `older_than`; returns how many.
    fn purge(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Units of work
// ---------------------------------------------------------------------------------------------

/// Every repository, as one place sees them: the pool (each call is a transaction of its own)
/// or one [`UnitOfWork`]'s transaction (every call joins it). Cheap to clone.
///
/// A service is built over the pool's set and re-bound to a transaction's set with its
/// `within` method, so a use case that must be atomic across repositories says so where it
/// runs, instead of finding a transaction in hidden state.
#[derive(Clone)]
pub struct Repositories {
    pub users: std::sync::Arc<dyn UserRepository>,
    pub refresh_tokens: std::sync::Arc<dyn RefreshTokenRepository>,
    pub products: std::sync::Arc<dyn ProductRepository>,
    pub orders: std::sync::Arc<dyn OrderRepository>,
    pub invoices: std::sync::Arc<dyn InvoiceRepository>,
    pub payments: std::sync::Arc<dyn PaymentRepository>,
    pub jobs: std::sync::Arc<dyn JobQueue>,
    pub webhooks: std::sync::Arc<dyn WebhookRepository>,
}

#[cfg(any(test, feature = "mocks"))]
impl Repositories {
    /// Every repository a mock that expects no call, for tests: replace the ones a test sets
    /// expectations on (`Repositories { orders: Arc::new(orders), ..Repositories::mocked() }`).
    pub fn mocked() -> Self {
        use std::sync::Arc;
        Self {
            users: Arc::new(MockUserRepository::new()),
            refresh_tokens: Arc::new(MockRefreshTokenRepository::new()),
            products: Arc::new(MockProductRepository::new()),
            orders: Arc::new(MockOrderRepository::new()),
            invoices: Arc::new(MockInvoiceRepository::new()),
            payments: Arc::new(MockPaymentRepository::new()),
            jobs: Arc::new(MockJobQueue::new()),
            webhooks: Arc::new(MockWebhookRepository::new()),
        }
    }
}

/// Runs work in one database transaction with [`Repositories`] bound to it.
///
/// The adapter begins a write transaction, hands `work` the repositories bound to it, and
/// commits when `work` answers `Ok(true)`; `Ok(false)` or an error rolls everything back. No
/// provider or other remote call may be made inside `work`: a transaction holds a pooled
/// connection (and on SQLite the write lock) for as long as it is open.
pub trait UnitOfWork: Send + Sync {
    fn run(&self, work: &mut dyn FnMut(&Repositories) -> Result<bool, StoreError>) -> Result<(), StoreError>;
}

/// Runs `work` as one unit of work and returns its result: committed when it is `Ok`, rolled
/// back when it is `Err`.
pub fn in_transaction<T, E>(
    unit_of_work: &dyn UnitOfWork,
    mut work: impl FnMut(&Repositories) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let mut result = None;
    unit_of_work.run(&mut |repositories| {
        let outcome = work(repositories);
        let commit = outcome.is_ok();
        result = Some(outcome);
        Ok(commit)
    })?;
    result.unwrap_or_else(|| {
        Err(E::from(StoreError::Unexpected(anyhow::anyhow!("a unit of work ended without running its work"))))
    })
}

// ---------------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------------

/// Why a payment attempt could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertPaymentError {
    /// Another attempt of this order is `processing` (one at a time per order).
    #[error("another payment of this order is processing")]
    AlreadyProcessing,
    /// The order is no longer `pending` (checked under the order row's lock, so the expiry
    /// sweep and a payment cannot both win).
    #[error("the order is not pending")]
    OrderNotPending,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Payment attempts and the provider events already applied.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PaymentRepository: Send + Sync {
    /// Inserts a `processing` attempt, only while its order is `pending`, and serialised with
    /// the order's status changes, so the expiry sweep's cancellation and this insert cannot
    /// both win (`OrderNotPending` otherwise). At most one attempt per order may be
    /// `processing`: a second is `AlreadyProcessing`, decided by the database, so it holds
    /// across instances.
    fn insert(&self, payment: &crate::payment::NewPayment) -> Result<crate::payment::Payment, InsertPaymentError>;
    fn find(&self, id: crate::payment::PaymentId) -> Result<Option<crate::payment::Payment>, StoreError>;
    /// The attempt a request with this `request_key` created for this order, if any.
    fn find_by_request_key(
        &self,
        order_id: crate::order::OrderId,
        request_key: &str,
    ) -> Result<Option<crate::payment::Payment>, StoreError>;
    /// The attempt the provider knows by `reference` (e.g. a PaymentIntent id).
    fn find_by_reference(&self, provider: &str, reference: &str)
    -> Result<Option<crate::payment::Payment>, StoreError>;
    /// Up to `query.limit + 1` attempts of one order, newest first.
    fn list(&self, query: &crate::payment::PaymentQuery) -> Result<Vec<crate::payment::Payment>, StoreError>;
    /// Records the provider's reference of a `processing` attempt (before anything that can
    /// move money is sent). `false` if the attempt is no longer `processing`.
    fn record_reference(
        &self,
        id: crate::payment::PaymentId,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Moves the attempt from `settlement.from` to `settlement.to` only if it is still at
    /// `from` (atomically with that check), and records `event` with it. `None`: it was not at
    /// `from` any more (someone else settled it first) and nothing was written.
    fn settle(
        &self,
        settlement: &crate::payment::PaymentSettlement,
        event: &DomainEvent,
    ) -> Result<Option<crate::payment::Payment>, StoreError>;
    /// Records that the provider's event `event_id` has been applied. `false` if it had been
    /// already (a duplicate delivery), in which case the caller must not apply it again.
    fn mark_provider_event_applied(
        &self,
        provider: &str,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Whether the order has an attempt in `processing` (the expiry sweep leaves it alone).
    fn has_processing(&self, order_id: crate::order::OrderId) -> Result<bool, StoreError>;
}

/// What a provider said about a charge, after the adapter checked that its answer is about
/// the expected attempt, amount and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeState {
    /// Created and not confirmed: no money has moved.
    AwaitingConfirmation,
    /// Confirmed, outcome still pending at the provider.
    Processing,
    Succeeded,
    /// Declined or otherwise failed; no money moved.
    Failed(crate::payment::PaymentFailure),
    /// Cancelled at the provider; no money moved.
    Canceled,
}

/// The provider's view of one charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCharge {
    /// The provider's id for it (Stripe: `pi_…`).
    pub reference: String,
    pub state: ChargeState,
}

/// A charge to create: everything the provider is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub expected: crate::payment::ExpectedCharge,
    pub order_id: crate::order::OrderId,
    pub payment_method: crate::payment::PaymentMethodToken,
    /// The HTTP request id that started it, passed to the provider as metadata.
    pub request_id: Option<String>,
}

/// Why a provider call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached: the request was never sent (connection refused,
    /// connect timeout, DNS), so nothing happened there.
    #[error("the payment provider could not be reached")]
    Unreachable(#[source] anyhow::Error),
    /// The request was sent and no answer came within the timeout: it may or may not have
    /// taken effect.
    #[error("the payment provider did not answer in time")]
    TimedOut(#[source] anyhow::Error),
    /// The provider answered something that fails Orderly's checks (status, media type, shape,
    /// amount, currency, reference): not a success, outcome unknown.
    #[error("the payment provider's answer cannot be trusted")]
    Untrustworthy(#[source] anyhow::Error),
}

impl ProviderError {
    /// Whether money may have moved: only `Unreachable` proves nothing was sent.
    pub fn outcome_unknown(&self) -> bool {
        !matches!(self, ProviderError::Unreachable(_))
    }
}

/// A provider event, verified (signature and age) and parsed by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The provider's event id: applied at most once.
    pub id: String,
    pub kind: ProviderEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEventKind {
    /// A charge changed state: the charge as the event describes it, and the facts it claims
    /// (attempt id from the metadata, amount, currency), still to be checked against the
    /// recorded attempt.
    Charge { charge: ProviderCharge, payment_id: Option<crate::payment::PaymentId>, amount: i64, currency: String },
    /// Any other event type: acknowledged and ignored.
    Other { type_name: String },
}

/// Why an inbound provider event was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventRejected {
    #[error("the signature is missing, wrong or too old")]
    InvalidSignature,
    #[error("the event is not one the provider sends: {0}")]
    Malformed(String),
}

/// The payment provider (Stripe's PaymentIntents in production, localstripe in tests).
///
/// Every call that can move money carries an idempotency key derived from the attempt id,
/// and the flow never depends on the provider honouring it: money moves only on
/// [`confirm`](Self::confirm), which is sent only for a charge whose reference was recorded
/// first, so a crash or retry finds the charge again instead of creating another. Calls
/// block their thread for at most the configured timeout; no transaction is open around them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name, stored on each attempt (e.g. `stripe`).
    fn name(&self) -> &'static str;
    /// Creates an unconfirmed charge. Moves no money; retried freely (same key).
    fn create(&self, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError>;
    /// Confirms the charge with the payment method: this is what moves money.
    fn confirm(&self, reference: &str, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError>;
    /// Reads the charge's state now. Safe to repeat.
    fn retrieve(
        &self,
        reference: &str,
        expected: &crate::payment::ExpectedCharge,
    ) -> Result<ProviderCharge, ProviderError>;
    /// Refunds a succeeded charge in full. Safe to repeat: a charge refunded already is
    /// reported as refunded, never refunded twice.
    fn refund(&self, reference: &str, expected: &crate::payment::ExpectedCharge) -> Result<(), ProviderError>;
    /// Verifies an inbound event (signature over the raw body, age) and parses it.
    // The named lifetime is for mockall, which cannot mock an elided one inside `Option`.
    #[allow(clippy::needless_lifetimes)]
    fn verify_event<'a>(
        &self,
        signature: Option<&'a str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ProviderEvent, EventRejected>;
}

// ---------------------------------------------------------------------------------------------
// Durable background jobs
// ---------------------------------------------------------------------------------------------

/// What a job does; its `subject` says to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Ask the provider how a `processing` payment ended, and settle it.
    ReconcilePayment,
    /// Refund a payment that succeeded for an order that could no longer be confirmed.
    RefundPayment,
    /// Make the next attempt of a webhook delivery (the subject is the delivery's id).
    DeliverWebhook,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::ReconcilePayment, JobKind::RefundPayment, JobKind::DeliverWebhook];
    /// The payment kinds, worked by the payment job loop.
    pub const PAYMENTS: [JobKind; 2] = [JobKind::ReconcilePayment, JobKind::RefundPayment];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ReconcilePayment => "reconcile_payment",
            JobKind::RefundPayment => "refund_payment",
            JobKind::DeliverWebhook => "deliver_webhook",
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// A job to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: JobKind,
    pub subject: Uuid,
    pub run_at: DateTime<Utc>,
    /// When the change that needs the job happened (the caller's clock).
    pub created_at: DateTime<Utc>,
}

/// A job a worker has claimed, and which claim: [`JobQueue::complete`] and
/// [`JobQueue::retry_at`] act only while this claim is still the job's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    pub subject: Uuid,
    /// Attempts made, this one included: counted when the job is claimed, so an attempt whose
    /// worker died (and never reported back) counts too. At least 1 for a claimed job.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// The end of this claim's lease (`now + lease` at the claim), as stored. With `attempts`
    /// (which grows with every claim) it identifies the claim.
    pub lease_until: DateTime<Utc>,
}

/// The queue's state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobQueueStats {
    /// Jobs waiting (due or not).
    pub depth: u64,
    /// How long the oldest due job has been due.
    pub oldest_due_age: Option<chrono::Duration>,
}

/// A durable queue of background work in the database: it survives restarts, and any instance
/// may work it, each job by one worker at a time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait JobQueue: Send + Sync {
    /// Schedules a job (inside the caller's unit of work when the queue is bound to one, so
    /// the job exists exactly when the change that needs it does).
    fn enqueue(&self, job: &NewJob) -> Result<(), StoreError>;
    /// Like [`JobQueue::enqueue`], but a job that is queued already is made due no later than
    /// `job.run_at` (a manual retry: "now", not at the back-off's next time). A job a worker
    /// holds right now loses that claim — the worker's `complete`/`retry_at` then change
    /// nothing, so it cannot drop the job the retry relies on — and is due when the claim's
    /// lease would have ended, so the attempt in flight is never doubled.
    fn enqueue_due_by(&self, job: &NewJob) -> Result<(), StoreError>;
    /// Claims one due job of one of `kinds` (`run_at <= now`, not claimed by a live worker)
    /// and counts the attempt: it is this worker's until `now + lease`; a worker that dies
    /// loses it when the lease ends, and its attempt stays counted.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        kinds: &[JobKind],
    ) -> Result<Option<Job>, StoreError>;
    /// The job is done: removes it — only if `job`'s claim is still the job's (no other worker
    /// has claimed it since). `false`: the claim was lost and nothing changed.
    fn complete(&self, job: &Job) -> Result<bool, StoreError>;
    /// The attempt did not finish: makes the job due again at `run_at`, unclaimed, noting
    /// `error` — only if `job`'s claim is still the job's. `false`: the claim was lost and
    /// nothing changed.
    fn retry_at(&self, job: &Job, run_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError>;
    fn stats(&self, now: DateTime<Utc>) -> Result<JobQueueStats, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// Webhook endpoints, their deliveries, and how far the dispatcher has read the event feed.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait WebhookRepository: Send + Sync {
    fn insert_endpoint(
        &self,
        endpoint: &crate::webhook::NewWebhookEndpoint,
    ) -> Result<crate::webhook::WebhookEndpoint, StoreError>;
    fn find_endpoint(
        &self,
        id: crate::webhook::WebhookEndpointId,
    ) -> Result<Option<crate::webhook::WebhookEndpoint>, StoreError>;
    /// Up to `query.limit + 1` endpoints after `query.after`, oldest first.
    fn list_endpoints(
        &self,
        query: &crate::webhook::WebhookEndpointQuery,
    ) -> Result<Vec<crate::webhook::WebhookEndpoint>, StoreError>;
    /// Every active endpoint (the dispatcher matches each event against them).
    fn active_endpoints(&self) -> Result<Vec<crate::webhook::WebhookEndpoint>, StoreError>;
    /// Applies `update` (version + 1, `updated_at = now`) only if the endpoint's version
    /// equals `expected_version` (any version when `None`), atomically with that check.
    fn update_endpoint(
        &self,
        id: crate::webhook::WebhookEndpointId,
        update: &crate::webhook::WebhookEndpointUpdate,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<crate::webhook::WebhookEndpoint, UpdateError>;
    /// Deletes the endpoint and its deliveries, only if its version equals `expected_version`
    /// (any when `None`), atomically with that check.
    fn delete_endpoint(
        &self,
        id: crate::webhook::WebhookEndpointId,
        expected_version: Option<i64>,
    ) -> Result<(), UpdateError>;

    /// Inserts the deliveries; one that exists already for its (endpoint, event) is skipped.
    /// Returns the ids of those inserted.
    fn insert_deliveries(
        &self,
        deliveries: &[crate::webhook::NewWebhookDelivery],
    ) -> Result<Vec<crate::webhook::WebhookDeliveryId>, StoreError>;
    fn find_delivery(
        &self,
        id: crate::webhook::WebhookDeliveryId,
    ) -> Result<Option<crate::webhook::WebhookDelivery>, StoreError>;
    /// Up to `query.limit + 1` deliveries of one endpoint before `query.after`, newest first.
    fn list_deliveries(
        &self,
        query: &crate::webhook::DeliveryQuery,
    ) -> Result<Vec<crate::webhook::WebhookDelivery>, StoreError>;
    /// Records an attempt's outcome (and counts it when `attempt.sent`) only if the delivery
    /// is still `pending` with `attempts_before` attempts made, so one attempt is never
    /// recorded twice. `false`: it was not, and nothing changed.
    fn record_attempt(
        &self,
        id: crate::webhook::WebhookDeliveryId,
        attempts_before: u32,
        attempt: &crate::webhook::DeliveryAttempt,
    ) -> Result<bool, StoreError>;
    /// Makes the delivery `pending` again, due at `now` (a manual retry). `None`: no such
    /// delivery.
    fn reopen_delivery(
        &self,
        id: crate::webhook::WebhookDeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::webhook::WebhookDelivery>, StoreError>;
    fn backlog(&self, now: DateTime<Utc>) -> Result<crate::webhook::DeliveryBacklog, StoreError>;

    /// The feed position of the last event dispatched (`None`: none yet).
    fn dispatch_position(&self) -> Result<Option<i64>, StoreError>;
    /// Moves the dispatch position from `from` to `to`, only if it is still `from` (so two
    /// dispatchers never both dispatch one stretch of the feed). `false`: it was not.
    fn advance_dispatch_position(&self, from: Option<i64>, to: i64) -> Result<bool, StoreError>;
}

/// A delivery to send: the event, to the endpoint's URL, signed with its secret.
#[derive(Debug, Clone, Copy)]
pub struct WebhookMessage<'a> {
    pub url: &'a crate::webhook::EndpointUrl,
    pub secret: &'a crate::webhook::WebhookSecret,
    pub event: &'a crate::event::FeedEvent,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// A 2xx answer arrived within the timeout.
    Delivered { status: u16 },
    /// An answer arrived, but not a 2xx (a redirect included: it is not followed).
    Rejected { status: u16 },
    /// No answer: the destination was refused, the name did not resolve, the connection
    /// failed, or the timeout passed. Says which, in words safe to show an admin.
    NoAnswer { reason: String },
}

/// A send's outcome and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub outcome: SendOutcome,
    pub duration: std::time::Duration,
}

/// Sends webhook deliveries: signs them (Standard Webhooks), checks every address it is about
/// to connect to against the [`crate::webhook::DestinationPolicy`], bounds the wait, follows
/// no redirect.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait WebhookSender: Send + Sync {
    /// A fresh signing secret for a new endpoint.
    fn new_secret(&self) -> anyhow::Result<crate::webhook::WebhookSecret>;
    /// Makes one attempt. Never retries by itself: the schedule is the caller's.
    fn send<'a>(&self, message: WebhookMessage<'a>) -> SendReport;
}
