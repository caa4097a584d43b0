//! Property-based tests (proptest) of the domain's money, transition table and stock rules
//! (issue 6). Each property states its expectation independently of the code under test — the
//! rounding in `i128` written another way, the transition table copied from the contract
//! (docs/api.md#orders), the stock counters kept in a plain model — so that a change to the
//! domain that breaks a rule makes a property fail with a shrunk counter-example.
//!
//! Run: `cargo test -p orderly-domain --test properties`. More cases:
//! `PROPTEST_CASES=10000 cargo test -p orderly-domain --test properties --release`.

// Test code: the model indexes products it created itself.
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use orderly_domain::actor::Actor;
use orderly_domain::order::{
    LineRequest, Mover, OrderStatus, ProductSnapshot, Quantity, TaxRate, TransitionEffect, TransitionRefusal,
    price_lines, transition,
};
use orderly_domain::product::{Currency, Money, ProductId, Stock, StockDelta};
use orderly_domain::user::{Role, UserId};

/// `cases` per property, unless `PROPTEST_CASES` asks for another number (a longer hunt).
/// A failing case is saved to `crates/domain/proptest-regressions/properties.txt` (relative to
/// the package, where `cargo test` runs) and replayed first on every later run; proptest's
/// default location needs a `lib.rs` beside the test, which an integration test lacks.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default(); // reads the PROPTEST_* environment variables
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { defaults.cases } else { cases },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/properties.txt"))),
        ..defaults
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Totals and rounding
// ---------------------------------------------------------------------------------------------

const BPS_DENOMINATOR: i128 = 10_000;
/// The largest subtotal an order can reach: 50 lines of 1000 units at the maximum price.
const MAX_SUBTOTAL: i64 = Money::MAX_AMOUNT * Quantity::MAX * 50;

/// `amount × bps / 10000` rounded half-to-even, computed as "round half up, then step back to
/// the even neighbour on an exact tie" — a different route from `TaxRate::tax_on`'s
/// quotient/remainder comparison, so a slip in either shows as a disagreement.
fn expected_tax(amount: i128, bps: i128) -> i128 {
    let exact = amount * bps; // in 1/10000 of a minor unit
    let half_up = (2 * exact + BPS_DENOMINATOR) / (2 * BPS_DENOMINATOR);
    let is_tie = exact % BPS_DENOMINATOR == BPS_DENOMINATOR / 2;
    if is_tie && half_up % 2 == 1 { half_up - 1 } else { half_up }
}

fn eur() -> Currency {
    match Currency::parse("EUR") {
        Ok(currency) => currency,
        Err(violation) => panic!("EUR is a currency: {violation:?}"),
    }
}

/// Unit prices: mostly everyday amounts, with the edges and the full range well represented.
fn unit_price() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0..=100_000i64,
        2 => 0..=Money::MAX_AMOUNT,
        1 => Just(Money::MAX_AMOUNT),
        1 => Just(0i64),
    ]
}

fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 1..=10i64, 2 => 1..=Quantity::MAX, 1 => Just(Quantity::MAX)]
}

fn basis_points() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..=10_000u32, 1 => Just(0u32), 1 => Just(10_000u32), 1 => Just(5_000u32)]
}

/// An amount in the whole range a subtotal can take, biased towards small ones.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 0..=100_000i64, 2 => 0..=Money::MAX_AMOUNT, 2 => 0..=MAX_SUBTOTAL, 1 => Just(MAX_SUBTOTAL)]
}

