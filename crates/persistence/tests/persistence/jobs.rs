//! The durable job queue: one job per (kind, subject), a due job claimed by one worker until
//! its lease ends (also with racing workers), retries counted and rescheduled, completion
//! removes, and the queue's state for metrics.

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
        // The first enqueue's time stands.
        let claimed = queue.claim_due(at(10), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!((claimed.kind, claimed.subject, claimed.attempts), (JobKind::ReconcilePayment, subject, 0));
    }

    fn a_due_job_is_claimed_once_until_its_lease_ends(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 10)).unwrap();
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 100)).unwrap();

        assert_eq!(queue.claim_due(at(9), Duration::seconds(30)).unwrap(), None, "not due yet");
        let claimed = queue.claim_due(at(20), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!((claimed.kind, claimed.subject, claimed.attempts), (JobKind::ReconcilePayment, subject, 0));
        // Leased until at(50); the other job is due only at at(100).
        assert_eq!(queue.claim_due(at(21), Duration::seconds(30)).unwrap(), None);
        assert_eq!(queue.claim_due(at(49), Duration::seconds(30)).unwrap(), None);
        // The worker died: when the lease ends, anyone may take the job.
        let again = queue.claim_due(at(50), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!(again, claimed);
        // The earliest due job comes first.
        queue.complete(again.id).unwrap();
        queue.enqueue(&job(JobKind::ReconcilePayment, Uuid::now_v7(), 90)).unwrap();
        let earliest = queue.claim_due(at(200), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!(earliest.kind, JobKind::ReconcilePayment);
        let next = queue.claim_due(at(200), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!(next.kind, JobKind::RefundPayment);
        assert_eq!(queue.claim_due(at(200), Duration::seconds(30)).unwrap(), None);
    }

    fn a_failed_attempt_is_counted_and_the_job_rescheduled(db: &TestDatabase) {
        let queue = jobs(db);
        queue.enqueue(&job(JobKind::RefundPayment, Uuid::now_v7(), 10)).unwrap();
        let claimed = queue.claim_due(at(10), Duration::seconds(30)).unwrap().unwrap();
        let long_error = "é".repeat(2000);
        queue.retry_at(claimed.id, at(100), &long_error).unwrap();
        assert_eq!(db.count_rows("jobs WHERE LENGTH(last_error) = 500 AND locked_until IS NULL"), 1);

        // The lease is gone, but the job is not due before its new time.
        assert_eq!(queue.claim_due(at(99), Duration::seconds(30)).unwrap(), None);
        let retried = queue.claim_due(at(100), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!((retried.id, retried.attempts, retried.created_at), (claimed.id, 1, claimed.created_at));
        queue.retry_at(retried.id, at(200), "again").unwrap();
        assert_eq!(queue.claim_due(at(200), Duration::seconds(30)).unwrap().unwrap().attempts, 2);
    }

    fn a_completed_job_is_gone(db: &TestDatabase) {
        let queue = jobs(db);
        let subject = Uuid::now_v7();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 10)).unwrap();
        let claimed = queue.claim_due(at(10), Duration::seconds(30)).unwrap().unwrap();
        queue.complete(claimed.id).unwrap();
        assert_eq!(db.count_rows("jobs"), 0);
        assert_eq!(queue.claim_due(at(1000), Duration::seconds(30)).unwrap(), None);
        // Completing twice is harmless, and the same job may be queued again afterwards.
        queue.complete(claimed.id).unwrap();
        queue.enqueue(&job(JobKind::ReconcilePayment, subject, 20)).unwrap();
        assert_eq!(queue.claim_due(at(20), Duration::seconds(30)).unwrap().map(|job| job.subject), Some(subject));
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
        queue.claim_due(at(60), Duration::seconds(30)).unwrap().unwrap();
        assert_eq!(queue.stats(at(61)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: Some(Duration::seconds(21)) });
        assert_eq!(queue.stats(at(90)).unwrap(), JobQueueStats { depth: 3, oldest_due_age: Some(Duration::seconds(80)) });
    }

    fn a_stored_job_of_an_unknown_kind_is_an_error(db: &TestDatabase) {
        let (id, subject) = (Uuid::now_v7(), Uuid::now_v7());
        db.execute(&format!(
            "INSERT INTO jobs (id, kind, subject, run_at, attempts, created_at) \
             VALUES ('{id}', 'mystery', '{subject}', '2026-11-23 18:00:00', 0, '2026-11-23 18:00:00')"
        ));
        let error = jobs(db).claim_due(at(10), Duration::seconds(30)).unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
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
                        while let Some(job) = queue.claim_due(at(100), Duration::seconds(300)).unwrap() {
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
        assert_eq!(queue.claim_due(at(101), Duration::seconds(300)).unwrap(), None);
    }
}

fn jobs(db: &TestDatabase) -> DieselJobQueue {
    DieselJobQueue::new(db.database().clone())
}

fn job(kind: JobKind, subject: Uuid, run_at: i64) -> NewJob {
    NewJob { kind, subject, run_at: at(run_at) }
}
