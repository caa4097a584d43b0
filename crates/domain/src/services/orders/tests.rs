//! The rules of `OrderService`, checked through mocked `OrderRepository` and
//! `InvoiceRepository`. A mock method without an expectation panics when called, so "the store
//! is not touched" holds by omission; where it is the point of a test it is spelled out with
//! `.never()`.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use mockall::predicate::eq;

use super::*;
use crate::event::DomainEvent;
use crate::order::OrderCursor;
use crate::order::{LineRequest, OrderSort, ReservationLimitExceeded, Shortfall};
use crate::order::{OrderLine, Quantity, TransitionEffect};
use crate::pagination::{PageLimit, SortDirection};
use crate::ports::{MockInvoiceRepository, MockOrderRepository};
use crate::product::ProductId;
use crate::services::fixtures::{
    actor, admin, customer, fixed_clock, invoice, invoice_number, now, order, order_in, order_line, order_policy,
    other_customer, product,
};
use crate::user::{User, UserId};

#[derive(Default)]
struct Ports {
    orders: MockOrderRepository,
    invoices: MockInvoiceRepository,
}

impl Ports {
    fn service(self) -> OrderService {
        self.service_with(order_policy())
    }

    fn service_with(self, policy: OrderPolicy) -> OrderService {
        OrderService::new(Arc::new(self.orders), Arc::new(self.invoices), fixed_clock(), policy)
    }

    /// The store finds `found` (by its id), once.
    fn expect_found(&mut self, found: &Order) {
        let returned = found.clone();
        self.orders.expect_find().with(eq(found.id)).times(1).returning(move |_| Ok(Some(returned.clone())));
    }

    /// The store knows no order `id`.
    fn expect_missing(&mut self, id: OrderId) {
        self.orders.expect_find().with(eq(id)).times(1).returning(|_| Ok(None));
    }

    /// The store answers `change` exactly with `outcome`, once.
    fn expect_change(&mut self, change: StatusChange, outcome: Result<Order, StatusChangeError>) {
        self.orders.expect_change_status().with(eq(change)).times(1).return_once(move |_| outcome);
    }
}

fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

fn is_store_down(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_))
}

// ---- place ----------------------------------------------------------------------------------

fn request(lines: &[(ProductId, i64)]) -> OrderRequest {
    OrderRequest::new(
        lines
            .iter()
            .map(|&(product_id, quantity)| LineRequest { product_id, quantity: Quantity::parse(quantity).unwrap() })
            .collect(),
    )
    .unwrap()
}

/// What the store hands back for an order it has just placed.
fn placed(new: &NewOrder) -> Order {
    let mug = product();
    let items: Vec<OrderLine> = new
        .request
        .lines()
        .iter()
        .map(|line| OrderLine { product_id: line.product_id, ..order_line(&mug, line.quantity.get()) })
        .collect();
    Order {
        id: new.id,
        customer_id: new.customer_id,
        items,
        placed_at: new.placed_at,
        updated_at: new.placed_at,
        expires_at: Some(new.expires_at),
        ..order(&customer())
    }
}

#[test]
fn place_sends_the_callers_lines_with_the_policys_tax_and_currency_the_clocks_time_and_the_ttl() {
    let ada = customer();
    let customer_id = ada.id;
    let lines = request(&[(ProductId::new(), 2), (ProductId::new(), 1000)]);
    // A policy unlike the shared fixture, so that constants in the service would be caught.
    let policy = OrderPolicy {
        currency: crate::product::Currency::parse("CHF").unwrap(),
        tax_rate: TaxRate::from_basis_points(775).unwrap(),
        reservation_ttl: Duration::minutes(7),
        reservation_cap: ReservationCap::units(37),
    };
    let expected = policy.clone();
    let sent = lines.clone();
    let mut ports = Ports::default();
    ports
        .orders
        .expect_place()
        .withf(move |new| {
            new.id.as_uuid().get_version_num() == 7
                && new.customer_id == customer_id
                && new.request == sent
                && new.tax_rate == expected.tax_rate
                && new.currency == expected.currency
                && new.placed_at == now()
                && new.expires_at == now() + Duration::minutes(7)
                && new.reservation_cap == expected.reservation_cap
        })
        .times(1)
        .returning(|new| Ok(placed(new)));

    let order = ports.service_with(policy).place(actor(&ada), lines).unwrap();

    assert_eq!(order.customer_id, ada.id);
    assert_eq!(order.placed_at, now());
    assert_eq!(order.expires_at, Some(now() + Duration::minutes(7)));
}

