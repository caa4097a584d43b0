//! The Idempotency-Key executor (docs/api.md#retries-idempotency-key) with the real repositories running inside it: the
//! use case's changes and the stored response commit or roll back together.

use std::panic::AssertUnwindSafe;
use std::sync::{Barrier, Mutex};

use chrono::{DateTime, Utc};
use orderly_domain::idempotency::{
    Execution, IdempotencyClaim, IdempotencyKey, IdempotencyScope, IdempotentOutcome, StoredResponse,
};
use orderly_domain::order::{LineRequest, OrderId, OrderRequest, Quantity, TaxRate};
use orderly_domain::ports::{IdempotentExecutor, NewOrder, OrderRepository, ProductRepository};
use orderly_domain::product::ProductId;
use orderly_domain::user::UserId;
use orderly_persistence::testing::{Backend, TestDatabase};
use orderly_persistence::{DieselIdempotentExecutor, DieselOrderRepository};

use crate::fixtures::{at, eur, insert_product, insert_user, new_product, products};

orderly_persistence::backend_tests! {
    fn the_first_run_executes_and_a_repeat_replays_byte_for_byte(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let claim = claim_of(customer, "key-1", "fp-1", at(10));
        let mut calls = 0;
        let first = executor(db).run(&claim, &mut |_| { calls += 1; Execution::Committed(response(201, b"{\"id\":1}\xff\x00")) }).unwrap();
        assert_eq!(first, IdempotentOutcome::Executed(response(201, b"{\"id\":1}\xff\x00")));
        let again = executor(db).run(&claim_of(customer, "key-1", "fp-1", at(20)), &mut |_| { calls += 1; Execution::Committed(response(201, b"other")) }).unwrap();
        assert_eq!(again, IdempotentOutcome::Replayed(response(201, b"{\"id\":1}\xff\x00")));
        assert_eq!(calls, 1);
        assert_eq!(db.count_rows("idempotency_keys"), 1);

        // Another caller's identical key is a different record.
        let other = insert_user(db, at(0)).id;
        let theirs = executor(db).run(&claim_of(other, "key-1", "fp-1", at(30)), &mut |_| { calls += 1; Execution::Committed(response(201, b"theirs")) }).unwrap();
        assert_eq!(theirs, IdempotentOutcome::Executed(response(201, b"theirs")));
        let anonymous = IdempotencyClaim { scope: IdempotencyScope::Anonymous, ..claim_of(other, "key-1", "fp-1", at(30)) };
        assert!(matches!(executor(db).run(&anonymous, &mut |_| Execution::Committed(response(201, b"anon"))).unwrap(), IdempotentOutcome::Executed(_)));
        assert_eq!(calls, 2);
    }

    fn a_different_request_with_the_same_key_is_refused(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        executor(db).run(&claim_of(customer, "k", "fp-1", at(0)), &mut |_| Execution::Committed(response(201, b"x"))).unwrap();
        let reused = executor(db).run(&claim_of(customer, "k", "fp-2", at(1)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(reused, IdempotentOutcome::KeyReused);
    }

    fn a_repeat_while_the_first_is_executing_is_in_progress(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let entered = Barrier::new(2);
        let release = Barrier::new(2);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
                    placed(tx.orders.place(&new_order(customer, cups.id, 2, at(0))));
                    entered.wait();
                    release.wait();
                    Execution::Committed(response(201, b"first"))
                })
            });
            entered.wait();
            let repeat = executor(db).run(&claim_of(customer, "k", "fp", at(1)), &mut |_| panic!("must not execute")).unwrap();
            assert_eq!(repeat, IdempotentOutcome::InProgress);
            let mismatch = executor(db).run(&claim_of(customer, "k", "other", at(1)), &mut |_| panic!("must not execute")).unwrap();
            assert_eq!(mismatch, IdempotentOutcome::KeyReused);
            // Meanwhile the uncommitted reservation is invisible to everyone else.
            assert_eq!(stock(db, cups.id), (10, 0));
            release.wait();
            assert_eq!(first.join().unwrap().unwrap(), IdempotentOutcome::Executed(response(201, b"first")));
        });
        let replay = executor(db).run(&claim_of(customer, "k", "fp", at(2)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(replay, IdempotentOutcome::Replayed(response(201, b"first")));
        assert_eq!(stock(db, cups.id), (10, 2));
    }

    fn a_claim_whose_request_died_is_taken_over_after_its_lease(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let crashed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
                placed(tx.orders.place(&new_order(customer, cups.id, 4, at(0))));
                panic!("the use case crashed");
            })
        }));
        assert!(crashed.is_err());
        // The crash left neither the change nor an ambient transaction behind.
        assert_eq!(stock(db, cups.id), (10, 0));
        assert_eq!(events_of(db, "order.placed"), 0);
        placed(orders(db).place(&new_order(customer, cups.id, 1, at(1))));
        assert_eq!(stock(db, cups.id), (10, 1));

        // Within the 60 s lease the claim is still someone's.
        let early = executor(db).run(&claim_of(customer, "k", "fp", at(59)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(early, IdempotentOutcome::InProgress);
        let reused = executor(db).run(&claim_of(customer, "k", "other", at(61)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(reused, IdempotentOutcome::KeyReused);
        let taken = executor(db).run(&claim_of(customer, "k", "fp", at(60)), &mut |tx| {
            placed(tx.orders.place(&new_order(customer, cups.id, 4, at(60))));
            Execution::Committed(response(201, b"retried"))
        }).unwrap();
        assert_eq!(taken, IdempotentOutcome::Executed(response(201, b"retried")));
        assert_eq!(stock(db, cups.id), (10, 5));
        let replay = executor(db).run(&claim_of(customer, "k", "fp", at(200)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(replay, IdempotentOutcome::Replayed(response(201, b"retried")));
    }

    fn a_refusal_is_stored_and_replayed_and_its_writes_are_rolled_back(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let refused = executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
            placed(tx.orders.place(&new_order(customer, cups.id, 3, at(0))));
            Execution::Refused(response(409, b"{\"type\":\"conflict\"}"))
        }).unwrap();
        assert_eq!(refused, IdempotentOutcome::Executed(response(409, b"{\"type\":\"conflict\"}")));
        assert_eq!(stock(db, cups.id), (10, 0));
        assert_eq!(events_of(db, "order.placed"), 0);
        let replay = executor(db).run(&claim_of(customer, "k", "fp", at(1)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(replay, IdempotentOutcome::Replayed(response(409, b"{\"type\":\"conflict\"}")));
    }

    fn a_failure_leaves_no_trace_and_a_retry_executes(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let failed = executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
            placed(tx.orders.place(&new_order(customer, cups.id, 3, at(0))));
            Execution::Failed(response(500, b"oops"))
        }).unwrap();
        assert_eq!(failed, IdempotentOutcome::Executed(response(500, b"oops")));
        assert_eq!(db.count_rows("idempotency_keys"), 0);
        assert_eq!(db.count_rows("orders"), 0);
        assert_eq!(stock(db, cups.id), (10, 0));

        let retried = executor(db).run(&claim_of(customer, "k", "fp", at(1)), &mut |tx| {
            placed(tx.orders.place(&new_order(customer, cups.id, 3, at(1))));
            Execution::Committed(response(201, b"ok"))
        }).unwrap();
        assert_eq!(retried, IdempotentOutcome::Executed(response(201, b"ok")));
        assert_eq!(stock(db, cups.id), (10, 3));
    }

    fn a_committed_change_and_its_record_are_one_transaction(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let mut order_id = None;
        let outcome = executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
            let order = placed(tx.orders.place(&new_order(customer, cups.id, 3, at(0))));
            // Inside, the use case reads its own writes ...
            assert_eq!(tx.orders.find(order.id).unwrap().map(|found| found.id), Some(order.id));
            // ... which no other connection sees before the commit.
            let outside = std::thread::scope(|scope| scope.spawn(|| orders(db).find(order.id).unwrap()).join().unwrap());
            assert_eq!(outside, None);
            order_id = Some(order.id);
            Execution::Committed(response(201, order.id.to_string().as_bytes()))
        }).unwrap();
        let order_id = order_id.unwrap();
        assert_eq!(outcome, IdempotentOutcome::Executed(response(201, order_id.to_string().as_bytes())));
        assert!(orders(db).find(order_id).unwrap().is_some());
        assert_eq!(stock(db, cups.id), (10, 3));
        assert_eq!(events_of(db, "order.placed"), 1);
        assert_eq!(db.count_rows("idempotency_keys"), 1);
    }

    fn when_the_record_cannot_be_written_the_change_is_rolled_back(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let mut order_id = None;
        // The database refuses the completion write (the `UPDATE` that stores the committed
        // response), as it would on a lost connection or a full disk.
        refuse_completions(db, true);
        let outcome = executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
            let order = placed(tx.orders.place(&new_order(customer, cups.id, 3, at(0))));
            order_id = Some(order.id);
            Execution::Committed(response(201, b"placed"))
        });
        refuse_completions(db, false);
        assert!(outcome.is_err(), "{outcome:?}");
        assert_eq!(orders(db).find(order_id.unwrap()).unwrap(), None);
        assert_eq!(stock(db, cups.id), (10, 0));
        assert_eq!(events_of(db, "order.placed"), 0);
        // The claim was released: a retry executes.
        assert_eq!(db.count_rows("idempotency_keys"), 0);
        let retried = executor(db).run(&claim_of(customer, "k", "fp", at(1)), &mut |_| Execution::Committed(response(201, b"ok"))).unwrap();
        assert_eq!(retried, IdempotentOutcome::Executed(response(201, b"ok")));
    }

    fn repositories_outside_an_executor_work_as_before(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        executor(db).run(&claim_of(customer, "k", "fp", at(0)), &mut |_| Execution::Committed(response(201, b"x"))).unwrap();
        let order = placed(orders(db).place(&new_order(customer, cups.id, 2, at(1))));
        assert!(orders(db).find(order.id).unwrap().is_some());
        assert_eq!(stock(db, cups.id), (10, 2));
    }

    fn repositories_kept_past_their_unit_of_work_fail_instead_of_writing_outside_it(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let mut kept = None;
        executor(db)
            .run(&claim_of(customer, "k", "fp", at(0)), &mut |tx| {
                kept = Some(tx.clone());
                Execution::Committed(response(201, b"x"))
            })
            .unwrap();
        let kept = kept.unwrap();
        assert!(kept.orders.place(&new_order(customer, cups.id, 1, at(1))).is_err());
        assert_eq!(stock(db, cups.id), (10, 0));
    }

    fn racing_retries_of_one_key_place_one_order(db: &TestDatabase) {
        const RACERS: usize = 8;
        let customer = insert_user(db, at(0)).id;
        let (cups, _) = insert_product(db, &new_product("Cup", 100, 10, at(0)));
        let start = Barrier::new(RACERS);
        let outcomes = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..RACERS {
                scope.spawn(|| {
                    start.wait();
                    let outcome = executor(db).run(&claim_of(customer, "race", "fp", at(0)), &mut |tx| {
                        let order = placed(tx.orders.place(&new_order(customer, cups.id, 3, at(0))));
                        Execution::Committed(response(201, order.id.to_string().as_bytes()))
                    }).unwrap();
                    outcomes.lock().unwrap().push(outcome);
                });
            }
        });
        let outcomes = outcomes.into_inner().unwrap();
        let executed: Vec<_> = outcomes.iter().filter_map(|o| match o { IdempotentOutcome::Executed(r) => Some(r.clone()), _ => None }).collect();
        assert_eq!(executed.len(), 1, "{outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                IdempotentOutcome::Executed(_) | IdempotentOutcome::InProgress => {}
                IdempotentOutcome::Replayed(replayed) => assert_eq!(replayed, &executed[0]),
                IdempotentOutcome::KeyReused => panic!("same fingerprint: {outcomes:?}"),
            }
        }
        assert_eq!(events_of(db, "order.placed"), 1);
        assert_eq!(db.count_rows("orders"), 1);
        assert_eq!(stock(db, cups.id), (10, 3));
        let replay = executor(db).run(&claim_of(customer, "race", "fp", at(1)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(replay, IdempotentOutcome::Replayed(executed[0].clone()));
    }

    fn purge_deletes_only_old_records(db: &TestDatabase) {
        let customer = insert_user(db, at(0)).id;
        for (key, now) in [("old", at(0)), ("new", at(100))] {
            executor(db).run(&claim_of(customer, key, "fp", now), &mut |_| Execution::Committed(response(201, key.as_bytes()))).unwrap();
        }
        assert_eq!(executor(db).purge(at(50)).unwrap(), 1);
        assert_eq!(executor(db).purge(at(50)).unwrap(), 0);
        assert_eq!(db.count_rows("idempotency_keys"), 1);
        let kept = executor(db).run(&claim_of(customer, "new", "fp", at(200)), &mut |_| panic!("must not execute")).unwrap();
        assert_eq!(kept, IdempotentOutcome::Replayed(response(201, b"new")));
        let again = executor(db).run(&claim_of(customer, "old", "fp", at(200)), &mut |_| Execution::Committed(response(201, b"again"))).unwrap();
        assert_eq!(again, IdempotentOutcome::Executed(response(201, b"again")));
    }
}

