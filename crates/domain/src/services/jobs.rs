//! The durable background work (docs/api.md#payments): claims due jobs from the [`JobQueue`] and hands each to
//! the use case that owns its kind; a job that could not finish is retried later with
//! back-off, one that did is removed.
//!
//! Safe on every instance at once: a claimed job is invisible to other workers until its lease
//! ends, and every kind's work is itself idempotent (it looks at the current state first), so a
//! worker that dies mid-job — its lease runs out and another worker takes the job — repeats
//! nothing that matters. A worker that merely outlived its lease cannot undo the next one's
//! claim either: completing or rescheduling acts only while the worker's own claim stands
//! ([`JobOutcome::LostClaim`] otherwise). Attempts are counted when claimed, so a job that
//! kills its worker still counts toward its back-off.

use std::sync::Arc;

use chrono::Duration;

use crate::error::StoreError;
use crate::ports::{Clock, Job, JobKind, JobQueue};
use crate::services::PaymentService;
use crate::services::webhooks::{DeliveryVerdict, WebhookService};

/// What one claimed job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobReport {
    pub kind: JobKind,
    pub outcome: JobOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished and removed.
    Done,
    /// Not finished (the provider had no verdict yet, or was unreachable); due again later.
    Retried,
    /// The work itself failed (the database); due again later.
    Failed,
    /// The worker's lease ran out and another worker claimed the job before this one could
    /// report back: the job was left as the other claim has it.
    LostClaim,
}

/// Works the payment jobs, or — built [`JobWorker::for_webhooks`] — the webhook deliveries.
/// The two kinds of work run in separate loops so that slow webhook receivers (each attempt
/// may take the whole delivery timeout) never delay settling a payment.
#[derive(Clone)]
pub struct JobWorker {
    jobs: Arc<dyn JobQueue>,
    payments: PaymentService,
    webhooks: Option<WebhookService>,
    /// The kinds this worker claims.
    kinds: &'static [JobKind],
    clock: Arc<dyn Clock>,
    /// How long a claimed job stays this worker's: longer than any job can take.
    lease: Duration,
}

impl JobWorker {
    /// A worker for the payment jobs (reconciliation, refunds).
    pub fn new(jobs: Arc<dyn JobQueue>, payments: PaymentService, clock: Arc<dyn Clock>, lease: Duration) -> Self {
        Self { jobs, payments, webhooks: None, kinds: &JobKind::PAYMENTS, clock, lease }
    }

    /// A worker for webhook deliveries only, from a payment worker's queue and clock.
    pub fn for_webhooks(&self, webhooks: WebhookService, lease: Duration) -> Self {
        Self { webhooks: Some(webhooks), kinds: &[JobKind::DeliverWebhook], lease, ..self.clone() }
    }

    /// Claims and works one due job. `None`: nothing is due.
    pub fn work_one(&self) -> Result<Option<JobReport>, StoreError> {
        let Some(job) = self.jobs.claim_due(self.clock.now(), self.lease, self.kinds)? else {
            return Ok(None);
        };
        let outcome = match (job.kind, &self.webhooks) {
            (JobKind::ReconcilePayment | JobKind::RefundPayment, _) => self
                .payments
                .work_job(&job)
                .map(|finished| if finished { None } else { Some(self.clock.now() + self.payments.retry_delay(&job)) }),
            (JobKind::DeliverWebhook, Some(webhooks)) => webhooks.work_job(&job).map(|verdict| match verdict {
                DeliveryVerdict::Done => None,
                DeliveryVerdict::RetryAt(at) => Some(at),
            }),
            // Never claimed by a worker without the service (see `kinds`); put back for one.
            (JobKind::DeliverWebhook, None) => Ok(Some(self.clock.now() + self.payments.retry_delay(&job))),
        };
        let outcome = match outcome {
            Ok(None) => {
                if self.jobs.complete(&job)? {
                    JobOutcome::Done
                } else {
                    Self::lost(&job, "completed")
                }
            }
            Ok(Some(run_at)) => {
                if self.jobs.retry_at(&job, run_at, "not finished yet")? {
                    JobOutcome::Retried
                } else {
                    Self::lost(&job, "unfinished")
                }
            }
            Err(error) => {
                let message = crate::error::with_causes(&error);
                tracing::warn!(job_id = %job.id, kind = job.kind.as_str(), error = %message, "background job failed; retrying later");
                let run_at = self.clock.now() + self.payments.retry_delay(&job);
                if self.jobs.retry_at(&job, run_at, &message)? {
                    JobOutcome::Failed
                } else {
                    Self::lost(&job, "failed")
                }
            }
        };
        Ok(Some(JobReport { kind: job.kind, outcome }))
    }

