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

/// The outcome of a conditional update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome<T> {
    Updated(T),
    NotFound,
    /// The row exists but its version differs from the one the caller expected.
    VersionMismatch,
}

/// Users and their credentials.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserRepository: Send + Sync {
    /// Inserts the user and records `event` in the same transaction.
    fn insert(&self, user: &NewUser, event: &DomainEvent) -> Result<User, InsertUserError>;
    fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    fn find_credentials_by_email(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;
    fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>, StoreError>;
    /// Applies `update` if the row's version equals `expected_version` (any version when
    /// `None`), in the same statement, so two writers cannot both win.
    fn update(
        &self,
        id: UserId,
        update: &UserUpdate,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome<User>, StoreError>;
    /// Up to `query.limit + 1` users after `query.after` in `query.sort` order.
    fn list(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;
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

/// The outcome of an atomic stock adjustment.
// One value per request, moved once: the size difference between variants costs nothing,
// while boxing would burden every adapter and test that builds one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    Adjusted {
        adjustment: StockAdjustment,
        product: Product,
    },
    NotFound,
    /// The adjustment would take `on_hand` below `reserved` (values at the moment of the check).
    BelowReserved {
        on_hand: i64,
        reserved: i64,
    },
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
    /// Applies `update` if the row is still at `expected_version`, in the same statement, and
    /// records `event` in the same transaction.
    fn update(
        &self,
        id: ProductId,
        update: &ProductUpdate,
        expected_version: i64,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome<Product>, StoreError>;
    /// Adds `delta` to `on_hand` only if the result stays ≥ `reserved`, checked in the same
    /// `UPDATE … WHERE on_hand + delta >= reserved` statement so that concurrent adjustments
    /// and reservations never lose an update; writes the adjustment row and the
    /// `stock.adjusted` event in the same transaction.
    fn adjust_stock(
        &self,
        id: ProductId,
        delta: StockDelta,
        reason: &AdjustmentReason,
        actor: UserId,
        now: DateTime<Utc>,
    ) -> Result<AdjustOutcome, StoreError>;
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
}

/// The outcome of placing an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed(crate::order::Order),
    /// Every line that could not be reserved; nothing was reserved.
    InsufficientStock(Vec<crate::order::Shortfall>),
    /// Indexes of the lines whose product does not exist or is archived; nothing was reserved.
    UnavailableProducts(Vec<usize>),
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

/// The outcome of a conditional status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChangeOutcome {
    Applied(Box<crate::order::Order>),
    NotFound,
    /// The order is no longer at `from` or at the expected version: someone else moved it first.
    Conflict,
}

/// Orders, with their reservations and invoices.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait OrderRepository: Send + Sync {
    /// In one transaction: reserves every line (`UPDATE products SET reserved = reserved + q
    /// WHERE id = ? AND status = 'active' AND on_hand - reserved >= q`, in product-id order so
    /// concurrent orders cannot deadlock), snapshots prices, prices the order with
    /// [`crate::order::price_lines`], inserts it with its lines and `order.placed`. Any short
    /// or unavailable line rolls everything back and is reported, all of them at once.
    fn place(&self, order: &NewOrder) -> Result<PlaceOutcome, StoreError>;
    fn find(&self, id: crate::order::OrderId) -> Result<Option<crate::order::Order>, StoreError>;
    /// Up to `query.limit + 1` orders after `query.after`.
    fn list(&self, query: &crate::order::OrderQuery) -> Result<Vec<crate::order::Order>, StoreError>;
    /// In one transaction: `UPDATE orders SET status = to, version = version + 1 … WHERE id = ?
    /// AND status = from [AND version = ?]`; then the stock effect (commit or release the
    /// reservation), the invoice (number from the year's counter row, so numbers are gapless
    /// and unique across instances) and the events. Zero rows updated → `Conflict` (or
    /// `NotFound`), and nothing else happens — which is what makes two sweeps, or a sweep and
    /// a customer, unable to release one reservation twice.
    fn change_status(&self, change: &StatusChange) -> Result<StatusChangeOutcome, StoreError>;
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
}

/// Runs a request at most once per idempotency key (see [`crate::idempotency`]).
pub trait IdempotentExecutor: Send + Sync {
    /// Claims `claim`'s key and, if it is new, runs `execute` inside one database transaction
    /// that every repository call made by `execute` on this thread joins, recording the
    /// response in that same transaction when `execute` answers `Committed`.
    fn run(
        &self,
        claim: &crate::idempotency::IdempotencyClaim,
        execute: &mut dyn FnMut() -> crate::idempotency::Execution,
    ) -> Result<crate::idempotency::IdempotentOutcome, StoreError>;

    /// Deletes records older than `older_than`; returns how many.
    fn purge(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError>;
}
