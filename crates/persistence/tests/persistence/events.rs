//! The event feed (§2.5): positions are consecutive and follow commit order, a rolled-back
//! writer leaves no gap, the feed pages through every event once, and a consumer polling with
//! its last position while writers commit concurrently (also slow ones) sees every event
//! exactly once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_domain::event::{DomainEvent, EVENT_TYPES, EventQuery, FeedEvent};
use orderly_domain::order::{
    LineRequest, Order, OrderId, OrderRequest, OrderStatus, Quantity, TaxRate, TransitionEffect,
};
use orderly_domain::pagination::PageLimit;
use orderly_domain::ports::{
    AdjustOutcome, EventFeed, InsertUserError, NewOrder, OrderRepository, PlaceOutcome, ProductRepository,
    StatusChange, StatusChangeOutcome, UserRepository,
};
use orderly_domain::product::{AdjustmentReason, ProductId, StockDelta};
use orderly_domain::user::{Role, UserId};
use orderly_persistence::testing::{Backend, RecordedEvent, TestDatabase};
use orderly_persistence::{DieselEventFeed, DieselOrderRepository};
use uuid::Uuid;

use crate::fixtures::{at, eur, insert_admin, insert_product, insert_user, new_product, new_user, registered, users};

orderly_persistence::backend_tests! {
    fn sequential_writes_get_consecutive_positions_in_commit_order(db: &TestDatabase) {
        assert_eq!(db.last_event_position(), 0);
        let customer = insert_user(db, at(0)).id;
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 10, at(1)));
        adjust(db, product.id, 5, admin, at(2));
        let order = place(db, customer, product.id, at(3));
        confirm(db, &order, admin, at(4));

        let recorded = db.recorded_events();
        let types: Vec<&str> = recorded.iter().map(|event| event.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "user.registered",
                "user.registered",
                "product.created",
                "stock.adjusted",
                "order.placed",
                "order.confirmed",
                "invoice.issued",
            ]
        );
        assert_eq!(positions_of(&recorded), (1..=7).collect::<Vec<_>>());
        assert_eq!(db.last_event_position(), 7);
    }

    /// A confirmation writes `order.confirmed` and `invoice.issued` in one transaction: they get
    /// neighbouring positions, in that order.
    fn a_confirmation_s_two_events_get_consecutive_positions(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 10, at(0)));
        let first = place(db, customer, product.id, at(1));
        let second = place(db, customer, product.id, at(2));
        confirm(db, &second, admin, at(3));
        confirm(db, &first, admin, at(4));

        let recorded = db.recorded_events();
        assert_eq!(positions_of(&recorded), (1..=recorded.len() as i64).collect::<Vec<_>>());
        assert_confirmations_are_followed_by_their_invoice(&recorded);
        let tail: Vec<(&str, &str)> = recorded[recorded.len() - 4..]
            .iter()
            .map(|event| (event.event_type.as_str(), event.data["order_id"].as_str().unwrap()))
            .collect();
        let (first_id, second_id) = (first.id.to_string(), second.id.to_string());
        assert_eq!(
            tail,
            [
                ("order.confirmed", second_id.as_str()),
                ("invoice.issued", second_id.as_str()),
                ("order.confirmed", first_id.as_str()),
                ("invoice.issued", first_id.as_str()),
            ]
        );
    }

    /// A transaction that rolls back hands its positions back with everything else: the next
    /// writer gets them, so the feed has no gaps.
    fn rolled_back_writes_consume_no_position(db: &TestDatabase) {
        let ada = new_user("ada@example.com", Role::Customer, at(0));
        users(db).insert(&ada, &registered(&ada)).unwrap();
        assert_eq!(db.last_event_position(), 1);

        let twin = new_user("ada@example.com", Role::Customer, at(1));
        assert!(matches!(users(db).insert(&twin, &registered(&twin)), Err(InsertUserError::EmailTaken)));
        assert_eq!(db.last_event_position(), 1);

        // Failing after the events (and so the counter) were written.
        let ghosts = [registered(&twin), registered(&new_user("ghost@example.com", Role::Customer, at(1)))];
        assert_eq!(db.write_events_then_roll_back(&ghosts), [2, 3]);
        assert_eq!(db.last_event_position(), 1);

        let grace = new_user("grace@example.com", Role::Customer, at(2));
        users(db).insert(&grace, &registered(&grace)).unwrap();
        let recorded = db.recorded_events();
        assert_eq!(positions_of(&recorded), [1, 2]);
        assert_eq!(recorded[1].data["email"], "grace@example.com");
        assert_eq!(db.last_event_position(), 2);
    }

    fn the_feed_pages_through_every_event_once_with_and_without_a_type_filter(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        insert_user(db, at(1));
        let (mug, admin) = insert_product(db, &new_product("Mug", 100, 50, at(2)));
        let (cup, _) = insert_product(db, &new_product("Cup", 200, 50, at(3)));
        for (i, product) in [mug.id, cup.id, mug.id, mug.id].into_iter().enumerate() {
            adjust(db, product, 1, admin, at(4 + i as i64));
        }
        let first = place(db, customer, mug.id, at(10));
        place(db, customer, cup.id, at(11));
        confirm(db, &first, admin, at(12));

        let recorded = db.recorded_events();
        let feed = DieselEventFeed::new(db.database().clone());
        for limit in [1, 2, 3, 7, 100] {
            let walked = walk(&feed, None, limit);
            assert_eq!(keys(&walked), recorded_keys(recorded.iter()), "limit {limit}");
            for type_name in EVENT_TYPES {
                let walked = walk(&feed, Some(type_name), limit);
                let expected = recorded_keys(recorded.iter().filter(|event| event.event_type == type_name));
                assert_eq!(keys(&walked), expected, "type {type_name}, limit {limit}");
            }
        }

        // What the feed serves is what was stored, untouched.
        let walked = walk(&feed, None, 100);
        for (served, stored) in walked.iter().zip(&recorded) {
            assert_eq!(served.id.to_string(), stored.id);
            assert_eq!((served.type_name.as_str(), served.subject_type.as_str()), (stored.event_type.as_str(), stored.subject_type.as_str()));
            assert_eq!((served.subject_id.as_str(), served.occurred_at), (stored.subject_id.as_str(), stored.occurred_at));
            assert_eq!(serde_json::from_str::<serde_json::Value>(&served.data_json).unwrap(), stored.data);
        }

        // After the last position, and with an over-fetch of one to tell there is more.
        let last = recorded.last().unwrap().position;
        assert!(feed.list(&query(None, Some(last), 20)).unwrap().is_empty());
        assert_eq!(feed.list(&query(None, Some(last - 3), 2)).unwrap().len(), 3);
        assert_eq!(feed.list(&query(None, Some(0), 3)).unwrap()[0].position, 1);
    }

    /// The slip-behind race, made to happen: a writer holds its position uncommitted while a
    /// later writer tries to commit and a reader polls. The later writer cannot get past the
    /// counter (PostgreSQL: its row lock; SQLite: the write lock), the reader sees nothing new,
    /// and once the slow writer commits both events appear in commit order.
    fn a_later_writer_cannot_commit_behind_an_uncommitted_position(db: &TestDatabase) {
        insert_user(db, at(0));
        let feed = DieselEventFeed::new(db.database().clone());
        let slow_event = registered(&new_user("slow@example.com", Role::Customer, at(1)));
        std::thread::scope(|scope| {
            let mut fast = None;
            let given = db.write_events_holding(std::slice::from_ref(&slow_event), || {
                let writer = scope.spawn(|| insert_user(db, at(2)));
                std::thread::sleep(Duration::from_millis(300));
                assert!(!writer.is_finished(), "a later writer committed while an earlier position was open");
                assert_eq!(positions(&feed.list(&query(None, None, 20)).unwrap()), [1]);
                fast = Some(writer);
            });
            assert_eq!(given, [2]);
            let fast = fast.unwrap().join().unwrap();
            let served = feed.list(&query(None, Some(1), 20)).unwrap();
            assert_eq!(positions(&served), [2, 3]);
            assert_eq!(served[0].subject_id, slow_event.subject().1);
            assert_eq!(served[1].subject_id, fast.id.to_string());
        });
    }

    /// Six writers register users, adjust stock, place and confirm orders while a consumer polls
    /// the feed with its last position, seven at a time: it sees every event exactly once.
    fn a_polling_consumer_sees_every_event_once_while_writers_commit(db: &TestDatabase) {
        race(db, 6, 0, Duration::ZERO);
    }

    /// The same with slow writers among them, which hold their position uncommitted for a while
    /// (200 ms on PostgreSQL, where this is the race a sequence would lose; 20 ms on SQLite,
    /// which serialises writers anyway and whose busy timeout the queue must stay under).
    fn a_polling_consumer_sees_every_event_once_while_slow_writers_commit(db: &TestDatabase) {
        let hold = match db.backend() {
            Backend::Postgres => Duration::from_millis(200),
            Backend::Sqlite => Duration::from_millis(20),
        };
        race(db, 4, 2, hold);
    }
}