/// `(amount, bps)` whose product is an exact half of a minor unit: `amount × bps ≡ 5000
/// (mod 10000)`. Every divisor `b` of 5000 gives ties at `amount = (2m + 1) × 5000 / b`.
fn exact_tie() -> impl Strategy<Value = (i64, u32)> {
    (0..=3u32, 0..=4u32, 0..=1_000_000_000i64).prop_map(|(twos, fives, m)| {
        let bps = 2u32.pow(twos) * 5u32.pow(fives);
        let step = 5_000 / i64::from(bps);
        ((2 * m + 1) * step, bps)
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// `price_lines` against an independent i128 computation, over 1–50 lines anywhere in the
    /// allowed ranges (including 50 × 1000 units at `Money::MAX_AMOUNT`, so an overflow panic or a
    /// saturating/wrapping sum would show). Catches: a line total not `price × quantity`, a
    /// subtotal that drops or double-counts a line, tax computed on something other than the
    /// subtotal, the wrong rounding mode, a total that forgets the tax, a lost snapshot field.
    #[test]
    fn order_totals_follow_the_formula(
        lines in prop::collection::vec((unit_price(), quantity()), 1..=50),
        bps in basis_points(),
    ) {
        let currency = eur();
        let requested: Vec<(LineRequest, ProductSnapshot)> = lines
            .iter()
            .enumerate()
            .map(|(index, &(price, quantity))| {
                let product = ProductSnapshot {
                    product_id: ProductId::new(),
                    sku: format!("SKU-{index}"),
                    name: format!("Product {index}"),
                    unit_price: Money::from_stored(price, currency.clone()),
                };
                let quantity = Quantity::parse(quantity).unwrap();
                (LineRequest { product_id: product.product_id, quantity }, product)
            })
            .collect();
        let rate = TaxRate::from_basis_points(bps).unwrap();

        let (priced, totals) = price_lines(&requested, rate, &currency);

        prop_assert_eq!(priced.len(), lines.len());
        let mut subtotal: i128 = 0;
        for (line, ((request, product), &(price, quantity))) in priced.iter().zip(requested.iter().zip(&lines)) {
            let line_total = i128::from(price) * i128::from(quantity);
            prop_assert_eq!(i128::from(line.line_total.amount()), line_total);
            prop_assert_eq!(line.product_id, request.product_id);
            prop_assert_eq!(line.quantity.get(), quantity);
            prop_assert_eq!(&line.unit_price, &product.unit_price);
            prop_assert_eq!((&line.sku, &line.name), (&product.sku, &product.name));
            prop_assert_eq!(line.line_total.currency(), &currency);
            subtotal += line_total;
        }
        let tax = expected_tax(subtotal, i128::from(bps));
        prop_assert_eq!(i128::from(totals.subtotal.amount()), subtotal);
        prop_assert_eq!(i128::from(totals.tax.amount()), tax, "{} × {} bps", subtotal, bps);
        prop_assert_eq!(i128::from(totals.total.amount()), subtotal + tax);
        prop_assert!(subtotal + tax <= i128::from(i64::MAX), "the allowed ranges must fit an i64");
        for money in [&totals.subtotal, &totals.tax, &totals.total] {
            prop_assert_eq!(money.currency(), &currency);
        }
    }

    /// `tax_on` alone, over every amount a subtotal can take: equal to the reference, never
    /// negative, never more than the amount, and monotone in the amount (one more cent never
    /// lowers the tax). Catches truncation instead of rounding, half-up or half-away rounding
    /// (off by one on ties), a sign or scale error, and clamping at `i64::MAX`.
    #[test]
    fn tax_is_the_half_even_rounding_of_the_exact_product(amount in amount(), bps in basis_points()) {
        let rate = TaxRate::from_basis_points(bps).unwrap();
        let tax = rate.tax_on(amount);
        prop_assert_eq!(i128::from(tax), expected_tax(i128::from(amount), i128::from(bps)));
        prop_assert!((0..=amount).contains(&tax));
        if amount < MAX_SUBTOTAL {
            prop_assert!(rate.tax_on(amount + 1) >= tax);
        }
        // Never more than half a minor unit away from the exact value.
        let error = (i128::from(tax) * BPS_DENOMINATOR - i128::from(amount) * i128::from(bps)).abs();
        prop_assert!(error <= BPS_DENOMINATOR / 2);
    }

    /// Exact halves, by construction (random amounts almost never hit them): the tax is the
    /// even one of the two neighbours. Half-up rounding fails this on half the cases.
    #[test]
    fn exact_halves_round_to_the_even_neighbour((amount, bps) in exact_tie()) {
        prop_assume!(amount <= MAX_SUBTOTAL);
        let exact = i128::from(amount) * i128::from(bps);
        prop_assert_eq!(exact % BPS_DENOMINATOR, BPS_DENOMINATOR / 2, "the generator must make ties");
        let tax = TaxRate::from_basis_points(bps).unwrap().tax_on(amount);
        prop_assert_eq!(tax % 2, 0, "{} × {} bps is a tie and must round to even", amount, bps);
        prop_assert_eq!((i128::from(tax) * BPS_DENOMINATOR - exact).abs(), BPS_DENOMINATOR / 2);
    }

    /// Rates above 100 % do not exist; every rate up to it does and keeps its value.
    #[test]
    fn tax_rates_are_bounded_to_ten_thousand_basis_points(bps in any::<u32>()) {
        let rate = TaxRate::from_basis_points(bps);
        prop_assert_eq!(rate.is_some(), bps <= 10_000);
        prop_assert_eq!(rate.map(TaxRate::basis_points), (bps <= 10_000).then_some(bps));
    }
}

// ---------------------------------------------------------------------------------------------
// (b) The transition table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Customer,
    /// The reservation-expiry sweep.
    Server,
}

/// The transition table of docs/api.md#orders, copied by hand: the only moves that exist, who may make each, and
/// what it does to stock. "owner or admin" for pending → cancelled is `Admin` and `Customer`
/// here (ownership itself is `Order::visible_to`'s business); the server's only move is the
/// expiry cancellation. Anything not listed → 409 `invalid_transition`.
const CONTRACT_TABLE: [(OrderStatus, OrderStatus, &[Who], TransitionEffect); 4] = [
    (OrderStatus::Pending, OrderStatus::Confirmed, &[Who::Admin], TransitionEffect::CommitReservationAndInvoice),
    (
        OrderStatus::Pending,
        OrderStatus::Cancelled,
        &[Who::Admin, Who::Customer, Who::Server],
        TransitionEffect::ReleaseReservation,
    ),
    (OrderStatus::Confirmed, OrderStatus::Shipped, &[Who::Admin], TransitionEffect::None),
    (OrderStatus::Shipped, OrderStatus::Delivered, &[Who::Admin], TransitionEffect::None),
];

/// Terminal states (docs/invariants.md, docs/api.md#orders): nothing leaves them.
const TERMINAL: [OrderStatus; 2] = [OrderStatus::Cancelled, OrderStatus::Delivered];

fn contract(from: OrderStatus, to: OrderStatus, who: Who) -> Result<TransitionEffect, TransitionRefusal> {
    match CONTRACT_TABLE.iter().find(|(f, t, _, _)| (*f, *t) == (from, to)) {
        None => Err(TransitionRefusal::NotInTable),
        Some((_, _, movers, effect)) if movers.contains(&who) => Ok(*effect),
        Some(_) => Err(TransitionRefusal::NotPermitted),
    }
}

fn status() -> impl Strategy<Value = OrderStatus> {
    prop::sample::select(OrderStatus::ALL.to_vec())
}

fn who() -> impl Strategy<Value = Who> {
    prop::sample::select(vec![Who::Admin, Who::Customer, Who::Server])
}

/// A mover of the given kind with an arbitrary user id: the table must depend on the role
/// only, never on who exactly the user is.
fn mover(who: Who, id: u128) -> Mover {
    let user_id = UserId::from_uuid(uuid::Uuid::from_u128(id));
    match who {
        Who::Admin => Mover::User(Actor { user_id, role: Role::Admin }),
        Who::Customer => Mover::User(Actor { user_id, role: Role::Customer }),
        Who::Server => Mover::System,
    }
}

/// Every one of the 5 × 5 × 3 cases, exhaustively (small enough not to sample). Catches any
/// extra move (e.g. confirmed → cancelled), a missing one, a wrong permission (a customer
/// confirming, the sweep confirming) or a wrong effect (a cancellation that commits stock).
#[test]
fn every_move_and_mover_matches_the_contract_table() {
    let mut allowed = 0;
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            for who in [Who::Admin, Who::Customer, Who::Server] {
                let expected = contract(from, to, who);
                assert_eq!(transition(from, to, mover(who, 7)), expected, "{who:?}: {from} → {to}");
                allowed += usize::from(expected.is_ok());
            }
        }
    }
    assert_eq!(allowed, 6, "4 admin moves, 1 customer move, 1 sweep move");
}

