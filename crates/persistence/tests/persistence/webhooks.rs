//! Webhooks (docs/api.md#webhooks): endpoints round-trip, page oldest first and change or go only at the
//! version read (their deliveries with them); one delivery per (endpoint, event), however often
//! a stretch of the feed is dispatched; an attempt recorded once, counted only when sent; manual
//! retries; the backlog; the dispatch position moved by one dispatcher only (also racing, and
//! inside units of work that commit or roll back); and one feed event read by id.

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orderly_domain::StoreError;
use orderly_domain::event::{EventQuery, FeedEvent};
use orderly_domain::pagination::PageLimit;
use orderly_domain::ports::{EventFeed, JobKind, JobQueue, NewJob, UpdateError, WebhookRepository, in_transaction};
use orderly_domain::webhook::{
    DeliveryAttempt, DeliveryBacklog, DeliveryQuery, DeliveryStatus, EndpointUrl, EventTypeFilter, NewWebhookDelivery,
    NewWebhookEndpoint, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId, WebhookEndpointQuery,
    WebhookEndpointUpdate, WebhookSecret,
};
use orderly_persistence::testing::TestDatabase;
use orderly_persistence::{DieselEventFeed, DieselJobQueue, DieselUnitOfWork, DieselWebhookRepository};
use uuid::Uuid;

use crate::fixtures::{at, insert_user};