const WRITES_PER_THREAD: i64 = 30;
const SLOW_WRITES_PER_THREAD: usize = 6;
const READER_LIMIT: u16 = 7;

/// `fast` threads of ordinary writes and `slow` threads of writes held open for `hold`, racing
/// a polling consumer; then checks what it saw against the table.
fn race(db: &TestDatabase, fast: usize, slow: usize, hold: Duration) {
    let customer = insert_user(db, at(0)).id;
    let admin = insert_admin(db);
    let products: Vec<ProductId> =
        (0..3).map(|i| insert_product(db, &new_product(&format!("P{i}"), 100, 100_000, at(0))).0.id).collect();
    let feed = DieselEventFeed::new(db.database().clone());
    let writers_done = AtomicBool::new(false);

    let seen = std::thread::scope(|scope| {
        let reader = scope.spawn(|| poll_until_drained(&feed, &writers_done));
        let mut writers = Vec::new();
        for thread in 0..fast {
            let products = &products;
            writers.push(scope.spawn(move || {
                for i in 0..WRITES_PER_THREAD {
                    let product = products[(thread + i as usize) % products.len()];
                    let now = at(i);
                    match i % 3 {
                        0 => {
                            insert_user(db, now);
                        }
                        1 => adjust(db, product, 1, admin, now),
                        _ => {
                            let order = place(db, customer, product, now);
                            if i % 6 == 5 {
                                confirm(db, &order, admin, now);
                            }
                        }
                    }
                }
            }));
        }
        for _ in 0..slow {
            writers.push(scope.spawn(move || {
                for i in 0..SLOW_WRITES_PER_THREAD {
                    let user = new_user(&format!("{}@example.com", Uuid::now_v7().simple()), Role::Customer, at(0));
                    // Sometimes two events, to hold a range of positions open.
                    let events: Vec<DomainEvent> = (0..1 + i % 2).map(|_| registered(&user)).collect();
                    db.write_events_holding(&events, || std::thread::sleep(hold));
                }
            }));
        }
        for writer in writers {
            writer.join().unwrap();
        }
        writers_done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });

    let recorded = db.recorded_events();
    let expected_writes = fast as i64 * WRITES_PER_THREAD + (slow * SLOW_WRITES_PER_THREAD) as i64;
    assert!(recorded.len() as i64 > expected_writes, "{} events", recorded.len());
    // Exactly once: the same events, in the same order, as the table holds at the end.
    assert_eq!(keys(&seen), recorded_keys(recorded.iter()));
    let ids: HashSet<_> = seen.iter().map(|event| event.id).collect();
    assert_eq!(ids.len(), seen.len(), "an event was seen twice");
    // No gaps, and the counter agrees.
    assert_eq!(positions(&seen), (1..=recorded.len() as i64).collect::<Vec<_>>());
    assert_eq!(db.last_event_position(), recorded.len() as i64);
    assert_confirmations_are_followed_by_their_invoice(&recorded);
}

