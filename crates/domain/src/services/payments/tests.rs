//! The rules of `PaymentService`, checked through mocked repositories, provider and job queue.
//!
//! The service sees two sets of repositories: the pool's (`Ports::orders`, `Ports::payments`)
//! and the ones bound to a unit of work (`Ports::tx_*`), handed out by
//! [`PassThroughUnitOfWork`]. A call that must be atomic with another is expected on the `tx_*`
//! mocks, and the [`Journal`] records every call and every unit of work's begin / commit /
//! rollback in order, so "in the same unit of work" is asserted, not assumed. A mock method
//! without an expectation panics when called, so "not called" holds by omission; where it is the
//! point of a test it is spelled out with `.never()`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use mockall::predicate::eq;
use uuid::Uuid;

use super::*;
use crate::order::{Order, TransitionEffect};
use crate::ports::{
    EventRejected, Job, MockInvoiceRepository, MockJobQueue, MockOrderRepository, MockPaymentProvider,
    MockPaymentRepository, StatusChange, StatusChangeError,
};
use crate::services::fixtures::{actor, customer, fixed_clock, now, order, order_in, order_policy, other_customer};
use crate::user::{User, UserId};

const PROVIDER: &str = "fakepay";

// ---- the test doubles -----------------------------------------------------------------------

/// Every call the mocks saw and every unit of work's boundaries, in order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, entry: &str) {
        self.0.lock().unwrap().push(entry.to_owned());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A unit of work that runs the work against its repositories and counts how it ended.
struct PassThroughUnitOfWork {
    repositories: Repositories,
    commits: AtomicUsize,
    rollbacks: AtomicUsize,
    journal: Journal,
}

impl UnitOfWork for PassThroughUnitOfWork {
    fn run(&self, work: &mut dyn FnMut(&Repositories) -> Result<bool, StoreError>) -> Result<(), StoreError> {
        self.journal.note("begin");
        let outcome = work(&self.repositories);
        if matches!(outcome, Ok(true)) {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.journal.note("commit");
        } else {
            self.rollbacks.fetch_add(1, Ordering::SeqCst);
            self.journal.note("rollback");
        }
        outcome.map(|_| ())
    }
}

fn repositories(orders: Arc<MockOrderRepository>, payments: MockPaymentRepository, jobs: MockJobQueue) -> Repositories {
    Repositories { orders, payments: Arc::new(payments), jobs: Arc::new(jobs), ..Repositories::mocked() }
}

/// Answers `answers` one after the other, one per call.
fn in_turn<T: Send + 'static>(answers: Vec<T>) -> impl FnMut() -> T + Send + 'static {
    let mut answers = VecDeque::from(answers);
    move || answers.pop_front().expect("called more often than it has answers")
}

/// The attempt a test is about: known up front, or the one the service inserts (filled in when
/// the insert happens, so later expectations can check they are about that very attempt).
#[derive(Clone, Default)]
struct Attempt(Arc<Mutex<Option<Payment>>>);

impl Attempt {
    fn known(payment: &Payment) -> Self {
        Self(Arc::new(Mutex::new(Some(payment.clone()))))
    }

    fn get(&self) -> Payment {
        self.0.lock().unwrap().clone().expect("the attempt was never inserted")
    }

    fn set(&self, payment: &Payment) {
        *self.0.lock().unwrap() = Some(payment.clone());
    }
}

/// Which set of repositories an expectation is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Pool,
    Tx,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Pool => "",
            Side::Tx => "tx.",
        }
    }
}

fn policy() -> PaymentPolicy {
    // Unlike the defaults, so a constant in the service would be caught.
    PaymentPolicy {
        reconcile_after: Duration::seconds(90),
        retry_base: Duration::seconds(2),
        retry_cap: Duration::minutes(10),
    }
}

#[derive(Default)]
struct Ports {
    /// The pool's orders (also the `OrderService`'s).
    orders: MockOrderRepository,
    /// The pool's payments.
    payments: MockPaymentRepository,
    tx_orders: MockOrderRepository,
    tx_payments: MockPaymentRepository,
    tx_jobs: MockJobQueue,
    provider: MockPaymentProvider,
    journal: Journal,
}

struct Harness {
    service: PaymentService,
    unit_of_work: Arc<PassThroughUnitOfWork>,
    journal: Journal,
}

impl Harness {
    fn commits(&self) -> usize {
        self.unit_of_work.commits.load(Ordering::SeqCst)
    }

    fn rollbacks(&self) -> usize {
        self.unit_of_work.rollbacks.load(Ordering::SeqCst)
    }

    fn journal(&self) -> Vec<String> {
        self.journal.entries()
    }
}

impl Ports {
    fn build(mut self) -> Harness {
        self.provider.expect_name().return_const(PROVIDER);
        let provider: Arc<dyn PaymentProvider> = Arc::new(std::mem::take(&mut self.provider));
        self.build_with(Some(provider))
    }

    /// Payments are off: no provider at all.
    fn build_disabled(self) -> Harness {
        self.build_with(None)
    }

    fn build_with(self, provider: Option<Arc<dyn PaymentProvider>>) -> Harness {
        let pool_orders = Arc::new(self.orders);
        let orders = OrderService::new(
            pool_orders.clone(),
            Arc::new(MockInvoiceRepository::new()),
            fixed_clock(),
            order_policy(),
        );
        let unit_of_work = Arc::new(PassThroughUnitOfWork {
            repositories: repositories(Arc::new(self.tx_orders), self.tx_payments, self.tx_jobs),
            commits: AtomicUsize::new(0),
            rollbacks: AtomicUsize::new(0),
            journal: self.journal.clone(),
        });
        let service = PaymentService::new(
            repositories(pool_orders, self.payments, MockJobQueue::new()),
            unit_of_work.clone(),
            provider,
            orders,
            fixed_clock(),
            policy(),
        );
        Harness { service, unit_of_work, journal: self.journal }
    }

    fn payments_on(&mut self, side: Side) -> &mut MockPaymentRepository {
        match side {
            Side::Pool => &mut self.payments,
            Side::Tx => &mut self.tx_payments,
        }
    }

    fn orders_on(&mut self, side: Side) -> &mut MockOrderRepository {
        match side {
            Side::Pool => &mut self.orders,
            Side::Tx => &mut self.tx_orders,
        }
    }

    /// `side`'s store finds `found`, once.
    fn expect_order_found(&mut self, side: Side, found: &Order) {
        let journal = self.journal.clone();
        let returned = found.clone();
        let label = format!("{}orders.find", side.prefix());
        self.orders_on(side).expect_find().with(eq(found.id)).times(1).returning(move |_| {
            journal.note(&label);
            Ok(Some(returned.clone()))
        });
    }

    /// The request's key names no earlier attempt.
    fn expect_no_earlier_attempt(&mut self, order_id: OrderId, key: &str) {
        self.expect_earlier_attempt(order_id, key, None);
    }

