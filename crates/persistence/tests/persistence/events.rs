//! The event feed (docs/api.md#events): positions increase in the order no later commit can get behind
//! (consecutive, in commit order, on SQLite; from a sequence on PostgreSQL, where a reader waits
//! for the writers in flight), a rolled-back writer's events never appear, the feed pages
//! through every event once, a change that waited for another's row comes after it, and
//! consumers polling with their last position while writers commit concurrently (also slow
//! ones) see every event exactly once, in the same order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_domain::StoreError;
use orderly_domain::event::{DomainEvent, EVENT_TYPES, EventQuery, FeedEvent};
use orderly_domain::order::{
    LineRequest, Order, OrderId, OrderRequest, OrderStatus, Quantity, TaxRate, TransitionEffect,
};
use orderly_domain::pagination::PageLimit;
use orderly_domain::ports::{
    EventFeed, InsertUserError, NewOrder, OrderRepository, ProductRepository, StatusChange, StockAdjustmentError,
    UserRepository,
};
use orderly_domain::ports::{Repositories, in_transaction};
use orderly_domain::product::{AdjustmentReason, ProductId, StockDelta};
use orderly_domain::user::{Role, UserId};
use orderly_persistence::testing::{Backend, RecordedEvent, TestDatabase};
use orderly_persistence::{DieselEventFeed, DieselOrderRepository, DieselUnitOfWork};
use uuid::Uuid;

use crate::fixtures::{at, eur, insert_admin, insert_product, insert_user, new_product, new_user, registered, users};

