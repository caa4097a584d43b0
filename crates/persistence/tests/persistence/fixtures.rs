//! Building domain values for the tests.

use chrono::{DateTime, TimeZone, Utc};
use orderly_domain::auth::{NewRefreshToken, RefreshTokenHash};
use orderly_domain::event::DomainEvent;
use orderly_domain::ports::{ProductRepository, UserRepository};
use orderly_domain::product::{Currency, Description, Money, NewProduct, Product, ProductId, ProductName, Sku};
use orderly_domain::user::{Email, NewUser, PasswordHash, Role, User, UserId, UserName};
use orderly_persistence::testing::TestDatabase;
use orderly_persistence::{DieselProductRepository, DieselUserRepository};
use uuid::Uuid;

/// A fixed instant plus `seconds`, so tests control ties and order.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 18, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

pub fn new_user(email: &str, role: Role, created_at: DateTime<Utc>) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        name: UserName::parse("Ada Lovelace").unwrap(),
        role,
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        created_at,
    }
}

pub fn registered(user: &NewUser) -> DomainEvent {
    DomainEvent::UserRegistered {
        user_id: user.id,
        email: user.email.as_str().to_owned(),
        role: user.role,
        occurred_at: user.created_at,
    }
}

pub fn users(db: &TestDatabase) -> DieselUserRepository {
    DieselUserRepository::new(db.database().clone())
}

/// Inserts a customer with a unique email.
pub fn insert_user(db: &TestDatabase, created_at: DateTime<Utc>) -> User {
    let user = new_user(&format!("{}@example.com", Uuid::now_v7().simple()), Role::Customer, created_at);
    users(db).insert(&user, &registered(&user)).unwrap()
}

pub fn refresh_token(user_id: UserId, family_id: Uuid, issued_at: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken {
        id: Uuid::now_v7(),
        family_id,
        user_id,
        hash: RefreshTokenHash::new(format!("digest-{}", Uuid::now_v7().simple())),
        issued_at,
        expires_at: issued_at + chrono::Duration::days(30),
    }
}

pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

pub fn price(amount: i64) -> Money {
    Money::parse(amount, "EUR", &eur()).unwrap()
}

/// A product with a unique SKU.
pub fn new_product(name: &str, unit_price: i64, on_hand: i64, created_at: DateTime<Utc>) -> NewProduct {
    NewProduct {
        id: ProductId::new(),
        sku: Sku::parse(&format!("SKU-{}", Uuid::now_v7().simple())).unwrap(),
        name: ProductName::parse(name).unwrap(),
        description: Some(Description::parse("A product for the tests.").unwrap()),
        unit_price: price(unit_price),
        on_hand,
        created_at,
    }
}

/// The event the service records with `product`, created by `actor`.
pub fn product_created(product: &NewProduct, actor: UserId) -> DomainEvent {
    DomainEvent::ProductCreated {
        product_id: product.id,
        sku: product.sku.as_str().to_owned(),
        name: product.name.as_str().to_owned(),
        unit_price: product.unit_price.amount(),
        on_hand: product.on_hand,
        actor_id: actor,
        occurred_at: product.created_at,
    }
}

pub fn products(db: &TestDatabase) -> DieselProductRepository {
    DieselProductRepository::new(db.database().clone())
}

/// Inserts `product`, created by a new admin, and returns it with that admin.
pub fn insert_product(db: &TestDatabase, product: &NewProduct) -> (Product, UserId) {
    let admin = insert_admin(db);
    (products(db).insert(product, &product_created(product, admin)).unwrap(), admin)
}

/// Inserts an admin with a unique email.
pub fn insert_admin(db: &TestDatabase) -> UserId {
    let user = new_user(&format!("{}@example.com", Uuid::now_v7().simple()), Role::Admin, at(0));
    users(db).insert(&user, &registered(&user)).unwrap().id
}