    fn expect_earlier_attempt(&mut self, order_id: OrderId, key: &str, earlier: Option<Payment>) {
        let journal = self.journal.clone();
        let key = key.to_owned();
        self.tx_payments
            .expect_find_by_request_key()
            .withf(move |id, asked| *id == order_id && asked == key)
            .times(1)
            .returning(move |_, _| {
                journal.note("tx.payments.find_by_request_key");
                Ok(earlier.clone())
            });
    }

    /// The attempt for `order` is inserted, with exactly the order's total and this provider.
    fn expect_inserted(&mut self, order: &Order, request_key: Option<&str>) -> Attempt {
        let attempt = Attempt::default();
        let inserted = attempt.clone();
        let journal = self.journal.clone();
        let (order_id, customer_id) = (order.id, order.customer_id);
        let (amount, currency) = (order.total.amount(), order.total.currency().clone());
        let request_key = request_key.map(str::to_owned);
        self.tx_payments
            .expect_insert()
            .withf(move |new| {
                new.id.as_uuid().get_version_num() == 7
                    && new.order_id == order_id
                    && new.customer_id == customer_id
                    && new.amount == amount
                    && new.currency == currency
                    && new.provider == PROVIDER
                    && new.request_key == request_key
                    && new.created_at == now()
            })
            .times(1)
            .returning(move |new| {
                journal.note("tx.payments.insert");
                let payment = Payment {
                    id: new.id,
                    order_id: new.order_id,
                    customer_id: new.customer_id,
                    status: PaymentStatus::Processing,
                    amount: new.amount,
                    currency: new.currency.clone(),
                    provider: new.provider.clone(),
                    provider_reference: None,
                    failure: None,
                    request_key: new.request_key.clone(),
                    created_at: new.created_at,
                    updated_at: new.created_at,
                };
                inserted.set(&payment);
                Ok(payment)
            });
        attempt
    }

    fn expect_insert_refused(&mut self, refusal: impl Fn() -> InsertPaymentError + Send + 'static) {
        let journal = self.journal.clone();
        self.tx_payments.expect_insert().times(1).returning(move |_| {
            journal.note("tx.payments.insert");
            Err(refusal())
        });
    }

    fn expect_job_enqueued(&mut self, attempt: &Attempt, kind: JobKind, run_at: DateTime<Utc>) {
        let journal = self.journal.clone();
        let attempt = attempt.clone();
        let label = format!("tx.jobs.enqueue {}", kind.as_str());
        self.tx_jobs
            .expect_enqueue()
            .withf(move |job| *job == NewJob { kind, subject: attempt.get().id.as_uuid(), run_at, created_at: now() })
            .times(1)
            .returning(move |_| {
                journal.note(&label);
                Ok(())
            });
    }

    /// Phase 1 of `pay` for `owner`'s pending `order`, all the way to the queued reconciliation.
    fn expect_attempt_recorded(&mut self, order: &Order, context: &PaymentRequestContext) -> Attempt {
        self.expect_order_found(Side::Pool, order);
        if let Some(key) = &context.request_key {
            self.expect_no_earlier_attempt(order.id, key);
        }
        self.expect_order_found(Side::Tx, order);
        let attempt = self.expect_inserted(order, context.request_key.as_deref());
        self.expect_job_enqueued(&attempt, JobKind::ReconcilePayment, now() + policy().reconcile_after);
        attempt
    }

    fn expect_created(
        &mut self,
        attempt: &Attempt,
        answer: impl Fn() -> Result<ProviderCharge, ProviderError> + Send + 'static,
    ) {
        let journal = self.journal.clone();
        let attempt = attempt.clone();
        self.provider
            .expect_create()
            .withf(move |request| *request == charge_request(&attempt.get()))
            .times(1)
            .returning(move |_| {
                journal.note("provider.create");
                answer()
            });
    }

    fn expect_reference_recorded(&mut self, attempt: &Attempt, reference: &str, recorded: bool) {
        let journal = self.journal.clone();
        let attempt = attempt.clone();
        let reference = reference.to_owned();
        self.tx_payments
            .expect_record_reference()
            .withf(move |id, recorded, at| *id == attempt.get().id && recorded == reference && *at == now())
            .times(1)
            .returning(move |_, _, _| {
                journal.note("tx.payments.record_reference");
                Ok(recorded)
            });
    }

    fn expect_confirmed(
        &mut self,
        attempt: &Attempt,
        reference: &str,
        answer: impl Fn() -> Result<ProviderCharge, ProviderError> + Send + 'static,
    ) {
        let journal = self.journal.clone();
        let attempt = attempt.clone();
        let reference = reference.to_owned();
        self.provider
            .expect_confirm()
            .withf(move |confirmed, request| confirmed == reference && *request == charge_request(&attempt.get()))
            .times(1)
            .returning(move |_, _| {
                journal.note("provider.confirm");
                answer()
            });
    }

    fn expect_retrieved(
        &mut self,
        attempt: &Attempt,
        reference: &str,
        answer: impl Fn() -> Result<ProviderCharge, ProviderError> + Send + 'static,
    ) {
        let journal = self.journal.clone();
        let attempt = attempt.clone();
        let reference = reference.to_owned();
        self.provider
            .expect_retrieve()
            .withf(move |asked, expected| asked == reference && *expected == attempt.get().expected_charge())
            .times(1)
            .returning(move |_, _| {
                journal.note("provider.retrieve");
                answer()
            });
    }

    /// `side`'s store settles the attempt from `from` to `to` (with exactly this failure and
    /// reference) and records the matching `PaymentSettled`, once; it answers `settled` (`false`:
    /// someone else settled it first).
    #[allow(clippy::too_many_arguments)]
    fn expect_settled(
        &mut self,
        side: Side,
        attempt: &Attempt,
        from: PaymentStatus,
        to: PaymentStatus,
        failure: Option<PaymentFailure>,
        reference: Option<&str>,
        settled: bool,
    ) {
        let journal = self.journal.clone();
        let label = format!("{}payments.settle {}", side.prefix(), to.as_str());
        let attempt = attempt.clone();
        let returned = attempt.clone();
        let reference = reference.map(str::to_owned);
        let failure_code = failure.as_ref().map(|failure| failure.code.clone());
        self.payments_on(side)
            .expect_settle()
            .withf(move |settlement, event| {
                let payment = attempt.get();
                *settlement
                    == PaymentSettlement {
                        payment_id: payment.id,
                        from,
                        to,
                        failure: failure.clone(),
                        provider_reference: reference.clone(),
                        now: now(),
                    }
                    && *event
                        == DomainEvent::PaymentSettled {
                            payment_id: payment.id,
                            order_id: payment.order_id,
                            customer_id: payment.customer_id,
                            status: to,
                            amount: payment.amount,
                            failure_code: failure_code.clone(),
                            occurred_at: now(),
                        }
            })
            .times(1)
            .returning(move |settlement, _| {
                journal.note(&label);
                Ok(settled.then(|| settled_payment_from(returned.get(), settlement)))
            });
    }