/// Polls from the start with the last position seen, `READER_LIMIT` at a time, until the
/// writers are done and a poll after that finds nothing new. Positions must only grow.
fn poll_until_drained(feed: &DieselEventFeed, writers_done: &AtomicBool) -> Vec<FeedEvent> {
    let mut seen: Vec<FeedEvent> = Vec::new();
    let mut after = None;
    loop {
        // Read before polling: an empty poll after the writers finished means drained.
        let finished = writers_done.load(Ordering::SeqCst);
        let mut page = feed.list(&query(None, after, READER_LIMIT)).unwrap();
        assert!(page.len() <= usize::from(READER_LIMIT) + 1);
        page.truncate(usize::from(READER_LIMIT));
        for event in &page {
            assert!(after.is_none_or(|after| event.position > after), "position {} after {after:?}", event.position);
            after = Some(event.position);
        }
        if page.is_empty() {
            if finished {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen.extend(page);
    }
}

fn query(type_name: Option<&'static str>, after: Option<i64>, limit: u16) -> EventQuery {
    EventQuery { type_name, after, limit: PageLimit::new(i64::from(limit)).unwrap() }
}

/// Every page of the feed, as a consumer follows it.
fn walk(feed: &DieselEventFeed, type_name: Option<&'static str>, limit: u16) -> Vec<FeedEvent> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut rows = feed.list(&query(type_name, after, limit)).unwrap();
        let has_more = rows.len() > usize::from(limit);
        rows.truncate(usize::from(limit));
        after = rows.last().map(|event| event.position).or(after);
        all.extend(rows);
        if !has_more {
            return all;
        }
    }
}

fn keys(events: &[FeedEvent]) -> Vec<(i64, String)> {
    events.iter().map(|event| (event.position, event.id.to_string())).collect()
}

fn recorded_keys<'a>(events: impl Iterator<Item = &'a RecordedEvent>) -> Vec<(i64, String)> {
    events.map(|event| (event.position, event.id.clone())).collect()
}