#[test]
fn an_admin_placing_an_order_places_it_for_themselves() {
    let grace = admin();
    let admin_id = grace.id;
    let mut ports = Ports::default();
    ports.orders.expect_place().withf(move |new| new.customer_id == admin_id).times(1).returning(|new| Ok(placed(new)));

    let order = ports.service().place(actor(&grace), request(&[(ProductId::new(), 1)])).unwrap();

    assert_eq!(order.customer_id, grace.id);
}

#[test]
fn admins_are_held_to_the_reservation_cap_like_customers() {
    let mut ports = Ports::default();
    ports
        .orders
        .expect_place()
        .withf(|new| new.reservation_cap == ReservationCap::units(1000))
        .times(2)
        .returning(|new| Ok(placed(new)));
    let service = ports.service();

    for caller in [admin(), customer()] {
        service.place(actor(&caller), request(&[(ProductId::new(), 1)])).unwrap();
    }
}

#[test]
fn a_zero_cap_in_the_policy_sends_no_cap() {
    let policy = OrderPolicy { reservation_cap: ReservationCap::units(0), ..order_policy() };
    let mut ports = Ports::default();
    ports
        .orders
        .expect_place()
        .withf(|new| new.reservation_cap == ReservationCap::UNLIMITED)
        .times(1)
        .returning(|new| Ok(placed(new)));

    ports.service_with(policy).place(actor(&customer()), request(&[(ProductId::new(), 1000)])).unwrap();
}

#[test]
fn an_order_past_the_cap_is_refused_with_what_is_held_and_what_is_left() {
    let exceeded = ReservationLimitExceeded { cap: 1000, held: 700, requested: 400 };
    let mut ports = Ports::default();
    ports.orders.expect_place().times(1).return_once(move |_| Err(PlaceOrderError::ReservationLimitExceeded(exceeded)));

    let result = ports.service().place(actor(&customer()), request(&[(ProductId::new(), 400)]));

    match result {
        Err(PlaceOrderError::ReservationLimitExceeded(reported)) => {
            assert_eq!(reported, exceeded);
            assert_eq!(reported.remaining(), 300);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_placement_gets_a_fresh_id() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ids);
    let mut ports = Ports::default();
    ports.orders.expect_place().times(3).returning(move |new| {
        seen.lock().unwrap().push(new.id);
        Ok(placed(new))
    });
    let service = ports.service();
    let ada = actor(&customer());

    let returned: Vec<OrderId> =
        (0..3).map(|_| service.place(ada, request(&[(ProductId::new(), 1)])).unwrap().id).collect();

    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids, returned);
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
}

#[test]
fn place_reports_every_short_line() {
    let (mug, tea) = (ProductId::new(), ProductId::new());
    let shortfalls = vec![
        Shortfall { line: 0, product_id: mug, requested: 5, available: 2 },
        Shortfall { line: 1, product_id: tea, requested: 3, available: 0 },
    ];
    let returned = shortfalls.clone();
    let mut ports = Ports::default();
    ports.orders.expect_place().times(1).return_once(move |_| Err(PlaceOrderError::InsufficientStock(returned)));

    let result = ports.service().place(actor(&customer()), request(&[(mug, 5), (tea, 3)]));

    match result {
        Err(PlaceOrderError::InsufficientStock(reported)) => assert_eq!(reported, shortfalls),
        other => panic!("{other:?}"),
    }
}

