//! Paying an order through the payment provider (docs/api.md#payments), and settling what the provider's
//! answers leave open: its signed events, reconciliation and refunds (run as durable jobs).
//!
//! ## Phases
//!
//! No transaction is held while the provider is called, so a payment runs in phases, each
//! either one short unit of work or one provider call, and every phase leaves a record the
//! next (or a retry, or reconciliation after a crash) can resume from:
//!
//! 1. **Record the attempt** (unit of work): the order must be the caller's and `pending`; the
//!    attempt is inserted as `processing` under the order's row lock, with the amount and
//!    currency the provider must report, and a `reconcile_payment` job is queued in the same
//!    transaction — so from here on, whatever happens, someone will find out how it ended.
//! 2. **Create the charge** at the provider. It moves no money, so it may be retried freely.
//! 3. **Record its reference** (unit of work). Only a recorded charge is ever confirmed, so a
//!    crash or retry finds the charge again instead of creating another one.
//! 4. **Confirm** at the provider: this is what moves money; never retried blindly.
//! 5. **Record the outcome** (unit of work): a success settles the attempt *and* confirms the
//!    order (stock committed, invoice issued, events) in one transaction; if the order is no
//!    longer pending, a `refund_payment` job is queued in that same transaction instead.
//!
//! Settling is a conditional update from `processing`, so whichever of the request, the
//! provider's event and reconciliation comes first settles the attempt, once.

use std::sync::Arc;

use chrono::Duration;

use crate::actor::Actor;
use crate::error::StoreError;
use crate::event::DomainEvent;
use crate::order::{OrderId, OrderStatus};
use crate::pagination::Page;
use crate::payment::{
    NewPayment, Payment, PaymentFailure, PaymentId, PaymentMethodToken, PaymentQuery, PaymentSettlement, PaymentStatus,
};
use crate::ports::{
    ChargeRequest, ChargeState, Clock, EventRejected, InsertPaymentError, Job, JobKind, NewJob, PaymentProvider,
    ProviderCharge, ProviderError, ProviderEvent, ProviderEventKind, Repositories, UnitOfWork, in_transaction,
};
use crate::services::{OrderService, OrderUseCases, PaymentUseCases};

/// Why paying was refused or could not finish. Each maps to one status of docs/api.md#payments.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("order not found")]
    NotFound,
    #[error("payments are not enabled on this deployment")]
    Disabled,
    #[error("an order that is {0} cannot be paid")]
    NotPayable(OrderStatus),
    #[error("another payment of this order is processing")]
    InProgress,
    /// The provider declined; the failed attempt is recorded.
    #[error("the payment was declined: {}", .0.failure.as_ref().map_or("", |failure| failure.message.as_str()))]
    Declined(Box<Payment>),
    /// The provider could not be reached, so nothing was sent that could move money; the
    /// attempt is recorded as failed.
    #[error("the payment provider could not be reached")]
    ProviderUnavailable,
    /// The provider answered something that failed Orderly's checks; the attempt stays
    /// `processing` and is settled by reconciliation.
    #[error("the payment provider's answer could not be trusted")]
    ProviderUntrustworthy(Box<Payment>),
    /// The payment succeeded, but the order left `pending` meanwhile: it is being refunded.
    #[error("the order was {0} while it was being paid; the payment is being refunded")]
    OrderChangedDuringPayment(OrderStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an accepted payment request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Paid; the order is confirmed (201).
    Succeeded(Payment),
    /// The outcome is not known yet; Orderly settles it by itself (202).
    Processing(Payment),
}