    /// `side`'s store is asked to confirm `order` because it was paid (by `payer`), once.
    fn expect_order_confirmed(
        &mut self,
        side: Side,
        order: &Order,
        payer: Option<UserId>,
        outcome: Result<Order, StatusChangeError>,
    ) {
        let journal = self.journal.clone();
        let label = format!("{}orders.change_status", side.prefix());
        let change = StatusChange {
            order_id: order.id,
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            effect: TransitionEffect::CommitReservationAndInvoice,
            expected_version: None,
            actor_id: payer,
            cancel_reason: None,
            now: now(),
        };
        self.orders_on(side).expect_change_status().with(eq(change)).times(1).return_once(move |_| {
            journal.note(&label);
            outcome
        });
    }

    /// The pool's store finds the attempt as `payment`, once.
    fn expect_payment_found(&mut self, side: Side, payment: &Payment) {
        let journal = self.journal.clone();
        let label = format!("{}payments.find", side.prefix());
        let returned = payment.clone();
        self.payments_on(side).expect_find().with(eq(payment.id)).times(1).returning(move |_| {
            journal.note(&label);
            Ok(Some(returned.clone()))
        });
    }

    /// Nothing may settle anything, on either side.
    fn expect_no_settlement(&mut self) {
        self.payments.expect_settle().never();
        self.tx_payments.expect_settle().never();
    }
}

/// What the store answers for a settlement of `payment` it applied (the attempt as it is now).
fn settled_payment_from(payment: Payment, settlement: &PaymentSettlement) -> Payment {
    Payment {
        status: settlement.to,
        failure: settlement.failure.clone(),
        provider_reference: settlement.provider_reference.clone().or(payment.provider_reference.clone()),
        updated_at: settlement.now,
        ..payment
    }
}

// ---- sample values --------------------------------------------------------------------------

fn method() -> PaymentMethodToken {
    PaymentMethodToken::parse("pm_card_visa").unwrap()
}

fn context() -> PaymentRequestContext {
    PaymentRequestContext { request_key: Some("user-1:key-1".to_owned()), request_id: Some("req-1".to_owned()) }
}

/// Everything the provider must be told to charge `payment`.
fn charge_request(payment: &Payment) -> ChargeRequest {
    ChargeRequest {
        expected: payment.expected_charge(),
        order_id: payment.order_id,
        payment_method: method(),
        request_id: Some("req-1".to_owned()),
    }
}

/// A `processing` attempt at `order`'s total, started two minutes ago, no charge recorded yet.
fn processing(order: &Order) -> Payment {
    let created_at = now() - Duration::minutes(2);
    Payment {
        id: PaymentId::new(),
        order_id: order.id,
        customer_id: order.customer_id,
        status: PaymentStatus::Processing,
        amount: order.total.amount(),
        currency: order.total.currency().clone(),
        provider: PROVIDER.to_owned(),
        provider_reference: None,
        failure: None,
        request_key: Some("user-1:key-1".to_owned()),
        created_at,
        updated_at: created_at,
    }
}

/// `processing(order)` whose charge `ch_1` is recorded.
fn with_charge(order: &Order) -> Payment {
    Payment { provider_reference: Some("ch_1".to_owned()), ..processing(order) }
}

fn settled_as(payment: &Payment, status: PaymentStatus, failure: Option<PaymentFailure>) -> Payment {
    Payment { status, failure, updated_at: now(), ..payment.clone() }
}

fn charge(reference: &str, state: ChargeState) -> ProviderCharge {
    ProviderCharge { reference: reference.to_owned(), state }
}

fn declined() -> PaymentFailure {
    PaymentFailure::new("card_declined", "Your card was declined.")
}

fn unavailable() -> PaymentFailure {
    PaymentFailure::new("provider_unavailable", "the payment provider could not be reached; nothing was charged")
}

fn not_completed() -> PaymentFailure {
    PaymentFailure::new("not_completed", "the payment was not completed")
}

fn unreachable() -> ProviderError {
    ProviderError::Unreachable(anyhow::anyhow!("connection refused"))
}

fn timed_out() -> ProviderError {
    ProviderError::TimedOut(anyhow::anyhow!("no answer within 10 s"))
}

fn untrustworthy() -> ProviderError {
    ProviderError::Untrustworthy(anyhow::anyhow!("amount 1 does not match 3000"))
}

fn confirmed_order(owner: &User) -> Result<Order, StatusChangeError> {
    Ok(order_in(owner, OrderStatus::Confirmed))
}

fn pay(harness: &Harness, who: &User, order: &Order) -> Result<PaymentOutcome, PayError> {
    harness.service.pay(actor(who), order.id, method(), &context())
}

// ---- pay: the whole way ---------------------------------------------------------------------

#[test]
fn a_paid_order_records_the_attempt_creates_records_and_confirms_the_charge_then_settles_and_confirms_the_order() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, Some(ada.id), confirmed_order(&ada));
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending).unwrap();

    let PaymentOutcome::Succeeded(payment) = outcome else { panic!("expected success, got {outcome:?}") };
    assert_eq!(payment.id, attempt.get().id);
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(payment.provider_reference.as_deref(), Some("ch_1"));
    assert_eq!(
        harness.journal(),
        [
            "orders.find",
            // phase 1: the attempt and its reconciliation, together
            "begin",
            "tx.payments.find_by_request_key",
            "tx.orders.find",
            "tx.payments.insert",
            "tx.jobs.enqueue reconcile_payment",
            "commit",
            // phase 2
            "provider.create",
            // phase 3
            "begin",
            "tx.payments.record_reference",
            "commit",
            // phase 4
            "provider.confirm",
            // phase 5: the attempt and the order, together
            "begin",
            "tx.payments.settle succeeded",
            "tx.orders.change_status",
            "commit",
        ]
    );
    assert_eq!((harness.commits(), harness.rollbacks()), (3, 0));
}

#[test]
fn a_payment_method_the_provider_refuses_at_creation_is_a_decline_and_nothing_is_confirmed() {
    let ada = customer();
    let pending = order(&ada);
    let unknown = PaymentFailure::new("invalid_payment_method", "unknown");
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    let refused = unknown.clone();
    ports.expect_created(&attempt, move || Ok(charge("", ChargeState::Failed(refused.clone()))));
    ports.tx_payments.expect_record_reference().never();
    ports.provider.expect_confirm().never();
    ports.expect_settled(
        Side::Pool,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(unknown.clone()),
        None,
        true,
    );
    let reloaded = attempt.clone();
    let failure = unknown.clone();
    ports
        .payments
        .expect_find()
        .times(1)
        .returning(move |_| Ok(Some(settled_as(&reloaded.get(), PaymentStatus::Failed, Some(failure.clone())))));
    ports.tx_orders.expect_change_status().never();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    let Err(PayError::Declined(payment)) = result else { panic!("expected Declined, got {result:?}") };
    assert_eq!(payment.failure, Some(unknown));
}