#[test]
fn place_reports_the_lines_naming_unavailable_products() {
    let mut ports = Ports::default();
    ports.orders.expect_place().times(1).returning(|_| Err(PlaceOrderError::UnavailableProducts(vec![0, 2])));

    let result = ports
        .service()
        .place(actor(&customer()), request(&[(ProductId::new(), 1), (ProductId::new(), 1), (ProductId::new(), 1)]));

    match result {
        Err(PlaceOrderError::UnavailableProducts(lines)) => assert_eq!(lines, vec![0, 2]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn place_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.orders.expect_place().times(1).returning(|_| Err(store_down().into()));

    let result = ports.service().place(actor(&customer()), request(&[(ProductId::new(), 1)]));

    assert!(matches!(&result, Err(PlaceOrderError::Store(e)) if is_store_down(e)), "{result:?}");
}

// ---- get ------------------------------------------------------------------------------------

#[test]
fn the_owner_sees_their_order() {
    let ada = customer();
    let mine = order(&ada);
    let mut ports = Ports::default();
    ports.expect_found(&mine);

    assert_eq!(ports.service().get(actor(&ada), mine.id).unwrap(), mine);
}

#[test]
fn an_admin_sees_a_customers_order() {
    let theirs = order(&customer());
    let mut ports = Ports::default();
    ports.expect_found(&theirs);

    assert_eq!(ports.service().get(actor(&admin()), theirs.id).unwrap(), theirs);
}

#[test]
fn another_customers_order_is_not_found_never_forbidden() {
    let theirs = order(&other_customer());
    let mut ports = Ports::default();
    ports.expect_found(&theirs);

    let result = ports.service().get(actor(&customer()), theirs.id);

    assert!(matches!(result, Err(GetOrderError::NotFound)), "{result:?}");
}

#[test]
fn an_unknown_order_is_not_found() {
    let id = OrderId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);

    let result = ports.service().get(actor(&admin()), id);

    assert!(matches!(result, Err(GetOrderError::NotFound)), "{result:?}");
}

#[test]
fn get_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.orders.expect_find().times(1).returning(|_| Err(store_down()));

    let result = ports.service().get(actor(&customer()), OrderId::new());

    assert!(matches!(&result, Err(GetOrderError::Store(e)) if is_store_down(e)), "{result:?}");
}

// ---- list -----------------------------------------------------------------------------------

fn filtered_query(customer_id: Option<UserId>, limit: i64) -> OrderQuery {
    let after = order(&customer());
    OrderQuery {
        status: Some(OrderStatus::Pending),
        customer_id,
        sort: OrderSort(SortDirection::Ascending),
        after: Some(OrderCursor { placed_at: after.placed_at, id: after.id }),
        limit: PageLimit::new(limit).unwrap(),
    }
}

#[test]
fn a_customers_listing_is_narrowed_to_their_own_orders_keeping_the_other_filters() {
    let ada = customer();
    let query = filtered_query(None, 20);
    let narrowed = OrderQuery { customer_id: Some(ada.id), ..query.clone() };
    let rows = vec![order(&ada)];
    let returned = rows.clone();
    let mut ports = Ports::default();
    ports.orders.expect_list().with(eq(narrowed)).times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(actor(&ada), query).unwrap();

    assert_eq!(page.items, rows);
    assert!(!page.has_more);
}

#[test]
fn a_customer_naming_themselves_gets_their_own_orders() {
    let ada = customer();
    let query = filtered_query(Some(ada.id), 20);
    let mut ports = Ports::default();
    ports.orders.expect_list().with(eq(query.clone())).times(1).returning(|_| Ok(Vec::new()));

    let page = ports.service().list(actor(&ada), query).unwrap();

    assert!(page.items.is_empty());
}

#[test]
fn a_customer_naming_someone_else_gets_an_empty_page_without_asking_the_store() {
    let bob = other_customer();
    let mut ports = Ports::default();
    ports.orders.expect_list().never();

    let page = ports.service().list(actor(&customer()), filtered_query(Some(bob.id), 20)).unwrap();

    assert!(page.items.is_empty());
    assert!(!page.has_more);
    assert_eq!(page.next_after(OrderCursor::of), None);
}

#[test]
fn an_admins_filters_pass_through_and_an_overfetched_row_yields_a_cursor() {
    let bob = other_customer();
    let query = filtered_query(Some(bob.id), 2);
    let rows = vec![order(&bob), order(&bob), order(&bob)];
    let returned = rows.clone();
    let mut ports = Ports::default();
    ports.orders.expect_list().with(eq(query.clone())).times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(actor(&admin()), query).unwrap();

    assert_eq!(page.items, rows[..2]);
    assert!(page.has_more);
    assert_eq!(page.next_after(OrderCursor::of), Some(OrderCursor { placed_at: rows[1].placed_at, id: rows[1].id }));
}