#[derive(Debug, thiserror::Error)]
pub enum GetPaymentError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an inbound provider event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventApplication {
    /// It changed an attempt (or confirmed that one already had this outcome).
    Applied,
    /// Delivered before: nothing done again.
    Duplicate,
    /// Not about a charge Orderly knows, or of a type it does not act on: acknowledged only.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyEventError {
    #[error("payments are not enabled on this deployment")]
    Disabled,
    #[error(transparent)]
    Rejected(#[from] EventRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asked, and how to find the request again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentRequestContext {
    /// `scope:key` of the request's `Idempotency-Key`: a retry with the same key resumes the
    /// attempt this request created instead of starting another.
    pub request_key: Option<String>,
    /// The request id, passed to the provider as metadata.
    pub request_id: Option<String>,
}

/// Settings of the payment rules that come from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPolicy {
    /// How long after an attempt starts reconciliation first asks the provider about it. Must
    /// exceed the longest time a request can spend calling the provider, so reconciliation
    /// never settles an attempt whose request is still running.
    pub reconcile_after: Duration,
    /// Back-off of failed jobs: the first retry waits this long, each next one twice as long…
    pub retry_base: Duration,
    /// … up to this.
    pub retry_cap: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        Self { reconcile_after: Duration::seconds(60), retry_base: Duration::seconds(5), retry_cap: Duration::hours(1) }
    }
}

/// The payment use cases. Built over the pool's repositories; each phase that writes runs in
/// a unit of work of its own.
#[derive(Clone)]
pub struct PaymentService {
    repositories: Repositories,
    unit_of_work: Arc<dyn UnitOfWork>,
    /// `None`: payments are off (`ORDERLY_PAYMENT_PROVIDER=none`).
    provider: Option<Arc<dyn PaymentProvider>>,
    orders: OrderService,
    clock: Arc<dyn Clock>,
    policy: PaymentPolicy,
}

impl PaymentService {
    pub fn new(
        repositories: Repositories,
        unit_of_work: Arc<dyn UnitOfWork>,
        provider: Option<Arc<dyn PaymentProvider>>,
        orders: OrderService,
        clock: Arc<dyn Clock>,
        policy: PaymentPolicy,
    ) -> Self {
        Self { repositories, unit_of_work, provider, orders, clock, policy }
    }

    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Phase 1: the attempt, or the one this request created before (a retry of it).
    fn record_attempt(
        &self,
        actor: Actor,
        order_id: OrderId,
        provider: &'static str,
        context: &PaymentRequestContext,
    ) -> Result<Payment, PayError> {
        let now = self.clock.now();
        let reconcile_at = now + self.policy.reconcile_after;
        in_transaction(self.unit_of_work.as_ref(), |tx| {
            if let Some(key) = &context.request_key
                && let Some(earlier) = tx.payments.find_by_request_key(order_id, key)?
            {
                return Ok(earlier);
            }
            let order = self.orders.within(tx).get(actor, order_id).map_err(|error| match error {
                crate::services::GetOrderError::NotFound => PayError::NotFound,
                crate::services::GetOrderError::Store(error) => PayError::Store(error),
            })?;
            if order.status != OrderStatus::Pending {
                return Err(PayError::NotPayable(order.status));
            }
            let attempt = NewPayment {
                id: PaymentId::new(),
                order_id,
                customer_id: order.customer_id,
                amount: order.total.amount(),
                currency: order.total.currency().clone(),
                provider: provider.to_owned(),
                request_key: context.request_key.clone(),
                created_at: now,
            };
            let payment = tx.payments.insert(&attempt).map_err(|error| match error {
                InsertPaymentError::AlreadyProcessing => PayError::InProgress,
                // It left `pending` between the read and the insert; say what it is now.
                InsertPaymentError::OrderNotPending => match tx.orders.find(order_id) {
                    Ok(Some(now)) => PayError::NotPayable(now.status),
                    Ok(None) => PayError::NotFound,
                    Err(error) => PayError::Store(error),
                },
                InsertPaymentError::Store(error) => PayError::Store(error),
            })?;
            // Queued with the attempt: however this request ends (even killed), the attempt
            // is looked at again.
            tx.jobs.enqueue(&NewJob {
                kind: JobKind::ReconcilePayment,
                subject: payment.id.as_uuid(),
                run_at: reconcile_at,
                created_at: now,
            })?;
            Ok(payment)
        })
    }