#[test]
fn a_declined_charge_settles_the_attempt_as_failed_with_the_providers_reason_and_leaves_the_order_pending() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Failed(declined()))));
    ports.expect_settled(
        Side::Pool,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(declined()),
        Some("ch_1"),
        true,
    );
    let reloaded = attempt.clone();
    let journal = ports.journal.clone();
    ports.payments.expect_find().times(1).returning(move |id| {
        journal.note("payments.find");
        assert_eq!(id, reloaded.get().id);
        Ok(Some(settled_as(&reloaded.get(), PaymentStatus::Failed, Some(declined()))))
    });
    ports.tx_orders.expect_change_status().never();
    ports.orders.expect_change_status().never();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    let Err(PayError::Declined(payment)) = result else { panic!("expected Declined, got {result:?}") };
    assert_eq!(payment.id, attempt.get().id);
    assert_eq!(payment.status, PaymentStatus::Failed);
    assert_eq!(payment.failure, Some(declined()));
    assert_eq!(harness.journal()[harness.journal().len() - 2..], ["payments.settle failed", "payments.find"]);
}

// ---- pay: refused before anything is charged ------------------------------------------------

#[test]
fn paying_someone_elses_order_is_not_found_and_calls_no_provider() {
    let ada = customer();
    let adas = order(&ada);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &adas);
    ports.provider.expect_create().never();
    ports.provider.expect_confirm().never();
    ports.provider.expect_retrieve().never();
    let harness = ports.build();

    let result = pay(&harness, &other_customer(), &adas);

    assert!(matches!(result, Err(PayError::NotFound)), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn paying_an_order_that_does_not_exist_is_not_found() {
    let ada = customer();
    let missing = order(&ada);
    let mut ports = Ports::default();
    ports.orders.expect_find().with(eq(missing.id)).times(1).returning(|_| Ok(None));
    let harness = ports.build();

    let result = pay(&harness, &ada, &missing);

    assert!(matches!(result, Err(PayError::NotFound)), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn with_payments_disabled_the_owner_learns_it_after_the_ownership_check() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    let harness = ports.build_disabled();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Err(PayError::Disabled)), "{result:?}");
    assert_eq!(harness.journal(), ["orders.find"]);
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn with_payments_disabled_someone_elses_order_is_still_not_found() {
    let adas = order(&customer());
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &adas);
    let harness = ports.build_disabled();

    let result = pay(&harness, &other_customer(), &adas);

    assert!(matches!(result, Err(PayError::NotFound)), "{result:?}");
}

#[test]
fn an_order_that_is_not_pending_cannot_be_paid_and_nothing_is_recorded() {
    let ada = customer();
    let confirmed = order_in(&ada, OrderStatus::Confirmed);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &confirmed);
    ports.expect_no_earlier_attempt(confirmed.id, "user-1:key-1");
    ports.expect_order_found(Side::Tx, &confirmed);
    ports.tx_payments.expect_insert().never();
    ports.tx_jobs.expect_enqueue().never();
    ports.provider.expect_create().never();
    let harness = ports.build();

    let result = pay(&harness, &ada, &confirmed);

    assert!(matches!(result, Err(PayError::NotPayable(OrderStatus::Confirmed))), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn another_processing_attempt_makes_the_payment_in_progress_and_rolls_back() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_no_earlier_attempt(pending.id, "user-1:key-1");
    ports.expect_order_found(Side::Tx, &pending);
    ports.expect_insert_refused(|| InsertPaymentError::AlreadyProcessing);
    ports.tx_jobs.expect_enqueue().never();
    ports.provider.expect_create().never();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Err(PayError::InProgress)), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn an_order_that_left_pending_before_the_insert_is_not_payable_with_its_status_read_again() {
    let ada = customer();
    let pending = order(&ada);
    let cancelled = order_in(&ada, OrderStatus::Cancelled);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_no_earlier_attempt(pending.id, "user-1:key-1");
    let mut answers = in_turn(vec![pending.clone(), cancelled]);
    ports.tx_orders.expect_find().with(eq(pending.id)).times(2).returning(move |_| Ok(Some(answers())));
    ports.expect_insert_refused(|| InsertPaymentError::OrderNotPending);
    ports.tx_jobs.expect_enqueue().never();
    ports.provider.expect_create().never();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Err(PayError::NotPayable(OrderStatus::Cancelled))), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

// ---- pay: the provider cannot answer --------------------------------------------------------

/// `pay` where creating the charge answers `error`; `settles`: the attempt is failed as
/// `provider_unavailable` (else nothing is settled).
fn when_create_fails(
    error: fn() -> ProviderError,
    settles: bool,
) -> (Harness, Attempt, Result<PaymentOutcome, PayError>) {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, move || Err(error()));
    ports.tx_payments.expect_record_reference().never();
    ports.provider.expect_confirm().never();
    ports.tx_orders.expect_change_status().never();
    if settles {
        ports.expect_settled(
            Side::Pool,
            &attempt,
            PaymentStatus::Processing,
            PaymentStatus::Failed,
            Some(unavailable()),
            None,
            true,
        );
    } else {
        ports.expect_no_settlement();
    }
    let harness = ports.build();
    let result = pay(&harness, &ada, &pending);
    (harness, attempt, result)
}

#[test]
fn an_unreachable_provider_at_create_fails_the_attempt_as_provider_unavailable_and_never_confirms() {
    let (harness, _, result) = when_create_fails(unreachable, true);

    assert!(matches!(result, Err(PayError::ProviderUnavailable)), "{result:?}");
    assert_eq!(harness.journal().last().map(String::as_str), Some("payments.settle failed"));
}

#[test]
fn a_create_that_timed_out_moved_no_money_so_it_fails_the_attempt_as_provider_unavailable() {
    let (harness, _, result) = when_create_fails(timed_out, true);

    assert!(matches!(result, Err(PayError::ProviderUnavailable)), "{result:?}");
    assert_eq!(harness.journal().last().map(String::as_str), Some("payments.settle failed"));
}

#[test]
fn an_untrustworthy_create_leaves_the_attempt_processing_and_never_confirms() {
    let (harness, attempt, result) = when_create_fails(untrustworthy, false);

    let Err(PayError::ProviderUntrustworthy(payment)) = result else { panic!("got {result:?}") };
    assert_eq!(payment.id, attempt.get().id);
    assert_eq!(payment.status, PaymentStatus::Processing);
    assert_eq!(harness.journal().last().map(String::as_str), Some("provider.create"));
}

/// `pay` where confirming the recorded charge `ch_1` answers `error`.
fn when_confirm_fails(
    error: fn() -> ProviderError,
    settles: bool,
) -> (Harness, Attempt, Result<PaymentOutcome, PayError>) {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", move || Err(error()));
    ports.tx_orders.expect_change_status().never();
    if settles {
        ports.expect_settled(
            Side::Pool,
            &attempt,
            PaymentStatus::Processing,
            PaymentStatus::Failed,
            Some(unavailable()),
            None,
            true,
        );
    } else {
        ports.expect_no_settlement();
    }
    let harness = ports.build();
    let result = pay(&harness, &ada, &pending);
    (harness, attempt, result)
}