#[test]
fn an_admin_without_a_customer_filter_lists_everyones_orders() {
    let query = OrderQuery::default();
    let rows = vec![order(&customer()), order(&other_customer())];
    let returned = rows.clone();
    let mut ports = Ports::default();
    ports.orders.expect_list().with(eq(query.clone())).times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(actor(&admin()), query).unwrap();

    assert_eq!(page.items, rows);
    assert!(!page.has_more);
    assert_eq!(page.next_after(OrderCursor::of), None);
}

#[test]
fn list_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.orders.expect_list().times(1).returning(|_| Err(store_down()));

    let result = ports.service().list(actor(&customer()), OrderQuery::default());

    assert!(matches!(&result, Err(e) if is_store_down(e)), "{result:?}");
}

// ---- change_status --------------------------------------------------------------------------

/// The change the service should ask for when `by` moves `order` to `to`.
fn change(
    order: &Order,
    to: OrderStatus,
    effect: TransitionEffect,
    by: &User,
    reason: Option<CancelReason>,
) -> StatusChange {
    StatusChange {
        order_id: order.id,
        from: order.status,
        to,
        effect,
        expected_version: Some(order.version),
        actor_id: Some(by.id),
        cancel_reason: reason,
        now: now(),
    }
}

/// `order` as the store returns it after moving it to `to`.
fn moved(order: &Order, to: OrderStatus) -> Order {
    Order { status: to, version: order.version + 1, updated_at: now(), ..order.clone() }
}

#[test]
fn moving_another_customers_order_is_not_found_and_changes_nothing() {
    let theirs = order(&other_customer());
    let mut ports = Ports::default();
    ports.expect_found(&theirs);
    ports.orders.expect_change_status().never();

    let result = ports.service().change_status(actor(&customer()), theirs.id, OrderStatus::Cancelled, theirs.version);

    assert!(matches!(result, Err(ChangeOrderError::NotFound)), "{result:?}");
}

#[test]
fn moving_an_unknown_order_is_not_found() {
    let id = OrderId::new();
    let mut ports = Ports::default();
    ports.expect_missing(id);
    ports.orders.expect_change_status().never();

    let result = ports.service().change_status(actor(&admin()), id, OrderStatus::Confirmed, 1);

    assert!(matches!(result, Err(ChangeOrderError::NotFound)), "{result:?}");
}

#[test]
fn a_stale_version_is_a_mismatch_and_changes_nothing() {
    let ada = customer();
    let mine = order(&ada);
    for stale in [mine.version - 1, mine.version + 1] {
        let mut ports = Ports::default();
        ports.expect_found(&mine);
        ports.orders.expect_change_status().never();

        let result = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, stale);

        assert!(matches!(result, Err(ChangeOrderError::VersionMismatch)), "{stale}: {result:?}");
    }
}

