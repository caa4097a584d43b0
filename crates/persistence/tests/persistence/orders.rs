use std::collections::{HashMap, HashSet};
use std::sync::Barrier;

use chrono::{DateTime, Utc};
use orderly_domain::event::DomainEvent;
use orderly_domain::invoice::{InvoiceNumber, InvoiceQuery};
use orderly_domain::order::{
    CancelReason, LineRequest, Order, OrderCursor, OrderId, OrderQuery, OrderRequest, OrderSort, OrderStatus,
    PlaceOrderError, Quantity, ReservationCap, ReservationLimitExceeded, Shortfall, TaxRate, TransitionEffect,
};
use orderly_domain::pagination::{Page, PageLimit, SortDirection};
use orderly_domain::ports::{
    InvoiceRepository, NewOrder, OrderRepository, ProductRepository, StatusChange, StatusChangeError,
};
use orderly_domain::product::{ProductId, ProductStatus, ProductUpdate};
use orderly_domain::user::UserId;
use orderly_persistence::testing::TestDatabase;
use orderly_persistence::{DieselInvoiceRepository, DieselOrderRepository};

use crate::fixtures::{at, eur, insert_product, insert_user, new_product, price, products};

orderly_persistence::backend_tests! {
    fn placing_reserves_every_line_and_snapshots_prices_and_totals(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, admin) = insert_product(db, &new_product("Cup", 125, 10, at(0)));
        let (pot, _) = insert_product(db, &new_product("Pot", 600, 3, at(0)));
        // 5 × 1.25 + 1 × 6.00 = 12.25; 10 % of it is 1.225, which rounds half-to-even to 1.22.
        let new = new_order(customer, &[(cups.id, 5), (pot.id, 1)], at(10), 1000);
        let order = placed(orders(db).place(&new));
        assert_eq!(order.id, new.id);
        assert_eq!((order.customer_id, order.status, order.version), (customer, OrderStatus::Pending, 1));
        assert_eq!((order.placed_at, order.updated_at, order.expires_at), (at(10), at(10), Some(at(10 + 1800))));
        assert_eq!(order.invoice_number, None);
        assert_eq!(order.items.len(), 2);
        assert_eq!((order.items[0].product_id, order.items[0].sku.clone(), order.items[0].name.as_str()), (cups.id, cups.sku.as_str().to_owned(), "Cup"));
        assert_eq!((order.items[0].quantity.get(), order.items[0].unit_price.clone(), order.items[0].line_total.clone()), (5, price(125), price(625)));
        assert_eq!((order.items[1].product_id, order.items[1].quantity.get(), order.items[1].line_total.clone()), (pot.id, 1, price(600)));
        assert_eq!((order.subtotal.clone(), order.tax.clone(), order.total.clone()), (price(1225), price(122), price(1347)));
        assert_eq!(orders(db).find(order.id).unwrap(), Some(order.clone()));
        assert_eq!(stock(db, cups.id), (10, 5));
        assert_eq!(stock(db, pot.id), (3, 1));

        // A later price change does not touch the snapshot.
        let update = ProductUpdate { unit_price: Some(price(999)), ..ProductUpdate::default() };
        let event = DomainEvent::ProductUpdated { product_id: cups.id, fields: vec!["unit_price"], status: None, actor_id: admin, occurred_at: at(20) };
        let version = products(db).find_by_id(cups.id).unwrap().unwrap().version;
        products(db).update(cups.id, &update, version, &event, at(20)).unwrap();
        assert_eq!(orders(db).find(order.id).unwrap(), Some(order.clone()));
        assert_eq!(orders(db).find(OrderId::new()).unwrap(), None);

        let placed_events = events_of(db, "order.placed");
        assert_eq!(placed_events.len(), 1);
        assert_eq!((placed_events[0].subject_type.as_str(), placed_events[0].subject_id.clone()), ("order", order.id.to_string()));
        assert_eq!(placed_events[0].occurred_at, at(10));
        assert_eq!(
            placed_events[0].data,
            serde_json::json!({
                "order_id": order.id.to_string(),
                "customer_id": customer.to_string(),
                "lines": [{"product_id": cups.id.to_string(), "quantity": 5}, {"product_id": pot.id.to_string(), "quantity": 1}],
                "total": 1347,
            })
        );
    }

    fn one_short_line_reserves_nothing_and_every_short_line_is_reported(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (plenty, _) = insert_product(db, &new_product("Plenty", 100, 10, at(0)));
        let (few, _) = insert_product(db, &new_product("Few", 100, 3, at(0)));
        let (none, _) = insert_product(db, &new_product("None", 100, 0, at(0)));
        // One unit of `few` is already promised to another order: 2 are available.
        placed(orders(db).place(&new_order(customer, &[(few.id, 1)], at(1), 0)));
        let events_before = db.recorded_events();

        let refused = new_order(customer, &[(plenty.id, 5), (few.id, 3), (none.id, 1)], at(2), 0);
        let expected = vec![
            Shortfall { line: 1, product_id: few.id, requested: 3, available: 2 },
            Shortfall { line: 2, product_id: none.id, requested: 1, available: 0 },
        ];
        let refusal = orders(db).place(&refused).unwrap_err();
        assert!(matches!(&refusal, PlaceOrderError::InsufficientStock(short) if *short == expected), "{refusal:?}");
        assert_eq!(stock(db, plenty.id), (10, 0));
        assert_eq!(stock(db, few.id), (3, 1));
        assert_eq!(stock(db, none.id), (0, 0));
        assert_eq!(orders(db).find(refused.id).unwrap(), None);
        assert_eq!(db.recorded_events(), events_before);
        // Exactly what is available still fits.
        placed(orders(db).place(&new_order(customer, &[(plenty.id, 10), (few.id, 2)], at(3), 0)));
        assert_eq!(stock(db, few.id), (3, 3));
    }

    fn unknown_or_archived_products_are_unavailable_lines_and_nothing_is_reserved(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (fine, admin) = insert_product(db, &new_product("Fine", 100, 10, at(0)));
        let (gone, _) = insert_product(db, &new_product("Gone", 100, 10, at(0)));
        let (short, _) = insert_product(db, &new_product("Short", 100, 0, at(0)));
        let archive = ProductUpdate { status: Some(ProductStatus::Archived), ..ProductUpdate::default() };
        let event = DomainEvent::ProductUpdated { product_id: gone.id, fields: vec!["status"], status: Some(ProductStatus::Archived), actor_id: admin, occurred_at: at(1) };
        products(db).update(gone.id, &archive, 1, &event, at(1)).unwrap();
        let events_before = db.recorded_events();

        let unknown = ProductId::new();
        let refused = new_order(customer, &[(fine.id, 1), (unknown, 1), (short.id, 1), (gone.id, 1)], at(2), 0);
        // An unavailable product is a defect of the request, reported even beside shortfalls.
        let refusal = orders(db).place(&refused).unwrap_err();
        assert!(matches!(&refusal, PlaceOrderError::UnavailableProducts(lines) if *lines == [1, 3]), "{refusal:?}");
        assert_eq!(stock(db, fine.id), (10, 0));
        assert_eq!(stock(db, gone.id), (10, 0));
        assert_eq!(orders(db).find(refused.id).unwrap(), None);
        assert_eq!(db.recorded_events(), events_before);
    }

    fn confirming_commits_the_stock_and_issues_consecutive_invoices(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let other = insert_user(db, at(0)).id;
        let admin = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 125, 10, at(0)));
        let (pot, _) = insert_product(db, &new_product("Pot", 600, 3, at(0)));
        let first = placed(orders(db).place(&new_order(customer, &[(cups.id, 5), (pot.id, 1)], at(10), 1000)));
        let second = placed(orders(db).place(&new_order(other, &[(cups.id, 2)], at(11), 1000)));
        assert_eq!(stock(db, cups.id), (10, 7));

        let confirmed = applied(orders(db).change_status(&change(&first, OrderStatus::Confirmed, Some(admin), at(60))));
        assert_eq!((confirmed.status, confirmed.version, confirmed.updated_at, confirmed.expires_at), (OrderStatus::Confirmed, 2, at(60), None));
        let number = InvoiceNumber::parse("2026-000001").unwrap();
        assert_eq!(confirmed.invoice_number, Some(number));
        assert_eq!((confirmed.items.clone(), confirmed.total.clone(), confirmed.placed_at), (first.items.clone(), first.total.clone(), first.placed_at));
        assert_eq!(orders(db).find(first.id).unwrap(), Some(confirmed.clone()));
        assert_eq!(stock(db, cups.id), (5, 2));
        assert_eq!(stock(db, pot.id), (2, 0));

        let invoice = invoices(db).find(number).unwrap().unwrap();
        assert_eq!((invoice.number, invoice.order_id, invoice.customer_id, invoice.issued_at), (number, first.id, customer, at(60)));
        assert_eq!((invoice.lines.clone(), invoice.subtotal.clone(), invoice.tax.clone(), invoice.total.clone()), (first.items.clone(), price(1225), price(122), price(1347)));

        let confirmed_events = events_of(db, "order.confirmed");
        assert_eq!(confirmed_events.len(), 1);
        assert_eq!(confirmed_events[0].subject_id, first.id.to_string());
        assert_eq!(
            confirmed_events[0].data,
            serde_json::json!({"order_id": first.id.to_string(), "customer_id": customer.to_string(), "from": "pending", "to": "confirmed", "actor_id": admin.to_string()})
        );
        let issued = events_of(db, "invoice.issued");
        assert_eq!((issued.len(), issued[0].subject_type.as_str(), issued[0].subject_id.as_str()), (1, "invoice", "2026-000001"));
        assert_eq!(
            issued[0].data,
            serde_json::json!({"number": "2026-000001", "order_id": first.id.to_string(), "customer_id": customer.to_string(), "total": 1347})
        );

        let confirmed_second = applied(orders(db).change_status(&change(&second, OrderStatus::Confirmed, Some(admin), at(61))));
        let second_number = InvoiceNumber::parse("2026-000002").unwrap();
        assert_eq!(confirmed_second.invoice_number, Some(second_number));
        assert_eq!(stock(db, cups.id), (3, 0));

        // Newest first, filtered by customer, paged by the last number seen.
        let all = invoices(db).list(&InvoiceQuery::default()).unwrap();
        assert_eq!(all.iter().map(|invoice| invoice.number).collect::<Vec<_>>(), vec![second_number, number]);
        assert_eq!(all[1], invoice);
        let mine = invoices(db).list(&InvoiceQuery { customer_id: Some(customer), ..InvoiceQuery::default() }).unwrap();
        assert_eq!(mine.iter().map(|invoice| invoice.number).collect::<Vec<_>>(), vec![number]);
        let one = invoices(db).list(&InvoiceQuery { limit: PageLimit::new(1).unwrap(), ..InvoiceQuery::default() }).unwrap();
        assert_eq!(one.len(), 2, "list fetches one beyond the limit");
        let after = invoices(db).list(&InvoiceQuery { after: Some(second_number), ..InvoiceQuery::default() }).unwrap();
        assert_eq!(after.iter().map(|invoice| invoice.number).collect::<Vec<_>>(), vec![number]);
        assert_eq!(invoices(db).find(InvoiceNumber::parse("2026-000003").unwrap()).unwrap(), None);
    }

    fn cancelling_releases_and_shipping_and_delivery_only_record_events(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let admin = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let cancelled = placed(orders(db).place(&new_order(customer, &[(cups.id, 4)], at(1), 0)));
        let shipped = placed(orders(db).place(&new_order(customer, &[(cups.id, 3)], at(2), 0)));
        assert_eq!(stock(db, cups.id), (10, 7));

        let mut cancel = change(&cancelled, OrderStatus::Cancelled, Some(customer), at(5));
        cancel.cancel_reason = Some(CancelReason::Customer);
        let after_cancel = applied(orders(db).change_status(&cancel));
        assert_eq!((after_cancel.status, after_cancel.version, after_cancel.expires_at, after_cancel.invoice_number), (OrderStatus::Cancelled, 2, None, None));
        assert_eq!(stock(db, cups.id), (10, 3));
        let cancelled_events = events_of(db, "order.cancelled");
        assert_eq!(
            cancelled_events[0].data,
            serde_json::json!({"order_id": cancelled.id.to_string(), "customer_id": customer.to_string(), "from": "pending", "to": "cancelled", "actor_id": customer.to_string(), "reason": "customer"})
        );

        let confirmed = applied(orders(db).change_status(&change(&shipped, OrderStatus::Confirmed, Some(admin), at(6))));
        assert_eq!(stock(db, cups.id), (7, 0));
        let on_its_way = applied(orders(db).change_status(&change(&confirmed, OrderStatus::Shipped, Some(admin), at(7))));
        assert_eq!((on_its_way.status, on_its_way.version, on_its_way.invoice_number), (OrderStatus::Shipped, 3, confirmed.invoice_number));
        let delivered = applied(orders(db).change_status(&change(&on_its_way, OrderStatus::Delivered, Some(admin), at(8))));
        assert_eq!((delivered.status, delivered.version, delivered.updated_at), (OrderStatus::Delivered, 4, at(8)));
        assert_eq!(stock(db, cups.id), (7, 0));
        assert_eq!(events_of(db, "order.shipped")[0].data["to"], "shipped");
        assert_eq!(events_of(db, "order.delivered")[0].data["actor_id"], admin.to_string());
        assert_eq!(events_of(db, "invoice.issued").len(), 1);
    }

    fn stale_versions_wrong_states_and_missing_orders_change_nothing(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let order = placed(orders(db).place(&new_order(customer, &[(cups.id, 4)], at(1), 0)));
        let events_before = db.recorded_events();

        let mut stale = change(&order, OrderStatus::Cancelled, Some(customer), at(5));
        stale.expected_version = Some(2);
        assert!(matches!(orders(db).change_status(&stale), Err(StatusChangeError::Conflict)));
        let mut wrong_from = change(&order, OrderStatus::Delivered, Some(customer), at(5));
        wrong_from.from = OrderStatus::Shipped;
        assert!(matches!(orders(db).change_status(&wrong_from), Err(StatusChangeError::Conflict)));
        let mut missing = change(&order, OrderStatus::Cancelled, Some(customer), at(5));
        missing.order_id = OrderId::new();
        assert!(matches!(orders(db).change_status(&missing), Err(StatusChangeError::NotFound)));
        assert_eq!(orders(db).find(order.id).unwrap(), Some(order.clone()));
        assert_eq!(db.recorded_events(), events_before);

        // The second of two cancellations (without a version, like the sweep) releases nothing.
        let mut cancel = change(&order, OrderStatus::Cancelled, None, at(6));
        cancel.expected_version = None;
        applied(orders(db).change_status(&cancel));
        assert_eq!(stock(db, cups.id), (10, 0));
        placed(orders(db).place(&new_order(customer, &[(cups.id, 2)], at(7), 0)));
        assert!(matches!(orders(db).change_status(&cancel), Err(StatusChangeError::Conflict)));
        assert_eq!(stock(db, cups.id), (10, 2));
        assert_eq!(events_of(db, "order.cancelled").len(), 1);
    }

    fn expired_pending_finds_only_lapsed_pending_orders_oldest_expiry_first(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 100, at(0)));
        let place_expiring = |placed_at: i64, expires_at: i64| {
            let mut new = new_order(customer, &[(cups.id, 1)], at(placed_at), 0);
            new.expires_at = at(expires_at);
            placed(orders(db).place(&new))
        };
        let late = place_expiring(1, 50);
        let early = place_expiring(2, 40);
        let exactly_now = place_expiring(3, 60);
        let _future = place_expiring(4, 61);
        let cancelled = place_expiring(5, 10);
        applied(orders(db).change_status(&change(&cancelled, OrderStatus::Cancelled, Some(customer), at(6))));

        assert_eq!(orders(db).expired_pending(at(60), 10).unwrap(), vec![early.id, late.id, exactly_now.id]);
        assert_eq!(orders(db).expired_pending(at(60), 2).unwrap(), vec![early.id, late.id]);
        assert_eq!(orders(db).expired_pending(at(39), 10).unwrap(), Vec::<OrderId>::new());
    }

    fn listing_walks_every_order_once_in_either_direction_with_filters(db: &TestDatabase) {
        let customers = [insert_user(db, at(0)).id, insert_user(db, at(0)).id];
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 1000, at(0)));
        let (pots, _) = insert_product(db, &new_product("Pot", 100, 1000, at(0)));
        let mut all: Vec<Order> = Vec::new();
        for i in 0..13_i64 {
            // Ties of placed_at in pairs, so the id decides within a pair.
            let lines: &[(ProductId, i64)] = if i % 3 == 0 { &[(cups.id, 1), (pots.id, 2)] } else { &[(pots.id, 1)] };
            let order = placed(orders(db).place(&new_order(customers[(i % 2) as usize], lines, at(100 + i / 2), 0)));
            all.push(order);
        }
        for order in all.iter_mut().step_by(4) {
            *order = applied(orders(db).change_status(&change(order, OrderStatus::Cancelled, None, at(200))));
        }
        for direction in [SortDirection::Ascending, SortDirection::Descending] {
            for customer in [None, Some(customers[0]), Some(customers[1])] {
                for status in [None, Some(OrderStatus::Pending), Some(OrderStatus::Cancelled)] {
                    for limit in [1, 2, 5, 100] {
                        let mut expected: Vec<&Order> = all
                            .iter()
                            .filter(|order| customer.is_none_or(|c| order.customer_id == c) && status.is_none_or(|s| order.status == s))
                            .collect();
                        expected.sort_by_key(|order| (order.placed_at, order.id));
                        if direction == SortDirection::Descending {
                            expected.reverse();
                        }
                        let query = OrderQuery { status, customer_id: customer, sort: OrderSort(direction), after: None, limit: PageLimit::new(limit).unwrap() };
                        let walked = walk(&orders(db), query);
                        assert_eq!(walked, expected.into_iter().cloned().collect::<Vec<_>>(), "{direction:?} {customer:?} {status:?} {limit}");
                    }
                }
            }
        }
        // The default is newest first.
        let newest = orders(db).list(&OrderQuery::default()).unwrap();
        assert_eq!(newest.first().map(|order| order.placed_at), Some(at(106)));
    }

    /// The issue's example: 100 racing single-unit orders for 30 units.
    fn racing_orders_never_oversell(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (product, _) = insert_product(db, &new_product("Scarce", 100, 30, at(0)));
        let barrier = Barrier::new(100);
        let outcomes: Vec<Result<Order, PlaceOrderError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let (repo, barrier) = (orders(db), &barrier);
                    scope.spawn(move || {
                        let new = new_order(customer, &[(product.id, 1)], at(i), 0);
                        barrier.wait();
                        repo.place(&new)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let placed_count = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let short: Vec<_> = outcomes
            .iter()
            .filter_map(|outcome| if let Err(PlaceOrderError::InsufficientStock(short)) = outcome { Some(short) } else { None })
            .collect();
        assert_eq!((placed_count, short.len()), (30, 70), "{outcomes:?}");
        assert!(short.iter().all(|short| short.len() == 1 && short[0].available == 0 && short[0].requested == 1));
        assert_eq!(stock(db, product.id), (30, 30));
        assert_reservations_match_pending_orders(db, &[product.id]);
        assert_eq!(events_of(db, "order.placed").len(), 30);
    }

    /// Orders over the same three products with their lines in every order, racing each other
    /// and their own cancellations: no deadlock, no error, the invariants hold.
    fn racing_multi_line_orders_and_cancellations_keep_the_invariants(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let ids: Vec<ProductId> = (0..3).map(|i| insert_product(db, &new_product(&format!("P{i}"), 100, 40, at(0))).0.id).collect();
        let permutations = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1], [1, 0, 2]];
        let barrier = Barrier::new(8);
        let placed_total: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8_usize)
                .map(|thread| {
                    let (repo, barrier, ids, permutations) = (orders(db), &barrier, &ids, &permutations);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut placed_here = 0;
                        for step in 0..12_usize {
                            let permutation = permutations[(thread + step) % permutations.len()];
                            let lines: Vec<(ProductId, i64)> = permutation
                                .iter()
                                .map(|&p| (ids[p], ((thread + step + p) % 3 + 1) as i64))
                                .collect();
                            let new = new_order(customer, &lines, at((thread * 100 + step) as i64), 0);
                            match repo.place(&new) {
                                Ok(order) => {
                                    placed_here += 1;
                                    if step % 2 == 0 {
                                        let mut cancel = change(&order, OrderStatus::Cancelled, Some(customer), at(1000));
                                        cancel.cancel_reason = Some(CancelReason::Customer);
                                        applied(repo.change_status(&cancel));
                                    }
                                }
                                Err(PlaceOrderError::InsufficientStock(short)) => assert!(!short.is_empty()),
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                        placed_here
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum()
        });
        assert!(placed_total > 0);
        for &id in &ids {
            let (on_hand, reserved) = stock(db, id);
            assert_eq!(on_hand, 40);
            assert!((0..=on_hand).contains(&reserved), "{reserved} of {on_hand}");
        }
        assert_reservations_match_pending_orders(db, &ids);
    }

    /// The per-customer cap of docs/api.md#orders: what the customer's pending orders hold counts, nothing else;
    /// an order past it is refused before any product is touched.
    fn an_order_past_the_reservation_cap_reserves_nothing_and_says_what_is_held(db: &TestDatabase) {
        let (ada, bob, admin) = (insert_user(db, at(0)).id, insert_user(db, at(0)).id, insert_user(db, at(0)).id);
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 100, at(0)));
        let (pots, _) = insert_product(db, &new_product("Pot", 100, 100, at(0)));
        let cap = ReservationCap::units(10);
        let capped = |customer, lines: &[(ProductId, i64)], second| NewOrder { reservation_cap: cap, ..new_order(customer, lines, at(second), 0) };

        let first = placed(orders(db).place(&capped(ada, &[(cups.id, 4), (pots.id, 2)], 1)));
        let version_before = products(db).find_by_id(cups.id).unwrap().unwrap().version;
        let events_before = db.recorded_events();
        let refused = capped(ada, &[(cups.id, 3), (pots.id, 2)], 2);
        let refusal = orders(db).place(&refused).unwrap_err();
        let expected = ReservationLimitExceeded { cap: 10, held: 6, requested: 5 };
        assert!(matches!(refusal, PlaceOrderError::ReservationLimitExceeded(e) if e == expected), "{refusal:?}");
        assert_eq!((stock(db, cups.id), stock(db, pots.id)), ((100, 4), (100, 2)));
        assert_eq!(products(db).find_by_id(cups.id).unwrap().unwrap().version, version_before, "no product touched");
        assert_eq!(orders(db).find(refused.id).unwrap(), None);
        assert_eq!(db.recorded_events(), events_before);
        // Checked before the lines: an unknown product beside it does not change the answer.
        let unknown = capped(ada, &[(ProductId::new(), 5)], 2);
        assert!(matches!(orders(db).place(&unknown), Err(PlaceOrderError::ReservationLimitExceeded(_))));

        // Other customers have caps of their own; exactly the rest of the cap fits.
        placed(orders(db).place(&capped(bob, &[(cups.id, 10)], 3)));
        placed(orders(db).place(&capped(ada, &[(cups.id, 4)], 4)));
        assert!(matches!(orders(db).place(&capped(ada, &[(pots.id, 1)], 5)), Err(PlaceOrderError::ReservationLimitExceeded(e)) if e.remaining() == 0));

        // A cancelled order frees its units; a confirmed one holds none.
        let mut cancel = change(&first, OrderStatus::Cancelled, Some(ada), at(6));
        cancel.cancel_reason = Some(CancelReason::Customer);
        applied(orders(db).change_status(&cancel));
        let second = placed(orders(db).place(&capped(ada, &[(pots.id, 6)], 7)));
        applied(orders(db).change_status(&change(&second, OrderStatus::Confirmed, Some(admin), at(8))));
        placed(orders(db).place(&capped(ada, &[(pots.id, 6)], 9)));
        let refusal = orders(db).place(&capped(ada, &[(pots.id, 1)], 10)).unwrap_err();
        let expected = ReservationLimitExceeded { cap: 10, held: 10, requested: 1 };
        assert!(matches!(refusal, PlaceOrderError::ReservationLimitExceeded(e) if e == expected), "{refusal:?}");
        // No cap: nothing is counted.
        placed(orders(db).place(&new_order(ada, &[(pots.id, 50)], at(11), 0)));
        assert_reservations_match_pending_orders(db, &[cups.id, pots.id]);
    }

    /// Twenty orders of one customer, three units each on a product of their own (so no
    /// product row lock orders them), released at once under a cap of 30: exactly ten fit,
    /// whichever they are. Without the customer's row lock on PostgreSQL, each would sum the
    /// pending orders before the others commit and all twenty would pass.
    fn racing_orders_of_one_customer_never_hold_more_than_the_cap(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let ids: Vec<ProductId> = (0..20).map(|i| insert_product(db, &new_product(&format!("R{i}"), 100, 10, at(0))).0.id).collect();
        let barrier = Barrier::new(20);
        let outcomes: Vec<Result<Order, PlaceOrderError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .iter()
                .enumerate()
                .map(|(i, &product)| {
                    let (repo, barrier) = (orders(db), &barrier);
                    scope.spawn(move || {
                        let new = NewOrder { reservation_cap: ReservationCap::units(30), ..new_order(customer, &[(product, 3)], at(i as i64), 0) };
                        barrier.wait();
                        repo.place(&new)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let placed_count = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let refusals: Vec<&ReservationLimitExceeded> = outcomes
            .iter()
            .filter_map(|outcome| if let Err(PlaceOrderError::ReservationLimitExceeded(refusal)) = outcome { Some(refusal) } else { None })
            .collect();
        assert_eq!((placed_count, refusals.len()), (10, 10), "refusals: {refusals:?}");
        // Each refusal saw the full cap held: the sums were read one after another.
        assert!(refusals.iter().all(|refusal| refusal.held == 30 && refusal.requested == 3), "{refusals:?}");
        let held: i64 = ids.iter().map(|&id| stock(db, id).1).sum();
        assert_eq!(held, 30);
        assert_reservations_match_pending_orders(db, &ids);
    }

    /// 4 threads each try to confirm all 20 orders: each is confirmed once, numbers 1..=20.
    fn racing_confirmations_issue_gapless_unique_numbers_and_commit_once(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let admin = insert_user(db, at(0)).id;
        let (shared, _) = insert_product(db, &new_product("Shared", 100, 100, at(0)));
        let (side, _) = insert_product(db, &new_product("Side", 100, 100, at(0)));
        let pending: Vec<Order> = (0..20)
            .map(|i| placed(orders(db).place(&new_order(customer, &[(side.id, 1), (shared.id, 2)], at(i), 0))))
            .collect();
        let barrier = Barrier::new(4);
        let confirmed: Vec<Order> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4_usize)
                .map(|thread| {
                    let (repo, barrier, pending) = (orders(db), &barrier, &pending);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut won = Vec::new();
                        // Each thread starts elsewhere in the list, so they collide all along.
                        for k in 0..pending.len() {
                            let order = &pending[(k + thread * 5) % pending.len()];
                            match repo.change_status(&change(order, OrderStatus::Confirmed, Some(admin), at(500))) {
                                Ok(order) => won.push(order),
                                Err(StatusChangeError::Conflict) => {}
                                Err(other) => panic!("{other:?}"),
                            }
                        }
                        won
                    })
                })
                .collect();
            handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
        });
        assert_eq!(confirmed.len(), 20);
        assert_eq!(confirmed.iter().map(|order| order.id).collect::<HashSet<_>>().len(), 20);
        let mut numbers: Vec<u32> = confirmed
            .iter()
            .map(|order| {
                let number = order.invoice_number.unwrap();
                assert_eq!(number.year(), 2026);
                number.sequence()
            })
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=20).collect::<Vec<u32>>());
        assert_eq!(stock(db, shared.id), (60, 0));
        assert_eq!(stock(db, side.id), (80, 0));
        let listed = invoices(db).list(&InvoiceQuery { limit: PageLimit::new(100).unwrap(), ..InvoiceQuery::default() }).unwrap();
        assert_eq!(listed.len(), 20);
        assert_eq!(events_of(db, "invoice.issued").len(), 20);
        assert_eq!(events_of(db, "order.confirmed").len(), 20);
    }

    /// Two sweeps cancel the same expired orders at once: each reservation is released once.
    fn racing_sweeps_release_each_reservation_once(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (product, _) = insert_product(db, &new_product("Cup", 100, 50, at(0)));
        for i in 0..12 {
            let mut new = new_order(customer, &[(product.id, 2)], at(i), 0);
            new.expires_at = at(100 + i);
            placed(orders(db).place(&new));
        }
        let kept = placed(orders(db).place(&new_order(customer, &[(product.id, 3)], at(50), 0)));
        assert_eq!(stock(db, product.id), (50, 27));
        let barrier = Barrier::new(2);
        let cancelled: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (repo, barrier) = (orders(db), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut cancelled = 0;
                        for id in repo.expired_pending(at(200), 100).unwrap() {
                            let sweep = StatusChange {
                                order_id: id,
                                from: OrderStatus::Pending,
                                to: OrderStatus::Cancelled,
                                effect: TransitionEffect::ReleaseReservation,
                                expected_version: None,
                                actor_id: None,
                                cancel_reason: Some(CancelReason::Expired),
                                now: at(200),
                            };
                            match repo.change_status(&sweep) {
                                Ok(_) => cancelled += 1,
                                Err(StatusChangeError::Conflict) => {}
                                Err(other) => panic!("{other:?}"),
                            }
                        }
                        cancelled
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum()
        });
        assert_eq!(cancelled, 12);
        assert_eq!(stock(db, product.id), (50, 3));
        assert_eq!(orders(db).find(kept.id).unwrap().unwrap().status, OrderStatus::Pending);
        assert_reservations_match_pending_orders(db, &[product.id]);
        let events = events_of(db, "order.cancelled");
        assert_eq!(events.len(), 12);
        assert!(events.iter().all(|event| event.data["reason"] == "expired" && event.data["actor_id"].is_null()));
    }
}

