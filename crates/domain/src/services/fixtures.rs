//! Sample values and a fixed clock shared by the service tests. Each builder returns a valid
//! value with readable defaults; tests change only the fields they are about, e.g.
//! `User { active: false, ..customer() }`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::actor::Actor;
use crate::invoice::{Invoice, InvoiceNumber};
use crate::order::{Order, OrderId, OrderLine, OrderStatus, Quantity, TaxRate};
use crate::ports::MockClock;
use crate::product::{
    AdjustmentReason, Currency, Description, Money, Product, ProductId, ProductName, ProductStatus, Sku, Stock,
    StockDelta,
};
use crate::services::orders::OrderPolicy;
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
    Password::parse(raw).unwrap()
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
    UserCredentials { user: user.clone(), password_hash: stored_hash(), token_generation: 0 }
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

// ---- orders and invoices --------------------------------------------------------------------

/// The ordering rules every order test runs under: EUR, 20 % tax, a 30-minute reservation,
/// at most 1000 units held per customer.
pub(crate) fn order_policy() -> OrderPolicy {
    OrderPolicy {
        currency: eur(),
        tax_rate: TaxRate::from_basis_points(2000).unwrap(),
        reservation_ttl: Duration::minutes(30),
        reservation_cap: crate::order::ReservationCap::units(1000),
    }
}

/// `quantity` units of `product` at its current price.
pub(crate) fn order_line(product: &Product, quantity: i64) -> OrderLine {
    OrderLine {
        product_id: product.id,
        sku: product.sku.as_str().to_owned(),
        name: product.name.as_str().to_owned(),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price: product.unit_price.clone(),
        line_total: price(product.unit_price.amount() * quantity),
    }
}

/// `owner`'s pending order for two mugs (25.00 + 20 % tax = 30.00 EUR), placed ten minutes ago
/// and not yet changed (version 1); its reservation lapses in twenty minutes.
pub(crate) fn order(owner: &User) -> Order {
    let placed_at = now() - Duration::minutes(10);
    Order {
        id: OrderId::new(),
        customer_id: owner.id,
        status: OrderStatus::Pending,
        items: vec![order_line(&product(), 2)],
        subtotal: price(2500),
        tax: price(500),
        total: price(3000),
        invoice_number: None,
        version: 1,
        placed_at,
        updated_at: placed_at,
        expires_at: Some(placed_at + Duration::minutes(30)),
    }
}

/// `order(owner)`, moved on to `status` (version 2; confirmed and later orders carry their
/// invoice number and no longer expire).
pub(crate) fn order_in(owner: &User, status: OrderStatus) -> Order {
    let pending = order(owner);
    match status {
        OrderStatus::Pending => pending,
        OrderStatus::Cancelled => Order { status, version: 2, updated_at: now(), expires_at: None, ..pending },
        OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered => Order {
            status,
            version: 2,
            updated_at: now(),
            expires_at: None,
            invoice_number: Some(invoice_number(42)),
            ..pending
        },
    }
}

/// Number `sequence` of the year the tests live in.
pub(crate) fn invoice_number(sequence: u32) -> InvoiceNumber {
    InvoiceNumber::new(InvoiceNumber::year_of(now()), sequence).unwrap()
}

/// The invoice issued when `order` was confirmed (number 42 of the year).
pub(crate) fn invoice(order: &Order) -> Invoice {
    Invoice {
        number: order.invoice_number.unwrap_or_else(|| invoice_number(42)),
        order_id: order.id,
        customer_id: order.customer_id,
        issued_at: now() - Duration::minutes(1),
        lines: order.items.clone(),
        subtotal: order.subtotal.clone(),
        tax: order.tax.clone(),
        total: order.total.clone(),
    }
}