    /// The job's lease ran out while it was worked and another worker holds it now: its
    /// outcome (`ended`) is not recorded, and the job stays as the newer claim (or its
    /// completion) left it.
    fn lost(job: &Job, ended: &str) -> JobOutcome {
        tracing::warn!(
            job_id = %job.id,
            kind = job.kind.as_str(),
            attempts = job.attempts,
            ended,
            "background job outlived its lease and lost its claim; its outcome is not recorded"
        );
        JobOutcome::LostClaim
    }

    pub fn stats(&self) -> Result<crate::ports::JobQueueStats, StoreError> {
        self.jobs.stats(self.clock.now())
    }
}

#[cfg(test)]
mod tests {
    //! `JobWorker` over a mocked `JobQueue`, handing jobs to a `PaymentService` whose ports are
    //! mocks too. A mock method without an expectation panics when called.

    use std::sync::Arc;

    use mockall::predicate::eq;
    use uuid::Uuid;

    use super::*;
    use crate::event::FeedEvent;
    use crate::payment::PaymentId;
    use crate::ports::{
        Job, MockEventFeed, MockInvoiceRepository, MockJobQueue, MockOrderRepository, MockPaymentProvider,
        MockPaymentRepository, MockWebhookRepository, MockWebhookSender, PaymentProvider, Repositories, SendOutcome,
        SendReport, UnitOfWork,
    };
    use crate::services::fixtures::{fixed_clock, now, order_policy};
    use crate::services::{OrderService, PaymentPolicy, WebhookPolicy};
    use crate::webhook::{
        DeliveryStatus, EndpointUrl, EventTypeFilter, RetrySchedule, WebhookDelivery, WebhookDeliveryId,
        WebhookEndpoint, WebhookEndpointId, WebhookSecret,
    };

    /// None of these jobs gets as far as a unit of work.
    struct NoUnitOfWork;

    impl UnitOfWork for NoUnitOfWork {
        fn run(&self, _: &mut dyn FnMut(&Repositories) -> Result<bool, StoreError>) -> Result<(), StoreError> {
            panic!("no unit of work expected")
        }
    }

    fn lease() -> Duration {
        Duration::minutes(5)
    }

    /// Payments over `payments` (the only store the jobs below read); `enabled: false` means no
    /// provider.
    fn payment_service(payments: MockPaymentRepository, enabled: bool) -> PaymentService {
        let orders = Arc::new(MockOrderRepository::new());
        let repositories =
            Repositories { orders: orders.clone(), payments: Arc::new(payments), ..Repositories::mocked() };
        let provider = enabled.then(|| Arc::new(MockPaymentProvider::new()) as Arc<dyn PaymentProvider>);
        let order_service =
            OrderService::new(orders, Arc::new(MockInvoiceRepository::new()), fixed_clock(), order_policy());
        PaymentService::new(
            repositories,
            Arc::new(NoUnitOfWork),
            provider,
            order_service,
            fixed_clock(),
            PaymentPolicy::default(),
        )
    }

    fn due_job() -> Job {
        Job {
            id: Uuid::now_v7(),
            kind: JobKind::ReconcilePayment,
            subject: PaymentId::new().as_uuid(),
            attempts: 3,
            created_at: now() - Duration::minutes(10),
            lease_until: now() + lease(),
        }
    }

    /// A queue whose `claim_due` (at the clock's time, for the lease) answers `claimed`, once.
    fn queue_claiming(claimed: Option<Job>) -> MockJobQueue {
        let mut jobs = MockJobQueue::new();
        jobs.expect_claim_due()
            .withf(|at, leased, kinds| *at == now() && *leased == lease() && kinds == JobKind::PAYMENTS)
            .times(1)
            .return_once(move |_, _, _| Ok(claimed));
        jobs
    }

    fn worker(jobs: MockJobQueue, payments: PaymentService) -> JobWorker {
        JobWorker::new(Arc::new(jobs), payments, fixed_clock(), lease())
    }

    #[test]
    fn with_nothing_due_the_worker_does_nothing() {
        let mut jobs = queue_claiming(None);
        jobs.expect_complete().never();
        jobs.expect_retry_at().never();

        let report = worker(jobs, payment_service(MockPaymentRepository::new(), true)).work_one().unwrap();

        assert_eq!(report, None);
    }