#[test]
fn a_confirm_that_could_not_be_sent_fails_the_attempt_as_provider_unavailable() {
    let (harness, _, result) = when_confirm_fails(unreachable, true);

    assert!(matches!(result, Err(PayError::ProviderUnavailable)), "{result:?}");
    assert_eq!(harness.journal()[harness.journal().len() - 2..], ["provider.confirm", "payments.settle failed"]);
}

#[test]
fn a_confirm_that_timed_out_may_have_moved_money_so_the_attempt_stays_processing() {
    let (harness, attempt, result) = when_confirm_fails(timed_out, false);

    let Ok(PaymentOutcome::Processing(payment)) = result else { panic!("expected Processing, got {result:?}") };
    assert_eq!(payment.id, attempt.get().id);
    assert_eq!(payment.status, PaymentStatus::Processing);
    assert_eq!(harness.journal().last().map(String::as_str), Some("provider.confirm"));
}

#[test]
fn an_untrustworthy_confirm_leaves_the_attempt_processing_for_reconciliation() {
    let (harness, attempt, result) = when_confirm_fails(untrustworthy, false);

    let Err(PayError::ProviderUntrustworthy(payment)) = result else { panic!("got {result:?}") };
    assert_eq!(payment.id, attempt.get().id);
    assert_eq!(payment.status, PaymentStatus::Processing);
    assert_eq!(harness.journal().last().map(String::as_str), Some("provider.confirm"));
}

#[test]
fn a_confirmed_charge_still_reported_as_awaiting_confirmation_is_not_trusted() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_no_settlement();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Err(PayError::ProviderUntrustworthy(_))), "{result:?}");
}

#[test]
fn a_charge_still_processing_at_the_provider_answers_processing_without_settling() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Processing)));
    ports.expect_no_settlement();
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Ok(PaymentOutcome::Processing(_))), "{result:?}");
}

// ---- pay: a retry of the same request -------------------------------------------------------

#[test]
fn a_retry_looks_at_the_recorded_charge_first_and_settles_a_success_without_confirming_again() {
    let ada = customer();
    let pending = order(&ada);
    let earlier = with_charge(&pending);
    let attempt = Attempt::known(&earlier);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_earlier_attempt(pending.id, "user-1:key-1", Some(earlier.clone()));
    ports.tx_orders.expect_find().never();
    ports.tx_payments.expect_insert().never();
    ports.tx_jobs.expect_enqueue().never();
    ports.provider.expect_create().never();
    ports.provider.expect_confirm().never();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, Some(ada.id), confirmed_order(&ada));
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending).unwrap();

    let PaymentOutcome::Succeeded(payment) = outcome else { panic!("expected success, got {outcome:?}") };
    assert_eq!(payment.id, earlier.id);
    assert_eq!(
        harness.journal(),
        [
            "orders.find",
            "begin",
            "tx.payments.find_by_request_key",
            "commit",
            "provider.retrieve",
            "begin",
            "tx.payments.settle succeeded",
            "tx.orders.change_status",
            "commit",
        ]
    );
}

#[test]
fn a_retry_confirms_a_recorded_charge_only_after_the_provider_says_it_is_unconfirmed() {
    let ada = customer();
    let pending = order(&ada);
    let earlier = with_charge(&pending);
    let attempt = Attempt::known(&earlier);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_earlier_attempt(pending.id, "user-1:key-1", Some(earlier.clone()));
    ports.tx_payments.expect_insert().never();
    ports.provider.expect_create().never();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    // Still processing when read again right before the confirm.
    ports.expect_payment_found(Side::Pool, &earlier);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, Some(ada.id), confirmed_order(&ada));
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending).unwrap();

    assert!(matches!(outcome, PaymentOutcome::Succeeded(_)), "{outcome:?}");
    let journal = harness.journal();
    let position = |entry: &str| journal.iter().position(|seen| seen == entry).unwrap();
    assert!(position("provider.retrieve") < position("provider.confirm"), "{journal:?}");
}

#[test]
fn a_retry_never_confirms_a_charge_that_reconciliation_gave_up_on_meanwhile() {
    let ada = customer();
    let pending = order(&ada);
    let earlier = with_charge(&pending);
    let attempt = Attempt::known(&earlier);
    let abandoned = settled_as(&earlier, PaymentStatus::Failed, Some(PaymentFailure::new("not_completed", "x")));
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_earlier_attempt(pending.id, "user-1:key-1", Some(earlier.clone()));
    ports.tx_payments.expect_insert().never();
    ports.provider.expect_create().never();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_payment_found(Side::Pool, &abandoned);
    ports.provider.expect_confirm().never();
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending);

    assert!(matches!(outcome, Err(PayError::Declined(_))), "{outcome:?}");
}

#[test]
fn a_retry_of_an_attempt_that_already_succeeded_answers_it_without_calling_the_provider() {
    let ada = customer();
    let pending = order(&ada);
    let succeeded = settled_as(&with_charge(&pending), PaymentStatus::Succeeded, None);
    let mut ports = Ports::default();
    ports.expect_order_found(Side::Pool, &pending);
    ports.expect_earlier_attempt(pending.id, "user-1:key-1", Some(succeeded.clone()));
    ports.tx_payments.expect_insert().never();
    ports.provider.expect_create().never();
    ports.provider.expect_confirm().never();
    ports.provider.expect_retrieve().never();
    ports.expect_no_settlement();
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending).unwrap();

    assert_eq!(outcome, PaymentOutcome::Succeeded(succeeded));
}

// ---- pay: the order moved on while it was being paid ----------------------------------------

#[test]
fn a_success_for_an_order_no_longer_pending_queues_its_refund_with_the_settlement() {
    let ada = customer();
    let pending = order(&ada);
    let cancelled = order_in(&ada, OrderStatus::Cancelled);
    let mut ports = Ports::default();
    // The ownership check, then the re-read that says what the order became.
    let mut answers = in_turn(vec![pending.clone(), cancelled]);
    let journal = ports.journal.clone();
    ports.orders.expect_find().with(eq(pending.id)).times(2).returning(move |_| {
        journal.note("orders.find");
        Ok(Some(answers()))
    });
    ports.expect_no_earlier_attempt(pending.id, "user-1:key-1");
    ports.expect_order_found(Side::Tx, &pending);
    let attempt = ports.expect_inserted(&pending, Some("user-1:key-1"));
    let journal = ports.journal.clone();
    let refunded = attempt.clone();
    let reconcile_at = now() + policy().reconcile_after;
    ports.tx_jobs.expect_enqueue().withf(move |job| job.subject == refunded.get().id.as_uuid()).times(2).returning(
        move |job| {
            journal.note(&format!("tx.jobs.enqueue {}", job.kind.as_str()));
            let run_at = match job.kind {
                JobKind::ReconcilePayment => reconcile_at,
                // Refunded as soon as possible.
                JobKind::RefundPayment => now(),
                JobKind::DeliverWebhook => panic!("a payment queues no webhook delivery"),
            };
            assert_eq!((job.run_at, job.created_at), (run_at, now()), "{job:?}");
            Ok(())
        },
    );
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, Some(ada.id), Err(StatusChangeError::Conflict));
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    assert!(matches!(result, Err(PayError::OrderChangedDuringPayment(OrderStatus::Cancelled))), "{result:?}");
    let journal = harness.journal();
    assert_eq!(
        journal[journal.len() - 6..],
        [
            "begin",
            "tx.payments.settle succeeded",
            "tx.orders.change_status",
            "tx.jobs.enqueue refund_payment",
            "commit",
            "orders.find",
        ]
    );
    assert_eq!((harness.commits(), harness.rollbacks()), (3, 0));
}