orderly_persistence::backend_tests! {
    fn endpoints_round_trip_and_list_oldest_first_page_by_page(db: &TestDatabase) {
        let repo = webhooks(db);
        let mut made = Vec::new();
        for (i, filter) in [
            EventTypeFilter::All,
            EventTypeFilter::Only(vec!["order.placed"]),
            EventTypeFilter::Only(vec!["order.confirmed", "order.placed", "payment.succeeded"]),
        ]
        .into_iter()
        .enumerate()
        {
            let new = new_endpoint(filter, at(i64::try_from(i).unwrap()));
            let inserted = repo.insert_endpoint(&new).unwrap();
            assert_eq!(
                inserted,
                WebhookEndpoint {
                    id: new.id,
                    url: new.url.clone(),
                    event_types: new.event_types.clone(),
                    description: new.description.clone(),
                    active: true,
                    secret: new.secret.clone(),
                    version: 1,
                    created_at: new.created_at,
                    updated_at: new.created_at,
                }
            );
            assert_eq!(repo.find_endpoint(new.id).unwrap(), Some(inserted.clone()));
            made.push(inserted);
        }
        assert_eq!(repo.find_endpoint(WebhookEndpointId::new()).unwrap(), None);
        // The filter is stored in its order, the types comma-separated; every type is NULL.
        assert_eq!(db.count_rows("webhook_endpoints WHERE event_types IS NULL"), 1);
        assert_eq!(
            db.count_rows("webhook_endpoints WHERE event_types = 'order.confirmed,order.placed,payment.succeeded'"),
            1
        );

        // Oldest first, one more than the limit, then after the last one shown.
        let first = repo.list_endpoints(&WebhookEndpointQuery { after: None, limit: limit(2) }).unwrap();
        assert_eq!(first, made);
        let rest = repo.list_endpoints(&WebhookEndpointQuery { after: Some(made[1].id), limit: limit(2) }).unwrap();
        assert_eq!(rest, made[2..]);
        assert_eq!(repo.active_endpoints().unwrap(), made);
    }

    fn an_endpoint_changes_only_at_the_version_read(db: &TestDatabase) {
        let repo = webhooks(db);
        let endpoint = repo.insert_endpoint(&new_endpoint(EventTypeFilter::All, at(0))).unwrap();
        let other = repo.insert_endpoint(&new_endpoint(EventTypeFilter::All, at(1))).unwrap();

        let change = WebhookEndpointUpdate {
            url: Some(EndpointUrl::from_stored("https://hooks.example.com/v2".to_owned())),
            event_types: Some(EventTypeFilter::Only(vec!["order.shipped", "order.placed"])),
            description: Some(None),
            active: Some(false),
        };
        let Ok(updated) = repo.update_endpoint(endpoint.id, &change, Some(1), at(10))
        else {
            panic!("the update at the current version did not apply");
        };
        assert_eq!(
            updated,
            WebhookEndpoint {
                url: EndpointUrl::from_stored("https://hooks.example.com/v2".to_owned()),
                event_types: EventTypeFilter::Only(vec!["order.shipped", "order.placed"]),
                description: None,
                active: false,
                version: 2,
                updated_at: at(10),
                ..endpoint.clone()
            }
        );
        assert_eq!(repo.find_endpoint(endpoint.id).unwrap(), Some(updated.clone()));
        // Disabled: no longer among the active ones.
        assert_eq!(repo.active_endpoints().unwrap(), std::slice::from_ref(&other));

        // The same version again is stale; an unknown endpoint is not found, at any version.
        assert!(matches!(repo.update_endpoint(endpoint.id, &change, Some(1), at(11)), Err(UpdateError::VersionMismatch)));
        assert!(matches!(
            repo.update_endpoint(WebhookEndpointId::new(), &change, Some(1), at(11)),
            Err(UpdateError::NotFound)
        ));
        assert!(matches!(repo.update_endpoint(WebhookEndpointId::new(), &change, None, at(11)), Err(UpdateError::NotFound)));
        assert_eq!(repo.find_endpoint(endpoint.id).unwrap(), Some(updated.clone()));

        // Without a version: applies to whatever is there. Only the fields named change.
        let back = WebhookEndpointUpdate {
            event_types: Some(EventTypeFilter::All),
            description: Some(Some("Orders to the warehouse".to_owned())),
            active: Some(true),
            ..WebhookEndpointUpdate::default()
        };
        let Ok(again) = repo.update_endpoint(endpoint.id, &back, None, at(12)) else {
            panic!("the unconditional update did not apply");
        };
        assert_eq!(
            again,
            WebhookEndpoint {
                event_types: EventTypeFilter::All,
                description: Some("Orders to the warehouse".to_owned()),
                active: true,
                version: 3,
                updated_at: at(12),
                ..updated
            }
        );
        assert_eq!(repo.find_endpoint(other.id).unwrap(), Some(other), "another endpoint changed");
    }

    /// Two admins holding the same version: exactly one update applies.
    fn racing_updates_at_one_version_apply_once(db: &TestDatabase) {
        let endpoint = webhooks(db).insert_endpoint(&new_endpoint(EventTypeFilter::All, at(0))).unwrap();
        let barrier = Barrier::new(4);
        let outcomes: Vec<Result<WebhookEndpoint, UpdateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (repo, barrier) = (webhooks(db), &barrier);
                    scope.spawn(move || {
                        let change = WebhookEndpointUpdate {
                            description: Some(Some(format!("writer {i}"))),
                            ..WebhookEndpointUpdate::default()
                        };
                        barrier.wait();
                        repo.update_endpoint(endpoint.id, &change, Some(1), at(10))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let applied = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        let stale = outcomes.iter().filter(|outcome| matches!(outcome, Err(UpdateError::VersionMismatch))).count();
        assert_eq!((applied, stale), (1, 3), "{outcomes:?}");
        assert_eq!(webhooks(db).find_endpoint(endpoint.id).unwrap().unwrap().version, 2);
    }

    fn deleting_an_endpoint_deletes_its_deliveries_only_at_the_version_read(db: &TestDatabase) {
        let repo = webhooks(db);
        let gone = repo.insert_endpoint(&new_endpoint(EventTypeFilter::All, at(0))).unwrap();
        let kept = repo.insert_endpoint(&new_endpoint(EventTypeFilter::All, at(0))).unwrap();
        let event = Uuid::now_v7();
        repo.insert_deliveries(&[new_delivery(&gone, event, at(1)), new_delivery(&kept, event, at(1))]).unwrap();
        repo.insert_deliveries(&[new_delivery(&gone, Uuid::now_v7(), at(2))]).unwrap();
        assert_eq!(db.count_rows("webhook_deliveries"), 3);

        assert!(matches!(repo.delete_endpoint(gone.id, Some(2)), Err(UpdateError::VersionMismatch)));
        assert_eq!(db.count_rows("webhook_deliveries"), 3);
        assert!(matches!(repo.delete_endpoint(gone.id, Some(1)), Ok(())));
        assert_eq!(repo.find_endpoint(gone.id).unwrap(), None);
        assert_eq!(db.count_rows(&format!("webhook_deliveries WHERE endpoint_id = '{}'", gone.id)), 0);
        assert_eq!(db.count_rows(&format!("webhook_deliveries WHERE endpoint_id = '{}'", kept.id)), 1);
        // Gone is gone, at any version.
        assert!(matches!(repo.delete_endpoint(gone.id, Some(1)), Err(UpdateError::NotFound)));
        assert!(matches!(repo.delete_endpoint(gone.id, None), Err(UpdateError::NotFound)));
        // Without a version: whatever is there.
        assert!(matches!(repo.delete_endpoint(kept.id, None), Ok(())));
        assert_eq!(db.count_rows("webhook_deliveries"), 0);
    }

    /// A stretch of the feed dispatched again (a crash before the dispatcher's commit, or two
    /// dispatchers) creates no delivery twice, and only the new ones come back (to get a job).
    fn a_delivery_is_created_once_per_endpoint_and_event(db: &TestDatabase) {
        let repo = webhooks(db);
        let (one, two) = (insert_endpoint(db), insert_endpoint(db));
        let (first_event, second_event) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(repo.insert_deliveries(&[]).unwrap(), []);

        let batch = [new_delivery(&one, first_event, at(10)), new_delivery(&two, first_event, at(10))];
        assert_eq!(repo.insert_deliveries(&batch).unwrap(), [batch[0].id, batch[1].id]);
        let stored = repo.find_delivery(batch[0].id).unwrap().unwrap();
        assert_eq!(
            stored,
            WebhookDelivery {
                id: batch[0].id,
                endpoint_id: one.id,
                event_id: first_event,
                event_type: "order.placed".to_owned(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                response_status: None,
                duration_ms: None,
                error: None,
                next_attempt_at: Some(at(10)),
                created_at: at(10),
                updated_at: at(10),
            }
        );

        // Again, with new ids (as a second dispatch makes them), and one new (endpoint, event).
        let again = [
            new_delivery(&one, first_event, at(20)),
            new_delivery(&one, second_event, at(20)),
            new_delivery(&two, first_event, at(20)),
        ];
        assert_eq!(repo.insert_deliveries(&again).unwrap(), [again[1].id]);
        assert_eq!(db.count_rows("webhook_deliveries"), 3);
        assert_eq!(repo.find_delivery(again[0].id).unwrap(), None);
        assert_eq!(repo.find_delivery(batch[0].id).unwrap(), Some(stored), "the first delivery was touched");
        assert_eq!(repo.find_delivery(WebhookDeliveryId::new()).unwrap(), None);
    }

    fn deliveries_list_newest_first_page_by_page_per_endpoint(db: &TestDatabase) {
        let repo = webhooks(db);
        let (endpoint, other) = (insert_endpoint(db), insert_endpoint(db));
        let mut made = Vec::new();
        for i in 0..5 {
            let delivery = new_delivery(&endpoint, Uuid::now_v7(), at(i));
            repo.insert_deliveries(&[delivery.clone(), new_delivery(&other, Uuid::now_v7(), at(i))]).unwrap();
            made.push(repo.find_delivery(delivery.id).unwrap().unwrap());
        }
        made.reverse();
        let page = |after| repo.list_deliveries(&DeliveryQuery { endpoint_id: endpoint.id, after, limit: limit(2) }).unwrap();
        assert_eq!(page(None), made[..3]);
        assert_eq!(page(Some(made[1].id)), made[2..5]);
        assert_eq!(page(Some(made[3].id)), made[4..]);
        let none = repo
            .list_deliveries(&DeliveryQuery { endpoint_id: WebhookEndpointId::new(), after: None, limit: limit(2) })
            .unwrap();
        assert_eq!(none, []);
    }

    fn an_attempt_is_recorded_once_and_counted_only_when_sent(db: &TestDatabase) {
        let repo = webhooks(db);
        let endpoint = insert_endpoint(db);
        let delivery = new_delivery(&endpoint, Uuid::now_v7(), at(0));
        repo.insert_deliveries(std::slice::from_ref(&delivery)).unwrap();

        // The first attempt: refused by the receiver, retried later.
        let refused = DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Pending,
            response_status: Some(503),
            duration_ms: 120,
            error: Some("the endpoint answered 503".to_owned()),
            next_attempt_at: Some(at(5)),
            at: at(1),
        };
        assert!(repo.record_attempt(delivery.id, 0, &refused).unwrap());
        let after_first = repo.find_delivery(delivery.id).unwrap().unwrap();
        assert_eq!(
            (after_first.status, after_first.attempts, after_first.response_status, after_first.duration_ms),
            (DeliveryStatus::Pending, 1, Some(503), Some(120))
        );
        assert_eq!(
            (after_first.error.as_deref(), after_first.next_attempt_at, after_first.updated_at),
            (Some("the endpoint answered 503"), Some(at(5)), at(1))
        );
        // The same attempt again (a second worker from the same state): refused, nothing changes.
        assert!(!repo.record_attempt(delivery.id, 0, &DeliveryAttempt { at: at(2), ..refused.clone() }).unwrap());
        assert_eq!(repo.find_delivery(delivery.id).unwrap().unwrap(), after_first);

        // No answer at all: the latest attempt's answer is none.
        let timed_out = DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Pending,
            response_status: None,
            duration_ms: 10_000,
            error: Some("no answer within 10 s".to_owned()),
            next_attempt_at: Some(at(300)),
            at: at(6),
        };
        assert!(repo.record_attempt(delivery.id, 1, &timed_out).unwrap());
        let after_second = repo.find_delivery(delivery.id).unwrap().unwrap();
        assert_eq!((after_second.attempts, after_second.response_status, after_second.duration_ms), (2, None, Some(10_000)));

        // Given up without sending (the endpoint was disabled): not an attempt, so the count and
        // the latest attempt's answer and duration stay; the outcome is recorded.
        let given_up = DeliveryAttempt {
            sent: false,
            status: DeliveryStatus::Failed,
            response_status: None,
            duration_ms: 0,
            error: Some("the endpoint is disabled".to_owned()),
            next_attempt_at: None,
            at: at(300),
        };
        assert!(repo.record_attempt(delivery.id, 2, &given_up).unwrap());
        assert_eq!(
            repo.find_delivery(delivery.id).unwrap().unwrap(),
            WebhookDelivery {
                status: DeliveryStatus::Failed,
                error: Some("the endpoint is disabled".to_owned()),
                next_attempt_at: None,
                updated_at: at(300),
                ..after_second.clone()
            }
        );
        // Ended: nothing more is recorded on it, whatever the count.
        assert!(!repo.record_attempt(delivery.id, 2, &refused).unwrap());
        assert!(!repo.record_attempt(WebhookDeliveryId::new(), 0, &refused).unwrap());

        // Succeeded, on another delivery, in one attempt.
        let other = new_delivery(&endpoint, Uuid::now_v7(), at(0));
        repo.insert_deliveries(std::slice::from_ref(&other)).unwrap();
        let delivered = DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Succeeded,
            response_status: Some(204),
            duration_ms: 35,
            error: None,
            next_attempt_at: None,
            at: at(1),
        };
        assert!(repo.record_attempt(other.id, 0, &delivered).unwrap());
        let succeeded = repo.find_delivery(other.id).unwrap().unwrap();
        assert_eq!(
            (succeeded.status, succeeded.attempts, succeeded.response_status, succeeded.next_attempt_at),
            (DeliveryStatus::Succeeded, 1, Some(204), None)
        );
    }

    /// Two workers racing to record on one delivery state: exactly one wins.
    fn racing_records_of_one_attempt_apply_once(db: &TestDatabase) {
        let endpoint = insert_endpoint(db);
        let delivery = new_delivery(&endpoint, Uuid::now_v7(), at(0));
        webhooks(db).insert_deliveries(std::slice::from_ref(&delivery)).unwrap();
        let barrier = Barrier::new(4);
        let recorded = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for i in 0..4u16 {
                let (repo, barrier, recorded) = (webhooks(db), &barrier, &recorded);
                scope.spawn(move || {
                    let attempt = DeliveryAttempt {
                        sent: true,
                        status: DeliveryStatus::Pending,
                        response_status: Some(500 + i),
                        duration_ms: 1,
                        error: Some("failed".to_owned()),
                        next_attempt_at: Some(at(60)),
                        at: at(1),
                    };
                    barrier.wait();
                    if repo.record_attempt(delivery.id, 0, &attempt).unwrap() {
                        recorded.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(recorded.load(Ordering::SeqCst), 1);
        assert_eq!(webhooks(db).find_delivery(delivery.id).unwrap().unwrap().attempts, 1);
    }

    /// A manual retry: pending again, due now; the attempts and the last error stay in the log.
    fn a_reopened_delivery_is_pending_and_due_now(db: &TestDatabase) {
        let repo = webhooks(db);
        let endpoint = insert_endpoint(db);
        let delivery = new_delivery(&endpoint, Uuid::now_v7(), at(0));
        repo.insert_deliveries(std::slice::from_ref(&delivery)).unwrap();
        let failed = DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Failed,
            response_status: Some(410),
            duration_ms: 50,
            error: Some("the endpoint answered 410".to_owned()),
            next_attempt_at: None,
            at: at(1),
        };
        assert!(repo.record_attempt(delivery.id, 0, &failed).unwrap());
        let before = repo.find_delivery(delivery.id).unwrap().unwrap();

        let reopened = repo.reopen_delivery(delivery.id, at(100)).unwrap().unwrap();
        assert_eq!(
            reopened,
            WebhookDelivery {
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(at(100)),
                updated_at: at(100),
                ..before
            }
        );
        assert_eq!(repo.find_delivery(delivery.id).unwrap(), Some(reopened.clone()));
        // The next attempt is recorded on top of it, from its count.
        assert!(repo.record_attempt(delivery.id, 1, &DeliveryAttempt { at: at(101), ..failed }).unwrap());
        assert_eq!(repo.find_delivery(delivery.id).unwrap().unwrap().attempts, 2);
        assert_eq!(repo.reopen_delivery(WebhookDeliveryId::new(), at(100)).unwrap(), None);
    }

    fn the_backlog_counts_the_pending_deliveries_and_ages_the_oldest(db: &TestDatabase) {
        let repo = webhooks(db);
        assert_eq!(repo.backlog(at(0)).unwrap(), DeliveryBacklog { pending: 0, oldest_pending_age: None });
        let endpoint = insert_endpoint(db);
        let deliveries: Vec<_> = [10, 20, 30].into_iter().map(|t| new_delivery(&endpoint, Uuid::now_v7(), at(t))).collect();
        repo.insert_deliveries(&deliveries).unwrap();
        assert_eq!(
            repo.backlog(at(100)).unwrap(),
            DeliveryBacklog { pending: 3, oldest_pending_age: Some(Duration::seconds(90)) }
        );
        // The oldest is delivered: the next oldest is the one waiting longest.
        let delivered = DeliveryAttempt {
            sent: true,
            status: DeliveryStatus::Succeeded,
            response_status: Some(200),
            duration_ms: 5,
            error: None,
            next_attempt_at: None,
            at: at(40),
        };
        assert!(repo.record_attempt(deliveries[0].id, 0, &delivered).unwrap());
        assert_eq!(
            repo.backlog(at(100)).unwrap(),
            DeliveryBacklog { pending: 2, oldest_pending_age: Some(Duration::seconds(80)) }
        );
        // Never a negative age.
        assert_eq!(repo.backlog(at(0)).unwrap().oldest_pending_age, Some(Duration::zero()));
    }

    fn the_dispatch_position_moves_only_from_where_it_is(db: &TestDatabase) {
        let repo = webhooks(db);
        // Migrated over an empty feed: nothing dispatched yet.
        assert_eq!(repo.dispatch_position().unwrap(), None);
        assert!(repo.advance_dispatch_position(None, 5).unwrap());
        assert_eq!(repo.dispatch_position().unwrap(), Some(5));
        // A second dispatcher that read the same (old) position: refused.
        assert!(!repo.advance_dispatch_position(None, 7).unwrap());
        assert!(repo.advance_dispatch_position(Some(5), 9).unwrap());
        assert!(!repo.advance_dispatch_position(Some(5), 10).unwrap());
        assert!(!repo.advance_dispatch_position(Some(8), 10).unwrap());
        assert_eq!(repo.dispatch_position().unwrap(), Some(9));
        assert_eq!(db.count_rows("webhook_dispatch"), 1);
    }

    /// Dispatchers on several instances, each in its unit of work, from the same position:
    /// exactly one moves it (the others wait for its row lock on PostgreSQL, then see it moved).
    fn racing_dispatchers_move_the_position_once(db: &TestDatabase) {
        let unit_of_work = DieselUnitOfWork::new(db.database().clone());
        let barrier = Barrier::new(4);
        let won = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for i in 0..4 {
                let (unit_of_work, barrier, won) = (&unit_of_work, &barrier, &won);
                scope.spawn(move || {
                    barrier.wait();
                    in_transaction(unit_of_work, |tx| {
                        if tx.webhooks.advance_dispatch_position(None, 10 + i)? {
                            won.fetch_add(1, Ordering::SeqCst);
                        }
                        // Hold the transaction open so the others overlap with it.
                        std::thread::sleep(StdDuration::from_millis(100));
                        Ok::<_, StoreError>(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(won.load(Ordering::SeqCst), 1);
        assert!(webhooks(db).dispatch_position().unwrap().is_some_and(|position| (10..14).contains(&position)));
    }

    /// The dispatcher's unit of work: the position, the deliveries and their jobs commit
    /// together, or not at all; every method works bound to the transaction.
    fn dispatching_in_a_unit_of_work_commits_or_rolls_back_as_one(db: &TestDatabase) {
        let unit_of_work = DieselUnitOfWork::new(db.database().clone());
        let endpoint = insert_endpoint(db);
        let deliveries = [new_delivery(&endpoint, Uuid::now_v7(), at(10)), new_delivery(&endpoint, Uuid::now_v7(), at(10))];
        let dispatch = |commit: bool| {
            let outcome = in_transaction(&unit_of_work, |tx| {
                assert_eq!(tx.webhooks.dispatch_position()?, None);
                assert_eq!(tx.webhooks.active_endpoints()?, std::slice::from_ref(&endpoint));
                assert!(tx.webhooks.advance_dispatch_position(None, 2)?);
                let inserted = tx.webhooks.insert_deliveries(&deliveries)?;
                for id in &inserted {
                    tx.jobs.enqueue(&NewJob {
                        kind: JobKind::DeliverWebhook,
                        subject: id.as_uuid(),
                        run_at: at(10),
                        created_at: at(10),
                    })?;
                }
                // The transaction sees its own writes.
                assert_eq!(tx.webhooks.dispatch_position()?, Some(2));
                assert!(tx.webhooks.find_delivery(deliveries[0].id)?.is_some());
                assert_eq!(tx.webhooks.backlog(at(10))?.pending, 2);
                if commit { Ok(inserted.len()) } else { Err(StoreError::Unexpected(anyhow::anyhow!("roll back"))) }
            });
            outcome.ok()
        };

        assert_eq!(dispatch(false), None);
        assert_eq!(webhooks(db).dispatch_position().unwrap(), None);
        assert_eq!((db.count_rows("webhook_deliveries"), db.count_rows("jobs")), (0, 0));

        assert_eq!(dispatch(true), Some(2));
        assert_eq!(webhooks(db).dispatch_position().unwrap(), Some(2));
        assert_eq!(db.count_rows("webhook_deliveries"), 2);
        assert_eq!(db.count_rows("jobs WHERE kind = 'deliver_webhook'"), 2);

        // A manual retry in a unit of work: the delivery reopened and its job brought forward.
        in_transaction(&unit_of_work, |tx| {
            let endpoint = tx.webhooks.find_endpoint(endpoint.id)?.unwrap();
            let changed = tx.webhooks.update_endpoint(endpoint.id, &WebhookEndpointUpdate {
                description: Some(Some("retried".to_owned())),
                ..WebhookEndpointUpdate::default()
            }, Some(endpoint.version), at(20));
            changed.unwrap();
            tx.webhooks.reopen_delivery(deliveries[0].id, at(20))?.unwrap();
            tx.jobs.enqueue_due_by(&NewJob {
                kind: JobKind::DeliverWebhook,
                subject: deliveries[0].id.as_uuid(),
                run_at: at(5),
                created_at: at(20),
            })?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let job = jobs(db).claim_due(at(5), Duration::seconds(30), &[JobKind::DeliverWebhook]).unwrap().unwrap();
        assert_eq!(job.subject, deliveries[0].id.as_uuid());
    }

    fn corrupt_rows_are_errors(db: &TestDatabase) {
        let repo = webhooks(db);
        let endpoint = insert_endpoint(db);
        db.execute(&format!("UPDATE webhook_endpoints SET event_types = 'order.placed,no.such.type' WHERE id = '{}'", endpoint.id));
        let error = repo.find_endpoint(endpoint.id).unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
        db.execute(&format!("UPDATE webhook_endpoints SET event_types = 'order.placed,order.placed' WHERE id = '{}'", endpoint.id));
        assert!(matches!(repo.active_endpoints().unwrap_err(), StoreError::Unexpected(_)));
        db.execute(&format!("UPDATE webhook_endpoints SET event_types = NULL WHERE id = '{}'", endpoint.id));

        let delivery = new_delivery(&endpoint, Uuid::now_v7(), at(0));
        repo.insert_deliveries(std::slice::from_ref(&delivery)).unwrap();
        db.execute(&format!("UPDATE webhook_deliveries SET response_status = 70000 WHERE id = '{}'", delivery.id));
        assert!(matches!(repo.find_delivery(delivery.id).unwrap_err(), StoreError::Unexpected(_)));
        db.execute(&format!("UPDATE webhook_deliveries SET response_status = NULL, event_id = 'not-a-uuid' WHERE id = '{}'", delivery.id));
        let error = repo
            .list_deliveries(&DeliveryQuery { endpoint_id: endpoint.id, after: None, limit: limit(10) })
            .unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    }

    fn an_event_is_found_by_id_as_the_feed_serves_it(db: &TestDatabase) {
        insert_user(db, at(0));
        insert_user(db, at(1));
        let feed = DieselEventFeed::new(db.database().clone());
        let listed: Vec<FeedEvent> =
            feed.list(&EventQuery { type_name: None, after: None, limit: limit(10) }).unwrap();
        assert_eq!(listed.len(), 2);
        for event in &listed {
            assert_eq!(feed.find(event.id).unwrap().as_ref(), Some(event));
        }
        assert_eq!(feed.find(Uuid::now_v7()).unwrap(), None);
    }
}

fn webhooks(db: &TestDatabase) -> DieselWebhookRepository {
    DieselWebhookRepository::new(db.database().clone())
}

fn jobs(db: &TestDatabase) -> DieselJobQueue {
    DieselJobQueue::new(db.database().clone())
}

fn limit(n: i64) -> PageLimit {
    PageLimit::new(n).unwrap()
}

fn new_endpoint(event_types: EventTypeFilter, created_at: DateTime<Utc>) -> NewWebhookEndpoint {
    let id = WebhookEndpointId::new();
    NewWebhookEndpoint {
        id,
        url: EndpointUrl::from_stored(format!("https://hooks.example.com/{id}")),
        event_types,
        description: Some("For the tests".to_owned()),
        secret: WebhookSecret::from_stored(format!("whsec_{}", id.as_uuid().simple())),
        created_at,
    }
}

/// An active endpoint for every type.
fn insert_endpoint(db: &TestDatabase) -> WebhookEndpoint {
    webhooks(db).insert_endpoint(&new_endpoint(EventTypeFilter::All, at(0))).unwrap()
}

fn new_delivery(endpoint: &WebhookEndpoint, event_id: Uuid, created_at: DateTime<Utc>) -> NewWebhookDelivery {
    NewWebhookDelivery {
        id: WebhookDeliveryId::new(),
        endpoint_id: endpoint.id,
        event_id,
        event_type: "order.placed".to_owned(),
        created_at,
    }
}
