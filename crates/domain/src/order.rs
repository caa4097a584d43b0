//! Orders and their money (docs/api.md#orders): lines with snapshotted prices, totals with tax rounded
//! half-to-even, the status transition table, and the ownership rules.
//!
//! Rules owned here:
//! - an order has 1–50 lines, each for a distinct product, quantity 1–1000;
//! - `line_total = unit_price × quantity`, `subtotal = Σ line_total`,
//!   `tax = round_half_even(subtotal × rate_bps / 10000)`, `total = subtotal + tax`;
//! - the transition table below, and who may make each move;
//! - a customer sees only their own orders; someone else's is "not found";
//! - the units one customer's pending orders hold together are capped ([`ReservationCap`]).

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::actor::Actor;
use crate::pagination::{PageLimit, SortDirection};
use crate::product::{Currency, Money, ProductId};
use crate::user::{Role, UserId};
use crate::validation::{FieldViolation, InvalidValue, Violations};

crate::id::uuid_id!(
    /// An order's id.
    OrderId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
    Shipped,
    Delivered,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw).ok_or_else(|| {
            InvalidValue::new("invalid_value", "must be one of: pending, confirmed, cancelled, shipped, delivered")
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Units of one product in one order: 1–1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub const MAX: i64 = 1000;

    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(InvalidValue::new("out_of_range", "must be between 1 and 1000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// One requested line, before stock is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRequest {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// The lines of an order to place: 1–50, no product twice. Violations point into `/items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest(Vec<LineRequest>);

impl OrderRequest {
    pub const MAX_LINES: usize = 50;

    pub fn new(lines: Vec<LineRequest>) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        if lines.is_empty() || lines.len() > Self::MAX_LINES {
            violations.push(FieldViolation::new("items", "invalid_length", "must have between 1 and 50 lines"));
        }
        let mut seen = HashSet::new();
        for (index, line) in lines.iter().enumerate() {
            if !seen.insert(line.product_id) {
                violations.push(
                    FieldViolation::new("product_id", "duplicate", "appears on another line; order each product once")
                        .within(&index.to_string())
                        .within("items"),
                );
            }
        }
        if violations.is_empty() { Ok(Self(lines)) } else { Err(violations.into_vec()) }
    }

    pub fn lines(&self) -> &[LineRequest] {
        &self.0
    }

    /// Units asked for, over every line (at most 50 × 1000).
    pub fn units(&self) -> i64 {
        self.0.iter().map(|line| line.quantity.get()).sum()
    }
}

/// How many units one customer's pending orders may hold at once (docs/api.md#orders): one customer must not
/// be able to hold the whole stock in orders they never pay for (OWASP API6, unrestricted
/// business flow). It counts units, whatever the products, because what is cornered is stock.
/// It applies to every order placed by anyone, admins included: an admin's pending order holds
/// stock exactly as a customer's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationCap(Option<i64>);

impl ReservationCap {
    /// No cap: `ORDERLY_MAX_RESERVED_UNITS_PER_CUSTOMER=0`.
    pub const UNLIMITED: Self = Self(None);

    /// At most `units` units held by one customer's pending orders; 0 means no cap.
    pub fn units(units: u32) -> Self {
        Self((units > 0).then_some(i64::from(units)))
    }

    /// The cap in units; `None` when there is none.
    pub fn limit(self) -> Option<i64> {
        self.0
    }

    /// Whether an order for `requested` units fits beside the `held` units the customer's
    /// pending orders hold already: `held + requested ≤ cap`. `held` must be read under a lock
    /// that keeps the customer's other placements out until this one commits, or two orders can
    /// each fit alone and not together.
    pub fn admit(self, held: i64, requested: i64) -> Result<(), ReservationLimitExceeded> {
        match self.0 {
            Some(cap) if held.saturating_add(requested) > cap => Err(ReservationLimitExceeded { cap, held, requested }),
            _ => Ok(()),
        }
    }
}

/// An order refused by the [`ReservationCap`] (→ 409 `reservation_limit_exceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLimitExceeded {
    /// Units one customer may hold in pending orders.
    pub cap: i64,
    /// Units the customer's pending orders held when the order was refused.
    pub held: i64,
    /// Units the refused order asked for.
    pub requested: i64,
}

impl ReservationLimitExceeded {
    /// Units the customer may still reserve now (0 when the cap was lowered below what they hold).
    pub fn remaining(&self) -> i64 {
        (self.cap - self.held).max(0)
    }
}

/// A product's sellable state at the moment of placement, as read inside the placing
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
}

/// An order line with its price snapshotted at placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
}