#[test]
fn a_success_someone_else_settled_first_answers_what_they_recorded() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", true);
    ports.expect_confirmed(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        false,
    );
    // Not settled by this request, so it must not confirm the order either.
    ports.tx_orders.expect_change_status().never();
    let reloaded = attempt.clone();
    ports
        .payments
        .expect_find()
        .times(1)
        .returning(move |_| Ok(Some(settled_as(&reloaded.get(), PaymentStatus::Succeeded, None))));
    let harness = ports.build();

    let outcome = pay(&harness, &ada, &pending).unwrap();

    assert!(matches!(outcome, PaymentOutcome::Succeeded(ref payment) if payment.id == attempt.get().id));
}

// ---- pay: the attempt was settled between create and record ---------------------------------

#[test]
fn a_charge_whose_reference_can_no_longer_be_recorded_is_never_confirmed() {
    let ada = customer();
    let pending = order(&ada);
    let mut ports = Ports::default();
    let attempt = ports.expect_attempt_recorded(&pending, &context());
    ports.expect_created(&attempt, || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_reference_recorded(&attempt, "ch_1", false);
    ports.provider.expect_confirm().never();
    ports.expect_no_settlement();
    let reloaded = attempt.clone();
    let journal = ports.journal.clone();
    ports.payments.expect_find().times(1).returning(move |id| {
        journal.note("payments.find");
        assert_eq!(id, reloaded.get().id);
        Ok(Some(settled_as(&reloaded.get(), PaymentStatus::Failed, Some(not_completed()))))
    });
    let harness = ports.build();

    let result = pay(&harness, &ada, &pending);

    let Err(PayError::Declined(payment)) = result else { panic!("got {result:?}") };
    assert_eq!(payment.failure, Some(not_completed()));
    assert_eq!(harness.journal().last().map(String::as_str), Some("payments.find"));
}

// ---- apply_event ----------------------------------------------------------------------------

const SIGNATURE: &str = "t=1,v1=abc";
const BODY: &[u8] = br#"{"id":"evt_1"}"#;

impl Ports {
    fn expect_event(&mut self, answer: impl Fn() -> Result<ProviderEvent, EventRejected> + Send + 'static) {
        let journal = self.journal.clone();
        self.provider
            .expect_verify_event()
            .withf(|signature, body, at| *signature == Some(SIGNATURE) && body == BODY && *at == now())
            .times(1)
            .returning(move |_, _, _| {
                journal.note("provider.verify_event");
                answer()
            });
    }

    fn expect_found_by_reference(&mut self, reference: &str, found: Option<Payment>) {
        let journal = self.journal.clone();
        let reference = reference.to_owned();
        self.payments
            .expect_find_by_reference()
            .withf(move |provider, asked| provider == PROVIDER && asked == reference)
            .times(1)
            .returning(move |_, _| {
                journal.note("payments.find_by_reference");
                Ok(found.clone())
            });
    }

    fn expect_event_marked(&mut self, event_id: &str, first: bool) {
        let journal = self.journal.clone();
        let event_id = event_id.to_owned();
        self.tx_payments
            .expect_mark_provider_event_applied()
            .withf(move |provider, id, at| provider == PROVIDER && id == event_id && *at == now())
            .times(1)
            .returning(move |_, _, _| {
                journal.note("tx.payments.mark_provider_event_applied");
                Ok(first)
            });
    }

    /// Nothing but the provider's verification is touched.
    fn expect_nothing_written(&mut self) {
        self.expect_no_settlement();
        self.tx_payments.expect_mark_provider_event_applied().never();
        self.tx_orders.expect_change_status().never();
    }
}

fn charge_event(state: ChargeState, payment_id: Option<PaymentId>, amount: i64, currency: &str) -> ProviderEvent {
    ProviderEvent {
        id: "evt_1".to_owned(),
        kind: ProviderEventKind::Charge {
            charge: charge("ch_1", state),
            payment_id,
            amount,
            currency: currency.to_owned(),
        },
    }
}

fn apply(harness: &Harness) -> Result<EventApplication, ApplyEventError> {
    harness.service.apply_event(Some(SIGNATURE), BODY)
}

#[test]
fn an_event_that_fails_verification_is_rejected_and_touches_nothing() {
    let mut ports = Ports::default();
    ports.expect_event(|| Err(EventRejected::InvalidSignature));
    ports.expect_nothing_written();
    let harness = ports.build();

    let result = apply(&harness);

    assert!(matches!(result, Err(ApplyEventError::Rejected(EventRejected::InvalidSignature))), "{result:?}");
    assert_eq!(harness.journal(), ["provider.verify_event"]);
}

#[test]
fn an_event_of_another_type_is_ignored() {
    let mut ports = Ports::default();
    ports.expect_event(|| {
        Ok(ProviderEvent {
            id: "evt_1".to_owned(),
            kind: ProviderEventKind::Other { type_name: "customer.created".to_owned() },
        })
    });
    ports.expect_nothing_written();
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Ignored);
    assert_eq!(harness.journal(), ["provider.verify_event"]);
}

#[test]
fn an_event_about_an_unknown_charge_without_an_attempt_id_is_ignored() {
    let mut ports = Ports::default();
    ports.expect_event(|| Ok(charge_event(ChargeState::Succeeded, None, 3000, "eur")));
    ports.expect_found_by_reference("ch_1", None);
    ports.payments.expect_find().never();
    ports.expect_nothing_written();
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Ignored);
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn an_event_naming_an_attempt_that_knows_another_charge_is_ignored() {
    let ada = customer();
    let elsewhere = Payment { provider_reference: Some("ch_other".to_owned()), ..processing(&order(&ada)) };
    let id = elsewhere.id;
    let mut ports = Ports::default();
    ports.expect_event(move || Ok(charge_event(ChargeState::Succeeded, Some(id), 3000, "eur")));
    ports.expect_found_by_reference("ch_1", None);
    ports.expect_payment_found(Side::Pool, &elsewhere);
    ports.expect_nothing_written();
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Ignored);
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
}

#[test]
fn an_event_whose_amount_or_currency_differs_from_its_attempt_is_ignored() {
    for (amount, currency) in [(2999, "eur"), (3000, "usd")] {
        let attempt = with_charge(&order(&customer()));
        let mut ports = Ports::default();
        ports.expect_event(move || Ok(charge_event(ChargeState::Succeeded, None, amount, currency)));
        ports.expect_found_by_reference("ch_1", Some(attempt));
        ports.expect_nothing_written();
        let harness = ports.build();

        assert_eq!(apply(&harness).unwrap(), EventApplication::Ignored, "{amount} {currency}");
        assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
    }
}