#[test]
fn moves_outside_the_table_are_invalid_and_admin_only_moves_are_forbidden_to_customers() {
    use OrderStatus::*;
    let ada = customer();
    let grace = admin();
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            let in_table =
                matches!((from, to), (Pending, Confirmed | Cancelled) | (Confirmed, Shipped) | (Shipped, Delivered));
            for (mover, may) in [(&ada, (from, to) == (Pending, Cancelled)), (&grace, true)] {
                if in_table && may {
                    continue;
                }
                let mine = order_in(&ada, from);
                let mut ports = Ports::default();
                ports.expect_found(&mine);
                ports.orders.expect_change_status().never();

                let result = ports.service().change_status(actor(mover), mine.id, to, mine.version);

                let role = mover.role;
                match result {
                    Err(ChangeOrderError::InvalidTransition { from: f, to: t }) if !in_table => {
                        assert_eq!((f, t), (from, to), "{role:?}")
                    }
                    Err(ChangeOrderError::Forbidden { from: f, to: t }) if in_table => {
                        assert_eq!((f, t), (from, to), "{role:?}")
                    }
                    other => panic!("{role:?} {from} → {to}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn a_customer_cancelling_their_pending_order_releases_its_reservation() {
    let ada = customer();
    let mine = order(&ada);
    let expected =
        change(&mine, OrderStatus::Cancelled, TransitionEffect::ReleaseReservation, &ada, Some(CancelReason::Customer));
    let outcome = moved(&mine, OrderStatus::Cancelled);
    let mut ports = Ports::default();
    ports.expect_found(&mine);
    ports.expect_change(expected, Ok(outcome.clone()));

    let cancelled = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, mine.version).unwrap();

    assert_eq!(cancelled, outcome);
}

#[test]
fn an_admin_cancelling_a_customers_order_is_recorded_as_the_admins_doing() {
    let grace = admin();
    let theirs = order(&customer());
    let expected = change(
        &theirs,
        OrderStatus::Cancelled,
        TransitionEffect::ReleaseReservation,
        &grace,
        Some(CancelReason::Admin),
    );
    let mut ports = Ports::default();
    ports.expect_found(&theirs);
    ports.expect_change(expected, Ok(moved(&theirs, OrderStatus::Cancelled)));

    let cancelled =
        ports.service().change_status(actor(&grace), theirs.id, OrderStatus::Cancelled, theirs.version).unwrap();

    assert_eq!(cancelled.status, OrderStatus::Cancelled);
}

#[test]
fn an_admin_cancelling_their_own_order_does_so_as_its_customer() {
    let grace = admin();
    let own = order(&grace);
    let expected = change(
        &own,
        OrderStatus::Cancelled,
        TransitionEffect::ReleaseReservation,
        &grace,
        Some(CancelReason::Customer),
    );
    let mut ports = Ports::default();
    ports.expect_found(&own);
    ports.expect_change(expected, Ok(moved(&own, OrderStatus::Cancelled)));

    let cancelled = ports.service().change_status(actor(&grace), own.id, OrderStatus::Cancelled, own.version).unwrap();

    assert_eq!(cancelled.status, OrderStatus::Cancelled);
}

#[test]
fn an_admin_confirming_commits_the_reservation_and_issues_the_invoice() {
    let grace = admin();
    let theirs = order(&customer());
    let expected = change(&theirs, OrderStatus::Confirmed, TransitionEffect::CommitReservationAndInvoice, &grace, None);
    let mut ports = Ports::default();
    ports.expect_found(&theirs);
    ports.expect_change(expected, Ok(moved(&theirs, OrderStatus::Confirmed)));

    let confirmed =
        ports.service().change_status(actor(&grace), theirs.id, OrderStatus::Confirmed, theirs.version).unwrap();

    assert_eq!((confirmed.status, confirmed.version), (OrderStatus::Confirmed, theirs.version + 1));
}

#[test]
fn an_admin_ships_and_delivers_without_a_stock_effect() {
    let grace = admin();
    let ada = customer();
    for (from, to) in [(OrderStatus::Confirmed, OrderStatus::Shipped), (OrderStatus::Shipped, OrderStatus::Delivered)] {
        let theirs = order_in(&ada, from);
        let expected = change(&theirs, to, TransitionEffect::None, &grace, None);
        let mut ports = Ports::default();
        ports.expect_found(&theirs);
        ports.expect_change(expected, Ok(moved(&theirs, to)));

        let result = ports.service().change_status(actor(&grace), theirs.id, to, theirs.version).unwrap();

        assert_eq!(result.status, to);
    }
}

#[test]
fn losing_the_race_in_the_store_is_a_version_mismatch() {
    let ada = customer();
    let mine = order(&ada);
    let mut ports = Ports::default();
    ports.expect_found(&mine);
    ports.orders.expect_change_status().times(1).returning(|_| Err(StatusChangeError::Conflict));

    let result = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, mine.version);

    assert!(matches!(result, Err(ChangeOrderError::VersionMismatch)), "{result:?}");
}

#[test]
fn an_order_gone_by_the_time_of_the_change_is_not_found() {
    let ada = customer();
    let mine = order(&ada);
    let mut ports = Ports::default();
    ports.expect_found(&mine);
    ports.orders.expect_change_status().times(1).returning(|_| Err(StatusChangeError::NotFound));

    let result = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, mine.version);

    assert!(matches!(result, Err(ChangeOrderError::NotFound)), "{result:?}");
}