orderly_persistence::backend_tests! {
    fn sequential_writes_get_increasing_positions_in_commit_order(db: &TestDatabase) {
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
        assert_strictly_increasing(&positions_of(&recorded));
        if db.backend() == Backend::Sqlite {
            assert_eq!(positions_of(&recorded), (1..=7).collect::<Vec<_>>());
            assert_eq!(db.last_event_position(), 7);
        }
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
        assert_strictly_increasing(&positions_of(&recorded));
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

    /// A transaction that rolls back takes its events with it. On SQLite it hands its positions
    /// back too (the next writer gets them: no gaps); on PostgreSQL its positions are simply
    /// never used again (they belong to its transaction id).
    fn rolled_back_writes_leave_no_event(db: &TestDatabase) {
        let ada = new_user("ada@example.com", Role::Customer, at(0));
        users(db).insert(&ada, &registered(&ada)).unwrap();
        let first = positions_of(&db.recorded_events());

        let twin = new_user("ada@example.com", Role::Customer, at(1));
        assert!(matches!(users(db).insert(&twin, &registered(&twin)), Err(InsertUserError::EmailTaken)));
        assert_eq!(positions_of(&db.recorded_events()), first);

        // Failing after the events were written.
        let ghosts = [registered(&twin), registered(&new_user("ghost@example.com", Role::Customer, at(1)))];
        let given = db.write_events_then_roll_back(&ghosts);
        assert_eq!(given.len(), 2);
        assert_eq!(given[1], given[0] + 1, "one transaction's events are neighbours");
        assert!(given[0] > first[0]);
        assert_eq!(positions_of(&db.recorded_events()), first);

        let grace = new_user("grace@example.com", Role::Customer, at(2));
        users(db).insert(&grace, &registered(&grace)).unwrap();
        let recorded = db.recorded_events();
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[1].data["email"], "grace@example.com");
        match db.backend() {
            Backend::Sqlite => {
                assert_eq!(given, [2, 3]);
                assert_eq!(positions_of(&recorded), [1, 2]);
                assert_eq!(db.last_event_position(), 2);
            }
            Backend::Postgres => assert!(recorded[1].position > given[1], "positions are never handed out twice"),
        }
        let feed = DieselEventFeed::new(db.database().clone());
        assert_eq!(keys(&walk(&feed, None, 10)), recorded_keys(recorded.iter()));
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
        let fourth_from_last = recorded[recorded.len() - 4].position;
        assert_eq!(feed.list(&query(None, Some(fourth_from_last), 2)).unwrap().len(), 3);
        assert_eq!(feed.list(&query(None, Some(0), 3)).unwrap()[0].position, recorded[0].position);
    }

    /// The slip-behind race, made to happen: a writer holds its events uncommitted while a
    /// later writer commits and a reader polls. The reader must not see the later event before
    /// the earlier one: on SQLite the later writer cannot even commit (one writer at a time);
    /// on PostgreSQL it commits, but is not served while the slow writer is in flight (it may
    /// hold any position below). Once the slow writer commits, both events are
    /// served, the slow one first.
    fn a_later_commit_is_not_served_before_an_earlier_open_writer(db: &TestDatabase) {
        insert_user(db, at(0));
        let feed = DieselEventFeed::new(db.database().clone());
        // Inside the slow writer, waiting would only delay the asserts: zero serves what is
        // final at once (on PostgreSQL: nothing new while a writer is in flight). What it must
        // never do is serve the later event.
        let impatient = feed.clone().with_writer_wait(Duration::ZERO);
        let before = positions(&feed.list(&query(None, None, 20)).unwrap());
        assert_eq!(before.len(), 1);
        let slow_event = registered(&new_user("slow@example.com", Role::Customer, at(1)));
        std::thread::scope(|scope| {
            let mut fast = None;
            let given = db.write_events_holding(std::slice::from_ref(&slow_event), || {
                let writer = scope.spawn(|| insert_user(db, at(2)));
                match db.backend() {
                    Backend::Sqlite => {
                        std::thread::sleep(Duration::from_millis(300));
                        assert!(!writer.is_finished(), "a later writer committed while an earlier one was open");
                    }
                    Backend::Postgres => {
                        // Committed (no lock stands in its way any more), yet not served.
                        wait_until_finished(&writer);
                        assert_eq!(db.recorded_events().len(), 2, "the later event is committed");
                    }
                }
                let served = positions(&impatient.list(&query(None, None, 20)).unwrap());
                assert!(before.starts_with(&served), "served {served:?} beyond {before:?}");
                fast = Some(writer);
            });
            assert_eq!(given.len(), 1);
            let fast = fast.unwrap().join().unwrap();
            let served = feed.list(&query(None, before.last().copied(), 20)).unwrap();
            assert_eq!(served.len(), 2, "{served:?}");
            assert_eq!(served[0].subject_id, slow_event.subject().1);
            assert_eq!(served[0].position, given[0]);
            assert_eq!(served[1].subject_id, fast.id.to_string());
        });
    }

    /// PostgreSQL: a writer that has written its events but not committed holds the feed back;
    /// a reader waits for it (within `WRITER_WAIT`) rather than serve a page that misses what
    /// was committed before the request, then serves everything. A transaction that writes no
    /// events holds nothing back, however long it stays open.
    fn a_read_waits_for_a_writer_in_flight_but_not_for_other_transactions(db: &TestDatabase) {
        if db.backend() != Backend::Postgres {
            return; // SQLite: an open writer blocks other writers; nothing to wait for.
        }
        insert_user(db, at(0));
        let feed = DieselEventFeed::new(db.database().clone());
        let impatient = feed.clone().with_writer_wait(Duration::ZERO);
        let slow_event = registered(&new_user("slow@example.com", Role::Customer, at(1)));
        std::thread::scope(|scope| {
            let mut patient = None;
            db.write_events_holding(std::slice::from_ref(&slow_event), || {
                let committed = scope.spawn(|| insert_user(db, at(2)));
                wait_until_finished(&committed);
                // A writer is in flight: nothing new is final yet.
                assert!(impatient.list(&query(None, None, 20)).unwrap().is_empty());
                let reader = scope.spawn(|| feed.list(&query(None, None, 20)).unwrap());
                std::thread::sleep(Duration::from_millis(100));
                assert!(!reader.is_finished(), "the reader did not wait for the writer in flight");
                patient = Some(reader);
            });
            // The writer has committed: the waiting reader serves all three, in order.
            let served = patient.unwrap().join().unwrap();
            assert_eq!(served.len(), 3, "{served:?}");
            assert_eq!(served[1].subject_id, slow_event.subject().1);
        });

        db.hold_open_write_transaction(|| {
            let served = impatient.list(&query(None, None, 20)).unwrap();
            assert_eq!(served.len(), 3, "an open transaction without events held the feed back");
        });
    }

    /// A change that had to wait for another change's row comes after it in the feed, even if
    /// it began writing first: a consumer replaying the feed sees the product's counters in the
    /// order they happened. Here B registers a user (its first write) and then adjusts a product
    /// whose row A holds; A commits first, so A's `stock.adjusted` (on hand 11) must precede B's
    /// (on hand 12).
    fn a_change_that_waited_for_another_s_row_comes_after_it(db: &TestDatabase) {
        let (product, admin) = insert_product(db, &new_product("Mug", 100, 10, at(0)));
        let unit_of_work = DieselUnitOfWork::new(db.database().clone());
        let adjust_in = |tx: &Repositories, now| {
            let reason = AdjustmentReason::parse("delivery").unwrap();
            match tx.products.adjust_stock(product.id, StockDelta::parse(1).unwrap(), &reason, admin, now) {
                Ok(_) => Ok::<_, StoreError>(()),
                Err(StockAdjustmentError::Store(error)) => Err(error),
                Err(refusal) => panic!("{refusal:?}"),
            }
        };
        std::thread::scope(|scope| {
            in_transaction(&unit_of_work, |tx| {
                adjust_in(tx, at(1))?;
                // A holds the product's row. B begins writing, then waits for that row.
                let b = scope.spawn(|| {
                    in_transaction(&unit_of_work, |tx| {
                        let user = new_user("b@example.com", Role::Customer, at(2));
                        tx.users.insert(&user, &registered(&user)).unwrap();
                        adjust_in(tx, at(3))
                    })
                    .unwrap();
                });
                std::thread::sleep(Duration::from_millis(300));
                assert!(!b.is_finished(), "B did not wait for the product's row");
                // A commits when this closure returns; B then adjusts on top of it.
                Ok::<_, StoreError>(())
            })
            .unwrap();
        });
        let feed = DieselEventFeed::new(db.database().clone());
        let on_hand: Vec<i64> = walk(&feed, Some("stock.adjusted"), 10)
            .iter()
            .map(|event| serde_json::from_str::<serde_json::Value>(&event.data_json).unwrap()["on_hand"].as_i64().unwrap())
            .collect();
        assert_eq!(on_hand, [11, 12]);
    }

    /// Six writers register users, adjust stock, place and confirm orders while three consumers
    /// poll the feed with their last position, seven at a time: each sees every event exactly
    /// once, in the same order.
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

/// Waits (up to 10 s) until `thread` has finished, leaving it to be joined.
fn wait_until_finished<T>(thread: &std::thread::ScopedJoinHandle<'_, T>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !thread.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the thread did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn assert_strictly_increasing(positions: &[i64]) {
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{positions:?}");
}

const WRITES_PER_THREAD: i64 = 30;
const SLOW_WRITES_PER_THREAD: usize = 6;
const READER_LIMIT: u16 = 7;
const READERS: usize = 3;

/// `fast` threads of ordinary writes and `slow` threads of writes held open for `hold`, racing
/// `READERS` polling consumers (one waits for writers in flight as the service does, the others
/// serve only what is final at once); then checks what each saw against the table.
fn race(db: &TestDatabase, fast: usize, slow: usize, hold: Duration) {
    let customer = insert_user(db, at(0)).id;
    let admin = insert_admin(db);
    let products: Vec<ProductId> =
        (0..3).map(|i| insert_product(db, &new_product(&format!("P{i}"), 100, 100_000, at(0))).0.id).collect();
    let patient = DieselEventFeed::new(db.database().clone());
    let impatient = patient.clone().with_writer_wait(Duration::ZERO);
    let feeds: Vec<&DieselEventFeed> =
        std::iter::once(&patient).chain(std::iter::repeat_n(&impatient, READERS - 1)).collect();
    let writers_done = AtomicBool::new(false);

    let seen_by_each = std::thread::scope(|scope| {
        let readers: Vec<_> =
            feeds.iter().map(|feed| scope.spawn(|| poll_until_drained(db, feed, &writers_done))).collect();
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
        readers.into_iter().map(|reader| reader.join().unwrap()).collect::<Vec<_>>()
    });

    let recorded = db.recorded_events();
    let expected_writes = fast as i64 * WRITES_PER_THREAD + (slow * SLOW_WRITES_PER_THREAD) as i64;
    assert!(recorded.len() as i64 > expected_writes, "{} events", recorded.len());
    for seen in &seen_by_each {
        // Exactly once: the same events, in the same order, as the table holds at the end.
        assert_eq!(keys(seen), recorded_keys(recorded.iter()));
        let ids: HashSet<_> = seen.iter().map(|event| event.id).collect();
        assert_eq!(ids.len(), seen.len(), "an event was seen twice");
        assert_strictly_increasing(&positions(seen));
    }
    if db.backend() == Backend::Sqlite {
        // No gaps, and the counter agrees.
        assert_eq!(positions(&seen_by_each[0]), (1..=recorded.len() as i64).collect::<Vec<_>>());
        assert_eq!(db.last_event_position(), recorded.len() as i64);
    }
    assert_confirmations_are_followed_by_their_invoice(&recorded);
}

/// Polls from the start with the last position seen, `READER_LIMIT` at a time, until the
/// writers are done and it has seen as many events as the table then holds (or 30 s pass: the
/// caller's comparison then shows what is missing). Positions must only grow. An empty poll is
/// not the end: a reader that does not wait sees nothing while a writer is in flight.
fn poll_until_drained(db: &TestDatabase, feed: &DieselEventFeed, writers_done: &AtomicBool) -> Vec<FeedEvent> {
    let mut seen: Vec<FeedEvent> = Vec::new();
    let mut after = None;
    let mut total = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if total.is_none() && writers_done.load(Ordering::SeqCst) {
            total = Some(usize::try_from(db.count_rows("events")).unwrap());
        }
        let mut page = feed.list(&query(None, after, READER_LIMIT)).unwrap();
        assert!(page.len() <= usize::from(READER_LIMIT) + 1);
        page.truncate(usize::from(READER_LIMIT));
        for event in &page {
            assert!(after.is_none_or(|after| event.position > after), "position {} after {after:?}", event.position);
            after = Some(event.position);
        }
        let idle = page.is_empty();
        seen.extend(page);
        if total.is_some_and(|total| seen.len() >= total) || std::time::Instant::now() > deadline {
            return seen;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
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
    let outcome = crate::fixtures::products(db).adjust_stock(
        product,
        StockDelta::parse(delta).unwrap(),
        &AdjustmentReason::parse("delivery").unwrap(),
        actor,
        now,
    );
    outcome.unwrap();
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
        reservation_cap: orderly_domain::order::ReservationCap::UNLIMITED,
    };
    orders(db).place(&order).unwrap()
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
    let outcome = orders(db).change_status(&change);
    outcome.unwrap();
}