#[test]
fn a_duplicate_delivery_is_not_applied_again() {
    let attempt = with_charge(&order(&customer()));
    let mut ports = Ports::default();
    ports.expect_event(|| Ok(charge_event(ChargeState::Succeeded, None, 3000, "EUR")));
    ports.expect_found_by_reference("ch_1", Some(attempt));
    ports.expect_event_marked("evt_1", false);
    ports.tx_payments.expect_find().never();
    ports.expect_no_settlement();
    ports.tx_orders.expect_change_status().never();
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Duplicate);
}

#[test]
fn the_first_delivery_of_a_success_settles_the_attempt_and_confirms_the_order_with_its_mark_in_one_unit_of_work() {
    let ada = customer();
    let pending = order(&ada);
    let payment = with_charge(&pending);
    let attempt = Attempt::known(&payment);
    let mut ports = Ports::default();
    ports.expect_event(|| Ok(charge_event(ChargeState::Succeeded, None, 3000, "eur")));
    ports.expect_found_by_reference("ch_1", Some(payment.clone()));
    ports.expect_event_marked("evt_1", true);
    ports.expect_payment_found(Side::Tx, &payment);
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, None, confirmed_order(&ada));
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Applied);
    assert_eq!(
        harness.journal(),
        [
            "provider.verify_event",
            "payments.find_by_reference",
            "begin",
            "tx.payments.mark_provider_event_applied",
            "tx.payments.find",
            "tx.payments.settle succeeded",
            "tx.orders.change_status",
            "commit",
        ]
    );
    assert_eq!((harness.commits(), harness.rollbacks()), (1, 0));
}

#[test]
fn an_event_ties_a_charge_whose_reference_was_never_recorded_to_its_attempt_by_id() {
    let ada = customer();
    let pending = order(&ada);
    let payment = processing(&pending);
    let attempt = Attempt::known(&payment);
    let id = payment.id;
    let mut ports = Ports::default();
    ports.expect_event(move || Ok(charge_event(ChargeState::Failed(declined()), Some(id), 3000, "eur")));
    ports.expect_found_by_reference("ch_1", None);
    ports.expect_payment_found(Side::Pool, &payment);
    ports.expect_event_marked("evt_1", true);
    ports.expect_payment_found(Side::Tx, &payment);
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(declined()),
        Some("ch_1"),
        true,
    );
    ports.payments.expect_settle().never();
    let harness = ports.build();

    assert_eq!(apply(&harness).unwrap(), EventApplication::Applied);
    assert_eq!((harness.commits(), harness.rollbacks()), (1, 0));
}

#[test]
fn a_store_failure_while_applying_rolls_back_the_mark_too() {
    let payment = with_charge(&order(&customer()));
    let mut ports = Ports::default();
    ports.expect_event(|| Ok(charge_event(ChargeState::Succeeded, None, 3000, "eur")));
    ports.expect_found_by_reference("ch_1", Some(payment.clone()));
    ports.expect_event_marked("evt_1", true);
    ports
        .tx_payments
        .expect_find()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection reset"))));
    ports.expect_no_settlement();
    let harness = ports.build();

    let result = apply(&harness);

    assert!(matches!(result, Err(ApplyEventError::Store(StoreError::Unavailable(_)))), "{result:?}");
    assert_eq!((harness.commits(), harness.rollbacks()), (0, 1));
}

#[test]
fn events_are_refused_when_payments_are_disabled() {
    let harness = Ports::default().build_disabled();

    let result = apply(&harness);

    assert!(matches!(result, Err(ApplyEventError::Disabled)), "{result:?}");
    assert!(harness.journal().is_empty());
}

// ---- work_job -------------------------------------------------------------------------------

fn job(kind: JobKind, payment: &Payment) -> Job {
    Job {
        id: Uuid::now_v7(),
        kind,
        subject: payment.id.as_uuid(),
        attempts: 2,
        created_at: now() - Duration::minutes(5),
        lease_until: now() + Duration::minutes(5),
    }
}

/// `work_job` of `kind` for `payment`, with `ports` already expecting the rest.
fn work(mut ports: Ports, kind: JobKind, payment: &Payment) -> (Harness, Result<bool, StoreError>) {
    ports.expect_payment_found(Side::Pool, payment);
    let harness = ports.build();
    let result = harness.service.work_job(&job(kind, payment));
    (harness, result)
}

fn no_provider_call(ports: &mut Ports) {
    ports.provider.expect_create().never();
    ports.provider.expect_confirm().never();
    ports.provider.expect_retrieve().never();
    ports.provider.expect_refund().never();
}

#[test]
fn reconciling_an_attempt_that_is_settled_already_is_done_without_asking_the_provider() {
    for status in [PaymentStatus::Succeeded, PaymentStatus::Failed, PaymentStatus::Refunded] {
        let payment = settled_as(&with_charge(&order(&customer())), status, None);
        let mut ports = Ports::default();
        no_provider_call(&mut ports);
        ports.expect_no_settlement();

        let (_, result) = work(ports, JobKind::ReconcilePayment, &payment);

        assert!(result.unwrap(), "{status}");
    }
}

#[test]
fn reconciling_an_attempt_that_never_recorded_a_charge_fails_it_as_not_completed() {
    let payment = processing(&order(&customer()));
    let mut ports = Ports::default();
    no_provider_call(&mut ports);
    ports.expect_settled(
        Side::Pool,
        &Attempt::known(&payment),
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(not_completed()),
        None,
        true,
    );

    let (_, result) = work(ports, JobKind::ReconcilePayment, &payment);

    assert!(result.unwrap());
}

#[test]
fn reconciling_a_charge_that_succeeded_settles_the_attempt_and_confirms_the_order() {
    let ada = customer();
    let pending = order(&ada);
    let payment = with_charge(&pending);
    let attempt = Attempt::known(&payment);
    let mut ports = Ports::default();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Succeeded)));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        None,
        Some("ch_1"),
        true,
    );
    ports.expect_order_confirmed(Side::Tx, &pending, None, confirmed_order(&ada));
    ports.provider.expect_confirm().never();

    let (harness, result) = work(ports, JobKind::ReconcilePayment, &payment);

    assert!(result.unwrap());
    assert_eq!((harness.commits(), harness.rollbacks()), (1, 0));
}

#[test]
fn reconciling_a_charge_the_provider_is_still_processing_is_retried_later() {
    let payment = with_charge(&order(&customer()));
    let mut ports = Ports::default();
    ports.expect_retrieved(&Attempt::known(&payment), "ch_1", || Ok(charge("ch_1", ChargeState::Processing)));
    ports.expect_no_settlement();
    ports.tx_orders.expect_change_status().never();

    let (_, result) = work(ports, JobKind::ReconcilePayment, &payment);

    assert!(!result.unwrap());
}

