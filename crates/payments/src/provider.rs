//! [`StripeProvider`]: the domain's `PaymentProvider` port over Stripe's PaymentIntents.
//!
//! Each port method is a short script of HTTP calls (see the `transport` module) whose answers
//! must pass the `answer` module's checks. The idempotency key of every call is derived from
//! the attempt id and the step (`orderly-payment-<id>-create`, `-confirm`, `-refund`), so a
//! repeat, by this adapter or by the domain after a crash, is the same request to Stripe.
//! Nothing here relies on the key being honoured (localstripe ignores it): confirm is only
//! sent for an intent the domain recorded first, and a refund first checks for an earlier one.

use std::time::Instant;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use orderly_domain::payment::{ExpectedCharge, PaymentFailure, PaymentId};
use orderly_domain::ports::{
    ChargeRequest, ChargeState, EventRejected, PaymentProvider, ProviderCharge, ProviderError, ProviderEvent,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};

use crate::answer::{self, WireIntent, WireList, WireRefund, untrustworthy};
use crate::event;
use crate::metrics;
use crate::settings::StripeSettings;
use crate::transport::{Answer, Call, Retry, Transport};

/// The form fields of the metadata set on each PaymentIntent (and refund).
const FORM_METADATA_PAYMENT_ID: &str = "metadata[orderly_payment_id]";
const FORM_METADATA_ORDER_ID: &str = "metadata[orderly_order_id]";
const FORM_METADATA_REQUEST_ID: &str = "metadata[request_id]";

/// Stripe metadata values are at most 500 characters; a request id is far shorter.
const MAX_REQUEST_ID_CHARS: usize = 200;

/// The Stripe adapter. Cheap to share (`Arc`); its HTTP client keeps a connection pool.
pub struct StripeProvider {
    transport: Transport,
    webhook_secret: SecretString,
    signature_tolerance: chrono::Duration,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("transport", &self.transport)
            .field("webhook_secret", &"[REDACTED]")
            .field("signature_tolerance", &self.signature_tolerance)
            .finish()
    }
}

impl StripeProvider {
    /// The name stored on each attempt.
    pub const NAME: &str = "stripe";

    /// Builds the client. Fails on settings that cannot work (an API base that is not a bare
    /// http(s) origin, empty secrets, zero timeouts or attempts, a connect timeout longer than
    /// the timeout). Must be called outside an async runtime's worker threads, like every call.
    pub fn new(settings: StripeSettings) -> anyhow::Result<Self> {
        if settings.webhook_secret.expose_secret().trim().is_empty() {
            anyhow::bail!("the Stripe webhook secret is empty");
        }
        if settings.signature_tolerance <= chrono::Duration::zero() {
            anyhow::bail!("the Stripe signature tolerance must be positive");
        }
        let transport = Transport::new(&settings)?;
        tracing::info!(api_base = %transport.api_base(), "payment provider: Stripe");
        Ok(Self {
            transport,
            webhook_secret: settings.webhook_secret,
            signature_tolerance: settings.signature_tolerance,
        })
    }

    /// Runs one port call inside a span, then counts it and logs how it ended.
    fn observed<T>(
        &self,
        operation: &'static str,
        payment_id: PaymentId,
        reference: Option<&str>,
        call: impl FnOnce() -> Result<T, ProviderError>,
        declined: impl FnOnce(&T) -> bool,
    ) -> Result<T, ProviderError> {
        let span = tracing::info_span!("payment_provider", operation, payment_id = %payment_id, reference);
        let _entered = span.enter();
        let started = Instant::now();
        let result = call();
        let elapsed = started.elapsed();
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let outcome = match &result {
            Ok(value) if declined(value) => metrics::OUTCOME_DECLINED,
            Ok(_) => metrics::OUTCOME_OK,
            Err(ProviderError::Unreachable(_)) => metrics::OUTCOME_UNREACHABLE,
            Err(ProviderError::TimedOut(_)) => metrics::OUTCOME_TIMEOUT,
            Err(ProviderError::Untrustworthy(_)) => metrics::OUTCOME_UNTRUSTWORTHY,
        };
        metrics::record_call(operation, outcome, elapsed);
        match &result {
            Ok(_) => tracing::info!(outcome, latency_ms, "payment provider call done"),
            // `{:#}` shows the cause chain: provider error codes and URLs, never keys or bodies.
            Err(error) => {
                let error = format!("{error}: {:#}", cause(error));
                tracing::warn!(outcome, latency_ms, error, "payment provider call failed");
            }
        }
        result
    }

