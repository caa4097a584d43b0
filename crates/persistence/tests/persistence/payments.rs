//! Payment attempts (docs/api.md#payments): one `processing` attempt per order (also under racing inserts),
//! settled exactly once with its event, the provider reference recorded once, each provider
//! event applied once, and the expiry sweep leaving orders with a processing payment alone.

use std::collections::HashSet;
use std::sync::Barrier;

use chrono::{DateTime, Utc};
use orderly_domain::StoreError;
use orderly_domain::event::DomainEvent;
use orderly_domain::order::{
    CancelReason, LineRequest, Order, OrderId, OrderRequest, OrderStatus, Quantity, TaxRate, TransitionEffect,
};
use orderly_domain::pagination::{Page, PageLimit};
use orderly_domain::payment::{
    NewPayment, Payment, PaymentFailure, PaymentId, PaymentQuery, PaymentSettlement, PaymentStatus,
};
use orderly_domain::ports::{
    InsertPaymentError, NewOrder, OrderRepository, PaymentRepository, ProductRepository, StatusChange,
    StatusChangeError,
};
use orderly_domain::product::ProductId;
use orderly_domain::user::UserId;
use orderly_persistence::testing::{RecordedEvent, TestDatabase};
use orderly_persistence::{DieselOrderRepository, DieselPaymentRepository};

use crate::fixtures::{at, eur, insert_product, insert_user, new_product, products};