/// Installs (or drops) a trigger that makes every write completing an idempotency key fail.
fn refuse_completions(db: &TestDatabase, refuse: bool) {
    let statements: &[&str] = match (db.backend(), refuse) {
        (Backend::Sqlite, true) => &["CREATE TRIGGER refuse_completion BEFORE UPDATE ON idempotency_keys \
             WHEN NEW.state = 'completed' BEGIN SELECT RAISE(ABORT, 'completion refused by the test'); END"],
        (Backend::Sqlite, false) => &["DROP TRIGGER refuse_completion"],
        (Backend::Postgres, true) => &[
            "CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'completion refused by the test'; END $$",
            "CREATE TRIGGER refuse_completion BEFORE UPDATE ON idempotency_keys FOR EACH ROW \
             WHEN (NEW.state = 'completed') EXECUTE FUNCTION refuse_completion()",
        ],
        (Backend::Postgres, false) => &["DROP TRIGGER refuse_completion ON idempotency_keys"],
    };
    for statement in statements {
        db.execute(statement);
    }
}

fn executor(db: &TestDatabase) -> DieselIdempotentExecutor {
    DieselIdempotentExecutor::new(db.database().clone(), chrono::Duration::seconds(60))
}

fn orders(db: &TestDatabase) -> DieselOrderRepository {
    DieselOrderRepository::new(db.database().clone())
}