    /// Phases 2–5 for an attempt, from wherever it stands.
    fn drive(
        &self,
        provider: &dyn PaymentProvider,
        mut payment: Payment,
        request: &ChargeRequest,
        payer: Option<Actor>,
    ) -> Result<PaymentOutcome, PayError> {
        if payment.status != PaymentStatus::Processing {
            return self.answer_for_settled(payment);
        }
        let reference = match payment.provider_reference.clone() {
            Some(reference) => {
                // A retry: the charge may have been confirmed already. Look before confirming.
                match provider.retrieve(&reference, &payment.expected_charge()) {
                    Ok(ProviderCharge { state: ChargeState::AwaitingConfirmation, .. }) => {
                        // Reconciliation may have given up on it meanwhile: confirm only what
                        // is still ours to confirm. (Should a confirm still race it, the
                        // charge's success is refunded: `refund_if_charged_after_failing`.)
                        let current = self.reload(payment.id)?;
                        if current.status != PaymentStatus::Processing {
                            return self.answer_for_settled(current);
                        }
                        reference
                    }
                    Ok(charge) => return self.conclude(payment, charge, payer),
                    Err(error) => return self.unknown_outcome(payment, &error),
                }
            }
            None => match provider.create(request) {
                // Refused at creation (a payment method the provider does not know): nothing
                // exists there to confirm, and no money moved.
                Ok(ProviderCharge { state: ChargeState::Failed(failure), .. }) => {
                    self.settle_failed(&payment, failure, None)?;
                    return self.answer_for_settled(self.reload(payment.id)?);
                }
                Ok(charge) => {
                    let recorded = in_transaction(self.unit_of_work.as_ref(), |tx| {
                        tx.payments.record_reference(payment.id, &charge.reference, self.clock.now())
                    })?;
                    if !recorded {
                        // Settled meanwhile (reconciliation gave up on it): never confirm.
                        return self.answer_for_settled(self.reload(payment.id)?);
                    }
                    payment.provider_reference = Some(charge.reference.clone());
                    charge.reference
                }
                // A charge that was never confirmed moved no money, whatever happened to it.
                Err(ProviderError::Unreachable(_) | ProviderError::TimedOut(_)) => {
                    return self.fail_unreachable(payment);
                }
                Err(error @ ProviderError::Untrustworthy(_)) => return self.unknown_outcome(payment, &error),
            },
        };
        match provider.confirm(&reference, request) {
            Ok(charge) => self.conclude(payment, charge, payer),
            // Never sent: the charge stays unconfirmed and no money moved.
            Err(ProviderError::Unreachable(_)) => self.fail_unreachable(payment),
            Err(error) => self.unknown_outcome(payment, &error),
        }
    }

    /// The answer for an attempt whose outcome the provider has told.
    fn conclude(
        &self,
        payment: Payment,
        charge: ProviderCharge,
        payer: Option<Actor>,
    ) -> Result<PaymentOutcome, PayError> {
        match charge.state {
            ChargeState::Succeeded => {
                let settled = self.settle_succeeded(&payment, &charge.reference, payer.map(|actor| actor.user_id))?;
                match settled {
                    Some(Settled { payment, order_confirmed: true }) => Ok(PaymentOutcome::Succeeded(payment)),
                    Some(Settled { payment, order_confirmed: false }) => {
                        let order = self.repositories.orders.find(payment.order_id)?;
                        Err(PayError::OrderChangedDuringPayment(
                            order.map_or(OrderStatus::Cancelled, |order| order.status),
                        ))
                    }
                    None => {
                        let settled = self.reload(payment.id)?;
                        self.refund_if_charged_after_failing(&self.repositories, &settled)?;
                        self.answer_for_settled(settled)
                    }
                }
            }
            ChargeState::Failed(failure) => {
                self.settle_failed(&payment, failure, Some(&charge.reference))?;
                self.answer_for_settled(self.reload(payment.id)?)
            }
            ChargeState::Canceled => {
                let failure = PaymentFailure::new("payment_canceled", "the payment was cancelled at the provider");
                self.settle_failed(&payment, failure, Some(&charge.reference))?;
                self.answer_for_settled(self.reload(payment.id)?)
            }
            ChargeState::Processing => Ok(PaymentOutcome::Processing(payment)),
            // The provider says a confirmed charge is still unconfirmed: not an answer to trust.
            ChargeState::AwaitingConfirmation => Err(PayError::ProviderUntrustworthy(Box::new(payment))),
        }
    }