/// A tax rate in basis points: 0–10000 (0 %–100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaxRate(u32);

impl TaxRate {
    pub fn from_basis_points(bps: u32) -> Option<Self> {
        (bps <= 10_000).then_some(Self(bps))
    }

    pub fn basis_points(self) -> u32 {
        self.0
    }

    /// `amount × rate / 10000`, rounded half-to-even to the minor unit ("banker's rounding",
    /// which does not bias sums of many rounded taxes upwards).
    pub fn tax_on(self, amount: i64) -> i64 {
        let numerator = i128::from(amount) * i128::from(self.0);
        let quotient = numerator / 10_000;
        let remainder = numerator % 10_000;
        let rounded = match (remainder * 2).cmp(&10_000) {
            std::cmp::Ordering::Less => quotient,
            std::cmp::Ordering::Greater => quotient + 1,
            std::cmp::Ordering::Equal => quotient + (quotient % 2),
        };
        // `amount ≤ Money::MAX_AMOUNT × 1000 × 50`, so the tax fits easily.
        i64::try_from(rounded).unwrap_or(i64::MAX)
    }
}

/// Subtotal, tax and total of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
}

/// Prices the lines: the domain's one definition of an order's money.
pub fn price_lines(
    requested: &[(LineRequest, ProductSnapshot)],
    tax: TaxRate,
    currency: &Currency,
) -> (Vec<OrderLine>, Totals) {
    let lines: Vec<OrderLine> = requested
        .iter()
        .map(|(line, product)| OrderLine {
            product_id: line.product_id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            quantity: line.quantity,
            unit_price: product.unit_price.clone(),
            line_total: Money::from_stored(product.unit_price.amount() * line.quantity.get(), currency.clone()),
        })
        .collect();
    let subtotal: i64 = lines.iter().map(|line| line.line_total.amount()).sum();
    let tax_amount = tax.tax_on(subtotal);
    let totals = Totals {
        subtotal: Money::from_stored(subtotal, currency.clone()),
        tax: Money::from_stored(tax_amount, currency.clone()),
        total: Money::from_stored(subtotal + tax_amount, currency.clone()),
    };
    (lines, totals)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
    pub invoice_number: Option<crate::invoice::InvoiceNumber>,
    pub version: i64,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the reservation lapses; `None` once the order has left `pending`.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Order {
    /// Ownership (docs/api.md#authentication-and-authorisation): admins see every order, customers only their own.
    pub fn visible_to(&self, actor: Actor) -> bool {
        actor.may_access_owned_by(self.customer_id)
    }
}

/// What happens to stock (and invoices) when an order moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionEffect {
    /// pending → confirmed: `on_hand −= q`, `reserved −= q`, and an invoice is issued.
    CommitReservationAndInvoice,
    /// pending → cancelled: `reserved −= q`.
    ReleaseReservation,
    /// confirmed → shipped, shipped → delivered.
    None,
}

/// Why a transition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionRefusal {
    /// Not a move in the table (→ 409 `invalid_transition`).
    NotInTable,
    /// A move in the table that this caller's role may not make (→ 403 `forbidden`).
    NotPermitted,
}

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    User(Actor),
    /// The reservation-expiry sweep.
    System,
}

/// The transition table of docs/api.md#orders.
pub fn transition(from: OrderStatus, to: OrderStatus, mover: Mover) -> Result<TransitionEffect, TransitionRefusal> {
    use OrderStatus::*;
    let (effect, admin_only) = match (from, to) {
        (Pending, Confirmed) => (TransitionEffect::CommitReservationAndInvoice, true),
        (Pending, Cancelled) => (TransitionEffect::ReleaseReservation, false),
        (Confirmed, Shipped) | (Shipped, Delivered) => (TransitionEffect::None, true),
        _ => return Err(TransitionRefusal::NotInTable),
    };
    let permitted = match mover {
        Mover::System => to == Cancelled,
        Mover::User(actor) => actor.role == Role::Admin || !admin_only,
    };
    if permitted { Ok(effect) } else { Err(TransitionRefusal::NotPermitted) }
}