fn claim_of(user: UserId, key: &str, fingerprint: &str, now: DateTime<Utc>) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope::User(user),
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.to_owned(),
        now,
    }
}

fn response(status: u16, body: &[u8]) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![
            ("Location".to_owned(), "/v1/orders/1".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ],
        body: body.to_vec(),
    }
}

fn new_order(customer: UserId, product: ProductId, quantity: i64, placed_at: DateTime<Utc>) -> NewOrder {
    NewOrder {
        id: OrderId::new(),
        customer_id: customer,
        request: OrderRequest::new(vec![LineRequest {
            product_id: product,
            quantity: Quantity::parse(quantity).unwrap(),
        }])
        .unwrap(),
        tax_rate: TaxRate::from_basis_points(0).unwrap(),
        currency: eur(),
        placed_at,
        expires_at: placed_at + chrono::Duration::seconds(1800),
        reservation_cap: orderly_domain::order::ReservationCap::UNLIMITED,
    }
}

fn placed(
    outcome: Result<orderly_domain::order::Order, orderly_domain::order::PlaceOrderError>,
) -> orderly_domain::order::Order {
    outcome.unwrap_or_else(|refusal| panic!("expected the order placed, got {refusal:?}"))
}

/// `(on_hand, reserved)` of a product.
fn stock(db: &TestDatabase, id: ProductId) -> (i64, i64) {
    let product = products(db).find_by_id(id).unwrap().unwrap();
    (product.stock.on_hand(), product.stock.reserved())
}

fn events_of(db: &TestDatabase, event_type: &str) -> usize {
    db.recorded_events().iter().filter(|event| event.event_type == event_type).count()
}