    /// A provider failure after which money may have moved: the attempt stays `processing`
    /// (its reconciliation job is queued already).
    fn unknown_outcome(&self, payment: Payment, error: &ProviderError) -> Result<PaymentOutcome, PayError> {
        tracing::warn!(payment_id = %payment.id, error = %crate::error::with_causes(error), "payment outcome unknown; reconciliation will settle it");
        match error {
            ProviderError::TimedOut(_) => Ok(PaymentOutcome::Processing(payment)),
            _ => Err(PayError::ProviderUntrustworthy(Box::new(payment))),
        }
    }

    fn fail_unreachable(&self, payment: Payment) -> Result<PaymentOutcome, PayError> {
        let failure = PaymentFailure::new(
            "provider_unavailable",
            "the payment provider could not be reached; nothing was charged",
        );
        self.settle_failed(&payment, failure, None)?;
        Err(PayError::ProviderUnavailable)
    }

    /// How a settled attempt answers a request (a retry of one, or one that lost the race to
    /// settle it).
    fn answer_for_settled(&self, payment: Payment) -> Result<PaymentOutcome, PayError> {
        match payment.status {
            PaymentStatus::Succeeded => Ok(PaymentOutcome::Succeeded(payment)),
            PaymentStatus::Processing => Ok(PaymentOutcome::Processing(payment)),
            PaymentStatus::Failed => match payment.failure.as_ref().map(|failure| failure.code.as_str()) {
                Some("provider_unavailable") => Err(PayError::ProviderUnavailable),
                _ => Err(PayError::Declined(Box::new(payment))),
            },
            PaymentStatus::Refunded => {
                let order = self.repositories.orders.find(payment.order_id)?;
                Err(PayError::OrderChangedDuringPayment(order.map_or(OrderStatus::Cancelled, |order| order.status)))
            }
        }
    }