/// Why an order was cancelled, recorded in its `order.cancelled` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Customer,
    Admin,
    /// The reservation TTL lapsed.
    Expired,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Customer => "customer",
            CancelReason::Admin => "admin",
            CancelReason::Expired => "expired",
        }
    }
}

/// Sort orders of `GET /v1/orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderSort(pub SortDirection);

impl Default for OrderSort {
    /// `-placed_at`: newest first.
    fn default() -> Self {
        Self(SortDirection::Descending)
    }
}

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor {
    pub placed_at: DateTime<Utc>,
    pub id: OrderId,
}

impl OrderCursor {
    /// The position of `order` in a listing.
    pub fn of(order: &Order) -> Self {
        Self { placed_at: order.placed_at, id: order.id }
    }
}

/// `GET /v1/orders`: filters, sort, position. `customer_id` is forced to the caller for
/// customers by the service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub customer_id: Option<UserId>,
    pub sort: OrderSort,
    pub after: Option<OrderCursor>,
    pub limit: PageLimit,
}

/// A line that could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Index of the line in the request (for the `/items/N/quantity` pointer).
    pub line: usize,
    pub product_id: ProductId,
    pub requested: i64,
    pub available: i64,
}

/// Why an order could not be placed. Nothing was reserved: an order reserves all its lines or
/// none.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Every line that could not be reserved, in request order.
    #[error("{} line(s) cannot be reserved", .0.len())]
    InsufficientStock(Vec<Shortfall>),
    /// The customer's pending orders would hold more units than one customer may.
    #[error("{} unit(s) asked for, {} held, at most {} may be held", .0.requested, .0.held, .0.cap)]
    ReservationLimitExceeded(ReservationLimitExceeded),
    /// Indexes of lines whose product does not exist or is archived, in request order.
    #[error("{} line(s) name products that cannot be ordered", .0.len())]
    UnavailableProducts(Vec<usize>),
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

impl PlaceOrderError {
    /// The refusal of an order some of whose lines could not be reserved, or `None` when every
    /// line was. A line naming a product that cannot be ordered is a defect of the request
    /// (422), which no amount of stock would cure: it outranks shortfalls (409). Each list is
    /// reported whole, in request order, whatever order the lines were tried in.
    pub fn for_unreserved_lines(mut unavailable: Vec<usize>, mut short: Vec<Shortfall>) -> Option<Self> {
        if !unavailable.is_empty() {
            unavailable.sort_unstable();
            return Some(Self::UnavailableProducts(unavailable));
        }
        if !short.is_empty() {
            short.sort_by_key(|shortfall| shortfall.line);
            return Some(Self::InsufficientStock(short));
        }
        None
    }
}