    #[test]
    fn a_finished_job_is_completed() {
        let job = due_job();
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_complete().with(eq(job.clone())).times(1).returning(|_| Ok(true));
        jobs.expect_retry_at().never();
        // Its attempt is gone: nothing left to do.
        let mut payments = MockPaymentRepository::new();
        payments.expect_find().with(eq(PaymentId::from_uuid(job.subject))).times(1).returning(|_| Ok(None));

        let report = worker(jobs, payment_service(payments, true)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::Done }));
    }

    #[test]
    fn an_unfinished_job_is_retried_later_with_back_off() {
        let job = due_job();
        // Payments are off: the job waits until they are back.
        let payments = payment_service(MockPaymentRepository::new(), false);
        let run_at = now() + payments.retry_delay(&job);
        assert!(run_at > now());
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_retry_at()
            .withf(move |claimed, at, message| *claimed == job && *at == run_at && message == "not finished yet")
            .times(1)
            .returning(|_, _, _| Ok(true));
        jobs.expect_complete().never();

        let report = worker(jobs, payments).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::Retried }));
    }

    #[test]
    fn a_job_whose_work_failed_is_retried_later_with_the_error() {
        let job = due_job();
        let mut store = MockPaymentRepository::new();
        store.expect_find().times(1).returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));
        let payments = payment_service(store, true);
        let run_at = now() + payments.retry_delay(&job);
        assert!(run_at > now());
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_retry_at()
            .withf(move |claimed, at, message| {
                *claimed == job
                    && *at == run_at
                    // (Its cause is lost today: `{:#}` walks only an `anyhow::Error`'s chain.)
                    && message.starts_with("the database is unavailable")
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        jobs.expect_complete().never();

        let report = worker(jobs, payments).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::Failed }));
    }

    #[test]
    fn a_finished_job_whose_claim_was_lost_is_left_to_the_new_claim() {
        let job = due_job();
        let mut jobs = queue_claiming(Some(job.clone()));
        // The lease ran out mid-job and another worker claimed it: the queue refuses.
        jobs.expect_complete().with(eq(job.clone())).times(1).returning(|_| Ok(false));
        jobs.expect_retry_at().never();
        let mut payments = MockPaymentRepository::new();
        payments.expect_find().times(1).returning(|_| Ok(None));

        let report = worker(jobs, payment_service(payments, true)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::LostClaim }));
    }

    #[test]
    fn an_unfinished_job_whose_claim_was_lost_is_not_rescheduled_again() {
        let job = due_job();
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_retry_at().withf(move |claimed, _, _| *claimed == job).times(1).returning(|_, _, _| Ok(false));
        jobs.expect_complete().never();

        let report = worker(jobs, payment_service(MockPaymentRepository::new(), false)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::LostClaim }));
    }

    #[test]
    fn a_failed_job_whose_claim_was_lost_is_not_rescheduled_again() {
        let job = due_job();
        let mut store = MockPaymentRepository::new();
        store.expect_find().times(1).returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_retry_at().withf(move |claimed, _, _| *claimed == job).times(1).returning(|_, _, _| Ok(false));
        jobs.expect_complete().never();

        let report = worker(jobs, payment_service(store, true)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::ReconcilePayment, outcome: JobOutcome::LostClaim }));
    }

    #[test]
    fn a_queue_that_cannot_be_written_is_an_error() {
        let job = due_job();
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_complete()
            .times(1)
            .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));
        let mut payments = MockPaymentRepository::new();
        payments.expect_find().times(1).returning(|_| Ok(None));

        let result = worker(jobs, payment_service(payments, true)).work_one();

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[test]
    fn a_queue_that_cannot_be_read_is_an_error() {
        let mut jobs = MockJobQueue::new();
        jobs.expect_claim_due()
            .times(1)
            .returning(|_, _, _| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));

        let result = worker(jobs, payment_service(MockPaymentRepository::new(), true)).work_one();

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    // ---- the webhook worker ------------------------------------------------------------------

    /// Shorter than the payment worker's, so the test sees which one is used.
    fn webhook_lease() -> Duration {
        Duration::minutes(2)
    }

    fn webhook_service(store: MockWebhookRepository, feed: MockEventFeed, sender: MockWebhookSender) -> WebhookService {
        let repositories = Repositories { webhooks: Arc::new(store), ..Repositories::mocked() };
        WebhookService::new(
            repositories,
            Arc::new(NoUnitOfWork),
            Arc::new(feed),
            Arc::new(sender),
            fixed_clock(),
            WebhookPolicy::default(),
        )
    }

    /// A webhook worker, made from a payment worker over `jobs`.
    fn webhook_worker(jobs: MockJobQueue, webhooks: WebhookService) -> JobWorker {
        worker(jobs, payment_service(MockPaymentRepository::new(), true)).for_webhooks(webhooks, webhook_lease())
    }

    /// A queue whose `claim_due` (at the clock's time, for the webhook lease, delivery jobs
    /// only) answers `claimed`, once.
    fn queue_claiming_deliveries(claimed: Option<Job>) -> MockJobQueue {
        let mut jobs = MockJobQueue::new();
        jobs.expect_claim_due()
            .withf(|at, leased, kinds| *at == now() && *leased == webhook_lease() && kinds == [JobKind::DeliverWebhook])
            .times(1)
            .return_once(move |_, _, _| Ok(claimed));
        jobs
    }

    fn hook_endpoint() -> WebhookEndpoint {
        let created_at = now() - Duration::days(1);
        WebhookEndpoint {
            id: WebhookEndpointId::new(),
            url: EndpointUrl::from_stored("https://hooks.example.com/orderly".to_owned()),
            event_types: EventTypeFilter::All,
            description: None,
            active: true,
            secret: WebhookSecret::from_stored("whsec_c2VjcmV0".to_owned()),
            version: 1,
            created_at,
            updated_at: created_at,
        }
    }

    fn hook_event() -> FeedEvent {
        FeedEvent {
            id: Uuid::now_v7(),
            position: 7,
            type_name: "order.placed".to_owned(),
            occurred_at: now() - Duration::minutes(1),
            subject_type: "order".to_owned(),
            subject_id: Uuid::now_v7().to_string(),
            data_json: "{}".to_owned(),
        }
    }

    fn pending_delivery(endpoint: &WebhookEndpoint, event: &FeedEvent) -> WebhookDelivery {
        WebhookDelivery {
            id: WebhookDeliveryId::new(),
            endpoint_id: endpoint.id,
            event_id: event.id,
            event_type: event.type_name.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            response_status: None,
            duration_ms: None,
            error: None,
            next_attempt_at: Some(now()),
            created_at: now() - Duration::seconds(10),
            updated_at: now() - Duration::seconds(10),
        }
    }

    /// `delivery`'s job, claimed for the first time.
    fn delivery_job(delivery: &WebhookDelivery) -> Job {
        Job {
            id: Uuid::now_v7(),
            kind: JobKind::DeliverWebhook,
            subject: delivery.id.as_uuid(),
            attempts: 1,
            created_at: delivery.created_at,
            lease_until: now() + webhook_lease(),
        }
    }

    /// A store, feed and sender over which `delivery` of `event` to `endpoint` is sent once and
    /// ends `outcome`; its attempt is recorded.
    fn ports_sending(
        endpoint: &WebhookEndpoint,
        event: &FeedEvent,
        delivery: &WebhookDelivery,
        outcome: SendOutcome,
    ) -> (MockWebhookRepository, MockEventFeed, MockWebhookSender) {
        let mut store = MockWebhookRepository::new();
        let found = delivery.clone();
        store.expect_find_delivery().with(eq(delivery.id)).times(1).returning(move |_| Ok(Some(found.clone())));
        let found = endpoint.clone();
        store.expect_find_endpoint().with(eq(endpoint.id)).times(1).returning(move |_| Ok(Some(found.clone())));
        store.expect_record_attempt().times(1).returning(|_, _, _| Ok(true));
        let mut feed = MockEventFeed::new();
        let found = event.clone();
        feed.expect_find().with(eq(event.id)).times(1).returning(move |_| Ok(Some(found.clone())));
        let mut sender = MockWebhookSender::new();
        let url = endpoint.url.clone();
        sender.expect_send().withf(move |message| *message.url == url).times(1).returning(move |_| SendReport {
            outcome: outcome.clone(),
            duration: std::time::Duration::from_millis(20),
        });
        (store, feed, sender)
    }

    #[test]
    fn the_webhook_worker_claims_only_delivery_jobs_for_its_own_lease() {
        let mut jobs = queue_claiming_deliveries(None);
        jobs.expect_complete().never();
        jobs.expect_retry_at().never();
        let webhooks = webhook_service(MockWebhookRepository::new(), MockEventFeed::new(), MockWebhookSender::new());

        let report = webhook_worker(jobs, webhooks).work_one().unwrap();

        assert_eq!(report, None);
    }

    #[test]
    fn a_delivered_webhook_completes_its_job() {
        let (endpoint, event) = (hook_endpoint(), hook_event());
        let delivery = pending_delivery(&endpoint, &event);
        let job = delivery_job(&delivery);
        let mut jobs = queue_claiming_deliveries(Some(job.clone()));
        jobs.expect_complete().with(eq(job)).times(1).returning(|_| Ok(true));
        jobs.expect_retry_at().never();
        let (store, feed, sender) = ports_sending(&endpoint, &event, &delivery, SendOutcome::Delivered { status: 200 });

        let report = webhook_worker(jobs, webhook_service(store, feed, sender)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::DeliverWebhook, outcome: JobOutcome::Done }));
    }

    #[test]
    fn a_delivery_job_with_nothing_left_to_deliver_is_completed() {
        let job = delivery_job(&pending_delivery(&hook_endpoint(), &hook_event()));
        let mut jobs = queue_claiming_deliveries(Some(job.clone()));
        jobs.expect_complete().with(eq(job.clone())).times(1).returning(|_| Ok(true));
        jobs.expect_retry_at().never();
        let mut store = MockWebhookRepository::new();
        // Its endpoint was deleted, and its delivery with it.
        store
            .expect_find_delivery()
            .with(eq(WebhookDeliveryId::from_uuid(job.subject)))
            .times(1)
            .returning(|_| Ok(None));
        let mut sender = MockWebhookSender::new();
        sender.expect_send().never();

        let report = webhook_worker(jobs, webhook_service(store, MockEventFeed::new(), sender)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::DeliverWebhook, outcome: JobOutcome::Done }));
    }

    #[test]
    fn a_failed_delivery_attempt_reschedules_its_job_when_the_next_attempt_is_due() {
        let (endpoint, event) = (hook_endpoint(), hook_event());
        let delivery = pending_delivery(&endpoint, &event);
        let job = delivery_job(&delivery);
        // The webhook schedule's time, not the payment back-off.
        let next = now() + RetrySchedule::standard().wait_after(job.attempts, delivery.id.as_uuid().as_u128()).unwrap();
        let mut jobs = queue_claiming_deliveries(Some(job.clone()));
        let claimed = job.clone();
        jobs.expect_retry_at()
            .withf(move |retried, at, message| *retried == claimed && *at == next && message == "not finished yet")
            .times(1)
            .returning(|_, _, _| Ok(true));
        jobs.expect_complete().never();
        let (store, feed, sender) = ports_sending(&endpoint, &event, &delivery, SendOutcome::Rejected { status: 500 });

        let report = webhook_worker(jobs, webhook_service(store, feed, sender)).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::DeliverWebhook, outcome: JobOutcome::Retried }));
    }

    #[test]
    fn a_delivery_job_whose_work_failed_is_retried_later_with_the_error() {
        let job = delivery_job(&pending_delivery(&hook_endpoint(), &hook_event()));
        let run_at = now() + payment_service(MockPaymentRepository::new(), true).retry_delay(&job);
        let mut jobs = queue_claiming_deliveries(Some(job.clone()));
        let claimed = job.clone();
        jobs.expect_retry_at()
            .withf(move |retried, at, message| {
                *retried == claimed && *at == run_at && message.starts_with("the database is unavailable")
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        jobs.expect_complete().never();
        let mut store = MockWebhookRepository::new();
        store.expect_find_delivery().times(1).returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("down"))));

        let report = webhook_worker(jobs, webhook_service(store, MockEventFeed::new(), MockWebhookSender::new()))
            .work_one()
            .unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::DeliverWebhook, outcome: JobOutcome::Failed }));
    }

    #[test]
    fn a_payment_worker_handed_a_delivery_job_puts_it_back_for_a_webhook_worker() {
        let job = delivery_job(&pending_delivery(&hook_endpoint(), &hook_event()));
        let payments = payment_service(MockPaymentRepository::new(), true);
        let run_at = now() + payments.retry_delay(&job);
        let mut jobs = queue_claiming(Some(job.clone()));
        jobs.expect_retry_at()
            .withf(move |retried, at, _| *retried == job && *at == run_at)
            .times(1)
            .returning(|_, _, _| Ok(true));
        jobs.expect_complete().never();

        let report = worker(jobs, payments).work_one().unwrap();

        assert_eq!(report, Some(JobReport { kind: JobKind::DeliverWebhook, outcome: JobOutcome::Retried }));
    }
}