    fn reload(&self, id: PaymentId) -> Result<Payment, StoreError> {
        self.repositories
            .payments
            .find(id)?
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("payment {id} vanished")))
    }

    /// Phase 5 of a success: the attempt and the order in one unit of work. `None`: the
    /// attempt was settled by someone else first.
    fn settle_succeeded(
        &self,
        payment: &Payment,
        reference: &str,
        payer: Option<crate::user::UserId>,
    ) -> Result<Option<Settled>, StoreError> {
        in_transaction(self.unit_of_work.as_ref(), |tx| self.settle_succeeded_in(tx, payment, reference, payer))
    }

    /// [`settle_succeeded`](Self::settle_succeeded) inside the caller's unit of work.
    fn settle_succeeded_in(
        &self,
        tx: &Repositories,
        payment: &Payment,
        reference: &str,
        payer: Option<crate::user::UserId>,
    ) -> Result<Option<Settled>, StoreError> {
        let now = self.clock.now();
        {
            let settlement = PaymentSettlement {
                payment_id: payment.id,
                from: PaymentStatus::Processing,
                to: PaymentStatus::Succeeded,
                failure: None,
                provider_reference: Some(reference.to_owned()),
                now,
            };
            let Some(settled) =
                tx.payments.settle(&settlement, &settled_event(payment, PaymentStatus::Succeeded, None, now))?
            else {
                return Ok(None);
            };
            let order_confirmed = self.orders.within(tx).confirm_paid(payment.order_id, payer)?;
            if !order_confirmed {
                // The money moved for an order that can no longer take it: give it back.
                tx.jobs.enqueue(&NewJob {
                    kind: JobKind::RefundPayment,
                    subject: payment.id.as_uuid(),
                    run_at: now,
                    created_at: now,
                })?;
            }
            Ok(Some(Settled { payment: settled, order_confirmed }))
        }
    }

    /// Settles a `processing` attempt as failed. `false` if it was settled already.
    fn settle_failed(
        &self,
        payment: &Payment,
        failure: PaymentFailure,
        reference: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.settle_failed_in(&self.repositories, payment, failure, reference)
    }

    fn settle_failed_in(
        &self,
        tx: &Repositories,
        payment: &Payment,
        failure: PaymentFailure,
        reference: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let event = settled_event(payment, PaymentStatus::Failed, Some(failure.code.clone()), now);
        let settlement = PaymentSettlement {
            payment_id: payment.id,
            from: PaymentStatus::Processing,
            to: PaymentStatus::Failed,
            failure: Some(failure),
            provider_reference: reference.map(str::to_owned),
            now,
        };
        Ok(tx.payments.settle(&settlement, &event)?.is_some())
    }

    fn apply_verified(
        &self,
        provider: &dyn PaymentProvider,
        event: ProviderEvent,
    ) -> Result<EventApplication, StoreError> {
        let ProviderEventKind::Charge { charge, payment_id, amount, currency } = event.kind else {
            return Ok(EventApplication::Ignored);
        };
        let by_reference = self.repositories.payments.find_by_reference(provider.name(), &charge.reference)?;
        let payment = match (by_reference, payment_id) {
            (Some(payment), _) => payment,
            (None, Some(id)) => match self.repositories.payments.find(id)? {
                // Created at the provider, but its reference was never recorded (a crash or a
                // lost answer): the attempt id in the metadata ties it to the attempt, unless
                // the attempt already knows a different charge.
                Some(payment) if payment.provider_reference.is_none() => payment,
                _ => return Ok(EventApplication::Ignored),
            },
            (None, None) => return Ok(EventApplication::Ignored),
        };
        if payment.amount != amount || !payment.currency.as_str().eq_ignore_ascii_case(&currency) {
            tracing::warn!(payment_id = %payment.id, event_id = %event.id, "a provider event's amount or currency does not match its payment; ignored");
            return Ok(EventApplication::Ignored);
        }
        // The mark and the settlement commit together: a duplicate delivery finds the mark,
        // and a failure leaves neither, so the provider's redelivery applies it.
        in_transaction(self.unit_of_work.as_ref(), |tx| {
            if !tx.payments.mark_provider_event_applied(provider.name(), &event.id, self.clock.now())? {
                return Ok(EventApplication::Duplicate);
            }
            // Read again inside the unit of work: the request or reconciliation may have
            // settled it since.
            let current = tx.payments.find(payment.id)?.unwrap_or_else(|| payment.clone());
            self.settle_from_provider_in(tx, &current, &charge)?;
            Ok(EventApplication::Applied)
        })
    }

    /// Settles a `processing` attempt as the provider reports its charge; leaves it alone if
    /// it is still undecided there. `true` when the attempt is settled (now or before).
    fn settle_from_provider(&self, payment: &Payment, charge: &ProviderCharge) -> Result<bool, StoreError> {
        in_transaction(self.unit_of_work.as_ref(), |tx| self.settle_from_provider_in(tx, payment, charge))
    }

    fn settle_from_provider_in(
        &self,
        tx: &Repositories,
        payment: &Payment,
        charge: &ProviderCharge,
    ) -> Result<bool, StoreError> {
        if payment.status != PaymentStatus::Processing {
            if charge.state == ChargeState::Succeeded {
                self.refund_if_charged_after_failing(tx, payment)?;
            }
            return Ok(true);
        }
        match &charge.state {
            ChargeState::Succeeded => {
                self.settle_succeeded_in(tx, payment, &charge.reference, None)?;
                Ok(true)
            }
            ChargeState::Failed(failure) => {
                self.settle_failed_in(tx, payment, failure.clone(), Some(&charge.reference))?;
                Ok(true)
            }
            ChargeState::Canceled => {
                let failure = PaymentFailure::new("payment_canceled", "the payment was cancelled at the provider");
                self.settle_failed_in(tx, payment, failure, Some(&charge.reference))?;
                Ok(true)
            }
            ChargeState::Processing | ChargeState::AwaitingConfirmation => Ok(false),
        }
    }

    /// Works one claimed job. `Ok(true)`: done; `Ok(false)`: not yet (retry later).
    pub fn work_job(&self, job: &Job) -> Result<bool, StoreError> {
        let Some(provider) = self.provider.clone() else {
            // Payments were switched off with work outstanding: keep it until they are back.
            return Ok(false);
        };
        let Some(payment) = self.repositories.payments.find(PaymentId::from_uuid(job.subject))? else {
            return Ok(true);
        };
        match job.kind {
            JobKind::ReconcilePayment => self.reconcile(provider.as_ref(), &payment),
            JobKind::RefundPayment => self.refund(provider.as_ref(), &payment),
            // Not a payment job: the webhook worker claims these (`JobWorker::for_webhooks`).
            JobKind::DeliverWebhook => Ok(false),
        }
    }

    /// Asks the provider how a `processing` attempt ended, and settles it.
    fn reconcile(&self, provider: &dyn PaymentProvider, payment: &Payment) -> Result<bool, StoreError> {
        if payment.status != PaymentStatus::Processing {
            return Ok(true);
        }
        let Some(reference) = &payment.provider_reference else {
            // No charge was recorded, so none was ever confirmed: no money moved.
            let failure = PaymentFailure::new("not_completed", "the payment was not completed");
            self.settle_failed(payment, failure, None)?;
            return Ok(true);
        };
        match provider.retrieve(reference, &payment.expected_charge()) {
            Ok(ProviderCharge { state: ChargeState::AwaitingConfirmation, reference }) => {
                // Recorded but never confirmed (the request died before, or could not send it).
                let failure = PaymentFailure::new("not_completed", "the payment was not completed");
                self.settle_failed(payment, failure, Some(&reference))?;
                Ok(true)
            }
            Ok(charge) => self.settle_from_provider(payment, &charge),
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, error = %crate::error::with_causes(&error), "reconciliation could not reach a verdict; retrying later");
                Ok(false)
            }
        }
    }

    /// The provider reports money taken for an attempt Orderly had already settled `failed`
    /// (reconciliation gave up on an unconfirmed charge while a retry confirmed it): the money
    /// goes back. Queued in the caller's unit of work.
    fn refund_if_charged_after_failing(&self, tx: &Repositories, payment: &Payment) -> Result<(), StoreError> {
        if payment.status == PaymentStatus::Failed && payment.provider_reference.is_some() {
            tracing::warn!(payment_id = %payment.id, "a charge succeeded for an attempt settled as failed; refunding it");
            let now = self.clock.now();
            tx.jobs.enqueue(&NewJob {
                kind: JobKind::RefundPayment,
                subject: payment.id.as_uuid(),
                run_at: now,
                created_at: now,
            })?;
        }
        Ok(())
    }

    /// Refunds money taken for an order that cannot keep it — a succeeded attempt whose order
    /// could not be confirmed, or a charge that succeeded for an attempt already settled
    /// `failed` — then records the attempt `refunded`.
    fn refund(&self, provider: &dyn PaymentProvider, payment: &Payment) -> Result<bool, StoreError> {
        if !matches!(payment.status, PaymentStatus::Succeeded | PaymentStatus::Failed) {
            return Ok(true);
        }
        let Some(reference) = &payment.provider_reference else {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "succeeded payment {} has no provider reference",
                payment.id
            )));
        };
        if let Err(error) = provider.refund(reference, &payment.expected_charge()) {
            tracing::warn!(payment_id = %payment.id, error = %crate::error::with_causes(&error), "refund failed; retrying later");
            return Ok(false);
        }
        let now = self.clock.now();
        let settlement = PaymentSettlement {
            payment_id: payment.id,
            from: payment.status,
            to: PaymentStatus::Refunded,
            failure: None,
            provider_reference: None,
            now,
        };
        self.repositories.payments.settle(&settlement, &settled_event(payment, PaymentStatus::Refunded, None, now))?;
        Ok(true)
    }

    /// When a job that could not finish runs again: exponential back-off from
    /// `retry_base` (after the first attempt; `job.attempts` counts the one that just ended),
    /// capped at `retry_cap`, with jitter of up to a quarter of the wait taken from the job's id
    /// (so instances retrying many jobs do not move in lock-step).
    pub fn retry_delay(&self, job: &Job) -> Duration {
        let exponent = job.attempts.saturating_sub(1).min(20);
        let base_ms = self.policy.retry_base.num_milliseconds().max(1);
        let cap_ms = self.policy.retry_cap.num_milliseconds().max(base_ms);
        let wait_ms = base_ms.saturating_mul(1_i64 << exponent).min(cap_ms);
        let spread = (job.id.as_u128() % 1_000) as i64;
        Duration::milliseconds(wait_ms - wait_ms / 4 * spread / 1_000)
    }
}