#[test]
fn change_status_passes_store_failures_through() {
    let ada = customer();
    let mine = order(&ada);

    let mut ports = Ports::default();
    ports.orders.expect_find().times(1).returning(|_| Err(store_down()));
    ports.orders.expect_change_status().never();
    let result = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, mine.version);
    assert!(matches!(&result, Err(ChangeOrderError::Store(e)) if is_store_down(e)), "{result:?}");

    let mut ports = Ports::default();
    ports.expect_found(&mine);
    ports.orders.expect_change_status().times(1).returning(|_| Err(store_down().into()));
    let result = ports.service().change_status(actor(&ada), mine.id, OrderStatus::Cancelled, mine.version);
    assert!(matches!(&result, Err(ChangeOrderError::Store(e)) if is_store_down(e)), "{result:?}");
}

// ---- expire_reservations --------------------------------------------------------------------

/// The sweep's change for order `id`.
fn expiry(id: OrderId) -> StatusChange {
    StatusChange {
        order_id: id,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        effect: TransitionEffect::ReleaseReservation,
        expected_version: None,
        actor_id: None,
        cancel_reason: Some(CancelReason::Expired),
        now: now(),
    }
}

#[test]
fn the_sweep_cancels_each_expired_order_and_counts_only_its_own_cancellations() {
    let ada = customer();
    let expired: Vec<Order> = (0..4).map(|_| order(&ada)).collect();
    let ids: Vec<OrderId> = expired.iter().map(|o| o.id).collect();
    let mut ports = Ports::default();
    let returned = ids.clone();
    ports.orders.expect_expired_pending().with(eq(now()), eq(25)).times(1).returning(move |_, _| Ok(returned.clone()));
    ports.expect_change(expiry(ids[0]), Ok(moved(&expired[0], OrderStatus::Cancelled)));
    // Another instance's sweep (or the customer) got there first.
    ports.expect_change(expiry(ids[1]), Err(StatusChangeError::Conflict));
    ports.expect_change(expiry(ids[2]), Ok(moved(&expired[2], OrderStatus::Cancelled)));
    ports.expect_change(expiry(ids[3]), Err(StatusChangeError::NotFound));

    let cancelled = ports.service().expire_reservations(25).unwrap();

    assert_eq!(cancelled, 2);
}

#[test]
fn a_sweep_that_loses_every_race_cancels_nothing_and_does_not_fail() {
    let ids = vec![OrderId::new(), OrderId::new()];
    let mut ports = Ports::default();
    let returned = ids.clone();
    ports.orders.expect_expired_pending().times(1).returning(move |_, _| Ok(returned.clone()));
    for id in ids {
        ports.expect_change(expiry(id), Err(StatusChangeError::Conflict));
    }

    assert_eq!(ports.service().expire_reservations(10).unwrap(), 0);
}

#[test]
fn a_sweep_with_nothing_expired_changes_nothing() {
    let mut ports = Ports::default();
    ports.orders.expect_expired_pending().with(eq(now()), eq(100)).times(1).returning(|_, _| Ok(Vec::new()));
    ports.orders.expect_change_status().never();

    assert_eq!(ports.service().expire_reservations(100).unwrap(), 0);
}

#[test]
fn the_sweep_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.orders.expect_expired_pending().times(1).returning(|_, _| Err(store_down()));
    ports.orders.expect_change_status().never();
    let result = ports.service().expire_reservations(10);
    assert!(matches!(&result, Err(e) if is_store_down(e)), "{result:?}");

    let id = OrderId::new();
    let mut ports = Ports::default();
    ports.orders.expect_expired_pending().times(1).returning(move |_, _| Ok(vec![id]));
    ports.orders.expect_change_status().with(eq(expiry(id))).times(1).returning(|_| Err(store_down().into()));
    let result = ports.service().expire_reservations(10);
    assert!(matches!(&result, Err(e) if is_store_down(e)), "{result:?}");
}

// ---- invoices -------------------------------------------------------------------------------

/// The store finds the invoice of `order` by its number, once.
fn expect_invoice(ports: &mut Ports, order: &Order) -> Invoice {
    let found = invoice(order);
    let returned = found.clone();
    ports.invoices.expect_find().with(eq(found.number)).times(1).returning(move |_| Ok(Some(returned.clone())));
    found
}

#[test]
fn the_owner_and_an_admin_see_an_invoice() {
    let ada = customer();
    let confirmed = order_in(&ada, OrderStatus::Confirmed);
    for reader in [ada.clone(), admin()] {
        let mut ports = Ports::default();
        let issued = expect_invoice(&mut ports, &confirmed);

        assert_eq!(ports.service().invoice(actor(&reader), issued.number).unwrap(), issued);
    }
}

