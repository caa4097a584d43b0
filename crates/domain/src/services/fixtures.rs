//! Sample values and a fixed clock shared by the service tests. Each builder returns a valid
//! value with readable defaults; tests change only the fields they are about, e.g.
//! `User { active: false, ..customer() }`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::actor::Actor;
use crate::ports::MockClock;
use crate::product::{
    AdjustmentReason, Currency, Description, Money, Product, ProductId, ProductName, ProductStatus, Sku, Stock,
    StockDelta,
};
use crate::user::{Email, Password, PasswordHash, Role, User, UserCredentials, UserId, UserName};

/// The one instant every test lives at.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T18:04:05.123456Z").unwrap().with_timezone(&Utc)
}

/// A clock that always answers `now()`, however often it is asked.
pub(crate) fn fixed_clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    Arc::new(clock)
}

pub(crate) fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

pub(crate) fn name(raw: &str) -> UserName {
    UserName::parse(raw).unwrap()
}

pub(crate) fn password(raw: &str) -> Password {
    Password::parse(raw, "password").unwrap()
}

/// The hash stored for every sample user. The mocks never look inside it.
pub(crate) fn stored_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$stored".to_owned())
}

/// What the hasher returns for a newly chosen password.
pub(crate) fn new_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$new".to_owned())
}

pub(crate) fn dummy_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$dummy".to_owned())
}

/// An active user created a week ago and changed twice since (version 3).
pub(crate) fn user(role: Role, address: &str, display_name: &str) -> User {
    let created_at = now() - Duration::days(7);
    User {
        id: UserId::new(),
        email: email(address),
        name: name(display_name),
        role,
        active: true,
        version: 3,
        created_at,
        updated_at: created_at + Duration::days(1),
    }
}

pub(crate) fn customer() -> User {
    user(Role::Customer, "ada@example.com", "Ada")
}

pub(crate) fn other_customer() -> User {
    user(Role::Customer, "bob@example.com", "Bob")
}

pub(crate) fn admin() -> User {
    user(Role::Admin, "grace@example.com", "Grace")
}

/// The caller, authenticated as `user`.
pub(crate) fn actor(user: &User) -> Actor {
    Actor { user_id: user.id, role: user.role }
}

pub(crate) fn credentials(user: &User) -> UserCredentials {
    UserCredentials { user: user.clone(), password_hash: stored_hash() }
}

// ---- the catalogue --------------------------------------------------------------------------

/// The deployment's currency in every product test.
pub(crate) fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).unwrap()
}

pub(crate) fn product_name(raw: &str) -> ProductName {
    ProductName::parse(raw).unwrap()
}

pub(crate) fn description(raw: &str) -> Description {
    Description::parse(raw).unwrap()
}

/// `amount` cents of the deployment's currency.
pub(crate) fn price(amount: i64) -> Money {
    Money::parse(amount, "EUR", &eur()).unwrap()
}

pub(crate) fn stock(on_hand: i64, reserved: i64) -> Stock {
    Stock::new(on_hand, reserved).unwrap()
}

pub(crate) fn delta(units: i64) -> StockDelta {
    StockDelta::parse(units).unwrap()
}

pub(crate) fn reason(raw: &str) -> AdjustmentReason {
    AdjustmentReason::parse(raw).unwrap()
}

/// An active mug priced 12.50 EUR, 10 on hand of which 4 are reserved, created three days ago
/// and edited once since (version 2).
pub(crate) fn product() -> Product {
    let created_at = now() - Duration::days(3);
    Product {
        id: ProductId::new(),
        sku: sku("MUG-001"),
        name: product_name("Enamel mug"),
        description: Some(description("Holds 350 ml.")),
        unit_price: price(1250),
        stock: stock(10, 4),
        status: ProductStatus::Active,
        version: 2,
        created_at,
        updated_at: created_at + Duration::hours(5),
    }
}

/// `product()`, archived (which bumped its version to 3).
pub(crate) fn archived_product() -> Product {
    Product { status: ProductStatus::Archived, version: 3, ..product() }
}