impl PaymentUseCases for PaymentService {
    /// Pays the order's total with `method` (docs/api.md#payments `POST /v1/orders/{id}/payments`).
    fn pay(
        &self,
        actor: Actor,
        order_id: OrderId,
        method: PaymentMethodToken,
        context: &PaymentRequestContext,
    ) -> Result<PaymentOutcome, PayError> {
        // Existence and ownership first: someone else's order is not found, whatever the
        // deployment's settings.
        self.orders.get(actor, order_id).map_err(|error| match error {
            crate::services::GetOrderError::NotFound => PayError::NotFound,
            crate::services::GetOrderError::Store(error) => PayError::Store(error),
        })?;
        let provider = self.provider.clone().ok_or(PayError::Disabled)?;
        let payment = self.record_attempt(actor, order_id, provider.name(), context)?;
        let request = ChargeRequest {
            expected: payment.expected_charge(),
            order_id,
            payment_method: method,
            request_id: context.request_id.clone(),
        };
        self.drive(provider.as_ref(), payment, &request, Some(actor))
    }

    /// `GET /v1/orders/{id}/payments`: the order's attempts, newest first.
    fn list(&self, actor: Actor, query: PaymentQuery) -> Result<Page<Payment>, GetPaymentError> {
        self.orders.get(actor, query.order_id).map_err(|_| GetPaymentError::NotFound)?;
        let rows = self.repositories.payments.list(&query)?;
        Ok(Page::from_overfetched(rows, query.limit))
    }

