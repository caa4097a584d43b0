//! The catalogue: products, their price and their stock (docs/api.md#products-and-stock).
//!
//! Stock is two counters: `on_hand` (units in the warehouse) and `reserved` (units promised to
//! pending orders). The rule this module owns is `0 ≤ reserved ≤ on_hand`; `available` is
//! derived, never stored. Stock changes only through adjustments (an audit trail) and, later,
//! through orders; a product's PATCH cannot touch it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::pagination::{PageLimit, SortDirection};
use crate::user::UserId;
use crate::validation::InvalidValue;

crate::id::uuid_id!(
    /// A product's id.
    ProductId
);

/// A stock-keeping unit: 1–64 of `[A-Z0-9-]` after upper-casing, so `abc-1` and `ABC-1` are
/// the same SKU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let sku = raw.trim().to_ascii_uppercase();
        if sku.is_empty() || sku.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new("invalid_length", "must be 1 to 64 characters"));
        }
        if !sku.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-') {
            return Err(InvalidValue::new("invalid_format", "may contain only letters, digits and '-'"));
        }
        Ok(Self(sku))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue::new("invalid_format", "must be an ISO 4217 code such as EUR"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of money in integer minor units (cents), never negative, never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// The largest amount accepted: leaves headroom so that line totals of up to 1000 units
    /// and order sums cannot overflow an `i64`.
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

    /// Parses an amount in `currency`, which must be the deployment's currency. Stops at the
    /// first fault, and says which part it is in.
    pub fn parse(amount: i64, currency: &str, deployment: &Currency) -> Result<Self, InvalidMoney> {
        if !(0..=Self::MAX_AMOUNT).contains(&amount) {
            return Err(InvalidMoney::Amount(InvalidValue::new(
                "out_of_range",
                format!("must be between 0 and {}", Self::MAX_AMOUNT),
            )));
        }
        let currency = Currency::parse(currency).map_err(InvalidMoney::Currency)?;
        if &currency != deployment {
            return Err(InvalidMoney::Currency(InvalidValue::new(
                "unsupported_currency",
                format!("must be {}, the currency of this deployment", deployment.as_str()),
            )));
        }
        Ok(Self { amount, currency })
    }

    /// Rebuilds a stored amount (already validated when it was written).
    pub fn from_stored(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

/// Why [`Money::parse`] refused an amount of money: the fault, and which of the two parts it
/// is in. The caller maps the part to its input's field (e.g. `unit_price/amount`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMoney {
    /// The amount is out of range.
    #[error("amount {0}")]
    Amount(InvalidValue),
    /// The currency is malformed or not the deployment's.
    #[error("currency {0}")]
    Currency(InvalidValue),
}

/// A product's name: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        crate::validation::single_line_text(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product description: up to 2000 characters, no NUL or other control characters except
/// line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new("too_long", "must be at most 2000 characters"));
        }
        if raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(InvalidValue::new("invalid_characters", "must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductStatus {
    Active,
    Archived,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Archived => "archived",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "active" => Ok(ProductStatus::Active),
            "archived" => Ok(ProductStatus::Archived),
            _ => Err(InvalidValue::new("invalid_value", "must be one of: active, archived")),
        }
    }
}

/// Units in stock. Invariant: `0 ≤ reserved ≤ on_hand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    on_hand: i64,
    reserved: i64,
}

/// Why a stock change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The change would leave fewer units on hand than are reserved for pending orders.
    #[error("on hand ({on_hand}) would fall below reserved ({reserved})")]
    BelowReserved { on_hand: i64, reserved: i64 },
    #[error("the quantity is out of range")]
    OutOfRange,
}

impl Stock {
    /// The most units a product may hold: far beyond any warehouse, far below overflow.
    pub const MAX_UNITS: i64 = 1_000_000_000;

    pub fn new(on_hand: i64, reserved: i64) -> Result<Self, StockError> {
        if !(0..=Self::MAX_UNITS).contains(&on_hand) || reserved < 0 {
            return Err(StockError::OutOfRange);
        }
        if reserved > on_hand {
            return Err(StockError::BelowReserved { on_hand, reserved });
        }
        Ok(Self { on_hand, reserved })
    }