    fn create_intent(&self, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError> {
        let expected = &request.expected;
        let payment_id = expected.payment_id.to_string();
        let mut form = vec![
            ("amount", expected.amount.to_string()),
            ("currency", expected.currency.as_str().to_ascii_lowercase()),
            ("payment_method", request.payment_method.as_str().to_owned()),
            // Cards only: with Stripe's automatic payment methods, confirming would demand a
            // `return_url` for redirect-based methods Orderly cannot complete.
            ("payment_method_types[0]", "card".to_owned()),
            (FORM_METADATA_PAYMENT_ID, payment_id),
            (FORM_METADATA_ORDER_ID, request.order_id.to_string()),
        ];
        if let Some(request_id) = request.request_id.as_deref() {
            form.push((FORM_METADATA_REQUEST_ID, request_id.chars().take(MAX_REQUEST_ID_CHARS).collect()));
        }
        let key = idempotency_key(expected.payment_id, "create");
        let answer = self.transport.send(&Call {
            operation: metrics::OPERATION_CREATE,
            method: Method::POST,
            path: "/v1/payment_intents".to_owned(),
            query: &[],
            form: &form,
            idempotency_key: Some(&key),
            retry: Retry::Freely,
        })?;
        if let Some(failure) = unusable_payment_method(&answer) {
            // Nothing was created: the customer named a payment method the provider does not
            // know (a typo, another account's token). An answer, not a provider fault.
            tracing::info!(code = failure.code.as_str(), "payment method refused at creation");
            return Ok(ProviderCharge { reference: String::new(), state: ChargeState::Failed(failure) });
        }
        let intent: WireIntent = answer::expect_success(&answer, "payment_intent")?;
        answer::check_intent(&intent, expected, None, true).map_err(untrustworthy)?;
        match answer::charge_state(&intent).map_err(untrustworthy)? {
            ChargeState::AwaitingConfirmation => {
                Ok(ProviderCharge { reference: intent.id, state: ChargeState::AwaitingConfirmation })
            }
            // Created without `confirm`, it can be in no other state.
            other => Err(untrustworthy(anyhow!("a new, unconfirmed PaymentIntent is already {other:?}"))),
        }
    }

    fn confirm_intent(&self, reference: &str, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError> {
        let expected = &request.expected;
        check_reference(reference)?;
        let key = idempotency_key(expected.payment_id, "confirm");
        // No parameters: the payment method was given at creation (localstripe answers 500 to
        // one given here, and rejects metadata here).
        let answer = self.transport.send(&Call {
            operation: metrics::OPERATION_CONFIRM,
            method: Method::POST,
            path: format!("/v1/payment_intents/{reference}/confirm"),
            query: &[],
            form: &[],
            idempotency_key: Some(&key),
            retry: Retry::OnlyIfNotProcessed,
        })?;
        if answer.status == StatusCode::PAYMENT_REQUIRED {
            // A decline is an answer: no money moved and the customer may try another card.
            let error = answer::error_body(&answer)
                .filter(|error| error.code.is_some())
                .ok_or_else(|| untrustworthy(anyhow!("a 402 answer without an error code")))?;
            if let Some(named) = error.payment_intent.as_ref() {
                let intent: WireIntent = serde_json::from_value(named.clone())
                    .map_err(|_| untrustworthy(anyhow!("the decline names a malformed PaymentIntent")))?;
                answer::check_intent(&intent, expected, Some(reference), false).map_err(untrustworthy)?;
            }
            tracing::info!(
                code = error.code.as_deref(),
                decline_code = error.decline_code.as_deref(),
                "charge declined"
            );
            return Ok(ProviderCharge {
                reference: reference.to_owned(),
                state: ChargeState::Failed(answer::failure(&error)),
            });
        }
        self.checked_intent(&answer, expected, reference)
    }

    fn retrieve_intent(
        &self,
        reference: &str,
        expected: &ExpectedCharge,
        operation: &'static str,
    ) -> Result<ProviderCharge, ProviderError> {
        check_reference(reference)?;
        let answer = self.transport.send(&Call {
            operation,
            method: Method::GET,
            path: format!("/v1/payment_intents/{reference}"),
            query: &[],
            form: &[],
            idempotency_key: None,
            retry: Retry::Freely,
        })?;
        self.checked_intent(&answer, expected, reference)
    }

    fn checked_intent(
        &self,
        answer: &crate::transport::Answer,
        expected: &ExpectedCharge,
        reference: &str,
    ) -> Result<ProviderCharge, ProviderError> {
        let intent: WireIntent = answer::expect_success(answer, "payment_intent")?;
        answer::check_intent(&intent, expected, Some(reference), false).map_err(untrustworthy)?;
        let state = answer::charge_state(&intent).map_err(untrustworthy)?;
        Ok(ProviderCharge { reference: intent.id, state })
    }

    fn refund_intent(&self, reference: &str, expected: &ExpectedCharge) -> Result<(), ProviderError> {
        let charge = self.retrieve_intent(reference, expected, metrics::OPERATION_REFUND)?;
        if charge.state != ChargeState::Succeeded {
            return Err(untrustworthy(anyhow!(
                "only a succeeded charge can be refunded; this one is {:?}",
                charge.state
            )));
        }
        // Stripe honours the idempotency key, localstripe does not: look for an earlier refund
        // first, so that repeating this call never refunds twice.
        let refunded = self.refunded_amount(reference, expected)?;
        if refunded >= expected.amount {
            tracing::info!(refunded, "already refunded");
            return Ok(());
        }
        if refunded > 0 {
            // Orderly only ever refunds in full; a partial refund was made by someone else.
            return Err(untrustworthy(anyhow!("the charge is partly refunded ({refunded} of {})", expected.amount)));
        }

        let key = idempotency_key(expected.payment_id, "refund");
        let form = [
            ("payment_intent", reference.to_owned()),
            ("amount", expected.amount.to_string()),
            (FORM_METADATA_PAYMENT_ID, expected.payment_id.to_string()),
        ];
        let answer = self.transport.send(&Call {
            operation: metrics::OPERATION_REFUND,
            method: Method::POST,
            path: "/v1/refunds".to_owned(),
            query: &[],
            form: &form,
            idempotency_key: Some(&key),
            retry: Retry::OnlyIfNotProcessed,
        })?;
        let refund: WireRefund = answer::expect_success(&answer, "refund")?;
        check_refund(&refund, reference, expected).map_err(untrustworthy)?;
        if !counts_as_refunded(&refund.status) {
            return Err(untrustworthy(anyhow!("the refund is {:?}", refund.status)));
        }
        tracing::info!(refund = %refund.id, status = %refund.status, "refunded");
        Ok(())
    }

    /// The amount already refunded (or being refunded) on the charge.
    fn refunded_amount(&self, reference: &str, expected: &ExpectedCharge) -> Result<i64, ProviderError> {
        let answer = self.transport.send(&Call {
            operation: metrics::OPERATION_REFUND,
            method: Method::GET,
            path: "/v1/refunds".to_owned(),
            query: &[("payment_intent", reference), ("limit", "100")],
            form: &[],
            idempotency_key: None,
            retry: Retry::Freely,
        })?;
        let list: WireList<WireRefund> = answer::expect_success(&answer, "list")?;
        if list.object != "list" {
            return Err(untrustworthy(anyhow!("the refund list is a {:?}", list.object)));
        }
        if list.has_more {
            // More than 100 refunds of one charge is not something Orderly made.
            return Err(untrustworthy(anyhow!("the charge has more than 100 refunds")));
        }
        let mut refunded: i64 = 0;
        for refund in &list.data {
            check_refund(refund, reference, expected).map_err(untrustworthy)?;
            if counts_as_refunded(&refund.status) {
                refunded = refunded.saturating_add(refund.amount);
            }
        }
        Ok(refunded)
    }
}

fn check_refund(refund: &WireRefund, reference: &str, expected: &ExpectedCharge) -> anyhow::Result<()> {
    if refund.object != "refund" || !answer::is_provider_id(&refund.id, "re_") {
        anyhow::bail!("not a refund: {:?} {:?}", refund.object, refund.id);
    }
    if let Some(payment_intent) = refund.payment_intent.as_deref()
        && payment_intent != reference
    {
        anyhow::bail!("the refund is of PaymentIntent {payment_intent:?}, not {reference:?}");
    }
    if !refund.currency.eq_ignore_ascii_case(expected.currency.as_str()) {
        anyhow::bail!("the refund's currency {:?} is not the expected {}", refund.currency, expected.currency.as_str());
    }
    if refund.amount <= 0 || refund.amount > expected.amount {
        anyhow::bail!("the refund's amount {} does not fit a charge of {}", refund.amount, expected.amount);
    }
    Ok(())
}

/// Refund statuses that mean the money is (or will be) returned.
fn counts_as_refunded(status: &str) -> bool {
    matches!(status, "succeeded" | "pending" | "requires_action")
}

fn idempotency_key(payment_id: PaymentId, step: &str) -> String {
    format!("orderly-payment-{payment_id}-{step}")
}

/// The reference goes into a URL path: it must be a PaymentIntent id and nothing else.
fn check_reference(reference: &str) -> Result<(), ProviderError> {
    if answer::is_provider_id(reference, "pi_") {
        Ok(())
    } else {
        Err(untrustworthy(anyhow!("{reference:?} is not a PaymentIntent id")))
    }
}

fn cause(error: &ProviderError) -> &anyhow::Error {
    match error {
        ProviderError::Unreachable(cause) | ProviderError::TimedOut(cause) | ProviderError::Untrustworthy(cause) => {
            cause
        }
    }
}

impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn create(&self, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError> {
        self.observed(
            metrics::OPERATION_CREATE,
            request.expected.payment_id,
            None,
            || self.create_intent(request),
            |_| false,
        )
    }

    fn confirm(&self, reference: &str, request: &ChargeRequest) -> Result<ProviderCharge, ProviderError> {
        self.observed(
            metrics::OPERATION_CONFIRM,
            request.expected.payment_id,
            Some(reference),
            || self.confirm_intent(reference, request),
            |charge| matches!(charge.state, ChargeState::Failed(_)),
        )
    }

    fn retrieve(&self, reference: &str, expected: &ExpectedCharge) -> Result<ProviderCharge, ProviderError> {
        self.observed(
            metrics::OPERATION_RETRIEVE,
            expected.payment_id,
            Some(reference),
            || self.retrieve_intent(reference, expected, metrics::OPERATION_RETRIEVE),
            |charge| matches!(charge.state, ChargeState::Failed(_)),
        )
    }

    fn refund(&self, reference: &str, expected: &ExpectedCharge) -> Result<(), ProviderError> {
        self.observed(
            metrics::OPERATION_REFUND,
            expected.payment_id,
            Some(reference),
            || self.refund_intent(reference, expected),
            |_| false,
        )
    }

    fn verify_event(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ProviderEvent, EventRejected> {
        let result = event::verify_signature(signature, body, &self.webhook_secret, now, self.signature_tolerance)
            .and_then(|()| event::parse_event(body));
        match &result {
            Ok(event) => {
                metrics::record_event(metrics::EVENT_ACCEPTED);
                tracing::debug!(event_id = %event.id, "provider event verified");
            }
            Err(EventRejected::InvalidSignature) => {
                metrics::record_event(metrics::EVENT_INVALID_SIGNATURE);
                tracing::warn!("provider event rejected: invalid signature");
            }
            Err(EventRejected::Malformed(why)) => {
                metrics::record_event(metrics::EVENT_MALFORMED);
                tracing::warn!(why = %why, "provider event rejected: malformed");
            }
        }
        result
    }
}

/// A refusal of `create` that says the payment method itself is unusable: Stripe answers 400
/// `invalid_request_error` with `param: payment_method` (code `resource_missing` for a token it
/// does not know); localstripe answers 404 (unknown) or 400 (malformed) `invalid_request_error`
/// naming no parameter. The payment method is the only customer-supplied parameter of the
/// creation (amount, currency and metadata are Orderly's own), so a refusal naming no other
/// parameter is taken as being about it. Anything else is left to the ordinary checks (and is
/// untrustworthy).
fn unusable_payment_method(answer: &Answer) -> Option<PaymentFailure> {
    if !matches!(answer.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND) {
        return None;
    }
    let error = answer::error_body(answer)?;
    let about_the_method = matches!(error.param.as_deref(), None | Some("payment_method"));
    (error.kind.as_deref() == Some("invalid_request_error") && about_the_method).then(|| {
        PaymentFailure::new("invalid_payment_method", "the payment provider does not know this payment method")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secrets() {
        let mut settings = StripeSettings::new(
            SecretString::from("sk_test_very_secret_key"),
            SecretString::from("whsec_very_secret_webhook"),
        );
        settings.api_base = "http://127.0.0.1:9".into();
        let printed = format!("{settings:?} {:?}", StripeProvider::new(settings.clone()).unwrap());
        assert!(!printed.contains("very_secret"), "{printed}");
        assert!(printed.contains("127.0.0.1:9"), "{printed}");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let base = || {
            let mut settings = StripeSettings::new(SecretString::from("sk_test_x"), SecretString::from("whsec_x"));
            settings.api_base = "http://127.0.0.1:9".into();
            settings
        };
        assert!(StripeProvider::new(base()).is_ok());
        let broken: &[fn(&mut StripeSettings)] = &[
            |s| s.secret_key = SecretString::from(""),
            |s| s.webhook_secret = SecretString::from(" "),
            |s| s.max_attempts = 0,
            |s| s.timeout = std::time::Duration::ZERO,
            |s| s.connect_timeout = s.timeout * 2,
            |s| s.api_base = "https://api.stripe.com/v1".into(),
            |s| s.signature_tolerance = chrono::Duration::zero(),
        ];
        for (n, break_it) in broken.iter().enumerate() {
            let mut settings = base();
            break_it(&mut settings);
            assert!(StripeProvider::new(settings).is_err(), "case {n}");
        }
    }

    #[test]
    fn the_attempt_id_is_sent_under_the_key_answers_are_checked_for() {
        assert_eq!(FORM_METADATA_PAYMENT_ID, format!("metadata[{}]", answer::METADATA_PAYMENT_ID));
    }

    #[test]
    fn idempotency_keys_name_the_attempt_and_the_step() {
        let id = PaymentId::new();
        assert_eq!(idempotency_key(id, "confirm"), format!("orderly-payment-{id}-confirm"));
    }
}