fn orders(db: &TestDatabase) -> DieselOrderRepository {
    DieselOrderRepository::new(db.database().clone())
}

fn invoices(db: &TestDatabase) -> DieselInvoiceRepository {
    DieselInvoiceRepository::new(db.database().clone())
}

/// An order of `lines` (product, quantity) placed at `placed_at`, expiring 30 minutes later.
fn new_order(customer: UserId, lines: &[(ProductId, i64)], placed_at: DateTime<Utc>, tax_bps: u32) -> NewOrder {
    let lines = lines
        .iter()
        .map(|&(product_id, quantity)| LineRequest { product_id, quantity: Quantity::parse(quantity).unwrap() })
        .collect();
    NewOrder {
        id: OrderId::new(),
        customer_id: customer,
        request: OrderRequest::new(lines).unwrap(),
        tax_rate: TaxRate::from_basis_points(tax_bps).unwrap(),
        currency: eur(),
        placed_at,
        expires_at: placed_at + chrono::Duration::seconds(1800),
        reservation_cap: ReservationCap::UNLIMITED,
    }
}

/// Moving `order` from its current status to `to` at its current version, with the effect of
/// the transition table.
fn change(order: &Order, to: OrderStatus, actor: Option<UserId>, now: DateTime<Utc>) -> StatusChange {
    let effect = match (order.status, to) {
        (OrderStatus::Pending, OrderStatus::Confirmed) => TransitionEffect::CommitReservationAndInvoice,
        (OrderStatus::Pending, OrderStatus::Cancelled) => TransitionEffect::ReleaseReservation,
        _ => TransitionEffect::None,
    };
    StatusChange {
        order_id: order.id,
        from: order.status,
        to,
        effect,
        expected_version: Some(order.version),
        actor_id: actor,
        cancel_reason: (to == OrderStatus::Cancelled).then_some(CancelReason::Admin),
        now,
    }
}