impl Order {
    /// The event placing this order records (`order.placed`): what each line reserved and the
    /// total, at the moment of placement.
    pub fn placed_event(&self) -> crate::event::DomainEvent {
        crate::event::DomainEvent::OrderPlaced {
            order_id: self.id,
            customer_id: self.customer_id,
            lines: self.items.iter().map(|line| (line.product_id, line.quantity.get())).collect(),
            total: self.total.amount(),
            occurred_at: self.placed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn admin() -> Actor {
        Actor { user_id: UserId::new(), role: Role::Admin }
    }

    fn customer() -> Actor {
        Actor { user_id: UserId::new(), role: Role::Customer }
    }

    #[test]
    fn tax_rounds_half_to_even() {
        let rate = TaxRate::from_basis_points(1000).unwrap(); // 10 %
        assert_eq!(rate.tax_on(1234), 123); // 123.4 → 123
        assert_eq!(rate.tax_on(1236), 124); // 123.6 → 124
        assert_eq!(rate.tax_on(1225), 122); // 122.5 → 122 (even)
        assert_eq!(rate.tax_on(1235), 124); // 123.5 → 124 (even)
        assert_eq!(TaxRate::default().tax_on(999), 0);
        assert!(TaxRate::from_basis_points(10_001).is_none());
    }

    #[test]
    fn lines_are_priced_from_the_snapshot() {
        let mug = ProductSnapshot {
            product_id: ProductId::new(),
            sku: "MUG".into(),
            name: "Mug".into(),
            unit_price: Money::from_stored(1250, eur()),
        };
        let line = LineRequest { product_id: mug.product_id, quantity: Quantity::parse(3).unwrap() };
        let (lines, totals) = price_lines(&[(line, mug)], TaxRate::from_basis_points(2000).unwrap(), &eur());
        assert_eq!(lines[0].line_total.amount(), 3750);
        assert_eq!((totals.subtotal.amount(), totals.tax.amount(), totals.total.amount()), (3750, 750, 4500));
    }

    #[test]
    fn requests_need_one_to_fifty_distinct_lines() {
        let line = |id| LineRequest { product_id: id, quantity: Quantity::parse(1).unwrap() };
        assert_eq!(OrderRequest::new(vec![]).unwrap_err()[0].path, vec!["items"]);
        let id = ProductId::new();
        let duplicate = OrderRequest::new(vec![line(id), line(ProductId::new()), line(id)]).unwrap_err();
        assert_eq!(duplicate[0].path, vec!["items", "2", "product_id"]);
        assert!(OrderRequest::new((0..51).map(|_| line(ProductId::new())).collect()).is_err());
        assert!(OrderRequest::new((0..50).map(|_| line(ProductId::new())).collect()).is_ok());
        assert_eq!(Quantity::parse(0).unwrap_err().code, "out_of_range");
        assert_eq!(Quantity::parse(1001).unwrap_err().code, "out_of_range");
    }

    #[test]
    fn the_transition_table() {
        use OrderStatus::*;
        let (a, c) = (Mover::User(admin()), Mover::User(customer()));
        assert_eq!(transition(Pending, Confirmed, a), Ok(TransitionEffect::CommitReservationAndInvoice));
        assert_eq!(transition(Pending, Confirmed, c), Err(TransitionRefusal::NotPermitted));
        assert_eq!(transition(Pending, Cancelled, c), Ok(TransitionEffect::ReleaseReservation));
        assert_eq!(transition(Pending, Cancelled, Mover::System), Ok(TransitionEffect::ReleaseReservation));
        assert_eq!(transition(Pending, Confirmed, Mover::System), Err(TransitionRefusal::NotPermitted));
        assert_eq!(transition(Confirmed, Shipped, a), Ok(TransitionEffect::None));
        assert_eq!(transition(Shipped, Delivered, a), Ok(TransitionEffect::None));
        assert_eq!(transition(Confirmed, Shipped, c), Err(TransitionRefusal::NotPermitted));
        for (from, to) in
            [(Confirmed, Cancelled), (Cancelled, Pending), (Delivered, Shipped), (Pending, Shipped), (Pending, Pending)]
        {
            assert_eq!(transition(from, to, a), Err(TransitionRefusal::NotInTable), "{from} → {to}");
        }
    }

    /// A small deterministic generator (SplitMix64), so the property loops need no dependency
    /// and fail reproducibly.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform-ish in `low..=high`.
        fn between(&mut self, low: i64, high: i64) -> i64 {
            let span = u64::try_from(high - low).unwrap() + 1;
            low + i64::try_from(self.next() % span).unwrap()
        }
    }

    /// Reference rounding, written differently from `tax_on`: of the two integers around
    /// `amount × bps / 10000`, the nearer; on an exact tie, the even one.
    fn reference_tax(amount: i64, bps: u32) -> i64 {
        let exact = i128::from(amount) * i128::from(bps); // the tax in 1/10000 of a minor unit
        let below = exact.div_euclid(10_000);
        let above = below + 1;
        let to_below = exact - below * 10_000;
        let to_above = above * 10_000 - exact;
        let nearer = if to_below < to_above {
            below
        } else if to_above < to_below {
            above
        } else if below % 2 == 0 {
            below
        } else {
            above
        };
        i64::try_from(nearer).unwrap()
    }

    /// The largest subtotal an order can reach: 50 lines of 1000 units at the maximum price.
    const MAX_SUBTOTAL: i64 = Money::MAX_AMOUNT * 1000 * 50;

    #[test]
    fn tax_matches_the_reference_rounding_over_many_amounts_and_rates() {
        let mut rng = Rng(0x0bde_11a5);
        let mut ties = 0;
        let mut check = |amount: i64, bps: u32| {
            let expected = reference_tax(amount, bps);
            let actual = TaxRate::from_basis_points(bps).unwrap().tax_on(amount);
            assert_eq!(actual, expected, "{amount} × {bps} bps");
            if (i128::from(amount) * i128::from(bps)) % 10_000 == 5_000 {
                ties += 1;
                assert_eq!(actual % 2, 0, "a tie must round to even: {amount} × {bps} bps");
            }
        };
        for _ in 0..20_000 {
            let bps = u32::try_from(rng.between(0, 10_000)).unwrap();
            let amount = match rng.between(0, 2) {
                0 => rng.between(0, 10_000),
                1 => rng.between(0, Money::MAX_AMOUNT),
                _ => rng.between(0, MAX_SUBTOTAL),
            };
            check(amount, bps);
        }
        // Exact halves, by construction: amount × bps ≡ 5000 (mod 10000).
        for _ in 0..5_000 {
            let k = rng.between(0, 1_000_000_000);
            check(2 * k + 1, 5_000); // (2k+1)/2
            check(4 * k + 2, 2_500); // (4k+2)/4
            check(10_000 * k + 5_000, 1); // k + ½
            check(8 * k + 4, 1_250); // (8k+4)/8
            check(20 * k + 10, 500); // (20k+10)/20
        }
        // Edges: nothing, everything, the whole rate.
        for bps in [0, 1, 4_999, 5_000, 5_001, 9_999, 10_000] {
            for amount in [0, 1, 2, 3, 9_999, 10_000, 10_001, Money::MAX_AMOUNT, MAX_SUBTOTAL] {
                check(amount, bps);
            }
        }
        assert!(ties >= 25_000, "only {ties} ties were exercised");
        assert_eq!(TaxRate::from_basis_points(10_000).unwrap().tax_on(MAX_SUBTOTAL), MAX_SUBTOTAL);
    }

    #[test]
    fn ties_round_to_the_even_neighbour_both_ways() {
        let half = TaxRate::from_basis_points(5_000).unwrap(); // 50 %
        assert_eq!([1, 3, 5, 7, 9].map(|a| half.tax_on(a)), [0, 2, 2, 4, 4]); // 0.5 1.5 2.5 3.5 4.5
        let one_bp = TaxRate::from_basis_points(1).unwrap();
        assert_eq!(one_bp.tax_on(5_000), 0); // 0.5
        assert_eq!(one_bp.tax_on(15_000), 2); // 1.5
        assert_eq!(one_bp.tax_on(4_999), 0);
        assert_eq!(one_bp.tax_on(5_001), 1);
    }

    #[test]
    fn order_totals_are_the_sum_of_line_totals_plus_the_rounded_tax() {
        let mut rng = Rng(0x0707_7a15);
        for round in 0..2_000 {
            let count = usize::try_from(rng.between(1, 50)).unwrap();
            let bps = u32::try_from(rng.between(0, 10_000)).unwrap();
            let requested: Vec<(LineRequest, ProductSnapshot)> = (0..count)
                .map(|index| {
                    let product = ProductSnapshot {
                        product_id: ProductId::new(),
                        sku: format!("SKU-{index}"),
                        name: format!("Product {index}"),
                        unit_price: Money::from_stored(
                            if round % 10 == 0 { rng.between(0, Money::MAX_AMOUNT) } else { rng.between(0, 100_000) },
                            eur(),
                        ),
                    };
                    let quantity = Quantity::parse(rng.between(1, Quantity::MAX)).unwrap();
                    (LineRequest { product_id: product.product_id, quantity }, product)
                })
                .collect();

            let (lines, totals) = price_lines(&requested, TaxRate::from_basis_points(bps).unwrap(), &eur());

            assert_eq!(lines.len(), requested.len());
            let mut sum = 0;
            for (line, (request, product)) in lines.iter().zip(&requested) {
                assert_eq!(line.product_id, request.product_id);
                assert_eq!(line.quantity, request.quantity);
                assert_eq!(
                    (&line.sku, &line.name, &line.unit_price),
                    (&product.sku, &product.name, &product.unit_price)
                );
                assert_eq!(line.line_total.amount(), product.unit_price.amount() * request.quantity.get());
                assert_eq!(line.line_total.currency(), &eur());
                sum += line.line_total.amount();
            }
            assert_eq!(totals.subtotal.amount(), sum);
            assert_eq!(totals.tax.amount(), reference_tax(sum, bps), "{sum} × {bps} bps");
            assert_eq!(totals.total.amount(), sum + totals.tax.amount());
            for money in [&totals.subtotal, &totals.tax, &totals.total] {
                assert_eq!(money.currency(), &eur());
            }
        }
    }

    /// docs/api.md#orders, written out: who may make each move of the table, and its effect.
    fn expected_transition(
        from: OrderStatus,
        to: OrderStatus,
        mover: &str,
    ) -> Result<TransitionEffect, TransitionRefusal> {
        use OrderStatus::*;
        let (effect, movers): (_, &[&str]) = match (from, to) {
            (Pending, Confirmed) => (TransitionEffect::CommitReservationAndInvoice, &["admin"]),
            (Pending, Cancelled) => (TransitionEffect::ReleaseReservation, &["admin", "customer", "system"]),
            (Confirmed, Shipped) => (TransitionEffect::None, &["admin"]),
            (Shipped, Delivered) => (TransitionEffect::None, &["admin"]),
            _ => return Err(TransitionRefusal::NotInTable),
        };
        if movers.contains(&mover) { Ok(effect) } else { Err(TransitionRefusal::NotPermitted) }
    }

    #[test]
    fn every_pair_and_mover_follows_the_table_exactly() {
        let movers =
            [("admin", Mover::User(admin())), ("customer", Mover::User(customer())), ("system", Mover::System)];
        let mut allowed = 0;
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                for (label, mover) in movers {
                    let expected = expected_transition(from, to, label);
                    assert_eq!(transition(from, to, mover), expected, "{label}: {from} → {to}");
                    allowed += usize::from(expected.is_ok());
                }
            }
        }
        // 4 moves for the admin, 1 for the customer, 1 for the sweep.
        assert_eq!(allowed, 6);
    }

    #[test]
    fn owners_and_admins_see_an_order_other_customers_do_not() {
        let owner = customer();
        let placed_at = DateTime::parse_from_rfc3339("2026-11-23T18:04:05Z").unwrap().with_timezone(&Utc);
        let order = Order {
            id: OrderId::new(),
            customer_id: owner.user_id,
            status: OrderStatus::Pending,
            items: Vec::new(),
            subtotal: Money::from_stored(0, eur()),
            tax: Money::from_stored(0, eur()),
            total: Money::from_stored(0, eur()),
            invoice_number: None,
            version: 1,
            placed_at,
            updated_at: placed_at,
            expires_at: None,
        };
        assert!(order.visible_to(owner));
        assert!(order.visible_to(admin()));
        assert!(!order.visible_to(customer()));
        // An admin-role caller sees it whoever they are; a customer-role caller only by id.
        assert!(!order.visible_to(Actor { user_id: UserId::new(), role: Role::Customer }));
        assert!(order.visible_to(Actor { user_id: owner.user_id, role: Role::Admin }));
    }

    #[test]
    fn statuses_and_reasons_have_their_wire_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(
            OrderStatus::ALL.map(OrderStatus::as_str),
            ["pending", "confirmed", "cancelled", "shipped", "delivered"]
        );
        for bad in ["", "Pending", "PENDING", "canceled", "paid"] {
            assert_eq!(OrderStatus::parse(bad).unwrap_err().code, "invalid_value", "{bad}");
        }
        assert_eq!(
            [CancelReason::Customer, CancelReason::Admin, CancelReason::Expired].map(CancelReason::as_str),
            ["customer", "admin", "expired"]
        );
    }

    #[test]
    fn quantities_and_rates_have_inclusive_bounds() {
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(1000).map(Quantity::get), Ok(1000));
        assert!(Quantity::parse(-1).is_err());
        assert_eq!(TaxRate::from_basis_points(10_000).map(TaxRate::basis_points), Some(10_000));
        assert_eq!(TaxRate::from_basis_points(0).map(TaxRate::basis_points), Some(0));
        assert_eq!(TaxRate::default().basis_points(), 0);
    }

    #[test]
    fn the_reservation_cap_admits_up_to_the_cap_and_not_a_unit_more() {
        let cap = ReservationCap::units(1000);
        assert_eq!(cap.limit(), Some(1000));
        assert_eq!(cap.admit(0, 1000), Ok(()));
        assert_eq!(cap.admit(999, 1), Ok(()));
        assert_eq!(cap.admit(400, 600), Ok(()));
        let refused = cap.admit(400, 601).unwrap_err();
        assert_eq!(refused, ReservationLimitExceeded { cap: 1000, held: 400, requested: 601 });
        assert_eq!(refused.remaining(), 600);
        assert_eq!(cap.admit(1000, 1).unwrap_err().remaining(), 0);
        // One order alone can be larger than the cap (50 lines × 1000 units).
        assert_eq!(cap.admit(0, 50_000).unwrap_err().remaining(), 1000);
    }

    #[test]
    fn a_cap_lowered_below_what_is_held_leaves_no_room_but_says_so_in_numbers() {
        let refused = ReservationCap::units(10).admit(25, 1).unwrap_err();
        assert_eq!((refused.cap, refused.held, refused.requested, refused.remaining()), (10, 25, 1, 0));
    }

    #[test]
    fn a_zero_cap_is_no_cap() {
        assert_eq!(ReservationCap::units(0), ReservationCap::UNLIMITED);
        assert_eq!(ReservationCap::UNLIMITED.limit(), None);
        assert_eq!(ReservationCap::UNLIMITED.admit(i64::MAX, 50_000), Ok(()));
        assert_eq!(ReservationCap::units(1).admit(0, 1), Ok(()));
        assert!(ReservationCap::units(1).admit(0, 2).is_err());
    }

    #[test]
    fn unavailable_products_outrank_shortfalls_and_each_list_is_in_request_order() {
        let short = |line| Shortfall { line, product_id: ProductId::new(), requested: 2, available: 1 };
        assert!(PlaceOrderError::for_unreserved_lines(Vec::new(), Vec::new()).is_none());
        let refusal = PlaceOrderError::for_unreserved_lines(vec![3, 1], vec![short(2)]);
        assert!(
            matches!(&refusal, Some(PlaceOrderError::UnavailableProducts(lines)) if *lines == [1, 3]),
            "{refusal:?}"
        );
        let (second, first) = (short(4), short(0));
        let refusal = PlaceOrderError::for_unreserved_lines(Vec::new(), vec![second, first]);
        assert!(
            matches!(&refusal, Some(PlaceOrderError::InsufficientStock(lines)) if *lines == [first, second]),
            "{refusal:?}"
        );
    }

    #[test]
    fn the_placed_event_names_what_each_line_reserved_and_the_total() {
        let (mug, tea) = (ProductId::new(), ProductId::new());
        let snapshot = |product_id, unit_price| ProductSnapshot {
            product_id,
            sku: "SKU".to_owned(),
            name: "Item".to_owned(),
            unit_price: Money::from_stored(unit_price, eur()),
        };
        let line = |product_id, quantity| LineRequest { product_id, quantity: Quantity::parse(quantity).unwrap() };
        let priced = [(line(mug, 2), snapshot(mug, 500)), (line(tea, 1), snapshot(tea, 250))];
        let (items, totals) = price_lines(&priced, TaxRate::from_basis_points(1000).unwrap(), &eur());
        let placed_at = Utc::now();
        let order = Order {
            id: OrderId::new(),
            customer_id: UserId::new(),
            status: OrderStatus::Pending,
            items,
            subtotal: totals.subtotal,
            tax: totals.tax,
            total: totals.total.clone(),
            invoice_number: None,
            version: 1,
            placed_at,
            updated_at: placed_at,
            expires_at: Some(placed_at),
        };
        assert_eq!(
            order.placed_event(),
            crate::event::DomainEvent::OrderPlaced {
                order_id: order.id,
                customer_id: order.customer_id,
                lines: vec![(mug, 2), (tea, 1)],
                total: totals.total.amount(),
                occurred_at: placed_at,
            }
        );
    }

    #[test]
    fn an_order_counts_the_units_of_every_line() {
        let line =
            |quantity| LineRequest { product_id: ProductId::new(), quantity: Quantity::parse(quantity).unwrap() };
        assert_eq!(OrderRequest::new(vec![line(3), line(1000), line(1)]).unwrap().units(), 1004);
        assert_eq!(OrderRequest::new((0..50).map(|_| line(1000)).collect()).unwrap().units(), 50_000);
    }

    #[test]
    fn every_duplicate_line_is_reported_not_just_the_first() {
        let line = |id| LineRequest { product_id: id, quantity: Quantity::parse(1).unwrap() };
        let (a, b) = (ProductId::new(), ProductId::new());
        let errors = OrderRequest::new(vec![line(a), line(b), line(a), line(b), line(a)]).unwrap_err();
        let paths: Vec<Vec<String>> = errors.into_iter().map(|v| v.path).collect();
        assert_eq!(paths, [2, 3, 4].map(|i| vec!["items".to_owned(), i.to_string(), "product_id".to_owned()]).to_vec());
        let ok = OrderRequest::new(vec![line(a), line(b)]).unwrap();
        assert_eq!(ok.lines(), &[line(a), line(b)]);
    }
}