#[test]
fn reconciling_while_the_provider_gives_no_answer_is_retried_later() {
    for error in [unreachable as fn() -> ProviderError, timed_out, untrustworthy] {
        let payment = with_charge(&order(&customer()));
        let mut ports = Ports::default();
        ports.expect_retrieved(&Attempt::known(&payment), "ch_1", move || Err(error()));
        ports.expect_no_settlement();

        let (harness, result) = work(ports, JobKind::ReconcilePayment, &payment);

        assert!(!result.unwrap());
        assert_eq!((harness.commits(), harness.rollbacks()), (0, 0));
    }
}

#[test]
fn reconciling_a_charge_that_was_never_confirmed_fails_it_as_not_completed() {
    let payment = with_charge(&order(&customer()));
    let attempt = Attempt::known(&payment);
    let mut ports = Ports::default();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::AwaitingConfirmation)));
    ports.expect_settled(
        Side::Pool,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(not_completed()),
        Some("ch_1"),
        true,
    );
    ports.provider.expect_confirm().never();

    let (_, result) = work(ports, JobKind::ReconcilePayment, &payment);

    assert!(result.unwrap());
}

#[test]
fn reconciling_a_declined_charge_fails_the_attempt_with_the_providers_reason() {
    let payment = with_charge(&order(&customer()));
    let attempt = Attempt::known(&payment);
    let mut ports = Ports::default();
    ports.expect_retrieved(&attempt, "ch_1", || Ok(charge("ch_1", ChargeState::Failed(declined()))));
    ports.expect_settled(
        Side::Tx,
        &attempt,
        PaymentStatus::Processing,
        PaymentStatus::Failed,
        Some(declined()),
        Some("ch_1"),
        true,
    );

    let (_, result) = work(ports, JobKind::ReconcilePayment, &payment);

    assert!(result.unwrap());
}

#[test]
fn a_refund_job_refunds_the_charge_then_records_the_attempt_as_refunded() {
    let payment = settled_as(&with_charge(&order(&customer())), PaymentStatus::Succeeded, None);
    let attempt = Attempt::known(&payment);
    let mut ports = Ports::default();
    let journal = ports.journal.clone();
    let expected = payment.expected_charge();
    ports
        .provider
        .expect_refund()
        .withf(move |reference, asked| reference == "ch_1" && *asked == expected)
        .times(1)
        .returning(move |_, _| {
            journal.note("provider.refund");
            Ok(())
        });
    ports.expect_settled(Side::Pool, &attempt, PaymentStatus::Succeeded, PaymentStatus::Refunded, None, None, true);

    let (harness, result) = work(ports, JobKind::RefundPayment, &payment);

    assert!(result.unwrap());
    assert_eq!(harness.journal(), ["payments.find", "provider.refund", "payments.settle refunded"]);
}

#[test]
fn a_refund_the_provider_refused_is_retried_later_and_records_nothing() {
    let payment = settled_as(&with_charge(&order(&customer())), PaymentStatus::Succeeded, None);
    let mut ports = Ports::default();
    ports.provider.expect_refund().times(1).returning(|_, _| Err(unreachable()));
    ports.expect_no_settlement();

    let (_, result) = work(ports, JobKind::RefundPayment, &payment);

    assert!(!result.unwrap());
}

#[test]
fn a_refund_job_for_an_attempt_with_nothing_to_refund_is_done_without_asking_the_provider() {
    // (A `failed` attempt is refunded when the provider reported its charge succeeded after
    // all; that is the refund job's other case, tested with the refunds above.)
    for status in [PaymentStatus::Processing, PaymentStatus::Refunded] {
        let payment = settled_as(&with_charge(&order(&customer())), status, None);
        let mut ports = Ports::default();
        no_provider_call(&mut ports);
        ports.expect_no_settlement();

        let (_, result) = work(ports, JobKind::RefundPayment, &payment);

        assert!(result.unwrap(), "{status}");
    }
}

#[test]
fn a_job_about_an_attempt_that_no_longer_exists_is_done() {
    let payment = processing(&order(&customer()));
    let mut ports = Ports::default();
    ports.payments.expect_find().with(eq(payment.id)).times(1).returning(|_| Ok(None));
    no_provider_call(&mut ports);
    let harness = ports.build();

    assert!(harness.service.work_job(&job(JobKind::ReconcilePayment, &payment)).unwrap());
}

#[test]
fn jobs_wait_while_payments_are_disabled() {
    let payment = processing(&order(&customer()));
    let harness = Ports::default().build_disabled();

    for kind in JobKind::ALL {
        assert!(!harness.service.work_job(&job(kind, &payment)).unwrap());
    }
}

// ---- retry_delay ----------------------------------------------------------------------------

fn retry_job(id: u128, attempts: u32) -> Job {
    Job {
        id: Uuid::from_u128(id),
        kind: JobKind::ReconcilePayment,
        subject: Uuid::now_v7(),
        attempts,
        created_at: now(),
        lease_until: now() + Duration::minutes(5),
    }
}

#[test]
fn retry_delays_double_with_each_attempt_up_to_the_cap_with_at_most_a_quarter_taken_off() {
    let service = Ports::default().build().service;
    let (base, cap) = (policy().retry_base, policy().retry_cap);
    // Jitter spreads 0 (…000), the largest (…999) and something between.
    for id in [1_000_u128, 1_999, 123_456_789, u128::MAX] {
        let mut previous = Duration::zero();
        // `attempts` counts the attempt that just ended: the first waits `retry_base`.
        for attempts in 1..=40 {
            let delay = service.retry_delay(&retry_job(id, attempts));
            let unjittered = (base * 2_i32.saturating_pow((attempts - 1).min(20))).min(cap);
            assert!(delay <= unjittered, "id {id}, attempt {attempts}: {delay} > {unjittered}");
            assert!(delay * 4 >= unjittered * 3, "id {id}, attempt {attempts}: {delay} < 3/4 of {unjittered}");
            assert!(delay <= cap, "id {id}, attempt {attempts}: {delay}");
            assert!(delay >= previous, "id {id}, attempt {attempts}: {delay} < {previous}");
            previous = delay;
        }
    }
}

#[test]
fn without_jitter_the_retry_delay_is_the_base_doubled_per_attempt() {
    let service = Ports::default().build().service;
    // id % 1000 == 0: no jitter.
    let delays: Vec<i64> =
        (1..=10).map(|attempts| service.retry_delay(&retry_job(7_000, attempts)).num_seconds()).collect();
    assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]);
    // A claimed job has made at least one attempt; 0 (never claimed) waits as long as 1.
    assert_eq!(service.retry_delay(&retry_job(7_000, 0)), service.retry_delay(&retry_job(7_000, 1)));
}

#[test]
fn the_retry_jitter_takes_a_job_dependent_share_of_up_to_a_quarter() {
    let service = Ports::default().build().service;
    // Ten minutes (the cap) with spread 999 ‰ of a quarter off.
    assert_eq!(service.retry_delay(&retry_job(999, 30)), Duration::milliseconds(600_000 - 149_850));
    assert_eq!(service.retry_delay(&retry_job(500, 1)), Duration::milliseconds(2_000 - 250));
}
