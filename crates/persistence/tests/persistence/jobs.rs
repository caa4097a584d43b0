//! The durable job queue: one job per (kind, subject), a due job claimed by one worker until
//! its lease ends (also with racing workers), attempts counted at the claim, rescheduling and
//! completion only by the claim that holds the job, claims of named kinds only, manual retries
//! that bring a job forward, and the queue's state for metrics.

use std::collections::HashSet;
use std::sync::Barrier;

use chrono::Duration;
use orderly_domain::StoreError;
use orderly_domain::ports::{Job, JobKind, JobQueue, JobQueueStats, NewJob};
use orderly_persistence::DieselJobQueue;
use orderly_persistence::testing::TestDatabase;
use uuid::Uuid;

use crate::fixtures::at;

orderly_persistence::backend_tests! {
    fn the_same_job_is_queued_once(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 10)).unwrap();
        // Again, even for another time: a no-op.
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 99)).unwrap();
        assert_eq!(db.count_rows("jobs"), 1);
        // Another kind for the same subject, or another subject, is another job.
        queue.enqueue(&job(JobKind::RefundPayment, subject, 10)).unwrap();
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 10)).unwrap();
        assert_eq!(db.count_rows("jobs"), 3);
        // The first enqueue's times stand.
        let claimed = queue.claim_due(at(10), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!((claimed.kind, claimed.subject, claimed.attempts), (JobKind::ReconcilePayment, subject, 1));
        assert_eq!((claimed.created_at, claimed.lease_until), (at(0), at(40)));
    }

    fn a_due_job_is_claimed_once_until_its_lease_ends(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 10)).unwrap();
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 100)).unwrap();

        assert_eq!(queue.claim_due(at(9), Duration::seconds(30), ALL).unwrap(), None, "not due yet");
        let claimed = queue.claim_due(at(20), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!((claimed.kind, claimed.subject, claimed.attempts), (JobKind::ReconcilePayment, subject, 1));
        assert_eq!(claimed.lease_until, at(50));
        // Leased until at(50); the other job is due only at at(100).
        assert_eq!(queue.claim_due(at(21), Duration::seconds(30), ALL).unwrap(), None);
        assert_eq!(queue.claim_due(at(49), Duration::seconds(30), ALL).unwrap(), None);
        // The worker died: when the lease ends, anyone may take the job, and the dead worker's
        // attempt stays counted.
        let again = queue.claim_due(at(50), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!(again, Job { attempts: 2, lease_until: at(80), ..claimed });
        // The earliest due job comes first.
        assert!(queue.complete(&again).unwrap());
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 90)).unwrap();
        let earliest = queue.claim_due(at(200), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!(earliest.kind, JobKind::ReconcilePayment);
        let next = queue.claim_due(at(200), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!(next.kind, JobKind::RefundPayment);
        assert_eq!(queue.claim_due(at(200), Duration::seconds(30), ALL).unwrap(), None);
    }

    fn a_failed_attempt_is_counted_and_the_job_rescheduled(db: &TestDatabase) {
        let queue = jobs(db);
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 10)).unwrap();
        let claimed = queue.claim_due(at(10), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!(claimed.attempts, 1);
        let long_error = "é".repeat(2000);
        assert!(queue.retry_at(&claimed, at(100), &long_error).unwrap());
        assert_eq!(db.count_rows("jobs WHERE LENGTH(last_error) = 500 AND locked_until IS NULL AND attempts = 1"), 1);
        // Its claim has ended: reporting again changes nothing.
        assert!(!queue.retry_at(&claimed, at(5), "twice").unwrap());
        assert!(!queue.complete(&claimed).unwrap());
        assert_eq!(db.count_rows("jobs WHERE LENGTH(last_error) = 500"), 1);

        // The lease is gone, but the job is not due before its new time.
        assert_eq!(queue.claim_due(at(99), Duration::seconds(30), ALL).unwrap(), None);
        let retried = queue.claim_due(at(100), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!((retried.id, retried.attempts, retried.created_at), (claimed.id, 2, claimed.created_at));
        assert!(queue.retry_at(&retried, at(200), "again").unwrap());
        assert_eq!(queue.claim_due(at(200), Duration::seconds(30), ALL).unwrap().unwrap().attempts, 3);
    }

    fn a_completed_job_is_gone(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 10)).unwrap();
        let claimed = queue.claim_due(at(10), Duration::seconds(30), ALL).unwrap().unwrap();
        assert!(queue.complete(&claimed).unwrap());
        assert_eq!(db.count_rows("jobs"), 0);
        assert_eq!(queue.claim_due(at(1000), Duration::seconds(30), ALL).unwrap(), None);
        // Completing twice changes nothing, and the same job may be queued again afterwards.
        assert!(!queue.complete(&claimed).unwrap());
        assert!(!queue.retry_at(&claimed, at(20), "late").unwrap());
        assert_eq!(db.count_rows("jobs"), 0);
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 20)).unwrap();
        assert_eq!(queue.claim_due(at(20), Duration::seconds(30), ALL).unwrap().map(|job| job.subject), Some(subject));
    }

    /// A worker whose lease ran out while another worker claimed the job can neither complete
    /// nor reschedule it: the other claim stands.
    fn a_worker_that_lost_its_claim_changes_nothing(db: &TestDatabase) {
        let queue = jobs(db);
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 10)).unwrap();
        let stale = queue.claim_due(at(10), Duration::seconds(30), ALL).unwrap().unwrap();
        let current = queue.claim_due(at(40), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!((current.id, current.attempts, current.lease_until), (stale.id, 2, at(70)));
        let held = "jobs WHERE attempts = 2 AND locked_until IS NOT NULL AND last_error IS NULL";

        assert!(!queue.complete(&stale).unwrap());
        assert!(!queue.retry_at(&stale, at(500), "late").unwrap());
        assert_eq!(db.count_rows(held), 1, "the current claim was disturbed");
        // Still leased to the current worker, and its outcome is recorded.
        assert_eq!(queue.claim_due(at(69), Duration::seconds(30), ALL).unwrap(), None);
        assert!(queue.retry_at(&current, at(100), "not yet").unwrap());
        assert_eq!(queue.claim_due(at(100), Duration::seconds(30), ALL).unwrap().map(|job| job.attempts), Some(3));

        // Even a claim whose lease ends at the same instant as the one before (a zero lease) is
        // told apart, by its attempt.
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 1000)).unwrap();
        let first = queue.claim_due(at(1000), Duration::seconds(60), ALL).unwrap().unwrap();
        let second = queue.claim_due(at(1060), Duration::zero(), ALL).unwrap().unwrap();
        assert_eq!((first.id, first.lease_until), (second.id, second.lease_until));
        assert!(!queue.complete(&first).unwrap());
        assert!(queue.complete(&second).unwrap());
    }

    /// The lease of a job whose worker has not reported back yet: it may still complete.
    fn an_expired_claim_nobody_took_may_still_report(db: &TestDatabase) {
        let queue = jobs(db);
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 10)).unwrap();
        let slow = queue.claim_due(at(10), Duration::seconds(30), ALL).unwrap().unwrap();
        // Past its lease, but no one claimed the job since.
        assert!(queue.complete(&slow).unwrap());
        assert_eq!(db.count_rows("jobs"), 0);
    }

    fn the_queue_reports_its_depth_and_the_oldest_waiting_due_job(db: &TestDatabase) {
        let queue = jobs(db);
        assert_eq!(queue.stats(at(0)).unwrap(), JobQueueStats { depth: 0, oldest_due_age: None });
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 10)).unwrap();
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 40)).unwrap();
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 500)).unwrap();
        assert_eq!(queue.stats(at(5)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: None });
        assert_eq!(queue.stats(at(60)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: Some(Duration::seconds(50)) });
        // A job a live worker holds is not waiting; once its lease ends it is again.
        queue.claim_due(at(60), Duration::seconds(30), ALL).unwrap().unwrap();
        assert_eq!(queue.stats(at(61)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: Some(Duration::seconds(21)) });
        assert_eq!(queue.stats(at(90)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: Some(Duration::seconds(80)) });
    }

    /// A job of a kind this version does not know (written by a newer one) is left alone: no
    /// loop names its kind. A stored job with a corrupt field is an error when claimed.
    fn a_stored_job_of_an_unknown_kind_is_never_claimed_and_a_corrupt_one_is_an_error(db: &TestDatabase) {
        let (id, subject) = (Uuid::now_v7(), Uuid::now_v7());
        db.execute(&format!(
            "INSERT INTO jobs (id, kind, subject, run_at, attempts, created_at) \
             VALUES ('{id}', 'mystery', '{subject}', '2026-11-23 18:00:00', 0, '2026-11-23 18:00:00')"
        ));
        assert_eq!(jobs(db).claim_due(at(10), Duration::seconds(30), ALL).unwrap(), None);
        assert_eq!(db.count_rows("jobs WHERE locked_until IS NULL AND attempts = 0"), 1);

        let id = Uuid::now_v7();
        db.execute(&format!(
            "INSERT INTO jobs (id, kind, subject, run_at, attempts, created_at) \
             VALUES ('{id}', 'refund_payment', 'not-a-uuid', '2026-11-23 18:00:00', 0, '2026-11-23 18:00:00')"
        ));
        let error = jobs(db).claim_due(at(10), Duration::seconds(30), ALL).unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    }

    /// The payment loop and the webhook loop each claim only their own kinds; no kinds, no
    /// claim.
    fn a_claim_takes_only_the_kinds_it_names(db: &TestDatabase) {
        let queue = jobs(db);
        let (delivery, payment, refund) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // The webhook job is the earliest due.
        queue.enqueue(&job(JobKind::DeliverWebhook, delivery, 5)).unwrap();
        queue.enqueue(&job(JobKind::ReconcilePayment, payment, 10)).unwrap();
        queue.enqueue(&job(JobKind::RefundPayment, refund, 20)).unwrap();
        let lease = Duration::seconds(30);

        assert_eq!(queue.claim_due(at(100), lease, &[]).unwrap(), None);
        assert_eq!(db.count_rows("jobs WHERE attempts = 0"), 3, "an empty claim touched a job");

        let first = queue.claim_due(at(100), lease, &JobKind::PAYMENTS).unwrap().unwrap();
        let second = queue.claim_due(at(100), lease, &JobKind::PAYMENTS).unwrap().unwrap();
        assert_eq!((first.kind, first.subject), (JobKind::ReconcilePayment, payment));
        assert_eq!((second.kind, second.subject), (JobKind::RefundPayment, refund));
        assert_eq!(queue.claim_due(at(100), lease, &JobKind::PAYMENTS).unwrap(), None, "took the webhook job");

        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 1)).unwrap();
        let webhook = queue.claim_due(at(100), lease, &[JobKind::DeliverWebhook]).unwrap().unwrap();
        assert_eq!((webhook.kind, webhook.subject), (JobKind::DeliverWebhook, delivery));
        assert_eq!(queue.claim_due(at(100), lease, &[JobKind::DeliverWebhook]).unwrap(), None, "took a payment job");
        // The payment job left for the payment loop is still there for it.
        assert_eq!(queue.claim_due(at(100), lease, &[JobKind::ReconcilePayment]).unwrap().map(|job| job.kind), Some(JobKind::ReconcilePayment));
    }

    /// A manual retry: a queued job is made due earlier, never later; one that is not queued
    /// is queued; one a worker holds loses the claim and is due when its lease would end.
    fn enqueue_due_by_brings_a_job_forward_but_never_back(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        let lease = Duration::seconds(30);
        // Not queued yet: queued, as `enqueue` would.
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 500)).unwrap();
        assert_eq!(db.count_rows("jobs WHERE run_at = '2026-11-23 18:08:20'"), 1);
        // Later: nothing changes.
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 900)).unwrap();
        assert_eq!(queue.claim_due(at(499), lease, ALL).unwrap(), None);
        // Earlier: due then.
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 100)).unwrap();
        assert_eq!(db.count_rows("jobs"), 1);
        assert_eq!(queue.claim_due(at(99), lease, ALL).unwrap(), None);
        let claimed = queue.claim_due(at(100), lease, ALL).unwrap().unwrap();
        assert_eq!((claimed.subject, claimed.attempts, claimed.lease_until), (subject, 1, at(130)));

        // Asked for while claimed (an attempt in flight): the claim is ended, so the worker
        // can neither delete the job nor push it back, and the job is due when the lost claim's
        // lease would have ended — never while that attempt may still be running.
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 110)).unwrap();
        assert_eq!(queue.claim_due(at(129), lease, ALL).unwrap(), None, "claimed while the attempt may run");
        assert!(!queue.complete(&claimed).unwrap(), "the worker deleted the job the retry needs");
        assert!(!queue.retry_at(&claimed, at(1000), "later").unwrap(), "the worker pushed the retry back");
        let again = queue.claim_due(at(130), lease, ALL).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (claimed.id, 2));
        assert!(queue.retry_at(&again, at(1000), "later").unwrap());
        // After the worker's own reschedule, a manual retry brings it forward again.
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 200)).unwrap();
        let third = queue.claim_due(at(200), lease, ALL).unwrap().unwrap();
        assert_eq!((third.id, third.attempts), (claimed.id, 3));
        assert!(queue.complete(&third).unwrap());
        // Only this job was touched.
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 700)).unwrap();
        queue.enqueue_due_by(&job(JobKind::DeliverWebhook, subject, 300)).unwrap();
        assert_eq!(db.count_rows("jobs WHERE kind = 'reconcile_payment' AND run_at = '2026-11-23 18:11:40'"), 1);
    }

    /// Workers on several instances poll at once: every job is claimed by exactly one.
    fn racing_workers_never_claim_the_same_job(db: &TestDatabase) {
        let queue = jobs(db);
        for i in 0..24 {
            queue.enqueue(&job(if i % 2 == 0 { JobKind::ReconcilePayment } else { JobKind::RefundPayment }, Uuid::now_v7(), i)).unwrap();
        }
        let barrier = Barrier::new(6);
        let claimed: Vec<Job> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (queue, barrier) = (jobs(db), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut mine = Vec::new();
                        while let Some(job) = queue.claim_due(at(100), Duration::seconds(300), ALL).unwrap() {
                            mine.push(job);
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
        });
        let ids: HashSet<Uuid> = claimed.iter().map(|job| job.id).collect();
        assert_eq!((claimed.len(), ids.len()), (24, 24), "a job was claimed twice or missed");
        assert_eq!(queue.claim_due(at(101), Duration::seconds(300), ALL).unwrap(), None);
    }
}

/// Every kind: the tests of the queue's mechanics claim whatever is due.
const ALL: &[JobKind] = &JobKind::ALL;

fn jobs(db: &TestDatabase) -> DieselJobQueue {
    DieselJobQueue::new(db.database().clone())
}

fn job(kind: JobKind, subject: Uuid, run_at: i64) -> NewJob {
    NewJob { kind, subject, run_at: at(run_at), created_at: at(0) }
}