fn placed(outcome: Result<Order, PlaceOrderError>) -> Order {
    outcome.unwrap_or_else(|refusal| panic!("expected the order placed, got {refusal:?}"))
}

fn applied(outcome: Result<Order, StatusChangeError>) -> Order {
    outcome.unwrap_or_else(|refusal| panic!("expected the change applied, got {refusal:?}"))
}

/// `(on_hand, reserved)` of a product.
fn stock(db: &TestDatabase, id: ProductId) -> (i64, i64) {
    let product = products(db).find_by_id(id).unwrap().unwrap();
    (product.stock.on_hand(), product.stock.reserved())
}

fn events_of(db: &TestDatabase, event_type: &str) -> Vec<orderly_persistence::testing::RecordedEvent> {
    db.recorded_events().into_iter().filter(|event| event.event_type == event_type).collect()
}

/// Every page of `query`, following the cursor.
fn walk(repo: &impl OrderRepository, mut query: OrderQuery) -> Vec<Order> {
    let mut seen = Vec::new();
    loop {
        let page = Page::from_overfetched(repo.list(&query).unwrap(), query.limit);
        seen.extend(page.items.iter().cloned());
        if !page.has_more {
            break;
        }
        query.after = page.items.last().map(|order| OrderCursor { placed_at: order.placed_at, id: order.id });
    }
    let ids: HashSet<OrderId> = seen.iter().map(|order| order.id).collect();
    assert_eq!(ids.len(), seen.len(), "an order repeated");
    seen
}

/// The spec's invariant: each product's `reserved` is the sum of its pending orders' quantities.
fn assert_reservations_match_pending_orders(db: &TestDatabase, ids: &[ProductId]) {
    let pending = walk(
        &orders(db),
        OrderQuery { status: Some(OrderStatus::Pending), limit: PageLimit::new(100).unwrap(), ..OrderQuery::default() },
    );
    let mut promised: HashMap<ProductId, i64> = HashMap::new();
    for line in pending.iter().flat_map(|order| &order.items) {
        *promised.entry(line.product_id).or_default() += line.quantity.get();
    }
    for id in ids {
        let (on_hand, reserved) = stock(db, *id);
        assert_eq!(reserved, promised.get(id).copied().unwrap_or(0), "product {id}");
        assert!(on_hand >= reserved && reserved >= 0);
    }
}