    pub fn on_hand(self) -> i64 {
        self.on_hand
    }

    pub fn reserved(self) -> i64 {
        self.reserved
    }

    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }

    /// The stock after adding `delta` (negative to remove) to `on_hand`.
    pub fn adjusted(self, delta: i64) -> Result<Self, StockError> {
        let on_hand = self.on_hand.checked_add(delta).ok_or(StockError::OutOfRange)?;
        Self::new(on_hand, self.reserved)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<Description>,
    pub unit_price: Money,
    pub stock: Stock,
    pub status: ProductStatus,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the store needs to create a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub id: ProductId,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<Description>,
    pub unit_price: Money,
    pub on_hand: i64,
    pub created_at: DateTime<Utc>,
}

/// A merge-patch of a product's editable fields. `description: Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductUpdate {
    pub name: Option<ProductName>,
    pub description: Option<Option<Description>>,
    pub unit_price: Option<Money>,
    pub status: Option<ProductStatus>,
}

impl ProductUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none() && self.unit_price.is_none() && self.status.is_none()
    }

    /// The names of the fields this update changes, for the `product.updated` event.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.name.is_some() {
            fields.push("name");
        }
        if self.description.is_some() {
            fields.push("description");
        }
        if self.unit_price.is_some() {
            fields.push("unit_price");
        }
        if self.status.is_some() {
            fields.push("status");
        }
        fields
    }
}

/// A stock change's reason: 1–500 characters, part of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentReason(String);

impl AdjustmentReason {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let reason = raw.trim();
        if reason.is_empty() {
            return Err(InvalidValue::new("required", "must not be empty"));
        }
        if reason.chars().count() > 500 {
            return Err(InvalidValue::new("too_long", "must be at most 500 characters"));
        }
        if reason.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(InvalidValue::new("invalid_characters", "must not contain control characters"));
        }
        Ok(Self(reason.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-zero change to `on_hand`, at most ±1,000,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockDelta(i64);

impl StockDelta {
    pub fn parse(delta: i64) -> Result<Self, InvalidValue> {
        if delta == 0 {
            return Err(InvalidValue::new("zero", "must not be zero"));
        }
        if !(-Stock::MAX_UNITS..=Stock::MAX_UNITS).contains(&delta) {
            return Err(InvalidValue::new("out_of_range", "must be between -1000000000 and 1000000000"));
        }
        Ok(Self(delta))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// One entry of a product's stock audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    pub id: Uuid,
    pub product_id: ProductId,
    pub delta: i64,
    pub reason: AdjustmentReason,
    /// Who made the change.
    pub actor_id: UserId,
    /// `on_hand` after the change.
    pub on_hand_after: i64,
    pub created_at: DateTime<Utc>,
}

impl StockAdjustment {
    /// The event this adjustment records (`stock.adjusted`): the change and the product's
    /// counters after it (`reserved` as it stood when the adjustment was made).
    pub fn event(&self, reserved: i64) -> crate::event::DomainEvent {
        crate::event::DomainEvent::StockAdjusted {
            product_id: self.product_id,
            adjustment_id: self.id,
            delta: self.delta,
            reason: self.reason.as_str().to_owned(),
            on_hand: self.on_hand_after,
            reserved,
            actor_id: self.actor_id,
            occurred_at: self.created_at,
        }
    }
}

/// Sort keys of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSortKey {
    #[default]
    CreatedAt,
    Name,
    Price,
}

/// Where the next page starts: the value of the sort key and the id of the last item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCursor {
    CreatedAt(DateTime<Utc>, ProductId),
    Name(String, ProductId),
    Price(i64, ProductId),
}

impl ProductCursor {
    pub fn of(product: &Product, key: ProductSortKey) -> Self {
        match key {
            ProductSortKey::CreatedAt => Self::CreatedAt(product.created_at, product.id),
            ProductSortKey::Name => Self::Name(product.name.as_str().to_owned(), product.id),
            ProductSortKey::Price => Self::Price(product.unit_price.amount(), product.id),
        }
    }
}

/// `GET /v1/products`: filters, sort and position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductQuery {
    /// `None` means "active only" for everyone but admins, who may ask for either.
    pub status: Option<ProductStatus>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Only products with `available > 0`.
    pub in_stock: bool,
    pub sort: ProductSortKey,
    pub direction: Option<SortDirection>,
    pub after: Option<ProductCursor>,
    pub limit: PageLimit,
}