proptest! {
    #![proptest_config(config(256))]

    /// Same table, with arbitrary user ids: the decision depends on the role alone.
    #[test]
    fn the_decision_depends_on_the_role_only(from in status(), to in status(), who in who(), id in any::<u128>()) {
        prop_assert_eq!(transition(from, to, mover(who, id)), contract(from, to, who));
    }

    /// Random walks from `pending`: whatever is attempted, an order never leaves a terminal
    /// state, never returns to `pending`, and its reservation is settled at most once —
    /// committed or released, never both, never twice. Catches a move out of `cancelled` or
    /// `delivered`, a cycle, or an effect on a non-pending order (a double release or
    /// commit would drive `reserved` negative in the database).
    #[test]
    fn no_sequence_of_allowed_moves_leaves_a_terminal_state(
        attempts in prop::collection::vec((status(), who(), any::<u128>()), 0..40),
    ) {
        let mut state = OrderStatus::Pending;
        let mut settlements = 0;
        let mut path = vec![state];
        for (to, who, id) in attempts {
            let result = transition(state, to, mover(who, id));
            if TERMINAL.contains(&state) {
                prop_assert!(result.is_err(), "{} → {} allowed out of a terminal state ({:?})", state, to, path);
            }
            if let Ok(effect) = result {
                prop_assert_ne!(to, OrderStatus::Pending, "nothing leads back to pending");
                if effect != TransitionEffect::None {
                    settlements += 1;
                    prop_assert_eq!(state, OrderStatus::Pending, "only a pending order holds a reservation");
                }
                state = to;
                path.push(state);
            }
        }
        prop_assert!(settlements <= 1, "the reservation was settled {} times: {:?}", settlements, path);
        prop_assert!(path.len() <= 4, "the longest path is pending → confirmed → shipped → delivered: {:?}", path);
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Stock invariants over random sequences of operations
// ---------------------------------------------------------------------------------------------
//
// The domain's stock value object is `Stock { on_hand, reserved }`: `Stock::new` enforces
// `0 ≤ reserved ≤ on_hand ≤ MAX_UNITS`, `Stock::adjusted` applies a `StockDelta`, and
// `transition` says what each order move does to stock (its `TransitionEffect`). The atomic
// statements that apply those effects live in the persistence adapter (docs/invariants.md); here
// they are applied through the domain's own constructors exactly as that table states them:
// place `reserved += q`, confirm `on_hand −= q, reserved −= q`, cancel `reserved −= q`, adjust
// `on_hand += delta` — every line of an order or none.
//
// Alongside runs a model that knows nothing of `Stock`: per product an `on_hand` integer, and the
// list of orders with their status. `reserved` in the model is *derived* — the sum of pending
// quantities — so comparing it with `Stock::reserved` after every step is the contract's
// "reserved always equals the sum of quantities of pending orders".

const PRODUCTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Lines as (product index, quantity); duplicates are merged away by the generator.
    Place(Vec<(usize, i64)>),
    /// `(order index modulo the orders placed so far, target, who)`.
    Move(usize, OrderStatus, Who),
    Adjust(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    let line = (0..PRODUCTS, prop_oneof![6 => 1..=8i64, 1 => 1..=Quantity::MAX]);
    let delta = prop_oneof![
        6 => -15..=15i64,
        1 => Just(Stock::MAX_UNITS),
        1 => Just(-Stock::MAX_UNITS),
        1 => Just(Stock::MAX_UNITS + 1),
        1 => any::<i64>(),
    ];
    let target = prop::sample::select(vec![
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Pending,
    ]);
    prop_oneof![
        3 => prop::collection::vec(line, 1..=PRODUCTS).prop_map(|lines| {
            let mut merged: BTreeMap<usize, i64> = BTreeMap::new();
            for (product, quantity) in lines {
                merged.entry(product).or_insert(quantity);
            }
            Op::Place(merged.into_iter().collect())
        }),
        3 => (any::<usize>(), target, who()).prop_map(|(order, to, who)| Op::Move(order, to, who)),
        2 => (0..PRODUCTS, delta).prop_map(|(product, delta)| Op::Adjust(product, delta)),
    ]
}

#[derive(Debug, Clone)]
struct ModelOrder {
    lines: Vec<(usize, i64)>,
    status: OrderStatus,
}

#[derive(Debug)]
struct Model {
    on_hand: [i64; PRODUCTS],
    orders: Vec<ModelOrder>,
}

impl Model {
    fn reserved(&self, product: usize) -> i64 {
        self.orders
            .iter()
            .filter(|order| order.status == OrderStatus::Pending)
            .flat_map(|order| &order.lines)
            .filter(|(p, _)| *p == product)
            .map(|(_, quantity)| quantity)
            .sum()
    }

    fn available(&self, product: usize) -> i64 {
        self.on_hand[product] - self.reserved(product)
    }
}

/// One order move's effect on one product's stock, through `Stock::new` (which refuses any
/// result breaking `0 ≤ reserved ≤ on_hand`).
fn settle(stock: Stock, effect: TransitionEffect, quantity: i64) -> Option<Stock> {
    match effect {
        TransitionEffect::CommitReservationAndInvoice => {
            Stock::new(stock.on_hand() - quantity, stock.reserved() - quantity).ok()
        }
        TransitionEffect::ReleaseReservation => Stock::new(stock.on_hand(), stock.reserved() - quantity).ok(),
        TransitionEffect::None => Some(stock),
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// After every operation of a random sequence, for every product: `0 ≤ reserved ≤ on_hand`,
    /// `available = on_hand − reserved`, `reserved` = Σ pending quantities, `on_hand` = the
    /// model's; a refused operation leaves every product's stock as it was, and the domain refuses
    /// exactly what the model refuses. Catches overselling (`Stock::new` accepting `reserved` beyond
    /// `on_hand`), an adjustment allowed below `reserved` or above `MAX_UNITS` (or a valid one
    /// refused), a move whose effect releases or commits a reservation twice or not at all, and a
    /// wrong `available`.
    #[test]
    fn stock_invariants_hold_over_random_operations(
        initial in prop::array::uniform3(prop_oneof![4 => 0..=20i64, 1 => 0..=Stock::MAX_UNITS]),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut stock: Vec<Stock> = initial.iter().map(|&on_hand| Stock::new(on_hand, 0).unwrap()).collect();
        let mut model = Model { on_hand: initial, orders: Vec::new() };

        for (step, op) in ops.into_iter().enumerate() {
            let before = stock.clone();
            let accepted = match &op {
                Op::Place(lines) => {
                    let expected = lines.iter().all(|&(product, quantity)| model.available(product) >= quantity);
                    // Reserve every line or none, each through `Stock::new`.
                    let mut next = stock.clone();
                    let mut all = true;
                    for &(product, quantity) in lines {
                        let quantity = Quantity::parse(quantity).unwrap().get();
                        // `Stock::new` alone refuses `reserved > on_hand`, i.e. overselling.
                        match Stock::new(next[product].on_hand(), next[product].reserved() + quantity) {
                            Ok(reserved) => next[product] = reserved,
                            Err(_) => all = false,
                        }
                    }
                    prop_assert_eq!(all, expected, "step {}: placing {:?}", step, lines);
                    if all {
                        stock = next;
                        model.orders.push(ModelOrder { lines: lines.clone(), status: OrderStatus::Pending });
                    }
                    all
                }
                Op::Move(pick, to, who) => {
                    if model.orders.is_empty() {
                        false
                    } else {
                        let index = pick % model.orders.len();
                        let order = model.orders[index].clone();
                        match transition(order.status, *to, mover(*who, 1)) {
                            Err(_) => false,
                            Ok(effect) => {
                                let mut next = stock.clone();
                                for &(product, quantity) in &order.lines {
                                    let settled = settle(next[product], effect, quantity);
                                    prop_assert!(settled.is_some(), "step {}: {:?} of {:?} broke the stock rule", step, effect, order);
                                    if let Some(settled) = settled {
                                        next[product] = settled;
                                    }
                                }
                                if effect == TransitionEffect::CommitReservationAndInvoice {
                                    for &(product, quantity) in &order.lines {
                                        model.on_hand[product] -= quantity;
                                    }
                                }
                                model.orders[index].status = *to;
                                stock = next;
                                true
                            }
                        }
                    }
                }
                Op::Adjust(product, delta) => {
                    let target = i128::from(model.on_hand[*product]) + i128::from(*delta);
                    let expected = *delta != 0
                        && delta.unsigned_abs() <= Stock::MAX_UNITS.unsigned_abs()
                        && target >= i128::from(model.reserved(*product))
                        && target <= i128::from(Stock::MAX_UNITS);
                    let result = StockDelta::parse(*delta)
                        .ok()
                        .and_then(|delta| stock[*product].adjusted(delta.get()).ok());
                    prop_assert_eq!(result.is_some(), expected, "step {}: adjusting {:?} by {}", step, stock[*product], delta);
                    if let Some(adjusted) = result {
                        stock[*product] = adjusted;
                        model.on_hand[*product] += delta;
                    }
                    result.is_some()
                }
            };
            if !accepted {
                prop_assert_eq!(&stock, &before, "step {}: a refused {:?} changed stock", step, op);
            }
            for (product, current) in stock.iter().enumerate() {
                prop_assert!(0 <= current.reserved() && current.reserved() <= current.on_hand(), "step {}: {:?}", step, current);
                prop_assert_eq!(current.available(), current.on_hand() - current.reserved());
                prop_assert_eq!(current.reserved(), model.reserved(product), "step {}: reserved ≠ Σ pending", step);
                prop_assert_eq!(current.on_hand(), model.on_hand[product], "step {}: on_hand drifted", step);
                prop_assert_eq!(current.available(), model.available(product));
            }
        }
    }

    /// `Stock::new` accepts exactly `0 ≤ reserved ≤ on_hand ≤ MAX_UNITS`, and `adjusted` is
    /// `new(on_hand + delta, reserved)` without overflow for any `i64` delta.
    #[test]
    fn stock_accepts_exactly_the_valid_counters(
        on_hand in prop_oneof![-5..=50i64, any::<i64>(), Just(Stock::MAX_UNITS), Just(Stock::MAX_UNITS + 1)],
        reserved in prop_oneof![-5..=50i64, any::<i64>()],
        delta in prop_oneof![-60..=60i64, any::<i64>(), Just(i64::MIN), Just(i64::MAX)],
    ) {
        let valid = |on_hand: i64, reserved: i64| 0 <= reserved && reserved <= on_hand && on_hand <= Stock::MAX_UNITS;
        let stock = Stock::new(on_hand, reserved);
        prop_assert_eq!(stock.is_ok(), valid(on_hand, reserved));
        if let Ok(stock) = stock {
            prop_assert_eq!((stock.on_hand(), stock.reserved(), stock.available()), (on_hand, reserved, on_hand - reserved));
            let target = on_hand.checked_add(delta);
            let adjusted = stock.adjusted(delta);
            prop_assert_eq!(adjusted.is_ok(), target.is_some_and(|target| valid(target, reserved)));
            if let (Ok(adjusted), Some(target)) = (adjusted, target) {
                prop_assert_eq!((adjusted.on_hand(), adjusted.reserved()), (target, reserved));
            }
        }
    }
}