    /// `GET /v1/orders/{id}/payments/{payment_id}`.
    fn get(&self, actor: Actor, order_id: OrderId, id: PaymentId) -> Result<Payment, GetPaymentError> {
        match self.repositories.payments.find(id)? {
            Some(payment) if payment.order_id == order_id && actor.may_access_owned_by(payment.customer_id) => {
                Ok(payment)
            }
            _ => Err(GetPaymentError::NotFound),
        }
    }

    /// `POST /v1/payment-events`: verifies the provider's event and applies it at most once.
    fn apply_event(&self, signature: Option<&str>, body: &[u8]) -> Result<EventApplication, ApplyEventError> {
        let provider = self.provider.clone().ok_or(ApplyEventError::Disabled)?;
        let event = provider.verify_event(signature, body, self.clock.now())?;
        Ok(self.apply_verified(provider.as_ref(), event)?)
    }
}

/// The outcome of settling a success.
struct Settled {
    payment: Payment,
    order_confirmed: bool,
}

fn settled_event(
    payment: &Payment,
    status: PaymentStatus,
    failure_code: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> DomainEvent {
    DomainEvent::PaymentSettled {
        payment_id: payment.id,
        order_id: payment.order_id,
        customer_id: payment.customer_id,
        status,
        amount: payment.amount,
        failure_code,
        occurred_at: now,
    }
}

#[cfg(test)]
mod tests;