fn positions(events: &[FeedEvent]) -> Vec<i64> {
    events.iter().map(|event| event.position).collect()
}

fn positions_of(events: &[RecordedEvent]) -> Vec<i64> {
    events.iter().map(|event| event.position).collect()
}

/// Every `invoice.issued` sits right after the `order.confirmed` of its order.
fn assert_confirmations_are_followed_by_their_invoice(recorded: &[RecordedEvent]) {
    for pair in recorded.windows(2) {
        if pair[1].event_type == "invoice.issued" {
            assert_eq!(pair[0].event_type, "order.confirmed", "{pair:?}");
            assert_eq!(pair[0].data["order_id"], pair[1].data["order_id"]);
            assert_eq!(pair[1].position, pair[0].position + 1);
        }
    }
}

fn orders(db: &TestDatabase) -> DieselOrderRepository {
    DieselOrderRepository::new(db.database().clone())
}

fn adjust(db: &TestDatabase, product: ProductId, delta: i64, actor: UserId, now: DateTime<Utc>) {
    let outcome = crate::fixtures::products(db)
        .adjust_stock(
            product,
            StockDelta::parse(delta).unwrap(),
            &AdjustmentReason::parse("delivery").unwrap(),
            actor,
            now,
        )
        .unwrap();
    assert!(matches!(outcome, AdjustOutcome::Adjusted { .. }), "{outcome:?}");
}

fn place(db: &TestDatabase, customer: UserId, product: ProductId, placed_at: DateTime<Utc>) -> Order {
    let order = NewOrder {
        id: OrderId::new(),
        customer_id: customer,
        request: OrderRequest::new(vec![LineRequest { product_id: product, quantity: Quantity::parse(1).unwrap() }])
            .unwrap(),
        tax_rate: TaxRate::from_basis_points(0).unwrap(),
        currency: eur(),
        placed_at,
        expires_at: placed_at + chrono::Duration::seconds(1800),
    };
    match orders(db).place(&order).unwrap() {
        PlaceOutcome::Placed(order) => order,
        other => panic!("expected Placed, got {other:?}"),
    }
}

fn confirm(db: &TestDatabase, order: &Order, admin: UserId, now: DateTime<Utc>) {
    let change = StatusChange {
        order_id: order.id,
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        effect: TransitionEffect::CommitReservationAndInvoice,
        expected_version: Some(order.version),
        actor_id: Some(admin),
        cancel_reason: None,
        now,
    };
    let outcome = orders(db).change_status(&change).unwrap();
    assert!(matches!(outcome, StatusChangeOutcome::Applied(_)), "{outcome:?}");
}