#[test]
fn another_customers_invoice_is_not_found() {
    let confirmed = order_in(&other_customer(), OrderStatus::Confirmed);
    let mut ports = Ports::default();
    let issued = expect_invoice(&mut ports, &confirmed);

    let result = ports.service().invoice(actor(&customer()), issued.number);

    assert!(matches!(result, Err(GetInvoiceError::NotFound)), "{result:?}");
}

#[test]
fn an_unknown_invoice_is_not_found() {
    let number = invoice_number(7);
    let mut ports = Ports::default();
    ports.invoices.expect_find().with(eq(number)).times(1).returning(|_| Ok(None));

    let result = ports.service().invoice(actor(&admin()), number);

    assert!(matches!(result, Err(GetInvoiceError::NotFound)), "{result:?}");
}

#[test]
fn invoice_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.invoices.expect_find().times(1).returning(|_| Err(store_down()));

    let result = ports.service().invoice(actor(&customer()), invoice_number(1));

    assert!(matches!(&result, Err(GetInvoiceError::Store(e)) if is_store_down(e)), "{result:?}");
}

#[test]
fn a_customer_lists_only_their_own_invoices_whatever_they_ask_for() {
    let ada = customer();
    for asked in [None, Some(ada.id), Some(other_customer().id)] {
        let query =
            InvoiceQuery { customer_id: asked, after: Some(invoice_number(9)), limit: PageLimit::new(5).unwrap() };
        let narrowed = InvoiceQuery { customer_id: Some(ada.id), ..query.clone() };
        let rows = vec![invoice(&order_in(&ada, OrderStatus::Confirmed))];
        let returned = rows.clone();
        let mut ports = Ports::default();
        ports.invoices.expect_list().with(eq(narrowed)).times(1).returning(move |_| Ok(returned.clone()));

        let page = ports.service().invoices(actor(&ada), query).unwrap();

        assert_eq!(page.items, rows, "{asked:?}");
        assert!(!page.has_more);
    }
}

#[test]
fn an_admins_invoice_query_passes_through_and_overfetching_sets_has_more() {
    for asked in [None, Some(customer().id)] {
        let query = InvoiceQuery { customer_id: asked, after: None, limit: PageLimit::new(1).unwrap() };
        let rows = vec![invoice(&order(&customer())), invoice(&order(&other_customer()))];
        let returned = rows.clone();
        let mut ports = Ports::default();
        ports.invoices.expect_list().with(eq(query.clone())).times(1).returning(move |_| Ok(returned.clone()));

        let page = ports.service().invoices(actor(&admin()), query).unwrap();

        assert_eq!(page.items, rows[..1], "{asked:?}");
        assert!(page.has_more);
    }
}

#[test]
fn invoices_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.invoices.expect_list().times(1).returning(|_| Err(store_down()));

    let result = ports.service().invoices(actor(&admin()), InvoiceQuery::default());

    assert!(matches!(&result, Err(e) if is_store_down(e)), "{result:?}");
}

#[test]
fn the_policy_is_exposed_as_configured() {
    assert_eq!(Ports::default().service().policy(), &order_policy());
}

// ---- the events a change records ------------------------------------------------------------

#[test]
fn a_change_records_its_status_event_and_the_invoice_it_issued() {
    let ada = customer();
    let mine = order(&ada);
    let confirm = change(&mine, OrderStatus::Confirmed, TransitionEffect::CommitReservationAndInvoice, &admin(), None);
    let number = invoice_number(7);
    let status_event = DomainEvent::OrderStatusChanged {
        order_id: mine.id,
        customer_id: ada.id,
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        actor_id: confirm.actor_id,
        reason: None,
        occurred_at: now(),
    };
    assert_eq!(
        confirm.events(ada.id, Some((number, 4500))),
        vec![
            status_event.clone(),
            DomainEvent::InvoiceIssued {
                number,
                order_id: mine.id,
                customer_id: ada.id,
                total: 4500,
                occurred_at: now(),
            },
        ]
    );
    assert_eq!(confirm.events(ada.id, None), vec![status_event]);
}