orderly_persistence::backend_tests! {
    fn attempts_round_trip_and_list_newest_first_page_by_page(db: &TestDatabase) {
        let (order, product) = place_order(db, at(0));
        let other = place_order_of(db, order.customer_id, product, at(1));
        let repo = payments(db);

        let mut made = Vec::new();
        for i in 0..5 {
            let new = new_payment(&order, Some(&format!("user:{}:key-{i}", order.customer_id)), at(10 + i));
            let inserted = repo.insert(&new).unwrap();
            assert_eq!(
                inserted,
                Payment {
                    id: new.id,
                    order_id: order.id,
                    customer_id: order.customer_id,
                    status: PaymentStatus::Processing,
                    amount: order.total.amount(),
                    currency: eur(),
                    provider: "stripe".to_owned(),
                    provider_reference: None,
                    failure: None,
                    request_key: new.request_key.clone(),
                    created_at: at(10 + i),
                    updated_at: at(10 + i),
                }
            );
            assert_eq!(repo.find(new.id).unwrap(), Some(inserted.clone()));
            // Settled before the next, so the next may be processing.
            let failed = settle(&repo, &inserted, PaymentStatus::Failed, Some(declined()), None, at(20 + i)).unwrap();
            made.push(failed);
        }
        // Another order's attempt is never listed with this one's.
        repo.insert(&new_payment(&other, None, at(30))).unwrap();
        assert_eq!(repo.find(PaymentId::new()).unwrap(), None);

        let mut newest_first = made.clone();
        newest_first.sort_by_key(|payment| std::cmp::Reverse(payment.id));
        // UUIDv7: newest first by id is newest first by creation.
        assert_eq!(newest_first.iter().map(|payment| payment.created_at).collect::<Vec<_>>(), (0..5).rev().map(|i| at(10 + i)).collect::<Vec<_>>());
        for limit in [1, 2, 3, 5, 100] {
            assert_eq!(walk(&repo, order.id, limit), newest_first, "limit {limit}");
        }
        let overfetched = repo.list(&PaymentQuery { order_id: order.id, after: None, limit: PageLimit::new(2).unwrap() }).unwrap();
        assert_eq!(overfetched, newest_first[..3].to_vec());
        let after_last = PaymentQuery { order_id: order.id, after: Some(newest_first[4].id), limit: PageLimit::new(10).unwrap() };
        assert!(repo.list(&after_last).unwrap().is_empty());
    }

    fn a_second_processing_attempt_is_refused_until_the_first_is_settled(db: &TestDatabase) {
        let (order, product) = place_order(db, at(0));
        let other = place_order_of(db, order.customer_id, product, at(1));
        let repo = payments(db);
        let first = repo.insert(&new_payment(&order, Some("user:1:a"), at(10))).unwrap();
        assert!(repo.has_processing(order.id).unwrap());
        assert!(!repo.has_processing(other.id).unwrap());

        let second = new_payment(&order, Some("user:1:b"), at(11));
        assert!(matches!(repo.insert(&second).unwrap_err(), InsertPaymentError::AlreadyProcessing));
        assert_eq!(repo.find(second.id).unwrap(), None);
        // Another order is not affected.
        repo.insert(&new_payment(&other, None, at(12))).unwrap();

        settle(&repo, &first, PaymentStatus::Failed, Some(declined()), None, at(13)).unwrap();
        assert!(!repo.has_processing(order.id).unwrap());
        let retried = repo.insert(&second).unwrap();
        assert_eq!(retried.status, PaymentStatus::Processing);
        assert!(repo.has_processing(order.id).unwrap());

        // A reused request key is a bug, not "in progress": the row with it is not processing.
        settle(&repo, &retried, PaymentStatus::Succeeded, None, Some("pi_1"), at(14)).unwrap();
        let reused = new_payment(&order, Some("user:1:a"), at(15));
        assert!(matches!(repo.insert(&reused).unwrap_err(), InsertPaymentError::Store(StoreError::Unexpected(_))));
        assert!(!repo.has_processing(order.id).unwrap());
    }

    /// Several instances start an attempt for one order at once: the database lets one in.
    fn racing_attempts_for_one_order_let_exactly_one_in(db: &TestDatabase) {
        let (order, _) = place_order(db, at(0));
        let barrier = Barrier::new(8);
        let outcomes: Vec<Result<Payment, InsertPaymentError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (repo, barrier, order) = (payments(db), &barrier, &order);
                    scope.spawn(move || {
                        let new = new_payment(order, Some(&format!("user:x:{i}")), at(10));
                        barrier.wait();
                        repo.insert(&new)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let winners: Vec<&Payment> = outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert!(
            outcomes.iter().filter_map(|outcome| outcome.as_ref().err()).all(|error| matches!(error, InsertPaymentError::AlreadyProcessing)),
            "{outcomes:?}"
        );
        assert_eq!(db.count_rows("payments"), 1);
        assert_eq!(payments(db).find(winners[0].id).unwrap().as_ref(), Some(winners[0]));
    }

    fn an_attempt_is_settled_once_and_its_event_written_once(db: &TestDatabase) {
        let (order, _) = place_order(db, at(0));
        let repo = payments(db);
        let payment = repo.insert(&new_payment(&order, None, at(10))).unwrap();
        assert!(repo.record_reference(payment.id, "pi_123", at(11)).unwrap());
        let before = payment_events(db);
        assert!(before.is_empty());

        // From the wrong status: nothing happens.
        let wrong = PaymentSettlement { from: PaymentStatus::Succeeded, ..settlement(&payment, PaymentStatus::Refunded, None, None, at(12)) };
        assert_eq!(repo.settle(&wrong, &settled_event(&order, &wrong)).unwrap(), None);
        assert!(payment_events(db).is_empty());

        // Learning no reference keeps the recorded one.
        let succeeded = settle(&repo, &payment, PaymentStatus::Succeeded, None, None, at(13)).unwrap();
        assert_eq!((succeeded.status, succeeded.provider_reference.as_deref()), (PaymentStatus::Succeeded, Some("pi_123")));
        assert_eq!((succeeded.failure.clone(), succeeded.created_at, succeeded.updated_at), (None, at(10), at(13)));
        assert_eq!(repo.find(payment.id).unwrap(), Some(succeeded.clone()));
        // Again from processing (a late event, the reconciliation job): nothing is written.
        assert_eq!(settle(&repo, &payment, PaymentStatus::Failed, Some(declined()), None, at(14)), None);
        assert_eq!(repo.find(payment.id).unwrap(), Some(succeeded.clone()));

        let events = payment_events(db);
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].event_type.as_str(), events[0].subject_type.as_str()), ("payment.succeeded", "payment"));
        assert_eq!((events[0].subject_id.clone(), events[0].occurred_at), (payment.id.to_string(), at(13)));
        assert_eq!(
            events[0].data,
            serde_json::json!({
                "payment_id": payment.id.to_string(),
                "order_id": order.id.to_string(),
                "customer_id": order.customer_id.to_string(),
                "status": "succeeded",
                "amount": order.total.amount(),
                "failure_code": null,
            })
        );

        // Refunded from succeeded, once.
        let refunded = settle(&repo, &succeeded, PaymentStatus::Refunded, None, None, at(15)).unwrap();
        assert_eq!((refunded.status, refunded.provider_reference.as_deref()), (PaymentStatus::Refunded, Some("pi_123")));
        assert_eq!(settle(&repo, &succeeded, PaymentStatus::Refunded, None, None, at(16)), None);
        assert_eq!(payment_events(db).iter().map(|event| event.event_type.as_str()).collect::<Vec<_>>(), ["payment.succeeded", "payment.refunded"]);

        // A failure carries its code and message; a settlement that learns the reference stores it.
        let second = repo.insert(&new_payment(&order, None, at(20))).unwrap();
        let failed = settle(&repo, &second, PaymentStatus::Failed, Some(declined()), Some("pi_456"), at(21)).unwrap();
        assert_eq!((failed.failure, failed.provider_reference.as_deref()), (Some(declined()), Some("pi_456")));
        let last = payment_events(db).pop().unwrap();
        assert_eq!((last.event_type.as_str(), last.data["failure_code"].as_str()), ("payment.failed", Some("card_declined")));
    }

    /// The provider's answer, its event and the reconciliation job settle one attempt at once.
    fn racing_settlements_move_the_attempt_once(db: &TestDatabase) {
        let (order, _) = place_order(db, at(0));
        let payment = payments(db).insert(&new_payment(&order, None, at(10))).unwrap();
        let barrier = Barrier::new(6);
        let outcomes: Vec<Option<Payment>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|i| {
                    let (repo, barrier, payment) = (payments(db), &barrier, &payment);
                    scope.spawn(move || {
                        let to = if i % 2 == 0 { PaymentStatus::Succeeded } else { PaymentStatus::Failed };
                        let failure = (to == PaymentStatus::Failed).then(declined);
                        barrier.wait();
                        settle(&repo, payment, to, failure, None, at(20 + i))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let settled: Vec<&Payment> = outcomes.iter().flatten().collect();
        assert_eq!(settled.len(), 1, "{outcomes:?}");
        assert_eq!(payments(db).find(payment.id).unwrap().as_ref(), Some(settled[0]));
        let events = payment_events(db);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data["status"], settled[0].status.as_str());
    }

    fn the_reference_is_recorded_while_processing_and_never_replaced(db: &TestDatabase) {
        let (order, product) = place_order(db, at(0));
        let other = place_order_of(db, order.customer_id, product, at(1));
        let repo = payments(db);
        let payment = repo.insert(&new_payment(&order, Some("user:1:k"), at(10))).unwrap();
        assert_eq!(repo.find_by_reference("stripe", "pi_1").unwrap(), None);

        assert!(repo.record_reference(payment.id, "pi_1", at(11)).unwrap());
        let recorded = repo.find(payment.id).unwrap().unwrap();
        assert_eq!((recorded.provider_reference.as_deref(), recorded.updated_at), (Some("pi_1"), at(11)));
        // The same again (a retry) is fine; another is refused and changes nothing.
        assert!(repo.record_reference(payment.id, "pi_1", at(12)).unwrap());
        assert!(!repo.record_reference(payment.id, "pi_2", at(13)).unwrap());
        assert_eq!(repo.find(payment.id).unwrap().unwrap().provider_reference.as_deref(), Some("pi_1"));
        assert!(!repo.record_reference(PaymentId::new(), "pi_3", at(13)).unwrap());

        let found = repo.find_by_reference("stripe", "pi_1").unwrap().unwrap();
        assert_eq!(found.id, payment.id);
        assert_eq!(repo.find_by_reference("other", "pi_1").unwrap(), None);
        assert_eq!(repo.find_by_reference("stripe", "pi_2").unwrap(), None);
        assert_eq!(repo.find_by_request_key(order.id, "user:1:k").unwrap().map(|found| found.id), Some(payment.id));
        assert_eq!(repo.find_by_request_key(order.id, "user:1:other").unwrap(), None);
        assert_eq!(repo.find_by_request_key(other.id, "user:1:k").unwrap(), None);

        // Once settled, the reference is fixed.
        let fresh = repo.insert(&new_payment(&other, None, at(20))).unwrap();
        settle(&repo, &fresh, PaymentStatus::Failed, Some(declined()), None, at(21)).unwrap();
        assert!(!repo.record_reference(fresh.id, "pi_9", at(22)).unwrap());
        assert_eq!(repo.find(fresh.id).unwrap().unwrap().provider_reference, None);

        // A settlement naming another reference settles, but keeps the recorded one.
        let settled = settle(&repo, &payment, PaymentStatus::Succeeded, None, Some("pi_other"), at(30)).unwrap();
        assert_eq!((settled.status, settled.provider_reference.as_deref()), (PaymentStatus::Succeeded, Some("pi_1")));
        assert_eq!(repo.find_by_reference("stripe", "pi_other").unwrap(), None);
        // (And a later settlement naming yet another changes nothing about it either.)
        let refunded = settle(&repo, &settled, PaymentStatus::Refunded, None, Some("pi_third"), at(31)).unwrap();
        assert_eq!(refunded.provider_reference.as_deref(), Some("pi_1"));
    }

    fn each_provider_event_is_applied_once(db: &TestDatabase) {
        let repo = payments(db);
        assert!(repo.mark_provider_event_applied("stripe", "evt_1", at(1)).unwrap());
        assert!(!repo.mark_provider_event_applied("stripe", "evt_1", at(2)).unwrap());
        assert!(repo.mark_provider_event_applied("stripe", "evt_2", at(3)).unwrap());
        assert!(repo.mark_provider_event_applied("other", "evt_1", at(4)).unwrap());
        assert_eq!(db.count_rows("provider_events"), 3);

        // Racing deliveries of one event: one applies it.
        let barrier = Barrier::new(8);
        let applied: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (repo, barrier) = (payments(db), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        usize::from(repo.mark_provider_event_applied("stripe", "evt_race", at(5)).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum()
        });
        assert_eq!(applied, 1);
    }

    fn an_attempt_needs_a_pending_order(db: &TestDatabase) {
        let (order, product) = place_order(db, at(0));
        let cancelled = place_order_of(db, order.customer_id, product, at(1));
        let orders = DieselOrderRepository::new(db.database().clone());
        let repo = payments(db);
        repo.insert(&new_payment(&order, None, at(10))).unwrap();
        // Locking the order's row changes nothing in it.
        assert_eq!(orders.find(order.id).unwrap(), Some(order.clone()));

        let cancel = StatusChange { cancel_reason: Some(CancelReason::Customer), actor_id: Some(order.customer_id), ..expire(cancelled.id, at(20)) };
        orders.change_status(&cancel).unwrap();
        let refused = repo.insert(&new_payment(&cancelled, None, at(21))).unwrap_err();
        assert!(matches!(refused, InsertPaymentError::OrderNotPending), "{refused:?}");
        let unknown = Order { id: OrderId::new(), ..order.clone() };
        assert!(matches!(repo.insert(&new_payment(&unknown, None, at(22))).unwrap_err(), InsertPaymentError::OrderNotPending));
        assert_eq!(db.count_rows("payments"), 1);
        assert_eq!(orders.find(cancelled.id).unwrap().unwrap().status, OrderStatus::Cancelled);
    }

    /// The sweep and a payment attempt race for a lapsed order: exactly one of them wins, never
    /// both (a cancelled order with a processing attempt), never neither.
    fn racing_sweep_and_attempt_never_both_win(db: &TestDatabase) {
        let orders = DieselOrderRepository::new(db.database().clone());
        let (first, product) = place_order(db, at(0));
        let mut lapsed = vec![first];
        for i in 1..10 {
            lapsed.push(place_order_of(db, lapsed[0].customer_id, product, at(i)));
        }
        let (mut paid, mut expired) = (0, 0);
        for order in &lapsed {
            let barrier = Barrier::new(2);
            let (inserted, swept) = std::thread::scope(|scope| {
                let attempt = scope.spawn(|| {
                    let repo = payments(db);
                    let new = new_payment(order, None, at(3600));
                    barrier.wait();
                    repo.insert(&new)
                });
                let sweep = scope.spawn(|| {
                    let repo = DieselOrderRepository::new(db.database().clone());
                    barrier.wait();
                    repo.change_status(&expire(order.id, at(3600)))
                });
                (attempt.join().unwrap(), sweep.join().unwrap())
            });
            match (inserted, swept) {
                (Ok(payment), Err(StatusChangeError::Conflict)) => {
                    assert_eq!(payment.status, PaymentStatus::Processing);
                    assert_eq!(orders.find(order.id).unwrap().unwrap().status, OrderStatus::Pending);
                    paid += 1;
                }
                (Err(InsertPaymentError::OrderNotPending), Ok(cancelled)) => {
                    assert_eq!(cancelled.status, OrderStatus::Cancelled);
                    assert!(!payments(db).has_processing(order.id).unwrap());
                    expired += 1;
                }
                other => panic!("both or neither won: {other:?}"),
            }
        }
        assert_eq!(paid + expired, lapsed.len());
        // Every reservation of a cancelled order was released once.
        assert_eq!(reserved(db, product), i64::try_from(paid).unwrap());
    }

    /// docs/api.md#payments: the sweep never expires an order whose payment is `processing`, neither when it
    /// lists expired orders nor when it cancels one it listed before the attempt began.
    fn the_sweep_leaves_orders_with_a_processing_payment_alone(db: &TestDatabase) {
        let (paying, product) = place_order(db, at(0));
        let lapsed = place_order_of(db, paying.customer_id, product, at(1));
        let orders = DieselOrderRepository::new(db.database().clone());
        let repo = payments(db);
        let payment = repo.insert(&new_payment(&paying, None, at(10))).unwrap();
        let sweep_time = at(3600);

        assert_eq!(orders.expired_pending(sweep_time, 10).unwrap(), vec![lapsed.id]);
        let reserved_before = reserved(db, product);
        let events_before = db.recorded_events();
        assert!(matches!(orders.change_status(&expire(paying.id, sweep_time)), Err(StatusChangeError::Conflict)));
        let still = orders.find(paying.id).unwrap().unwrap();
        assert_eq!((still.status, still.version, still.expires_at), (OrderStatus::Pending, paying.version, paying.expires_at));
        assert_eq!(reserved(db, product), reserved_before);
        assert_eq!(db.recorded_events(), events_before);

        // Other attempts of the order do not count, only a processing one: once it failed, the
        // order expires as usual.
        settle(&repo, &payment, PaymentStatus::Failed, Some(declined()), None, at(20)).unwrap();
        assert_eq!(orders.expired_pending(sweep_time, 10).unwrap(), vec![paying.id, lapsed.id]);
        orders.change_status(&expire(paying.id, sweep_time)).unwrap();
        assert_eq!(reserved(db, product), reserved_before - 1);
        // The order without any payment expires too.
        orders.change_status(&expire(lapsed.id, sweep_time)).unwrap();
        assert_eq!(reserved(db, product), 0);
    }
}

fn payments(db: &TestDatabase) -> DieselPaymentRepository {
    DieselPaymentRepository::new(db.database().clone())
}

/// A pending order of one unit of a new product (total 1000), by a new customer, expiring 30
/// minutes after `placed_at`; and the product.
fn place_order(db: &TestDatabase, placed_at: DateTime<Utc>) -> (Order, ProductId) {
    let customer = insert_user(db, at(0)).id;
    let (product, _) = insert_product(db, &new_product("Mug", 1000, 10, at(0)));
    (place_order_of(db, customer, product.id, placed_at), product.id)
}

fn place_order_of(db: &TestDatabase, customer: UserId, product: ProductId, placed_at: DateTime<Utc>) -> Order {
    let line = LineRequest { product_id: product, quantity: Quantity::parse(1).unwrap() };
    let new = NewOrder {
        id: OrderId::new(),
        customer_id: customer,
        request: OrderRequest::new(vec![line]).unwrap(),
        tax_rate: TaxRate::from_basis_points(0).unwrap(),
        currency: eur(),
        placed_at,
        expires_at: placed_at + chrono::Duration::seconds(1800),
        reservation_cap: orderly_domain::order::ReservationCap::UNLIMITED,
    };
    DieselOrderRepository::new(db.database().clone()).place(&new).unwrap()
}

fn new_payment(order: &Order, request_key: Option<&str>, created_at: DateTime<Utc>) -> NewPayment {
    NewPayment {
        id: PaymentId::new(),
        order_id: order.id,
        customer_id: order.customer_id,
        amount: order.total.amount(),
        currency: eur(),
        provider: "stripe".to_owned(),
        request_key: request_key.map(str::to_owned),
        created_at,
    }
}

fn declined() -> PaymentFailure {
    PaymentFailure::new("card_declined", "Your card was declined.")
}

fn settlement(
    payment: &Payment,
    to: PaymentStatus,
    failure: Option<PaymentFailure>,
    reference: Option<&str>,
    now: DateTime<Utc>,
) -> PaymentSettlement {
    PaymentSettlement {
        payment_id: payment.id,
        from: if to == PaymentStatus::Refunded { PaymentStatus::Succeeded } else { PaymentStatus::Processing },
        to,
        failure,
        provider_reference: reference.map(str::to_owned),
        now,
    }
}

fn settled_event(order: &Order, settlement: &PaymentSettlement) -> DomainEvent {
    DomainEvent::PaymentSettled {
        payment_id: settlement.payment_id,
        order_id: order.id,
        customer_id: order.customer_id,
        status: settlement.to,
        amount: order.total.amount(),
        failure_code: settlement.failure.as_ref().map(|failure| failure.code.clone()),
        occurred_at: settlement.now,
    }
}

/// Settles `payment` (from `processing`, or from `succeeded` for a refund) with its event.
fn settle(
    repo: &DieselPaymentRepository,
    payment: &Payment,
    to: PaymentStatus,
    failure: Option<PaymentFailure>,
    reference: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Payment> {
    let settlement = settlement(payment, to, failure, reference, now);
    let event = DomainEvent::PaymentSettled {
        payment_id: payment.id,
        order_id: payment.order_id,
        customer_id: payment.customer_id,
        status: to,
        amount: payment.amount,
        failure_code: settlement.failure.as_ref().map(|failure| failure.code.clone()),
        occurred_at: now,
    };
    repo.settle(&settlement, &event).unwrap()
}

fn payment_events(db: &TestDatabase) -> Vec<RecordedEvent> {
    db.recorded_events().into_iter().filter(|event| event.event_type.starts_with("payment.")).collect()
}

/// The sweep's change for `order`.
fn expire(order: OrderId, now: DateTime<Utc>) -> StatusChange {
    StatusChange {
        order_id: order,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        effect: TransitionEffect::ReleaseReservation,
        expected_version: None,
        actor_id: None,
        cancel_reason: Some(CancelReason::Expired),
        now,
    }
}

fn reserved(db: &TestDatabase, product: ProductId) -> i64 {
    products(db).find_by_id(product).unwrap().unwrap().stock.reserved()
}

/// Every page of one order's attempts, following the cursor.
fn walk(repo: &DieselPaymentRepository, order_id: OrderId, limit: i64) -> Vec<Payment> {
    let limit = PageLimit::new(limit).unwrap();
    let mut query = PaymentQuery { order_id, after: None, limit };
    let mut seen = Vec::new();
    loop {
        let page = Page::from_overfetched(repo.list(&query).unwrap(), limit);
        seen.extend(page.items.iter().cloned());
        if !page.has_more {
            break;
        }
        query.after = page.items.last().map(|payment| payment.id);
    }
    let ids: HashSet<PaymentId> = seen.iter().map(|payment| payment.id).collect();
    assert_eq!(ids.len(), seen.len(), "an attempt repeated");
    seen
}