/// `GET /v1/products/{id}/stock-adjustments`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdjustmentQuery {
    /// The id of the last adjustment seen (ids are UUIDv7, so they order by time).
    pub after: Option<Uuid>,
    pub limit: PageLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn skus_are_upper_cased_and_restricted() {
        assert_eq!(Sku::parse(" abc-123 ").unwrap().as_str(), "ABC-123");
        assert_eq!(Sku::parse("").unwrap_err().code, "invalid_length");
        assert_eq!(Sku::parse(&"A".repeat(65)).unwrap_err().code, "invalid_length");
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        for bad in ["A B", "A_B", "É", "A/B", "A\0B"] {
            assert_eq!(Sku::parse(bad).unwrap_err().code, "invalid_format", "{bad:?}");
        }
    }

    #[test]
    fn money_is_non_negative_and_in_the_deployment_currency() {
        assert_eq!(Money::parse(1999, "EUR", &eur()).unwrap().amount(), 1999);
        assert!(Money::parse(0, "EUR", &eur()).is_ok());
        let amount = |fault| matches!(fault, Err(InvalidMoney::Amount(InvalidValue { code: "out_of_range", .. })));
        assert!(amount(Money::parse(-1, "EUR", &eur())));
        assert!(amount(Money::parse(Money::MAX_AMOUNT + 1, "EUR", &eur())));
        let currency =
            |fault, code| matches!(fault, Err(InvalidMoney::Currency(InvalidValue { code: c, .. })) if c == code);
        assert!(currency(Money::parse(100, "USD", &eur()), "unsupported_currency"));
        assert!(currency(Money::parse(100, "eur", &eur()), "invalid_format"));
    }

    #[test]
    fn on_hand_never_falls_below_reserved() {
        let stock = Stock::new(10, 4).unwrap();
        assert_eq!(stock.available(), 6);
        assert_eq!(stock.adjusted(-6).unwrap().on_hand(), 4);
        assert_eq!(stock.adjusted(-7), Err(StockError::BelowReserved { on_hand: 3, reserved: 4 }));
        assert_eq!(Stock::new(3, 4), Err(StockError::BelowReserved { on_hand: 3, reserved: 4 }));
        assert_eq!(Stock::new(-1, 0), Err(StockError::OutOfRange));
        assert_eq!(stock.adjusted(i64::MAX), Err(StockError::OutOfRange));
    }

    #[test]
    fn deltas_are_non_zero_and_bounded() {
        assert_eq!(StockDelta::parse(0).unwrap_err().code, "zero");
        assert_eq!(StockDelta::parse(-5).unwrap().get(), -5);
        assert_eq!(StockDelta::parse(Stock::MAX_UNITS + 1).unwrap_err().code, "out_of_range");
    }

    #[test]
    fn names_descriptions_and_reasons_are_checked() {
        assert_eq!(ProductName::parse(" Mug ").unwrap().as_str(), "Mug");
        assert_eq!(ProductName::parse("").unwrap_err().code, "required");
        assert_eq!(Description::parse("line\nbreak").unwrap().as_str(), "line\nbreak");
        assert_eq!(Description::parse("nul\0").unwrap_err().code, "invalid_characters");
        assert_eq!(AdjustmentReason::parse("  ").unwrap_err().code, "required");
    }

    #[test]
    fn an_update_lists_the_fields_it_changes() {
        let update =
            ProductUpdate { description: Some(None), status: Some(ProductStatus::Archived), ..Default::default() };
        assert_eq!(update.changed_fields(), vec!["description", "status"]);
        assert!(ProductUpdate::default().is_empty());
    }

    #[test]
    fn sku_length_is_counted_after_trimming() {
        let padded = format!("  {}\t", "a".repeat(64));
        assert_eq!(Sku::parse(&padded).unwrap().as_str(), "A".repeat(64));
        let too_long = format!(" {} ", "A".repeat(65));
        assert_eq!(Sku::parse(&too_long).unwrap_err().code, "invalid_length");
        assert_eq!(Sku::parse("   ").unwrap_err().code, "invalid_length");
        assert_eq!(Sku::parse("abc-123").unwrap(), Sku::parse("ABC-123").unwrap());
    }

    #[test]
    fn a_short_sku_of_non_ascii_letters_is_a_format_fault_not_a_length_fault() {
        // 40 characters, but 80 bytes in UTF-8.
        assert_eq!(Sku::parse(&"É".repeat(40)).unwrap_err().code, "invalid_format");
        assert_eq!(Sku::parse(&"É".repeat(65)).unwrap_err().code, "invalid_length");
    }

    #[test]
    fn money_accepts_exactly_the_maximum_and_names_the_faulty_part() {
        assert_eq!(Money::parse(Money::MAX_AMOUNT, "EUR", &eur()).unwrap().amount(), Money::MAX_AMOUNT);
        assert!(matches!(Money::parse(i64::MIN, "EUR", &eur()), Err(InvalidMoney::Amount(_))));
        assert!(matches!(Money::parse(100, "USD", &eur()), Err(InvalidMoney::Currency(_))));
        assert_eq!(
            Money::parse(-1, "USD", &eur()).unwrap_err().to_string(),
            "amount must be between 0 and 1000000000000"
        );
        assert_eq!(Money::parse(100, "EUR", &eur()).unwrap().currency(), &eur());
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "USD");
        for bad in ["", "EU", "EURO", "eur", "E1R", "EÜR", " EUR"] {
            assert_eq!(Currency::parse(bad).unwrap_err().code, "invalid_format", "{bad:?}");
        }
    }

    #[test]
    fn stock_bounds() {
        assert_eq!(Stock::new(0, -1), Err(StockError::OutOfRange));
        assert_eq!(Stock::new(5, -1), Err(StockError::OutOfRange));
        assert_eq!(Stock::new(Stock::MAX_UNITS + 1, 0), Err(StockError::OutOfRange));
        let full = Stock::new(Stock::MAX_UNITS, Stock::MAX_UNITS).unwrap();
        assert_eq!((full.on_hand(), full.reserved(), full.available()), (Stock::MAX_UNITS, Stock::MAX_UNITS, 0));
        let empty = Stock::new(0, 0).unwrap();
        assert_eq!(empty.available(), 0);
        assert_eq!(empty.adjusted(-1), Err(StockError::OutOfRange));
        let near_full = Stock::new(Stock::MAX_UNITS - 1, 0).unwrap();
        assert_eq!(near_full.adjusted(1).unwrap().on_hand(), Stock::MAX_UNITS);
        assert_eq!(near_full.adjusted(2), Err(StockError::OutOfRange));
        // Adjusting keeps what is reserved.
        assert_eq!(Stock::new(10, 4).unwrap().adjusted(5).unwrap(), Stock::new(15, 4).unwrap());
    }

    #[test]
    fn deltas_accept_exactly_the_bounds_and_nothing_beyond_even_at_the_extremes() {
        assert_eq!(StockDelta::parse(Stock::MAX_UNITS).unwrap().get(), Stock::MAX_UNITS);
        assert_eq!(StockDelta::parse(-Stock::MAX_UNITS).unwrap().get(), -Stock::MAX_UNITS);
        for bad in [-Stock::MAX_UNITS - 1, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(StockDelta::parse(bad).unwrap_err().code, "out_of_range", "{bad}");
        }
    }

    #[test]
    fn names_are_at_most_200_characters_not_bytes() {
        assert!(ProductName::parse(&"n".repeat(200)).is_ok());
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(ProductName::parse(&"n".repeat(201)).unwrap_err().code, "too_long");
        assert!(ProductName::parse(&format!("  {}  ", "n".repeat(200))).is_ok());
        assert_eq!(ProductName::parse("Mug\u{7}").unwrap_err().code, "invalid_characters");
        assert_eq!(ProductName::parse("two\nlines").unwrap_err().code, "invalid_characters");
        assert_eq!(ProductName::parse(" \t ").unwrap_err().code, "required");
    }

    #[test]
    fn descriptions_are_at_most_2000_characters_not_bytes() {
        assert!(Description::parse(&"d".repeat(2000)).is_ok());
        assert!(Description::parse(&"é".repeat(2000)).is_ok());
        assert_eq!(Description::parse(&"d".repeat(2001)).unwrap_err().code, "too_long");
        assert_eq!(Description::parse("tab\there\r\n").unwrap().as_str(), "tab\there\r\n");
        assert_eq!(Description::parse("bell\u{7}").unwrap_err().code, "invalid_characters");
    }

    #[test]
    fn reasons_are_trimmed_and_at_most_500_characters() {
        assert_eq!(AdjustmentReason::parse("  stocktake \n").unwrap().as_str(), "stocktake");
        assert!(AdjustmentReason::parse(&"r".repeat(500)).is_ok());
        assert!(AdjustmentReason::parse(&format!(" {} ", "ü".repeat(500))).is_ok());
        assert_eq!(AdjustmentReason::parse(&"r".repeat(501)).unwrap_err().code, "too_long");
        assert_eq!(AdjustmentReason::parse("line\none").unwrap().as_str(), "line\none");
        assert_eq!(AdjustmentReason::parse("esc\u{1b}").unwrap_err().code, "invalid_characters");
    }

    #[test]
    fn statuses_parse_their_exact_names_only() {
        for status in [ProductStatus::Active, ProductStatus::Archived] {
            assert_eq!(ProductStatus::parse(status.as_str()), Ok(status));
        }
        for bad in ["Active", "ARCHIVED", "", " active", "deleted"] {
            let error = ProductStatus::parse(bad).unwrap_err();
            assert_eq!(error.code, "invalid_value", "{bad:?}");
            // The caller says where: here a query parameter.
            assert_eq!(error.at("status").path, vec!["status".to_owned()]);
        }
    }

    #[test]
    fn every_field_of_an_update_counts_and_is_listed_in_order() {
        let all = ProductUpdate {
            name: Some(ProductName::parse("Mug").unwrap()),
            description: Some(Some(Description::parse("Blue").unwrap())),
            unit_price: Some(Money::parse(100, "EUR", &eur()).unwrap()),
            status: Some(ProductStatus::Active),
        };
        assert_eq!(all.changed_fields(), vec!["name", "description", "unit_price", "status"]);
        assert!(!ProductUpdate { name: all.name.clone(), ..Default::default() }.is_empty());
        assert!(!ProductUpdate { description: Some(None), ..Default::default() }.is_empty());
        assert!(!ProductUpdate { unit_price: all.unit_price.clone(), ..Default::default() }.is_empty());
        assert!(!ProductUpdate { status: all.status, ..Default::default() }.is_empty());
        assert!(ProductUpdate::default().changed_fields().is_empty());
    }

    #[test]
    fn a_cursor_carries_the_sort_key_value_and_the_id() {
        let created_at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        let product = Product {
            id: ProductId::new(),
            sku: Sku::parse("MUG-1").unwrap(),
            name: ProductName::parse("Mug").unwrap(),
            description: None,
            unit_price: Money::parse(1250, "EUR", &eur()).unwrap(),
            stock: Stock::new(3, 1).unwrap(),
            status: ProductStatus::Active,
            version: 1,
            created_at,
            updated_at: created_at,
        };
        assert_eq!(
            ProductCursor::of(&product, ProductSortKey::CreatedAt),
            ProductCursor::CreatedAt(created_at, product.id)
        );
        assert_eq!(
            ProductCursor::of(&product, ProductSortKey::Name),
            ProductCursor::Name("Mug".to_owned(), product.id)
        );
        assert_eq!(ProductCursor::of(&product, ProductSortKey::Price), ProductCursor::Price(1250, product.id));
        assert_eq!(ProductSortKey::default(), ProductSortKey::CreatedAt);
    }
}
